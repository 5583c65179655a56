"""Several processes split a run's repetitions (accelerate launch or torchrun, here on the CPU);
the run's table equals a single process's, bit for bit, and resuming splits what is left."""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from icl import results
from icl.config import REPO_ROOT
from icl.processes import process_gpus

REPEATS = 5
FLAGS = ['--dataset.config.num_prompt_examples=8', f'--n_repeats={REPEATS}', '--model.dtype=float32', '--note=multi']
# CPU processes with one thread each (torchrun's default), also on a machine with GPUs
ENV = {'CLASS_NAMES': 'DEFAULT_AND_FLIP', 'WANDB_MODE': 'disabled', 'OMP_NUM_THREADS': '1', 'CUDA_VISIBLE_DEVICES': ''}
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def launch(launcher: list[str], run_dir: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([*launcher, 'change_labels.py', *FLAGS, f'--workdir={run_dir}'], cwd=REPO_ROOT,
                          env={**os.environ, **ENV}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def accelerate_launch(processes: int) -> list[str]:
    # --multi_gpu starts the processes through torchrun, on GPUs or (as here) CPUs; accelerate's
    # --cpu launcher starts a single process unless it is given an MPI hostfile
    return [str(BIN / 'accelerate'), 'launch', '--multi_gpu', f'--num_processes={processes}', '--num_machines=1',
            '--mixed_precision=no', '--dynamo_backend=no', f'--main_process_port={free_port()}']


def torchrun(processes: int) -> list[str]:
    return [str(BIN / 'torchrun'), f'--nproc_per_node={processes}', f'--master_port={free_port()}']


@pytest.fixture(scope='module')
def single(change_labels, tmp_path_factory):
    """The same command in one process (this one, with one thread)."""
    run_dir = tmp_path_factory.mktemp('multi') / 'single'
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        for name, value in ENV.items():
            mp.setenv(name, value)
        torch.set_num_threads(1)
        try:
            assert change_labels.run_command(['change_labels.py', *FLAGS, f'--workdir={run_dir}']) == 0
        finally:
            torch.set_num_threads(threads)
    return run_dir


def assert_same_table(a, b):
    pd.testing.assert_frame_equal(results.read_table(a), results.read_table(b), check_exact=True)


def test_two_processes_split_the_repetitions_and_give_the_single_process_table(single, tmp_path):
    run_dir = tmp_path / 'two'

    done = launch(accelerate_launch(2), run_dir)

    assert 'Process 0 of 2 scores repetitions [0, 2, 4]' in done.stdout  # log lines go to stdout
    assert 'Process 1 of 2 scores repetitions [1, 3]' in done.stdout  # log lines go to stdout
    assert done.stdout.count(f'Results in {run_dir} ') == 1  # process 0 alone summarises, once all parts exist:
    assert done.stdout.count(f'({REPEATS} repetitions)') == 2  # default and flip
    assert_same_table(run_dir, single)
    assert json.loads((run_dir / 'setup.json').read_text())['timing']['processes'] == 2
    record = json.loads((run_dir / 'config.json').read_text())
    assert record['config']['n_repeats'] == REPEATS and 'resumed' not in record
    assert sorted(p.name for p in run_dir.iterdir()) == ['.lock', 'config.json', 'prompts.txt', 'results', 'setup.json']


def test_resuming_with_two_processes_splits_what_is_left(single, tmp_path):
    run_dir = tmp_path / 'partial'
    shutil.copytree(single, run_dir)
    for repetition in (1, 2, 4):
        results.part_path(run_dir, repetition).unlink()
    kept = {r: results.part_path(run_dir, r).stat().st_mtime_ns for r in (0, 3)}

    done = launch(torchrun(2), run_dir)

    assert 'Process 0 of 2 scores repetitions [1, 4]' in done.stdout  # log lines go to stdout
    assert 'Process 1 of 2 scores repetitions [2]' in done.stdout  # log lines go to stdout
    assert {r: results.part_path(run_dir, r).stat().st_mtime_ns for r in (0, 3)} == kept
    assert_same_table(run_dir, single)
    assert len(json.loads((run_dir / 'config.json').read_text())['resumed']) == 1


@pytest.mark.parametrize('gpus, processes, index, expected', [
    (8, 4, 1, [2, 3]),  # e.g. LLaMa-2-70B in bf16: two 80 GB GPUs per process
    (8, 8, 5, [5]),
    (3, 2, 1, [1]),  # a GPU left over stays unused
    (1, 2, 1, [0]),  # more processes than GPUs: they share
])
def test_each_process_on_a_machine_gets_its_own_gpus(gpus, processes, index, expected, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: gpus)
    monkeypatch.setenv('LOCAL_WORLD_SIZE', str(processes))
    state = SimpleNamespace(num_processes=processes, local_process_index=index)
    assert process_gpus(state) == expected


def test_a_single_process_uses_every_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert process_gpus(SimpleNamespace(num_processes=1, local_process_index=0)) is None


HOLD = ('import sys, time; from pathlib import Path; from icl.rundir import lock_run_dir\n'
        'with lock_run_dir(Path(sys.argv[1])):\n    print("held", flush=True); time.sleep(600)')


def test_a_second_launch_is_refused_in_every_process_without_hanging(single, tmp_path):
    run_dir = tmp_path / 'busy'
    shutil.copytree(single, run_dir)
    results.part_path(run_dir, 4).unlink()  # work left: the refused launch must not do it
    holder = subprocess.Popen([sys.executable, '-c', HOLD, str(run_dir)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              env={**os.environ, 'PYTHONPATH': str(REPO_ROOT)}, text=True)
    try:
        assert holder.stdout.readline() == 'held\n'
        config = (run_dir / 'config.json').read_bytes()
        done = subprocess.run([*torchrun(2), 'change_labels.py', *FLAGS, f'--workdir={run_dir}'], cwd=REPO_ROOT,
                              env={**os.environ, **ENV}, capture_output=True, text=True, timeout=600)
    finally:
        holder.kill()
        holder.wait(timeout=60)
    refused = f"error: '{run_dir}' is in use by another launch: pid {holder.pid} on "
    assert done.returncode != 0 and done.stderr.count(refused) == 2, done.stderr[-3000:]  # each process says so
    assert (run_dir / 'config.json').read_bytes() == config
    assert not results.part_path(run_dir, 4).exists()
