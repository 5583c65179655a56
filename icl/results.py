"""A run's directory: config.json, setup.json and the long-format results table.

Layout:
  RUN_DIR/config.json          resolved config, CLASS_NAMES, versions, model id
  RUN_DIR/setup.json           classes, label tokens, variants, priors, timing
  RUN_DIR/results/part-*.parquet  one file per repetition, never rewritten

The table has one row per (repetition, variant, position); read it with
`read_table(RUN_DIR)` or `pandas.read_parquet(RUN_DIR / 'results')`. (pandas cannot
read RUN_DIR itself: pyarrow takes every visible file there for parquet.)
"""
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from icl.prompts import Prompt

TABLE_DIR = 'results'
SCHEMA = pa.schema([
    ('repetition', pa.int32()),
    ('variant', pa.string()),
    ('position', pa.int32()),  # example index; queries follow the last example
    ('is_query', pa.bool_()),
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
    tmp = path.with_name(f'.{path.name}.tmp')
    tmp.write_text(json.dumps(data, indent=2, default=_jsonable) + '\n')
    os.replace(tmp, path)


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


def prompt_rows(repetition: int, variant: str, prompt: Prompt, positions: np.ndarray,
                logits: np.ndarray) -> list[dict]:
    """Rows of the in-context examples of one scored prompt."""
    return [{
        'repetition': repetition, 'variant': variant, 'position': i, 'is_query': False,
        'train_idx': prompt.train_indices[i], 'test_idx': -1, 'true_label': prompt.true_labels[i],
        'shown_label': prompt.shown_labels[i], 'shown_text': prompt.shown_texts[i],
        'token_position': int(positions[i]), 'label_logits': logits[i].tolist(),
        'query_log_probs': None, 'query_log_probs_calibrated': None, 'prior_log_probs': None,
    } for i in range(prompt.num_examples)]


def query_row(repetition: int, variant: str, position: int, test_idx: int, true_label: int,
              token_position: int, logits: np.ndarray, log_probs: np.ndarray, calibrated: np.ndarray,
              prior: np.ndarray) -> dict:
    return {
        'repetition': repetition, 'variant': variant, 'position': position, 'is_query': True,
        'train_idx': -1, 'test_idx': test_idx, 'true_label': true_label, 'shown_label': -1, 'shown_text': '',
        'token_position': token_position, 'label_logits': logits.tolist(),
        'query_log_probs': log_probs.tolist(), 'query_log_probs_calibrated': calibrated.tolist(),
        'prior_log_probs': prior.tolist(),
    }


def part_path(run_dir: Path, repetition: int) -> Path:
    return Path(run_dir) / TABLE_DIR / f'part-{repetition:06d}.parquet'


def write_part(run_dir: Path, repetition: int, rows: Sequence[dict]) -> Path:
    """Write one repetition's rows; the file appears complete or not at all."""
    path = part_path(run_dir, repetition)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp')  # hidden: readers skip it
    pq.write_table(pa.Table.from_pylist(list(rows), schema=SCHEMA), tmp)
    os.replace(tmp, path)
    return path


def completed_repetitions(run_dir: Path) -> list[int]:
    """Repetitions whose part file is on disk."""
    folder = Path(run_dir) / TABLE_DIR
    return sorted(int(p.stem.split('-')[1]) for p in folder.glob('part-*.parquet')) if folder.is_dir() else []


def read_table(run_dir: str | Path) -> pd.DataFrame:
    """The run's results table, sorted by repetition, variant order and position."""
    folder = Path(run_dir)
    folder = folder / TABLE_DIR if (folder / TABLE_DIR).is_dir() else folder
    parts = sorted(folder.glob('part-*.parquet'))
    if not parts:
        raise FileNotFoundError(f'no results in {folder}')
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
