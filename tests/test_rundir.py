"""Run directories are checked before anything is written: new, resumable, or refused (no model needed)."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from icl import results
from icl.config import REPO_ROOT, base_config
from icl.errors import UsageError
from icl.rundir import check_writable, config_differences, inspect_run_dir, lock_holder, lock_run_dir, start_run_dir

VARIANTS = ['default']
DATA = {'dataset': 'sst2', 'source': 'local folder /data', 'splits': {
    'train': {'rows': 3, 'sha256': 'a' * 64}, 'validation': {'rows': 2, 'sha256': 'b' * 64}}}


def record(data: dict | None = None, **changes) -> dict:
    config = base_config()
    config.dataset.class_names_mode = 'DEFAULT_ONLY'
    for key, value in changes.items():
        config[key] = value
    return {'config': config.to_dict(), 'dtype': 'float32', 'data': data or DATA,
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
    with pytest.raises(UsageError, match=r"different config \(note 'None' -> 'x', random_seed 200 -> 7\)"):
        inspect(run, record(n_repeats=16, note='x', random_seed=7))  # n_repeats alone would extend the run
    assert config_differences(record(), record(dataset={**record()['config']['dataset'], 'class_names_mode': 'ALL'})) \
        == {'dataset.class_names_mode': ('DEFAULT_ONLY', 'ALL')}


def older_record(**top_level) -> dict:
    """config.json as versions before dataset.class_names_mode wrote it: CLASS_NAMES and OLD_CLASS_NAMES beside
    the config, and the original's keys that nothing read."""
    config = record()['config']
    for key in ('class_names_mode', 'old_class_names'):
        del config['dataset'][key]
    config['experiment'] = {'context_lengths': [1, 2, 3, 5, 7, 10, 15, 20]}
    config['model']['config'] = {'stop_sequences': ['\n']}
    config['dataset']['config_to_model'] = {'max_new_tokens': 1}
    return {**record(), 'config': config, **top_level}


def test_a_run_of_an_older_version_resumes_with_its_class_names_now_config_keys(tmp_path):
    assert config_differences(older_record(class_names_env='DEFAULT_ONLY'), record()) == {}
    assert config_differences(older_record(class_names_env=None), record()) == {
        'dataset.class_names_mode': ('ALL', 'DEFAULT_ONLY')}  # unset CLASS_NAMES meant ALL
    run = tmp_path / 'run'
    start_run_dir(inspect(run, record()), record())
    (run / 'config.json').write_text(json.dumps(older_record(class_names_env='DEFAULT_ONLY')))
    found = inspect(run, record())  # no difference: it resumes
    assert found.record['config']['dataset']['class_names_mode'] == 'DEFAULT_ONLY'
    assert 'experiment' not in found.record['config'] and 'class_names_env' not in found.record


def test_a_workdir_under_a_file_cannot_be_created(tmp_path):
    (tmp_path / 'file').write_text('x')
    with pytest.raises(UsageError, match=r"cannot create run directory .*'.*file' is not a folder"):
        inspect(tmp_path / 'file' / 'run', record())


def tree(folder) -> list:
    """Every file and folder below `folder` with its contents (files) and mtime: a write shows."""
    return sorted((str(p), p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None) for p in folder.rglob('*'))


def other_data(split: str, **changes) -> dict:
    return {**DATA, 'source': 'local folder /elsewhere',
            'splits': {**DATA['splits'], split: {**DATA['splits'][split], **changes}}}


@pytest.mark.parametrize('data, message', [
    (other_data('validation', rows=1), 'split validation has 1 rows (was 2)'),
    (other_data('train', sha256='c' * 64), 'split train has other rows (same count, 3)'),
    ({**DATA, 'splits': {'train': DATA['splits']['train']}}, 'split validation is missing'),
])
def test_a_resume_with_other_data_is_refused_naming_the_dataset_and_split(tmp_path, data, message):
    run = tmp_path / 'run'
    start_run_dir(inspect(run, record()), record())
    before = tree(tmp_path)
    with pytest.raises(UsageError) as refused:
        inspect(run, record(data))
    assert str(refused.value) == (f"'{run}' was made from other sst2 data than {data['source']} holds now "
                                  f'({message}); resume it with the data it was made from (local folder /data) '
                                  'or use a new --workdir')
    assert tree(tmp_path) == before
    assert inspect(run, record({**DATA, 'source': 'local folder /copy'})).record is not None  # same rows elsewhere


def test_a_larger_n_repeats_extends_the_run_and_a_smaller_one_is_refused(tmp_path):
    run = tmp_path / 'run'
    start_run_dir(inspect(run, record(n_repeats=3)), record(n_repeats=3))
    for r in range(3):
        results.write_part(run, r, rows(r))
    before = tree(tmp_path)
    with pytest.raises(UsageError) as refused:
        inspect(run, record(n_repeats=2))
    assert str(refused.value) == (f"'{run}' holds a run of 3 repetitions; --n_repeats=2 would shrink it: resume "
                                  'with --n_repeats=3 (or more, to extend it)')
    assert tree(tmp_path) == before

    found = inspect_run_dir(run, record(n_repeats=5), n_repeats=5, rows_per_repetition=2, variants=VARIANTS)
    assert found.done == [0, 1, 2] and found.extended_from == 3
    assert found.describe(5) == f'run dir        {run} (resume: 3 of 5 repetitions done, extending it from 3 ' \
                                'repetitions)'
    written = start_run_dir(found, record(n_repeats=5))
    assert written['config']['n_repeats'] == 5 and written['resumed'][0]['extended'] == {'n_repeats': [3, 5]}
    assert written['identity'] == json.loads((run / 'config.json').read_text())['identity']
    again = inspect_run_dir(run, record(n_repeats=5), n_repeats=5, rows_per_repetition=2, variants=VARIANTS)
    assert again.extended_from is None and again.done == [0, 1, 2]  # the parts still belong to the run


def copy_part(source_run, repetition, target_run, as_repetition):
    target = results.part_path(target_run, as_repetition)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(results.part_path(source_run, repetition).read_bytes())
    return target


@pytest.mark.parametrize('make, problem', [
    (lambda tmp, run: copy_part(tmp / 'seed7', 1, run, 1), r'it belongs to another run \(identity \w{12}, '
                                                            r"this run's \w{12}\)"),
    (lambda tmp, run: copy_part(run, 0, run, 1), 'it belongs to repetition 0'),
    (lambda tmp, run: copy_part(tmp / 'no-identity', 1, run, 1),
     r'it carries no run identity \(written by another run or an older version of this tool\)'),
    (lambda tmp, run: copy_part(run, 0, run, 9), r"not one of the run's repetitions 0\.\.2"),  # item 18
])
def test_a_part_that_is_not_part_of_the_run_is_set_aside_saying_so(tmp_path, make, problem, caplog):
    other = tmp_path / 'seed7'
    start_run_dir(inspect(other, record(random_seed=7)), record(random_seed=7))
    results.write_part(other, 1, rows(1))
    (tmp_path / 'no-identity').mkdir()
    results.write_part(tmp_path / 'no-identity', 1, rows(1))  # no config.json: no identity
    run = tmp_path / 'run'
    start_run_dir(inspect(run, record()), record())
    results.write_part(run, 0, rows(0))
    stray = make(tmp_path, run)

    found = inspect(run, record())

    assert found.done == [0] and found.invalid == {} and list(found.foreign) == [stray]
    assert re.fullmatch(problem, found.foreign[stray])
    assert found.describe(3) == f'run dir        {run} (resume: 1 of 3 repetitions done, 1 file(s) not part of the ' \
                                'run to set aside)'
    with caplog.at_level('WARNING'):
        start_run_dir(found, record())
    assert f'{stray.name} is not part of this run ({found.foreign[stray]}); set aside as .{stray.name}.invalid' \
        in caplog.text
    assert not stray.exists() and (stray.parent / f'.{stray.name}.invalid').is_file()


@pytest.mark.parametrize('damage, message', [
    (lambda run: (run / 'setup.json').write_text('{"all_classes": ['),
     "'{run}/setup.json' is damaged (not readable JSON); delete it and rerun: the run writes it again (its parts "
     "are kept)"),
    (lambda run: (run / 'setup.json').write_text('[]'), "'{run}/setup.json' is damaged"),
    (lambda run: (run / 'results').write_text('x'),
     "'{run}/results' is a file, not the folder of the run's results parts; move it away and rerun"),
])
def test_a_damaged_run_directory_is_refused_before_anything_is_written(tmp_path, damage, message):
    run = tmp_path / 'run'
    start_run_dir(inspect(run, record()), record())
    damage(run)
    before = tree(tmp_path)
    with pytest.raises(UsageError) as refused:
        inspect(run, {**record(), 'created': 'later'})
    assert str(refused.value).startswith(message.format(run=run))
    assert tree(tmp_path) == before


@pytest.mark.parametrize('workdir, message', [
    ('/proc/x/run', "cannot write run directory '/proc/x/run' ('/proc/x'): No such file or directory"),
    ('/sys/x', "cannot write run directory '/sys/x': Operation not permitted"),
    ('{tmp}/' + 'n' * 300, "cannot write run directory '{tmp}/" + 'n' * 300 + "': File name too long"),
])
def test_the_writability_check_creates_what_the_run_would(tmp_path, workdir, message):
    if os.geteuid() != 0 and workdir.startswith('/'):
        message = message.split(':')[0]  # not root: refused for lack of permission
    with pytest.raises(UsageError) as refused:
        check_writable(type(tmp_path)(workdir.format(tmp=tmp_path)))
    assert str(refused.value).startswith(message.format(tmp=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_the_writability_check_leaves_nothing_behind(tmp_path):
    check_writable(tmp_path / 'a' / 'b' / 'run')
    check_writable(tmp_path)
    assert list(tmp_path.iterdir()) == []


HOLD = ('import sys, time; from pathlib import Path; from icl.rundir import lock_run_dir\n'
        'with lock_run_dir(Path(sys.argv[1])):\n    print("held", flush=True); time.sleep(600)')


def test_one_launch_holds_a_run_directory_and_a_killed_one_never_blocks(tmp_path):
    run = tmp_path / 'run'
    holder = subprocess.Popen([sys.executable, '-c', HOLD, str(run)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              env={**os.environ, 'PYTHONPATH': str(REPO_ROOT)}, text=True)
    try:
        assert holder.stdout.readline() == 'held\n'
        held_by = rf"pid {holder.pid} on {re.escape(socket.gethostname())} \(since [\d:T-]+\)"
        with pytest.raises(UsageError, match=rf"^'{re.escape(str(run))}' is in use by another launch: {held_by}; "
                                             'wait for it to end or use another --workdir$'):
            with lock_run_dir(run):
                pass
        assert re.fullmatch(held_by, lock_holder(run))
        assert re.fullmatch(rf'run dir        {re.escape(str(run))} \(new, in use now by {held_by}\)',
                            inspect(run, record()).describe(3))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    assert lock_holder(run) is None
    start = time.monotonic()
    with lock_run_dir(run):  # the killed holder's lock is free at once
        assert json.loads((run / '.lock').read_text())['pid'] == os.getpid()
    assert time.monotonic() - start < 1


# ---------------------------------------------------------------- through the command line

def error_lines(change_labels, capsys, argv: list[str]) -> list[str]:
    """The error line of a dry run and of the real run of `argv` (each exits 2)."""
    lines = []
    for dry_run in (['--dry_run=True'], []):
        assert change_labels.run_command([*argv, *dry_run]) == 2
        err = capsys.readouterr().err
        assert 'Traceback' not in err
        lines.append(err.splitlines()[-1])
    return lines


def test_a_note_too_long_for_the_default_name_fails_in_the_dry_run_as_in_the_run(tmp_path, change_labels,
                                                                                  monkeypatch, capsys):
    from icl import models
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('CLASS_NAMES', 'DEFAULT_ONLY')
    monkeypatch.setattr(models, 'load_model', lambda *a, **k: pytest.fail('model weights loaded before the error'))

    lines = error_lines(change_labels, capsys, ['change_labels.py', '--n_repeats=1', '--note=' + 'n' * 300])

    for line in lines:
        assert re.fullmatch(r"error: cannot write run directory 'runs/tiny_sentiment-smollm2-135m-n{300}-\d{8}-\d{6}': "
                            'File name too long; give a --workdir you can write', line), line
    assert list(tmp_path.iterdir()) == []


def test_a_resume_after_the_data_changed_is_refused_naming_the_dataset_and_split(tmp_path, change_labels, monkeypatch,
                                                                                 capsys, real_data_dir):
    from icl import config as icl_config
    from icl import experiment
    original, changed = tmp_path / 'original', tmp_path / 'changed'
    for folder in (original, changed):
        shutil.copytree(real_data_dir / 'sst2', folder / 'sst2')
    dev = changed / 'sst2' / 'dev.tsv'
    dev.write_text(''.join(dev.read_text().splitlines(keepends=True)[:-1]))  # one row less
    monkeypatch.setenv('CLASS_NAMES', 'DEFAULT_ONLY')
    monkeypatch.setenv('ICL_DATA_DIR', str(original))
    argv = ['change_labels.py', '--dataset.name=sst2', '--dataset.config.num_prompt_examples=2', '--n_repeats=1',
            '--model.dtype=float32']
    overrides, _ = icl_config.split_argv(argv, set())
    plan = experiment.plan(icl_config.apply_overrides(icl_config.base_config(), overrides))
    run = tmp_path / 'run'
    record = experiment.run_record(plan)  # config.json as the run writes it (the fast way: nothing scored)
    start_run_dir(inspect_run_dir(run, record, **experiment.dir_checks(plan)), record)
    assert record['data']['source'] == f'local folder {original.resolve()}'
    assert record['data']['splits']['validation']['rows'] == 872
    config = (run / 'config.json').read_bytes()
    monkeypatch.setenv('ICL_DATA_DIR', str(changed))

    lines = error_lines(change_labels, capsys, [*argv, f'--workdir={run}'])

    assert lines == [f"error: '{run}' was made from other sst2 data than local folder {changed.resolve()} holds now "
                     '(split validation has 871 rows (was 872)); resume it with the data it was made from (local '
                     f'folder {original.resolve()}) or use a new --workdir'] * 2
    assert (run / 'config.json').read_bytes() == config


def test_a_resume_with_other_old_class_names_is_refused():
    """OLD_CLASS_NAMES=TRUE changes the names a run of mrpc, wnli, rte, ... shows: no mixing in one table."""
    old_names = record(dataset={**record()['config']['dataset'], 'old_class_names': True})
    assert config_differences(record(), old_names) == {'dataset.old_class_names': (False, True)}
    assert config_differences(older_record(class_names_env='DEFAULT_ONLY', old_class_names=True), old_names) == {}
