"""Tiny real runs of the packaged model for the evaluation tests (analysis, hypotheses,
report, notebook), and their metrics computed by hand from the stored files.

The paper's five experiments on the bundled dataset, 10 examples, a few repetitions each,
made once per test session however many test modules ask (conftest.py's `run_dirs` fixture
calls `evaluation_runs`); a default and a random-labels run on SST-2 make a second group for
the study report (`sst2_runs`). The 'replacement' run uses DEFAULT_AND_FLIP instead of ALL to
stay cheap: two variants exercise the same code as ten.
"""
import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import log_softmax

from icl import config as icl_config
from icl import experiment

N = 10  # in-context examples
FLIP_AFTER = 4  # halfway run: < N / 2, so position 8 follows 4 flipped and 4 unflipped labels
RUNS = {  # name: (CLASS_NAMES, n_repeats, config overrides)
    'default': ('DEFAULT_ONLY', 4, []),
    'random': ('DEFAULT_ONLY', 4, [('dataset.config.random_labels', 'true')]),
    'replacement': ('DEFAULT_AND_FLIP', 3, []),
    'halfway': ('DEFAULT_AND_FLIP', 4, [('dataset.config.flip_labels_after', str(FLIP_AFTER))]),
    'alternating': ('DEFAULT_ONLY', 4, [('dataset.config.flip_labels_after', '1'),
                                        ('dataset.config.flip_labels_multi', 'true')]),
}
SST2_RUNS = {  # a second dataset for the study report: name -> (CLASS_NAMES, n_repeats, overrides)
    'sst2-default': ('DEFAULT_ONLY', 3, [('dataset.name', 'sst2')]),
    'sst2-random': ('DEFAULT_ONLY', 3, [('dataset.name', 'sst2'), ('dataset.config.random_labels', 'true')]),
}
_made = {}


def _make(runs: dict, root, made: dict, data_dir=None) -> dict:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('WANDB_MODE', 'disabled')
        if data_dir is not None:
            mp.setenv('ICL_DATA_DIR', str(data_dir))
        for name, (class_names, repeats, overrides) in runs.items():
            mp.setenv('CLASS_NAMES', class_names)
            config = icl_config.apply_overrides(icl_config.base_config(), [
                ('dataset.name', 'tiny_sentiment'), ('dataset.config.num_prompt_examples', str(N)),
                ('n_repeats', str(repeats)), ('model.dtype', 'float32'), ('note', name), *overrides])
            made[name] = experiment.run(config, run_dir=root / name)
    return dict(made)


def evaluation_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """{name: run directory} of RUNS, made on the first call."""
    return dict(_made) if _made else _make(RUNS, tmp_path_factory.mktemp('evaluation-runs'), _made)


_made_sst2 = {}


def sst2_runs(tmp_path_factory: pytest.TempPathFactory, data_dir) -> dict:
    """{name: run directory} of SST2_RUNS (real SST-2 rows from `data_dir`), made on the first call."""
    return dict(_made_sst2) if _made_sst2 else _make(SST2_RUNS, tmp_path_factory.mktemp('sst2-runs'), _made_sst2,
                                                     data_dir)


def hand_metrics(run_dir, variant, names_of=None, invert=False, label='true_label'):
    """{metric: [repetitions, positions]} straight from the parquet files and setup.json."""
    table = pd.read_parquet(run_dir / 'results')
    setup = json.loads((run_dir / 'setup.json').read_text())
    columns = [setup['all_classes'].index(name) for name in setup['variants'][names_of or variant]]
    if invert:
        columns = columns[1:] + columns[:1]
    rows = table[(table['variant'] == variant) & ~table['is_query']].sort_values(['repetition', 'position'])
    out = {'accuracy': [], 'log_lik': [], 'entropy': []}
    for logits, y in zip(rows['label_logits'], rows[label]):
        lp = log_softmax(np.asarray(logits, dtype=np.float64)[columns])
        out['accuracy'].append(float(np.argmax(lp) == y))
        out['log_lik'].append(lp[y])
        out['entropy'].append(-(np.exp(lp) * lp).sum())
    repetitions = rows['repetition'].nunique()
    return {metric: np.reshape(values, (repetitions, -1)) for metric, values in out.items()}
