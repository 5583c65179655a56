"""wandb runs need no account: without an API key they are written offline beside the run."""
import inspect

import pandas as pd
from wandb_records import finished_records, offline_run

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
    assert set(info) == set(tracking.NullTracker().info())
    offline = list((run_dir / 'wandb').glob('offline-run-*'))
    assert len(offline) == 1 and offline[0].name.endswith(info['id'])
    assert (offline[0] / 'files' / 'results' / 'part-000000.parquet').exists()


def test_wandb_mode_variable_wins(monkeypatch):
    monkeypatch.setenv('WANDB_API_KEY', 'x' * 40)
    monkeypatch.setenv('WANDB_MODE', 'disabled')
    assert tracking.mode() == 'disabled'
    monkeypatch.delenv('WANDB_MODE')
    assert tracking.mode() == 'online'


def test_every_repetition_reaches_the_history_and_the_summary_holds_the_final_means(tmp_path, monkeypatch):
    """Curves logged between repetitions (as a live run does) must not make wandb drop repetitions."""
    monkeypatch.setenv('WANDB_MODE', 'offline')
    tracker = tracking.Tracker(config={'dataset_name': 'x'}, run_dir=tmp_path, debug=True, note='t')
    curves = pd.DataFrame({'variant': ['default'] * 2, 'metric': ['accuracy'] * 2, 'position': [0, 1],
                           'mean': [0.5, 0.75], 'sem': [0.1, 0.1], 'n': [2, 2]})
    for repetition in range(4):
        tracker.log_repetition(repetition, pd.DataFrame({'variant': ['default', 'flip'],
                                                         'accuracy': [repetition / 10, 1 - repetition / 10]}),
                               label_frequencies=[0.25, 0.75])
        tracker.log_curves(curves)
    tracker.log_summary(pd.DataFrame({'variant': ['default'], 'accuracy_first': [0.125], 'repetitions': [4]}))
    tracker.finish()

    logged = offline_run(tmp_path)
    rows = [row for row in logged['history'] if 'default/accuracy' in row]
    assert [(r['repetition'], r['default/accuracy'], r['flip/accuracy']) for r in rows] == [
        (0, 0.0, 1.0), (1, 0.1, 0.9), (2, 0.2, 0.8), (3, 0.3, 0.7)]
    assert all(r['label_frequencies'] == [0.25, 0.75] and r['guessing_acc'] == 0.75 for r in rows)
    curve_rows = [r['repetition'] for r in logged['history'] if any(k.startswith('curves/table') for k in r)]
    assert curve_rows == [0, 1, 2, 3]  # logged beside each repetition, without a repetition of their own
    assert logged['summary']['default/accuracy_first'] == 0.125 and logged['summary']['default/repetitions'] == 4


def test_wandb_config_uses_the_original_keys():
    record = {'config': {'n_repeats': 3, 'dataset': {'name': 'sst2', 'class_names_mode': 'DEFAULT_ONLY',
                                                     'config': {'num_prompt_examples': 5}}}, 'dtype': 'float32'}
    assert tracking.wandb_config(record) == {
        'n_repeats': 3, 'dataset_name': 'sst2', 'dataset_class_names_mode': 'DEFAULT_ONLY',
        'dataset_config_num_prompt_examples': 5, 'dtype': 'float32'}


def test_stop_ends_the_wandb_run_with_the_exit_code_and_never_raises(tmp_path, monkeypatch):
    """A stopped run (Ctrl-C: 130) ends its wandb run marked failed; wandb failing too (a full disk) is ignored."""
    monkeypatch.setenv('WANDB_MODE', 'offline')
    tracker = tracking.Tracker(config={'dataset_name': 'x'}, run_dir=tmp_path, debug=True, note='t')
    tracker.stop(exit_code=130)
    [path] = tmp_path.glob('wandb/offline-run-*/run-*.wandb')
    [exit_record] = [r for r in finished_records(path) if r.WhichOneof('record_type') == 'exit']
    assert exit_record.exit.exit_code == 130

    def full_disk(**kwargs):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(tracker.run, 'finish', full_disk)
    assert tracker.stop(exit_code=1) is None


def public_methods(cls) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith('_')}


def test_null_tracker_has_every_tracker_method_with_its_signature():
    """Processes other than 0 log through a NullTracker: a method Tracker gains must be given to it too."""
    assert public_methods(tracking.NullTracker) == public_methods(tracking.Tracker)
    assert set(public_methods(tracking.Tracker)) >= {'info', 'log_repetition', 'log_summary', 'log_curves', 'save',
                                                     'stop', 'finish'}


def test_null_tracker_does_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('WANDB_MODE', 'offline')
    null, frame = tracking.NullTracker(), pd.DataFrame({'variant': ['default'], 'accuracy': [0.5]})
    curves = pd.DataFrame({'variant': ['default'], 'metric': ['accuracy'], 'position': [0], 'mean': [0.5],
                           'sem': [0.1], 'n': [2]})
    returned = [null.log_repetition(0, frame, [0.5, 0.5]), null.log_summary(frame), null.log_curves(curves),
                null.save(tmp_path / 'missing.parquet'), null.stop(exit_code=1), null.finish()]
    assert returned == [None] * 6
    assert null.info() == {'id': None, 'mode': None, 'path': None, 'dir': None}
    assert list(tmp_path.iterdir()) == []  # no wandb folder, no file
