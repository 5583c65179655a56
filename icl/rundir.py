"""A run directory's lifecycle: check it before anything is written, lock it, then start or resume it.

`inspect_run_dir` decides, without writing, whether a folder is a new run or a run of this
very config and data to resume (`compared_settings`, `data_differences`: what must be equal;
a larger n_repeats extends the run), which part files are damaged and which are not part of
the run; `lock_run_dir` makes one launch its only writer; `start_run_dir` then writes
config.json (or notes the resumption in it) and sets the bad parts aside. The files'
formats are icl/results.py's.
"""
import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import socket
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import filelock
from ml_collections import config_dict

from icl import results
from icl.config import flatten
from icl.errors import UsageError
from icl.settings import ENV_DEFAULTS

LOCK_WAIT_S = 2  # a launch waits this long for the lock (a dry run's lock_holder probe holds it for an instant)
EXTENSIBLE = 'n_repeats'  # the one setting a resume may change (upwards: repetition r depends only on seed + r)


def default_run_dir(config: config_dict.ConfigDict) -> Path:
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    note = [] if config.note in ('None', '') else [config.note]  # 'None' is the default note: no --note given
    name = '-'.join([config.dataset.name, config.model.name, *note, stamp])
    return Path('runs') / results.file_name(name)


@dataclasses.dataclass
class RunDir:
    """A run directory as found before anything is written to it."""
    path: Path
    record: dict | None  # its config.json; None for a new run
    done: list[int]  # repetitions with a complete part file of this run
    invalid: dict[Path, str]  # damaged part files -> what is wrong (set aside and redone)
    foreign: dict[Path, str] = dataclasses.field(default_factory=dict)  # parts not of this run -> why (set aside)
    extended_from: int | None = None  # the run's n_repeats when this resume extends it
    holder: str | None = None  # the launch that holds the run directory now (see lock_run_dir)

    def describe(self, n_repeats: int) -> str:
        in_use = [f'in use now by {self.holder}'] if self.holder else []
        if self.record is None:
            return f'run dir        {self.path} ({", ".join(["new", *in_use])})'
        notes = [f'{len(self.done)} of {n_repeats} repetitions done']
        if self.extended_from is not None:
            notes.append(f'extending it from {self.extended_from} repetitions')
        if self.invalid:
            notes.append(f'{len(self.invalid)} damaged part(s) to redo')
        if self.foreign:
            notes.append(f'{len(self.foreign)} file(s) not part of the run to set aside')
        return f'run dir        {self.path} (resume: {", ".join(notes + in_use)})'


def read_record(config_path: Path) -> dict:
    """A run directory's config.json; UsageError if it is not one this tool wrote."""
    try:
        record = results.read_json(config_path)
    except (OSError, ValueError):
        raise UsageError(f"'{config_path}' is damaged (not readable JSON); this run cannot be resumed, "
                         'use a new --workdir') from None
    if not isinstance(record, dict) or not isinstance(record.get('config'), dict):
        raise UsageError(f"'{config_path}' is not a config.json of this tool (no 'config' object); "
                         'use a new --workdir')
    return results.upgraded_record(record)


def check_writable(path: Path) -> None:
    """UsageError unless the run directory `path` can be written. A new one is tried by creating (and
    removing) it and a file in it, as the run would, so special file systems and over-long names fail
    too; an existing one (a run to resume, never touched by a check) by its permissions."""
    existing = path
    while not _exists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot create run directory '{path}': '{existing}' is not a folder")
    if existing == path:
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"cannot write run directory '{path}': permission denied or read-only file system; "
                             'give a --workdir you can write')
        return
    created = []  # folders this check makes, removed again
    try:
        for folder in [path, *path.parents][:len(path.parts) - len(existing.parts)][::-1]:
            folder.mkdir()
            created.append(folder)
        with tempfile.NamedTemporaryFile(dir=path, prefix='.probe-', suffix='.tmp'):
            pass
    except OSError as error:
        raise unwritable(path, error) from None
    finally:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a name too long: check_writable says so
        return False


def unwritable(path: Path, error: OSError) -> UsageError:
    where = f" ('{error.filename}')" if error.filename and Path(error.filename) != path else ''
    return UsageError(f"cannot write run directory '{path}'{where}: {error.strerror}; give a --workdir you can write")


def compared_settings(record: dict) -> dict:
    """What must be equal for a run to be resumed: every config key and the resolved dtype."""
    record = results.upgraded_record(record)  # compare as stored, in today's shape
    return {**flatten(record['config']), 'dtype (resolved model.dtype)': record.get('dtype')}


def config_differences(old: dict, new: dict) -> dict[str, tuple]:
    """{key: (old value, new value)} for each setting that differs between two config.json records."""
    a, b = compared_settings(old), compared_settings(new)
    return {key: (a.get(key), b.get(key)) for key in sorted(a.keys() | b.keys()) if a.get(key) != b.get(key)}


def run_identity(record: dict) -> str:
    """A hash of what makes a repetition's data: the compared settings but n_repeats, and the data's hashes."""
    settings = {key: value for key, value in compared_settings(record).items() if key != EXTENSIBLE}
    data = {split: part.get('sha256') for split, part in (record.get('data') or {}).get('splits', {}).items()}
    text = json.dumps({'settings': settings, 'data': data}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def data_differences(old: dict, new: dict) -> list[str]:
    """How the records a run was made from differ from the ones loaded now, per split ([]: the same).
    A run recorded before data fingerprints cannot be checked (a warning)."""
    before, now = old.get('data'), new.get('data') or {}
    if not before:
        logging.warning("config.json records no data fingerprint; cannot check that the data are unchanged")
        return []
    splits_before, splits_now = before.get('splits', {}), now.get('splits', {})
    found = []
    for split in sorted(splits_before.keys() | splits_now.keys()):
        a, b = splits_before.get(split), splits_now.get(split)
        if a is None or b is None:
            found.append(f"split {split} {'is new' if a is None else 'is missing'}")
        elif a['rows'] != b['rows']:
            found.append(f"split {split} has {b['rows']} rows (was {a['rows']})")
        elif a['sha256'] != b['sha256']:
            found.append(f"split {split} has other rows (same count, {a['rows']})")
    return found


def _env_of(key: str) -> str:
    """' (CLASS_NAMES)' for a key whose default an environment variable sets, so the message names what was set."""
    return f' ({ENV_DEFAULTS[key]})' if key in ENV_DEFAULTS else ''


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + '...'


def check_run_files(path: Path) -> None:
    """UsageError if a file of the run besides config.json and the parts is damaged (nothing is written)."""
    table = path / results.TABLE_DIR
    if table.exists() and not table.is_dir():
        raise UsageError(f"'{table}' is a file, not the folder of the run's results parts; move it away and rerun")
    setup = path / 'setup.json'
    if setup.exists():
        try:
            readable = isinstance(results.read_json(setup), dict)
        except (OSError, ValueError):
            readable = False
        if not readable:
            raise UsageError(f"'{setup}' is damaged (not readable JSON); delete it and rerun: the run writes it "
                             'again (its parts are kept)')


def check_same_run(path: Path, old: dict, new: dict) -> int | None:
    """UsageError unless `new` continues the run `old`; the old n_repeats when `new` extends it."""
    differing = config_differences(old, new)
    extended = differing.pop(EXTENSIBLE, None)
    if differing:
        shown = ', '.join(f'{key}{_env_of(key)} {_short(a)} -> {_short(b)}' for key, (a, b) in differing.items())
        raise UsageError(f"'{path}' holds a run of a different config ({shown}); resume it with its own "
                         'command (see its config.json) or use a new --workdir')
    if extended is not None and extended[1] < extended[0]:
        raise UsageError(f"'{path}' holds a run of {extended[0]} repetitions; --n_repeats={extended[1]} would "
                         f'shrink it: resume with --n_repeats={extended[0]} (or more, to extend it)')
    if changes := data_differences(old, new):
        data = new.get('data') or {}
        raise UsageError(f"'{path}' was made from other {data.get('dataset')} data than {data.get('source')} holds "
                         f"now ({'; '.join(changes)}); resume it with the data it was made from "
                         f"({old['data'].get('source')}) or use a new --workdir")
    return extended[0] if extended else None


def inspect_run_dir(path: Path, record: dict, *, n_repeats: int, rows_per_repetition: int, variants: Sequence[str],
                    check_parts: bool = True) -> RunDir:
    """Check `path` without writing to it: a new run, or a run of this very config to resume.

    `record` is the config.json this run would write; a complete part holds `rows_per_repetition`
    rows of `variants`. UsageError for a folder that cannot be written, a file, a non-empty folder
    this tool did not make, a damaged config.json, setup.json or results folder, a run of another
    config (naming the keys that differ) or of other data (naming the splits), or a smaller n_repeats.
    """
    if not _exists(path):
        check_writable(path)  # also fails for names too long
        return RunDir(path, None, [], {})
    if not path.is_dir():
        raise UsageError(f"run directory '{path}' is a file; use a new --workdir")
    config_path = path / 'config.json'
    if not config_path.exists():
        if any(not results.is_temporary(entry) for entry in path.iterdir()):
            raise UsageError(f"'{path}' is not empty and has no config.json, so it is not a run directory of this "
                             'tool; use a new --workdir')
        check_writable(path)
        return RunDir(path, None, [], {}, holder=lock_holder(path))
    old = read_record(config_path)
    extended_from = check_same_run(path, old, record)
    check_run_files(path)
    check_writable(path)
    invalid, foreign = results.invalid_parts(path, n_repeats, rows_per_repetition, variants,
                                             old.get('identity')) if check_parts else ({}, {})
    done = [r for r in results.completed_repetitions(path, n_repeats)
            if results.part_path(path, r) not in invalid | foreign]
    return RunDir(path, old, done, invalid, foreign, extended_from, lock_holder(path))


# ---------------------------------------------------------------- one launch at a time

def lock_holder(path: Path) -> str | None:
    """Who holds the run directory's lock now (None: nobody; a killed holder's lock is free)."""
    lock_path = path / results.LOCK_FILE
    if not lock_path.is_file():
        return None
    lock = filelock.FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return _holder_text(lock_path)
    except OSError:  # a read-only copy of a run: nobody can hold it
        return None
    lock.release()
    return None


def _holder_text(lock_path: Path) -> str:
    try:
        holder = json.loads(lock_path.read_text())
        return f"pid {holder['pid']} on {holder['host']} (since {holder['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return 'another process (starting)'


@contextlib.contextmanager
def lock_run_dir(path: Path) -> Iterator[None]:
    """Hold the run directory for this launch (its process 0) while it runs; UsageError naming the
    holder when another launch holds it. An OS lock (flock): a killed holder's lock is released."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create run directory '{path}': {error.strerror}") from None
    lock_path = path / results.LOCK_FILE
    lock = filelock.FileLock(lock_path, timeout=LOCK_WAIT_S)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise UsageError(f"'{path}' is in use by another launch: {_holder_text(lock_path)}; wait for it to end "
                         'or use another --workdir') from None
    try:
        lock_path.write_text(json.dumps({'pid': os.getpid(), 'host': socket.gethostname(),
                                         'since': datetime.datetime.now().isoformat(timespec='seconds')}))
        yield
    finally:
        lock.release()


# ---------------------------------------------------------------- writing

def write_record(path: Path, record: dict) -> None:
    """Write the run directory's config.json; UsageError when it cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        results.write_json(path / 'config.json', record)
    except OSError as error:
        raise UsageError(f"cannot write to run directory '{path}': {error.strerror}") from None


def start_run_dir(found: RunDir, record: dict) -> dict:
    """Write `record` as config.json (new run) or note the resumption in the found one (and a larger
    n_repeats), and set bad parts aside; returns what config.json now holds."""
    now = record
    if found.record is not None:
        for key in ('versions', 'model'):
            if found.record.get(key) != now[key]:
                logging.warning('Resuming with a different %s than the run started with: %s (was %s)', key,
                                now[key], found.record.get(key))
        resumed = {key: now[key] for key in ('created', 'command', 'versions', 'model')}
        record = {**found.record, 'resumed': [*found.record.get('resumed', []), resumed]}
        if found.extended_from is not None:
            resumed['extended'] = {EXTENSIBLE: [found.extended_from, now['config'][EXTENSIBLE]]}
            record['config'] = {**record['config'], EXTENSIBLE: now['config'][EXTENSIBLE]}
            logging.info('Extending %s from %d to %d repetitions', found.path, found.extended_from,
                         now['config'][EXTENSIBLE])
    else:
        record = {**record, 'identity': run_identity(record)}
    write_record(found.path, record)
    for path, problem in found.invalid.items():
        logging.warning('Redoing %s (%s); the file is kept as %s', path.name, problem, results.set_aside(path).name)
    for path, problem in found.foreign.items():
        logging.warning('%s is not part of this run (%s); set aside as %s', path.name, problem,
                        results.set_aside(path).name)
    return record
