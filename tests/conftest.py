"""Shared fixtures: the real data folder, one loaded copy of the packaged model and the
small evaluation runs; the summary line that counts the tests skipped for want of real data."""
import collections
import os
from pathlib import Path

import pytest

from icl.config import REPO_ROOT

REAL_DATA_SKIP = 'needs the original data files'  # every real-data skip reason starts so (counted below)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    """No test talks to wandb's servers or depends on the caller's CLASS_NAMES or OLD_CLASS_NAMES."""
    monkeypatch.setenv('WANDB_MODE', os.environ.get('ICL_TEST_WANDB_MODE', 'disabled'))
    monkeypatch.setenv('WANDB_SILENT', 'true')
    monkeypatch.delenv('CLASS_NAMES', raising=False)
    monkeypatch.delenv('OLD_CLASS_NAMES', raising=False)


@pytest.fixture(scope='session')
def real_data_dir() -> Path:
    """The paper's original dataset files, found only through $ICL_DATA_DIR (docs/data.md)."""
    value = os.environ.get('ICL_DATA_DIR')
    if not value:
        pytest.skip(f'{REAL_DATA_SKIP}: ICL_DATA_DIR is not set (docs/data.md)')
    path = Path(value)
    if not (path / 'sst2' / 'train.tsv').is_file():
        pytest.skip(f'{REAL_DATA_SKIP}: ICL_DATA_DIR={path} has no sst2/train.tsv (docs/data.md)')
    return path


# Whole modules that start processes (sweeps, launchers, kill-and-resume, the notebook, runs.md's 455 dry runs),
# the single tests that run the command line as a real process, and the tests of whole scored runs (their
# fixtures score several runs with the model): `make test` runs them, `-m "not slow"` not.
SLOW_MODULES = {'test_sweep', 'test_resume', 'test_processes', 'test_notebook', 'test_runs_md'}
SLOW_NAME_PARTS = ('real_process', 'dequantis', 'gemma')
SLOW_FIXTURES = {'run_dirs', 'sst2_dirs', 'study_root', 'tracked_run', 'sst2_run', 'smollm2_bf16'}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if (item.module.__name__ in SLOW_MODULES or any(part in item.name for part in SLOW_NAME_PARTS)
                or SLOW_FIXTURES & set(item.fixturenames)):
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter) -> None:
    """Name the tests that were skipped for want of real data, so a green run says what it did not check."""
    skipped = [report.nodeid for report in terminalreporter.stats.get('skipped', [])
               if REAL_DATA_SKIP in str(report.longrepr)]
    if skipped:
        terminalreporter.write_line(f'{len(skipped)} tests skipped for want of the original data files '
                                    '(set ICL_DATA_DIR, see docs/data.md):')
        per_test = collections.Counter(nodeid.split('[')[0] for nodeid in skipped)  # parametrised cases together
        for test, count in per_test.items():
            terminalreporter.write_line(f'  {test}' + (f' ({count} cases)' if count > 1 else ''))


@pytest.fixture(scope='session')
def smollm2_spec():
    from icl import models
    return models.resolve('smollm2-135m')


@pytest.fixture(scope='session')
def smollm2_tokenizer(smollm2_spec):
    from icl import models
    return models.load_tokenizer(smollm2_spec)


@pytest.fixture(scope='session')
def smollm2_fp32(smollm2_spec):
    """The packaged model in float32, loaded once for the whole session."""
    import torch

    from icl import models
    torch.manual_seed(0)
    return models.load_model(smollm2_spec, torch.float32)


@pytest.fixture(scope='session')
def change_labels():
    """change_labels.py as a module, imported once; run_command(argv) -> exit status."""
    import importlib
    import sys
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module('change_labels')


@pytest.fixture(scope='session')
def run_dirs(tmp_path_factory):
    """{name: run directory} of the evaluation runs (tests/evaluation_runs.py), made once per session."""
    from evaluation_runs import evaluation_runs
    return evaluation_runs(tmp_path_factory)


@pytest.fixture(scope='module')
def runs(run_dirs):
    """The evaluation runs, loaded (icl.analysis.Run)."""
    from icl import analysis
    return {name: analysis.load_run(path) for name, path in run_dirs.items()}
