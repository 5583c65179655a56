"""Run directories are checked before anything is written: new, resumable, or refused (no model needed)."""
import json

import pytest

from icl import results
from icl.config import base_config
from icl.errors import UsageError
from icl.rundir import config_differences, inspect_run_dir, start_run_dir

VARIANTS = ['default']


def record(**changes) -> dict:
    config = base_config()
    for key, value in changes.items():
        config[key] = value
    return {'config': config.to_dict(), 'class_names_env': 'DEFAULT_ONLY', 'dtype': 'float32',
            'versions': {'torch': 'x'}, 'model': {'name': 'm'}, 'command': ['change_labels.py'], 'created': 'now'}


def inspect(path, rec, **kwargs):
    return inspect_run_dir(path, rec, n_repeats=3, rows_per_repetition=2, variants=VARIANTS, **kwargs)


def rows(repetition: int) -> list[dict]:
    return [{'repetition': repetition, 'variant': 'default', 'position': p, 'is_query': p == 1, 'train_idx': 0,
             'test_idx': -1, 'true_label': 0, 'shown_label': 0, 'shown_text': 'x', 'token_position': p,
             'label_logits': [0.0], 'query_log_probs': None, 'query_log_probs_calibrated': None,
             'prior_log_probs': None} for p in range(2)]


def test_a_missing_or_empty_folder_is_a_new_run_and_nothing_is_written(tmp_path):
    found = inspect(tmp_path / 'new', record())
    assert found.record is None and found.done == [] and not (tmp_path / 'new').exists()
    assert found.describe(3) == f"run dir        {tmp_path / 'new'} (new)"
    (tmp_path / 'only-temp').mkdir()
    (tmp_path / 'only-temp' / '.config.json.tmp').write_text('{')  # killed during its very first write
    assert inspect(tmp_path / 'only-temp', record()).record is None


def test_a_run_of_the_same_config_is_resumed_after_its_complete_parts(tmp_path):
    run = tmp_path / 'run'
    start_run_dir(inspect(run, record()), record())
    results.write_part(run, 0, rows(0))
    results.write_part(run, 2, rows(2))
    found = inspect(run, {**record(), 'created': 'later'})
    assert found.done == [0, 2] and found.invalid == {}
    assert found.describe(3) == f'run dir        {run} (resume: 2 of 3 repetitions done)'
    written = start_run_dir(found, {**record(), 'created': 'later'})
    assert written['created'] == 'now' and written['resumed'][0]['created'] == 'later'
    assert json.loads((run / 'config.json').read_text()) == written


def test_a_damaged_part_is_reported_and_set_aside_when_the_run_starts(tmp_path):
    run = tmp_path / 'run'
    start_run_dir(inspect(run, record()), record())
    part = results.write_part(run, 1, rows(1))
    part.write_bytes(part.read_bytes()[:40])
    found = inspect(run, record())
    assert found.done == [] and list(found.invalid) == [part]
    start_run_dir(found, record())
    assert not part.exists() and (part.parent / '.part-000001.parquet.invalid').exists()


@pytest.mark.parametrize('prepare, message', [
    (lambda d: d.write_text('x'), r"run directory '.*' is a file"),
    (lambda d: (d.mkdir(), (d / 'notes.txt').write_text('mine')), r"is not empty and has no config.json"),
    (lambda d: (d.mkdir(), (d / 'config.json').write_text('{not json')), r"config.json' is damaged"),
    (lambda d: (d.mkdir(), (d / 'config.json').write_text('[1, 2]')), r"is not a config.json of this tool"),
])
def test_folders_this_tool_did_not_make_are_refused(tmp_path, prepare, message):
    folder = tmp_path / 'x'
    prepare(folder)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob('*'))
    with pytest.raises(UsageError, match=message):
        inspect(folder, record())
    assert sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob('*')) == before


def test_a_run_of_another_config_is_refused_naming_the_keys(tmp_path):
    run = tmp_path / 'run'
    start_run_dir(inspect(run, record()), record())
    with pytest.raises(UsageError, match=r"different config \(n_repeats 15 -> 16, note 'None' -> 'x'\)"):
        inspect(run, record(n_repeats=16, note='x'))
    assert config_differences(record(), {**record(), 'class_names_env': None}) == {'CLASS_NAMES': ('DEFAULT_ONLY',
                                                                                                   'ALL')}


def test_a_workdir_under_a_file_cannot_be_created(tmp_path):
    (tmp_path / 'file').write_text('x')
    with pytest.raises(UsageError, match=r"cannot create run directory .*'.*file' is not a folder"):
        inspect(tmp_path / 'file' / 'run', record())


def test_a_resume_with_other_old_class_names_is_refused():
    """OLD_CLASS_NAMES=TRUE changes the names a run of mrpc, wnli, rte, ... shows: no mixing in one table."""
    assert config_differences(record(), {**record(), 'old_class_names': True}) == {'OLD_CLASS_NAMES': (False, True)}
    assert config_differences({**record(), 'old_class_names': False}, record()) == {}  # records before the key
