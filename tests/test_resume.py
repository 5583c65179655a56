"""Runs survive being killed: a resumed run ends with the table of an uninterrupted one, bit for
bit; damaged part files are set aside and redone; the same command gives the same table."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from icl import models, results
from icl.config import REPO_ROOT

REPEATS, EXAMPLES = 6, 8
FLAGS = [f'--dataset.config.num_prompt_examples={EXAMPLES}', f'--n_repeats={REPEATS}', '--model.dtype=float32',
         '--note=resume']
# One thread, in the test process too (fixture one_thread): on a busy machine two OpenMP threads
# per process spin against each other and scoring gets ~8x slower.
ENV = {'CLASS_NAMES': 'DEFAULT_AND_FLIP', 'WANDB_MODE': 'disabled', 'OMP_NUM_THREADS': '1'}


def command(run_dir) -> list[str]:
    return [sys.executable, 'change_labels.py', *FLAGS, f'--workdir={run_dir}']


def run_process(run_dir) -> subprocess.CompletedProcess:
    done = subprocess.run(command(run_dir), cwd=REPO_ROOT, env={**os.environ, **ENV}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_same_table(a, b):
    pd.testing.assert_frame_equal(results.read_table(a), results.read_table(b), check_exact=True)


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp('resume') / 'uninterrupted'
    run_process(run_dir)
    assert results.completed_repetitions(run_dir) == list(range(REPEATS))
    return run_dir


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_table(uninterrupted, tmp_path):
    run_dir = tmp_path / 'killed'
    process = subprocess.Popen(command(run_dir), cwd=REPO_ROOT, env={**os.environ, **ENV},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not results.completed_repetitions(run_dir) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    survived = results.completed_repetitions(run_dir)
    assert 1 <= len(survived) < REPEATS, f'kill the run while it scores: parts {survived}'
    variants = list(json.loads((uninterrupted / 'setup.json').read_text())['variants'])
    for repetition in survived:  # whatever is on disk is complete
        part = results.part_path(run_dir, repetition)
        assert results.part_problem(part, repetition, len(variants) * (EXAMPLES + 1), variants) is None
    kept = {r: results.part_path(run_dir, r).stat().st_mtime_ns for r in survived}
    assert json.loads((run_dir / '.lock').read_text())['pid'] == process.pid  # the killed run's lock is left

    resumed = run_process(run_dir)

    assert f'Resuming {run_dir}: {len(survived)} of {REPEATS} repetitions done' in resumed.stdout
    assert {r: results.part_path(run_dir, r).stat().st_mtime_ns for r in survived} == kept  # not scored again
    assert_same_table(run_dir, uninterrupted)
    record = json.loads((run_dir / 'config.json').read_text())
    assert len(record['resumed']) == 1 and record['resumed'][0]['command'][-1] == f'--workdir={run_dir}'


def test_damaged_part_is_set_aside_and_redone(uninterrupted, tmp_path, change_labels, monkeypatch, capsys, caplog,
                                              one_thread):
    run_dir = tmp_path / 'damaged'
    shutil.copytree(uninterrupted, run_dir)
    part = results.part_path(run_dir, 3)
    data = part.read_bytes()
    part.write_bytes(data[:len(data) // 2])  # e.g. a copy cut short
    (part.parent / '.part-000005.parquet.tmp').write_bytes(b'half-written')  # a killed writer's leftover
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    argv = ['change_labels.py', *FLAGS, f'--workdir={run_dir}']
    others = {r: results.part_path(run_dir, r).stat().st_mtime_ns for r in range(REPEATS) if r != 3}

    assert change_labels.run_command([*argv, '--dry_run=True']) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        f'run dir        {run_dir} (resume: {REPEATS - 1} of {REPEATS} repetitions done, 1 damaged part(s) to redo)'
    assert part.read_bytes() == data[:len(data) // 2]  # a dry run repairs nothing

    with caplog.at_level('INFO'):
        assert change_labels.run_command(argv) == 0

    assert 'Redoing part-000003.parquet (unreadable' in caplog.text
    assert f'Resuming {run_dir}: {REPEATS - 1} of {REPEATS} repetitions done' in caplog.text
    assert (part.parent / '.part-000003.parquet.invalid').read_bytes() == data[:len(data) // 2]
    assert {r: results.part_path(run_dir, r).stat().st_mtime_ns for r in others} == others
    assert_same_table(run_dir, uninterrupted)


def test_part_problem_names_what_is_wrong(uninterrupted, tmp_path):
    part = results.part_path(uninterrupted, 2)
    variants = list(json.loads((uninterrupted / 'setup.json').read_text())['variants'])
    rows = pq.read_metadata(part).num_rows
    assert rows == len(variants) * (EXAMPLES + 1)
    assert results.part_problem(part, 2, rows, variants) is None
    assert results.part_problem(part, 2, rows + 1, variants) == f'{rows} rows, expected {rows + 1}'
    assert results.part_problem(part, 3, rows, variants) == 'it holds other repetitions than 3'
    assert results.part_problem(part, 2, rows, variants[:1]).startswith("its variants differ from this run's")
    other = tmp_path / 'other.parquet'
    pq.write_table(pq.read_table(part).drop_columns(['prior_log_probs']), other)
    assert results.part_problem(other, 2, rows, variants) == 'its columns differ from the results schema'


def test_the_same_command_twice_gives_the_same_table_bit_for_bit(uninterrupted, tmp_path, change_labels,
                                                                 monkeypatch, one_thread):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    again = tmp_path / 'again'

    assert change_labels.run_command(['change_labels.py', *FLAGS, f'--workdir={again}']) == 0

    assert_same_table(again, uninterrupted)
    for repetition in range(REPEATS):  # the files themselves, byte for byte
        assert results.part_path(again, repetition).read_bytes() == \
            results.part_path(uninterrupted, repetition).read_bytes()


def test_a_resumed_run_continues_its_wandb_run(tmp_path, change_labels, monkeypatch, one_thread):
    monkeypatch.setenv('WANDB_MODE', 'offline')  # a real wandb run, written to RUN_DIR/wandb, no account
    monkeypatch.setenv('CLASS_NAMES', 'DEFAULT_ONLY')
    run_dir = tmp_path / 'tracked'
    argv = ['change_labels.py', '--dataset.config.num_prompt_examples=4', '--n_repeats=2', '--model.dtype=float32',
            f'--workdir={run_dir}']
    assert change_labels.run_command(argv) == 0
    first = json.loads((run_dir / 'config.json').read_text())['wandb']
    results.part_path(run_dir, 1).unlink()  # as if killed during the last repetition

    assert change_labels.run_command(argv) == 0

    record = json.loads((run_dir / 'config.json').read_text())
    assert record['wandb']['id'] == first['id'] and first['mode'] == 'offline'
    runs = sorted(p.name for p in (run_dir / 'wandb').glob('offline-run-*'))
    # wandb appends -1 to the folder when both runs start within the same second
    folder = re.compile(rf"offline-run-\d{{8}}_\d{{6}}-{first['id']}(-\d+)?")
    assert len(runs) == 2 and all(folder.fullmatch(name) for name in runs)


def test_a_run_killed_while_writing_its_first_config_is_started_afresh(tmp_path, change_labels, monkeypatch, capsys):
    monkeypatch.setenv('CLASS_NAMES', 'DEFAULT_ONLY')
    run_dir = tmp_path / 'early'
    run_dir.mkdir()
    (run_dir / '.config.json.tmp').write_text('{"config": {')  # SIGKILL during the first write

    assert change_labels.run_command(['change_labels.py', *FLAGS, f'--workdir={run_dir}', '--dry_run=True']) == 0

    assert capsys.readouterr().out.splitlines()[-1] == f'run dir        {run_dir} (new)'


def test_resuming_a_finished_run_only_summarises_it(uninterrupted, tmp_path, change_labels, monkeypatch, capsys):
    run_dir = tmp_path / 'finished'
    shutil.copytree(uninterrupted, run_dir)
    parts = {r: results.part_path(run_dir, r).stat().st_mtime_ns for r in range(REPEATS)}
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(models, 'load_model', lambda *a, **k: pytest.fail('the model was loaded with nothing to do'))

    assert change_labels.run_command(['change_labels.py', *FLAGS, f'--workdir={run_dir}']) == 0

    assert f'Results in {run_dir} ' in capsys.readouterr().out
    assert {r: results.part_path(run_dir, r).stat().st_mtime_ns for r in range(REPEATS)} == parts
    assert_same_table(run_dir, uninterrupted)


def error_line(stderr: str) -> str:
    """The one-line message a stopped command ends with (no traceback, no other error line)."""
    lines = stderr.rstrip('\n').splitlines()
    assert 'Traceback' not in stderr, stderr[-3000:]
    assert [line for line in lines if line.startswith('error: ')] == lines[-1:], stderr[-3000:]
    return lines[-1]


def wait_for_a_part(process, run_dir) -> None:
    deadline = time.monotonic() + 300
    while not results.completed_repetitions(run_dir) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


# Ctrl-C and a full disk: a smaller run (the resumed table is compared in the SIGKILL test)
STOP_FLAGS = ['--dataset.config.num_prompt_examples=4', '--n_repeats=3', '--model.dtype=float32', '--note=stop']
STOP_ENV = {**ENV, 'CLASS_NAMES': 'DEFAULT_ONLY', 'WANDB_MODE': 'offline'}  # a real wandb run: no noise either


def assert_rerunning_resumes(change_labels, monkeypatch, run_dir, saved: int) -> None:
    kept = {r: results.part_path(run_dir, r).stat().st_mtime_ns for r in range(saved)}
    for name, value in STOP_ENV.items():
        monkeypatch.setenv(name, value)
    assert change_labels.run_command(['change_labels.py', *STOP_FLAGS, f'--workdir={run_dir}']) == 0
    assert results.completed_repetitions(run_dir) == [0, 1, 2]
    assert {r: results.part_path(run_dir, r).stat().st_mtime_ns for r in range(saved)} == kept


def test_ctrl_c_saves_the_finished_repetitions_says_how_to_resume_and_exits_130(tmp_path, change_labels,
                                                                                 monkeypatch, one_thread):
    run_dir = tmp_path / 'interrupted'
    process = subprocess.Popen([sys.executable, 'change_labels.py', *STOP_FLAGS, f'--workdir={run_dir}'],
                               cwd=REPO_ROOT, env={**os.environ, **STOP_ENV}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for_a_part(process, run_dir)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    saved = len(results.completed_repetitions(run_dir))
    assert process.returncode == 130 and 1 <= saved < 3, stderr[-3000:]
    assert error_line(stderr) == (f'error: interrupted: {saved} of 3 repetitions are saved in {run_dir}; '
                                  'rerun the same command to resume')
    assert_rerunning_resumes(change_labels, monkeypatch, run_dir, saved)


FULL_DISK = '''import errno
import pyarrow.parquet as pq
_write, _calls = pq.write_table, []
def write_table(table, where, *args, **kwargs):  # the second part meets a full disk half-way
    _calls.append(1)
    if len(_calls) == 2:
        where.write(b'PAR1 half a part')
        raise OSError(errno.ENOSPC, 'No space left on device')
    return _write(table, where, *args, **kwargs)
pq.write_table = write_table
'''


def test_a_full_disk_stops_the_run_with_one_line_and_rerunning_resumes(tmp_path, change_labels, monkeypatch,
                                                                        one_thread):
    run_dir = tmp_path / 'full'
    (tmp_path / 'site').mkdir()
    (tmp_path / 'site' / 'sitecustomize.py').write_text(FULL_DISK)
    env = {**os.environ, **STOP_ENV, 'PYTHONPATH': str(tmp_path / 'site')}

    done = subprocess.run([sys.executable, 'change_labels.py', *STOP_FLAGS, f'--workdir={run_dir}'], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=600)

    assert done.returncode == 1
    part = results.part_path(run_dir, 1)
    assert error_line(done.stderr) == (f"error: could not write '{part}' (No space left on device); nothing finished "
                                       f'was lost: 1 of 3 repetitions are saved in {run_dir}; rerun the same command '
                                       'to resume')
    assert sorted(p.name for p in part.parent.iterdir()) == ['part-000000.parquet']  # no half-written file
    assert_rerunning_resumes(change_labels, monkeypatch, run_dir, 1)


def test_a_larger_n_repeats_extends_a_run_to_the_table_of_the_larger_run(uninterrupted, tmp_path, change_labels,
                                                                         monkeypatch, capsys, one_thread):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    run_dir = tmp_path / 'extended'
    first = [f for f in FLAGS if not f.startswith('--n_repeats')]
    assert change_labels.run_command(['change_labels.py', *first, '--n_repeats=3', f'--workdir={run_dir}']) == 0
    kept = {r: results.part_path(run_dir, r).stat().st_mtime_ns for r in range(3)}

    assert change_labels.run_command(['change_labels.py', *FLAGS, f'--workdir={run_dir}', '--dry_run=True']) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        f'run dir        {run_dir} (resume: 3 of {REPEATS} repetitions done, extending it from 3 repetitions)'
    assert change_labels.run_command(['change_labels.py', *FLAGS, f'--workdir={run_dir}']) == 0

    assert_same_table(run_dir, uninterrupted)  # exactly
    assert {r: results.part_path(run_dir, r).stat().st_mtime_ns for r in range(3)} == kept
    record = json.loads((run_dir / 'config.json').read_text())
    assert record['config']['n_repeats'] == REPEATS
    assert record['resumed'][0]['extended'] == {'n_repeats': [3, REPEATS]}
    capsys.readouterr()
    assert change_labels.run_command(['change_labels.py', *first, '--n_repeats=3', f'--workdir={run_dir}']) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: '{run_dir}' holds a run of {REPEATS} repetitions; --n_repeats=3 would shrink it: resume with "
        f'--n_repeats={REPEATS} (or more, to extend it)')


HOLD = ('import sys, time; from pathlib import Path; from icl.rundir import lock_run_dir\n'
        'with lock_run_dir(Path(sys.argv[1])):\n    print("held", flush=True); time.sleep(600)')


def test_a_second_launch_is_refused_naming_the_first_and_a_killed_one_never_blocks(uninterrupted, tmp_path,
                                                                                   change_labels, monkeypatch, capsys):
    run_dir = tmp_path / 'busy'
    shutil.copytree(uninterrupted, run_dir)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(models, 'load_model', lambda *a, **k: pytest.fail('the model was loaded with nothing to do'))
    holder = subprocess.Popen([sys.executable, '-c', HOLD, str(run_dir)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              env={**os.environ, 'PYTHONPATH': str(REPO_ROOT)}, text=True)
    try:
        assert holder.stdout.readline() == 'held\n'
        config = (run_dir / 'config.json').read_bytes()
        held_by = rf"pid {holder.pid} on {re.escape(socket.gethostname())} \(since [\d:T-]+\)"

        assert change_labels.run_command(['change_labels.py', *FLAGS, f'--workdir={run_dir}', '--dry_run=True']) == 0
        assert re.fullmatch(rf'run dir        {re.escape(str(run_dir))} \(resume: {REPEATS} of {REPEATS} repetitions '
                            rf'done, in use now by {held_by}\)', capsys.readouterr().out.splitlines()[-1])
        assert change_labels.run_command(['change_labels.py', *FLAGS, f'--workdir={run_dir}']) == 2
        assert re.fullmatch(rf"error: '{re.escape(str(run_dir))}' is in use by another launch: {held_by}; wait for it "
                            'to end or use another --workdir', capsys.readouterr().err.splitlines()[-1])
        assert (run_dir / 'config.json').read_bytes() == config
    finally:
        holder.kill()
        holder.wait(timeout=60)

    assert change_labels.run_command(['change_labels.py', *FLAGS, f'--workdir={run_dir}']) == 0
    assert f'Results in {run_dir} ' in capsys.readouterr().out
