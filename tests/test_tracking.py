"""wandb runs need no account: without an API key they are written offline beside the run."""
import pandas as pd

from icl import tracking


def test_without_api_key_the_run_is_offline_and_keeps_saved_files(tmp_path, monkeypatch):
    monkeypatch.delenv('WANDB_MODE', raising=False)
    monkeypatch.delenv('WANDB_API_KEY', raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))  # no ~/.netrc with a key
    monkeypatch.setenv('NETRC', str(tmp_path / 'no-netrc'))
    assert not tracking.has_api_key()
    assert tracking.mode() == 'offline'

    run_dir = tmp_path / 'run'
    (run_dir / 'results').mkdir(parents=True)
    part = run_dir / 'results' / 'part-000000.parquet'
    pd.DataFrame({'a': [1]}).to_parquet(part)
    tracker = tracking.Tracker(config={'dataset.name': 'x'}, run_dir=run_dir, debug=True, note='t')
    tracker.log_repetition(0, pd.DataFrame({'variant': ['default'], 'accuracy': [0.5]}))
    tracker.save(part)
    info = tracker.info()
    tracker.finish()

    assert info['mode'] == 'offline' and info['path'].endswith(info['id']) and 'llm_debug' in info['path']
    offline = list((run_dir / 'wandb').glob('offline-run-*'))
    assert len(offline) == 1 and offline[0].name.endswith(info['id'])
    assert (offline[0] / 'files' / 'results' / 'part-000000.parquet').exists()


def test_wandb_mode_variable_wins(monkeypatch):
    monkeypatch.setenv('WANDB_API_KEY', 'x' * 40)
    monkeypatch.setenv('WANDB_MODE', 'disabled')
    assert tracking.mode() == 'disabled'
    monkeypatch.delenv('WANDB_MODE')
    assert tracking.mode() == 'online'
