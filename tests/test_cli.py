"""icl/cli.py, the command lines' one convention: switches, one-line usage errors with exit status 2, --help with
exit status 0, Ctrl-C, and log lines on stdout as `HH:MM:SS LEVEL message`; and the three programs keeping it."""
import logging
import os
import re
import subprocess
import sys

import pytest

from icl import cli
from icl.config import REPO_ROOT
from icl.errors import RunStopped, UsageError

LOG_LINE = re.compile(r'\d\d:\d\d:\d\d (INFO|WARNING) .+')  # e.g. 09:31:48 INFO message


def switches() -> cli.Parser:
    parser = cli.Parser(prog='prog')
    parser.add_argument('file')
    parser.add_argument('--launcher', choices=('local', 'slurm'), default='local')
    parser.add_switch('dry_run', 'validate only')
    return parser


@pytest.mark.parametrize('argv, expected', [
    ([], False), (['--dry_run'], True), (['--nodry_run'], False), (['--dry_run=True'], True),
    (['--dry_run=true'], True), (['--dry_run=FALSE'], False), (['--dry_run', '--nodry_run'], False),
    (['--dry_run=False', '--dry_run'], True)])
def test_a_switch_takes_true_or_false_in_any_case_or_stands_alone(argv, expected):
    assert switches().parse_args(['f.md', *argv]).dry_run is expected
    assert switches().parse_args([*argv, 'f.md']).file == 'f.md'  # a bare switch takes no value: the file stays


@pytest.mark.parametrize('argv, message', [
    (['f.md', '--dry_run=maybe'], "--dry_run: 'maybe' is not True or False"),
    (['f.md', '--dry_run='], "--dry_run: '' is not True or False"),
    (['f.md', 'g.md'], "unexpected argument 'g.md'; see --help"),
    (['f.md', '--dry'], "unexpected argument '--dry'; see --help"),  # no abbreviations
    (['f.md', '--launcher=cloud'], "--launcher: invalid choice: 'cloud' (choose from 'local', 'slurm')"),
    ([], 'the following arguments are required: file')])
def test_a_parse_mistake_is_one_usage_error(argv, message):
    with pytest.raises(UsageError) as error:
        switches().parse_args(argv)
    assert str(error.value) == message


def test_the_parser_knows_its_long_option_names():
    assert switches().option_names == {'help', 'launcher', 'dry_run'}


def test_help_prints_the_usage_and_exits_0(capsys):
    assert cli.exit_status(lambda argv: switches().parse_args(argv) and 1, ['--help']) == 0
    out, err = capsys.readouterr()
    assert out.startswith('usage: prog [-h] [--launcher {local,slurm}] [--dry_run True|False] file\n')
    assert '(--dry_run alone: True)' in out and err == ''


def fails(error: BaseException):
    def command(argv):
        raise error
    return command


@pytest.mark.parametrize('command, status, line', [
    (fails(UsageError("n_repeats=0 must be at least 1")), 2, 'error: n_repeats=0 must be at least 1'),
    (fails(RunStopped('interrupted: 3 of 5 repetitions saved', status=130)), 130,
     'error: interrupted: 3 of 5 repetitions saved'),
    (fails(RunStopped('disk full', status=1)), 1, 'error: disk full'),
    (fails(KeyboardInterrupt()), 130, 'error: interrupted before anything was written'),
    (lambda argv: 3, 3, ''), (lambda argv: None, 0, '')])
def test_exit_status_prints_one_error_line(command, status, line, capsys):
    assert cli.exit_status(command, ['x'], 'interrupted before anything was written') == status
    out, err = capsys.readouterr()
    assert (out, err) == ('', f'{line}\n' if line else '')


def test_log_lines_go_to_stdout_in_one_format_and_once(capsys):
    def command(argv):
        logging.getLogger('icl.any').info('Resuming %s', argv[0])
        logging.getLogger('icl.any').warning('a warning')
        raise UsageError('bad value')
    assert cli.exit_status(command, ['run-a']) == 2
    assert cli.exit_status(command, ['run-b']) == 2  # run twice in one process: still one handler, one line each
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [LOG_LINE.fullmatch(line) is not None for line in lines] == [True] * 4
    assert [line[9:] for line in lines] == ['INFO Resuming run-a', 'WARNING a warning', 'INFO Resuming run-b',
                                            'WARNING a warning']
    assert err == 'error: bad value\n' * 2


def test_a_bare_dry_run_plans_like_dry_run_true(change_labels, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('CLASS_NAMES', 'DEFAULT_ONLY')
    argv = ['change_labels.py', '--n_repeats=2', '--model.dtype=float32', f'--workdir={tmp_path}/new']
    plans = []
    for dry_run in ('--dry_run', '--dry_run=True', '--dry_run=true'):
        assert change_labels.run_command([*argv, dry_run]) == 0
        plans.append([line for line in capsys.readouterr().out.splitlines() if not LOG_LINE.fullmatch(line)])
    assert plans[0] == plans[1] == plans[2] and plans[0][-1] == f'run dir        {tmp_path}/new (new)'
    assert not (tmp_path / 'new').exists()


def test_the_sweep_and_the_report_take_switches_alike():
    from icl import report
    from icl.sweep.__main__ import parse
    assert parse(['runs.md', '--root=r', '--dry_run'])[0].dry_run is True
    assert parse(['runs.md', '--dry_run', '--root=r'])[0].file == 'runs.md'
    assert parse(['runs.md', '--root=r', '--dry_run=TRUE'])[0].dry_run is True
    assert report.parse_args(['run', '--invert_logits=True']).invert_logits is True
    assert report.parse_args(['run', '--invert_logits']).invert_logits is True
    assert report.parse_args(['run', '--invert_logits=false']).invert_logits is False


def test_nodry_run_and_help_keys_keep_their_absl_spellings(change_labels, capsys):
    assert change_labels.run_command(['change_labels.py', '--nodry_run', '--help_keys', '--n_repeats=7']) == 0
    assert 'n_repeats = 7' in capsys.readouterr().out
    assert change_labels.run_command(['change_labels.py', '--help_keys=maybe']) == 2
    assert capsys.readouterr().err == "error: --help_keys: 'maybe' is not True or False\n"


PROGRAMS = {'change_labels.py': ['change_labels.py'], 'python -m icl.report': ['-m', 'icl.report'],
            'python -m icl.sweep': ['-m', 'icl.sweep']}


@pytest.mark.parametrize('program', PROGRAMS)
def test_help_exits_0_with_the_usage_line_as_a_real_process(program):
    done = subprocess.run([sys.executable, *PROGRAMS[program], '--help'], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, '')
    assert done.stdout.startswith(f'usage: {program} [-h] ')


def test_a_failing_command_logs_on_stdout_and_errs_in_one_line_as_a_real_process(tmp_path):
    env = {**os.environ, 'CLASS_NAMES': 'DEFAULT_ONLY', 'WANDB_MODE': 'disabled'}
    done = subprocess.run([sys.executable, 'change_labels.py', '--dataset.config.num_test_samples=100000',
                           f'--workdir={tmp_path}/run'], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert re.fullmatch(r'error: dataset\.config\.num_test_samples=100000 exceeds [^\n]+\n', done.stderr)
    lines = done.stdout.splitlines()  # e.g. 09:31:48 WARNING No validation set for tiny_sentiment ...
    assert lines and all(LOG_LINE.fullmatch(line) for line in lines), done.stdout
