"""A run directory's lifecycle: check it before anything is written, then start or resume it.

`inspect_run_dir` decides, without writing, whether a folder is a new run or a run of this
very config to resume (`compared_settings`: what must be equal), and which part files are
damaged; `start_run_dir` then writes config.json (or notes the resumption in it) and sets
the damaged parts aside. The files' formats are icl/results.py's.
"""
import dataclasses
import datetime
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ml_collections import config_dict

from icl import results
from icl.config import flatten
from icl.errors import UsageError


def default_run_dir(config: config_dict.ConfigDict) -> Path:
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    name = f'{config.dataset.name}-{config.model.name}-{config.note}-{stamp}'
    return Path('runs') / results.file_name(name)


@dataclasses.dataclass
class RunDir:
    """A run directory as found before anything is written to it."""
    path: Path
    record: dict | None  # its config.json; None for a new run
    done: list[int]  # repetitions with a complete part file
    invalid: dict[Path, str]  # damaged part files -> what is wrong (set aside and redone)

    def describe(self, n_repeats: int) -> str:
        if self.record is None:
            return f'run dir        {self.path} (new)'
        redo = f', {len(self.invalid)} damaged part(s) to redo' if self.invalid else ''
        return f'run dir        {self.path} (resume: {len(self.done)} of {n_repeats} repetitions done{redo})'


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
    return record


def check_writable(path: Path) -> None:
    """UsageError unless `path`, or the folder it would be created in, can be written."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot create run directory '{path}': '{existing}' is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to '{existing}' (permission denied or read-only file system); "
                         'give a --workdir you can write')


def compared_settings(record: dict) -> dict:
    """What must be equal for a run to be resumed: every config key, (OLD_)CLASS_NAMES and the resolved dtype."""
    record = results.as_stored(record)  # compare as stored (tuples become lists)
    return {**flatten(record['config']), 'CLASS_NAMES': record.get('class_names_env') or 'ALL',
            'OLD_CLASS_NAMES': bool(record.get('old_class_names')), 'dtype (resolved model.dtype)': record.get('dtype')}


def config_differences(old: dict, new: dict) -> dict[str, tuple]:
    """{key: (old value, new value)} for each setting that differs between two config.json records."""
    a, b = compared_settings(old), compared_settings(new)
    return {key: (a.get(key), b.get(key)) for key in sorted(a.keys() | b.keys()) if a.get(key) != b.get(key)}


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + '...'


def inspect_run_dir(path: Path, record: dict, *, n_repeats: int, rows_per_repetition: int, variants: Sequence[str],
                    check_parts: bool = True) -> RunDir:
    """Check `path` without writing to it: a new run, or a run of this very config to resume.

    `record` is the config.json this run would write; a complete part holds `rows_per_repetition`
    rows of `variants`. UsageError for a folder that cannot be written, a file, a non-empty folder
    this tool did not make, a damaged config.json, or a run of another config (naming the keys
    that differ).
    """
    if path.exists() and not path.is_dir():
        raise UsageError(f"run directory '{path}' is a file; use a new --workdir")
    config_path = path / 'config.json'
    if not config_path.exists():
        if path.exists() and any(not results.is_temporary(entry) for entry in path.iterdir()):
            raise UsageError(f"'{path}' is not empty and has no config.json, so it is not a run directory of this "
                             'tool; use a new --workdir')
        check_writable(path)
        return RunDir(path, None, [], {})
    old = read_record(config_path)
    differing = config_differences(old, record)
    if differing:
        shown = ', '.join(f'{key} {_short(a)} -> {_short(b)}' for key, (a, b) in differing.items())
        raise UsageError(f"'{path}' holds a run of a different config ({shown}); resume it with its own "
                         'command (see its config.json) or use a new --workdir')
    check_writable(path)
    invalid = results.invalid_parts(path, n_repeats, rows_per_repetition, variants) if check_parts else {}
    done = [r for r in results.completed_repetitions(path) if results.part_path(path, r) not in invalid]
    return RunDir(path, old, done, invalid)


def start_run_dir(found: RunDir, record: dict) -> dict:
    """Write `record` as config.json (new run) or note the resumption in the found one, and set
    damaged parts aside; returns what config.json now holds."""
    now = record
    if found.record is not None:
        for key in ('versions', 'model'):
            if found.record.get(key) != now[key]:
                logging.warning('Resuming with a different %s than the run started with: %s (was %s)', key,
                                now[key], found.record.get(key))
        resumed = {key: now[key] for key in ('created', 'command', 'versions', 'model')}
        record = {**found.record, 'resumed': [*found.record.get('resumed', []), resumed]}
    try:
        found.path.mkdir(parents=True, exist_ok=True)
        results.write_json(found.path / 'config.json', record)
    except OSError as error:
        raise UsageError(f"cannot write to run directory '{found.path}': {error.strerror}") from None
    for path, problem in found.invalid.items():
        logging.warning('Redoing %s (%s); the file is kept as %s', path.name, problem, results.set_aside(path).name)
    return record
