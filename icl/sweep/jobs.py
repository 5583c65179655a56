"""One submitit job per run, on this machine (LocalExecutor) or a SLURM cluster (one job array).

A job runs its command like change_labels.py would, with `--workdir` set to the run's directory,
so a job that starts again (requeued after pre-emption or a time-out: submitit's checkpointing, or
the sweep run once more) resumes the run where its last repetition ended. A command that asks for
several processes runs under `accelerate launch`.
"""
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import submitit

from icl import cli
from icl.config import REPO_ROOT, autotype
from icl.errors import UsageError
from icl.settings import CLASS_NAMES_ENV
from icl.sweep.status import jobs_dir, read_state, state_path, write_state
from icl.sweep.study import SCRIPT, Run, resolve_config

logging.getLogger('submitit').propagate = False  # it prints its lines itself: not a second time through ours
LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # submitit's local default (2 minutes) would cut runs short
POLL_S = 0.5


@dataclasses.dataclass
class RunJob(submitit.helpers.Checkpointable):
    """The job of one run; its checkpoint (pre-emption, time-out) is the same call: the run resumes."""
    run: Run
    root: str
    threads: int | None = None  # torch threads (local jobs sharing the CPU cores)

    @property
    def run_dir(self) -> Path:
        return Path(self.root) / self.run.name

    def argv(self) -> list[str]:
        return [SCRIPT, *self.run.flags, f'--workdir={self.run_dir}']

    def __call__(self) -> str:
        cli.log_to_stdout(to_stderr=True)  # the job's .err file, which sweep status names
        info = job_info()
        write_state(self.root, self.run.name, 'running', pid=os.getpid(), **info)
        try:
            if self.run.processes > 1:
                run_launched(launch_argv(self.argv(), self.run.processes), self.run.class_names)
            else:
                self.run_here()
        except Exception as error:  # the job fails with it; its state keeps the log to read
            first_line = (str(error).splitlines() or [''])[0]
            write_state(self.root, self.run.name, 'failed', error=f'{type(error).__name__}: {first_line}', **info)
            raise
        write_state(self.root, self.run.name, 'done', **info)
        return str(self.run_dir)

    def run_here(self) -> None:
        """The command in this process (icl.experiment.run, as change_labels.py calls it)."""
        from icl import experiment
        if self.threads:
            import torch
            torch.set_num_threads(self.threads)
        sys.argv = self.argv()  # config.json records the command
        experiment.run(resolve_config(self.run.flags, self.run.class_names), run_dir=self.run_dir)


def job_info() -> dict[str, str]:
    """This submitit job's id, cluster ('local' or 'slurm') and log file (empty outside a submitit job)."""
    try:
        env = submitit.JobEnvironment()
    except RuntimeError:
        return {'job': '', 'cluster': '', 'log': ''}
    return {'job': env.job_id, 'cluster': type(env).name(), 'log': str(env.paths.stderr)}


def launch_argv(argv: Sequence[str], processes: int) -> list[str]:
    """`accelerate launch` of change_labels.py with `processes` processes (--multi_gpu: also on CPUs)."""
    return [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', f'--num_processes={processes}',
            '--num_machines=1', '--mixed_precision=no', '--dynamo_backend=no', str(REPO_ROOT / argv[0]), *argv[1:]]


def run_launched(argv: list[str], class_names: str) -> None:
    """Run a launcher in its own process group, ended with the job (a requeue, a cancel)."""
    process = subprocess.Popen(argv, env={**os.environ, CLASS_NAMES_ENV: class_names}, start_new_session=True)
    try:
        status = process.wait()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    if status != 0:
        raise RuntimeError(f'accelerate launch exited with status {status}')


def core_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


def run_local(jobs: Sequence[RunJob], root: Path, parallel: int) -> None:
    """Run the jobs on this machine through submitit's LocalExecutor, at most `parallel` at a time;
    a job that ends without a result (killed) is recorded as failed."""
    executor = submitit.LocalExecutor(folder=jobs_dir(root))
    executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
    pending, running = list(jobs), {}
    try:
        while pending or running:
            while pending and len(running) < parallel:
                job = pending.pop(0)
                running[executor.submit(job)] = job
                print(f'started   {job.run.name}', flush=True)
            for submitted in [s for s in running if s.done()]:
                job = running.pop(submitted)
                failure = job_failure(submitted)
                if failure and read_state(root, job.run.name).get('state') != 'failed':  # else the job said why
                    write_state(root, job.run.name, 'failed', log=str(submitted.paths.stderr),
                                job=submitted.job_id, error=failure)
                word = 'failed' if failure else 'finished'
                print(f'{word:<9} {job.run.name}' + (f' ({failure})' if failure else ''), flush=True)
            time.sleep(POLL_S)
    except KeyboardInterrupt:  # stop the jobs too: they resume when the sweep runs again
        for submitted in running:
            submitted.cancel(check=False)
        raise


def job_failure(submitted) -> str:
    """Why a finished submitit job did not complete its run ('' if it did)."""
    if not submitted.paths.result_pickle.exists():
        return 'the job ended without a result (killed?)'
    error = submitted.exception()
    if error is None:
        return ''
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


SLURM_REQUIRED = ('time',)


def slurm_parameters(options: dict[str, str]) -> dict:
    """`--slurm.KEY=VALUE` options -> submitit's SlurmExecutor parameters (any of them passes through);
    time as sbatch reads it (slurm_minutes)."""
    valid = submitit.SlurmExecutor._valid_parameters()
    params = {}
    for key, text in options.items():
        if key not in valid:
            raise UsageError(f"--slurm.{key} is not a SLURM parameter of submitit; valid: {', '.join(sorted(valid))}")
        params[key] = slurm_minutes(text) if key == 'time' else autotype(text)
    missing = [key for key in SLURM_REQUIRED if key not in params]
    if missing:
        raise UsageError(f'--launcher=slurm needs --slurm.{missing[0]} (the limit of each run: minutes or '
                         'HH:MM:SS)')
    return params


def slurm_minutes(text: str) -> int:
    """A SLURM time limit in whole minutes, read as sbatch reads it: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or
    D-HH:MM:SS."""
    days, dash, clock = text.rpartition('-')
    parts = clock.split(':')
    if not (days.isdigit() or not dash) or not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3:
        raise UsageError(f"--slurm.time={text} is not a time: give minutes, HH:MM:SS or D-HH:MM:SS")
    units = (3600, 60, 1)[:len(parts)] if dash else {1: (60,), 2: (60, 1), 3: (3600, 60, 1)}[len(parts)]
    seconds = int(days or 0) * 86400 + sum(int(p) * unit for p, unit in zip(parts, units))
    return -(-seconds // 60)


def has_state_since(root: Path, name: str, start: float) -> bool:
    path = state_path(root, name)
    return path.is_file() and path.stat().st_mtime >= start


def submit_slurm(jobs: Sequence[RunJob], root: Path, params: dict) -> list[str]:
    """Submit the jobs as one SLURM job array; their job ids."""
    try:
        executor = submitit.SlurmExecutor(folder=jobs_dir(root))
    except RuntimeError:
        raise UsageError("--launcher=slurm needs SLURM's 'srun' on PATH (this is not a SLURM login node)") from None
    try:
        executor.update_parameters(**{'job_name': 'icl-sweep', **params})
    except ValueError as error:
        raise UsageError(f'--slurm options: {str(error).splitlines()[0]}') from None
    start = time.time()
    with executor.batch():
        submitted = [executor.submit(job) for job in jobs]
    for job, sub in zip(jobs, submitted):
        if not has_state_since(root, job.run.name, start):  # a job may have started (and reported) already
            write_state(root, job.run.name, 'submitted', job=sub.job_id, log=str(sub.paths.stderr), cluster='slurm')
    return [sub.job_id for sub in submitted]
