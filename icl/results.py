"""A run's directory: config.json, setup.json and the long-format results table.

Layout:
  RUN_DIR/config.json          resolved config, data fingerprint, versions, model id
  RUN_DIR/setup.json           classes, label tokens, variants, priors, timing
  RUN_DIR/results/part-*.parquet  one file per repetition, never rewritten

The table has one row per (repetition, variant, position); read it with
`read_table(RUN_DIR)` or `pandas.read_parquet(RUN_DIR / 'results')`. (pandas cannot
read RUN_DIR itself: pyarrow takes every visible file there for parquet.)

Every file is written under a hidden temporary name (unique per process), flushed to disk and
renamed, so a killed run leaves complete files or none. A part file that is damaged anyway (a
copy cut short, a full disk) fails `part_problem`; each part carries its run's identity and
repetition in its parquet metadata (`part_owner`), so a part copied in from another run is
recognised (`foreign_part`). A resumed run sets both aside and redoes those repetitions.
"""
import json
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from icl.prompts import Prompt
from icl.settings import UNREAD_KEYS

TABLE_DIR = 'results'
SCHEMA = pa.schema([
    ('repetition', pa.int32()),
    ('variant', pa.string()),
    ('position', pa.int32()),  # example index; a query's is the number of examples (it follows the last)
    ('is_query', pa.bool_()),
    ('query', pa.int32()),  # which of the num_test_samples queries the prompt ends with (the curves use 0)
    ('train_idx', pa.int64()),  # training row whose label example `position` carries (-1: query)
    ('test_idx', pa.int64()),  # test row of a query (-1: in-context example)
    ('true_label', pa.int32()),  # the row's label before flips and random draws
    ('shown_label', pa.int32()),  # label index shown in the prompt (-1: literal replacement text, query)
    ('shown_text', pa.string()),  # the text written after '<answer>: '
    ('token_position', pa.int32()),  # token whose next-token logits are scored
    ('label_logits', pa.list_(pa.float32())),  # logits of setup.json's all_classes, in that order
    ('query_log_probs', pa.list_(pa.float32())),  # queries: log-softmax over the variant's classes
    ('query_log_probs_calibrated', pa.list_(pa.float32())),  # ... minus the prior, renormalised
    ('prior_log_probs', pa.list_(pa.float32())),  # the variant's content-free prior
])


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (a crash leaves the old file or the new one, never half)."""
    text = json.dumps(data, indent=2, default=_jsonable) + '\n'
    _write_atomically(Path(path), lambda f: f.write(text.encode()))


def _write_atomically(path: Path, write) -> None:
    """Call write(file) on a hidden temporary file, flush it to disk, then rename it to `path`.

    OSError (e.g. a full disk) names `path` and leaves no temporary file behind."""
    # hidden: part-*.parquet globs and pyarrow skip it (is_temporary); unique: two processes never share it
    tmp = path.with_name(f'.{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp')
    try:
        with open(tmp, 'xb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the rename must not reach the disk before the data (power loss)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise OSError(error.errno, error.strerror, str(path)) from error


LOCK_FILE = '.lock'  # icl/rundir.py's lock of a run directory (never data)


def is_temporary(path: Path) -> bool:
    """A file that is never data: a killed writer's leftover or the run directory's lock."""
    return (path.name.startswith('.') and path.name.endswith('.tmp')) or path.name == LOCK_FILE


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f'{type(value).__name__} is not JSON serialisable')


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def as_stored(data: dict) -> dict:
    """`data` as write_json stores it and read_json reads it back (tuples become lists, paths strings)."""
    return json.loads(json.dumps(data, default=_jsonable))


def upgraded_record(record: dict) -> dict:
    """A config.json of an older version of this tool in today's shape: its CLASS_NAMES and OLD_CLASS_NAMES,
    once kept beside the config, become dataset.class_names_mode and dataset.old_class_names; keys that nothing
    read are dropped; flip_labels_after_halfway, added later, is False."""
    record = as_stored(record)
    config = record['config']
    dataset = config.setdefault('dataset', {})
    mode, old = record.pop('class_names_env', None), record.pop('old_class_names', None)
    dataset.setdefault('class_names_mode', mode or 'ALL')
    dataset.setdefault('old_class_names', bool(old))
    if isinstance(dataset.get('config'), dict):
        dataset['config'].setdefault('flip_labels_after_halfway', False)
    for key in UNREAD_KEYS:
        *parents, leaf = key.split('.')
        nodes = [config]
        for name in parents:
            nodes.append(nodes[-1].get(name, {}))
        nodes[-1].pop(leaf, None)
        for node, name in zip(nodes[-2::-1], parents[::-1]):  # the groups they leave empty
            if node.get(name) == {}:
                del node[name]
    return record


def file_name(text: str) -> str:
    """`text` as a file name: each run of characters other than letters, digits and . = - becomes '_'."""
    return re.sub(r'[^\w.=-]+', '_', text)


def prompt_rows(repetition: int, variant: str, prompt: Prompt, positions: np.ndarray,
                logits: np.ndarray, query: int = 0) -> list[dict]:
    """Rows of the in-context examples of one scored prompt (the one ending with query number `query`)."""
    return [{
        'repetition': repetition, 'variant': variant, 'position': i, 'is_query': False, 'query': query,
        'train_idx': prompt.train_indices[i], 'test_idx': -1, 'true_label': prompt.true_labels[i],
        'shown_label': prompt.shown_labels[i], 'shown_text': prompt.shown_texts[i],
        'token_position': int(positions[i]), 'label_logits': logits[i].tolist(),
        'query_log_probs': None, 'query_log_probs_calibrated': None, 'prior_log_probs': None,
    } for i in range(prompt.num_examples)]


def query_row(repetition: int, variant: str, position: int, test_idx: int, true_label: int,
              token_position: int, logits: np.ndarray, log_probs: np.ndarray, calibrated: np.ndarray,
              prior: np.ndarray, query: int = 0) -> dict:
    return {
        'repetition': repetition, 'variant': variant, 'position': position, 'is_query': True, 'query': query,
        'train_idx': -1, 'test_idx': test_idx, 'true_label': true_label, 'shown_label': -1, 'shown_text': '',
        'token_position': token_position, 'label_logits': logits.tolist(),
        'query_log_probs': log_probs.tolist(), 'query_log_probs_calibrated': calibrated.tolist(),
        'prior_log_probs': prior.tolist(),
    }


def part_path(run_dir: Path, repetition: int) -> Path:
    return Path(run_dir) / TABLE_DIR / f'part-{repetition:06d}.parquet'


OWNER_KEY = b'icl_labels.part'  # parquet metadata: {"run": config.json's identity, "repetition": r}


def recorded_identity(run_dir: Path) -> str | None:
    """The identity config.json gives its run (None: no config.json, or one written before identities)."""
    path = Path(run_dir) / 'config.json'
    return read_json(path).get('identity') if path.is_file() else None


def write_part(run_dir: Path, repetition: int, rows: Sequence[dict]) -> Path:
    """Write one repetition's rows, stamped with the run's identity; the file appears complete or not at all."""
    path = part_path(run_dir, repetition)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(list(rows), schema=SCHEMA)
    identity = recorded_identity(run_dir)
    if identity is not None:
        owner = json.dumps({'run': identity, 'repetition': repetition}).encode()
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), OWNER_KEY: owner})
    _write_atomically(path, lambda f: pq.write_table(table, f))
    return path


def part_owner(path: Path) -> dict | None:
    """The run identity and repetition a part was written for (None: none recorded)."""
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[OWNER_KEY]) if OWNER_KEY in metadata else None


def foreign_part(path: Path, repetition: int, identity: str) -> str | None:
    """Why the part file is not repetition `repetition` of the run `identity` (None: it is, or its
    metadata cannot be read: part_problem says why)."""
    try:
        owner = part_owner(path)
    except (OSError, ValueError, pa.ArrowException):
        return None
    if owner is None:
        return 'it carries no run identity (written by another run or an older version of this tool)'
    if owner.get('run') != identity:
        return f"it belongs to another run (identity {str(owner.get('run'))[:12]}, this run's {identity[:12]})"
    if owner.get('repetition') != repetition:
        return f"it belongs to repetition {owner.get('repetition')}"
    return None


def part_files(run_dir: Path) -> list[tuple[int | None, Path]]:
    """(repetition, file) of each part on disk, None for a name this tool does not write;
    hidden temporary files are not parts."""
    folder = Path(run_dir) / TABLE_DIR
    paths = sorted(folder.glob('part-*.parquet')) if folder.is_dir() else []
    numbers = [path.name.removeprefix('part-').removesuffix('.parquet') for path in paths]
    return [(int(n) if n.isdigit() else None, path) for n, path in zip(numbers, paths)]


def completed_repetitions(run_dir: Path, n_repeats: int | None = None) -> list[int]:
    """Repetitions whose part file is on disk (of the run's 0..n_repeats - 1 only, given n_repeats)."""
    return sorted(r for r, _ in part_files(run_dir) if r is not None and (n_repeats is None or r < n_repeats))


def part_problem(path: Path, repetition: int, num_rows: int, variants: Sequence[str]) -> str | None:
    """Why the part file cannot be repetition `repetition`'s data (None: it can).

    Reads the whole file, so damaged data pages fail too, then checks the schema, the row
    count and the repetition and variants it holds against what the run expects.
    """
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        return f'unreadable ({str(error).splitlines()[0][:120]})'
    if not table.schema.equals(SCHEMA, check_metadata=False):
        return 'its columns differ from the results schema'
    if table.num_rows != num_rows:
        return f'{table.num_rows} rows, expected {num_rows}'
    if set(table.column('repetition').to_pylist()) != {repetition}:
        return f'it holds other repetitions than {repetition}'
    if set(table.column('variant').to_pylist()) != set(variants):
        return f"its variants differ from this run's ({', '.join(variants)})"
    return None


def invalid_parts(run_dir: Path, num_repetitions: int, rows_per_repetition: int, variants: Sequence[str],
                  identity: str | None = None) -> tuple[dict[Path, str], dict[Path, str]]:
    """({damaged part: what is wrong}, {part that is not part of this run: why}) over the parts on disk.

    A part belongs to the run when its number is one of the run's repetitions and, given the run's
    `identity`, its metadata names that run and repetition."""
    damaged, foreign = {}, {}
    for repetition, path in part_files(run_dir):
        if repetition is None or not 0 <= repetition < num_repetitions:
            foreign[path] = f'not one of the run\'s repetitions 0..{num_repetitions - 1}'
        elif identity is not None and (problem := foreign_part(path, repetition, identity)):
            foreign[path] = problem
        elif problem := part_problem(path, repetition, rows_per_repetition, variants):
            damaged[path] = problem
    return damaged, foreign


def set_aside(path: Path) -> Path:
    """Rename a bad part to a hidden name (never read as data, kept for inspection; an earlier one too)."""
    target, n = path.with_name(f'.{path.name}.invalid'), 1
    while target.exists():
        n += 1
        target = path.with_name(f'.{path.name}.invalid{n}')
    os.replace(path, target)
    return target


def read_table(run_dir: str | Path) -> pd.DataFrame:
    """The run's results table, sorted by repetition, variant order and position."""
    folder = Path(run_dir)
    folder = folder / TABLE_DIR if (folder / TABLE_DIR).is_dir() else folder
    parts = sorted(folder.glob('part-*.parquet'))
    if not parts:
        raise FileNotFoundError(f'no results in {folder}')
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
