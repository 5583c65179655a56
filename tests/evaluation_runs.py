"""Tiny real runs of the packaged model for the evaluation tests (analysis, report, notebook).

The paper's five experiments on the bundled dataset, 10 examples, a few repetitions each,
made once per test session however many test modules ask (each module's session fixture
calls `evaluation_runs`). The 'replacement' run uses DEFAULT_AND_FLIP instead of ALL to
stay cheap: two variants exercise the same code as ten.
"""
import pytest

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
_made = {}


def evaluation_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """{name: run directory} of RUNS, made on the first call."""
    if not _made:
        root = tmp_path_factory.mktemp('evaluation-runs')
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv('WANDB_MODE', 'disabled')
            for name, (class_names, repeats, overrides) in RUNS.items():
                mp.setenv('CLASS_NAMES', class_names)
                config = icl_config.apply_overrides(icl_config.base_config(), [
                    ('dataset.name', 'tiny_sentiment'), ('dataset.config.num_prompt_examples', str(N)),
                    ('n_repeats', str(repeats)), ('model.dtype', 'float32'), ('note', name), *overrides])
                _made[name] = experiment.run(config, run_dir=root / name)
    return dict(_made)
