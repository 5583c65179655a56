"""The sweep's record under its root, and the state of each of its runs.

  ROOT/NAME/             one run directory per run (change_labels.py's layout)
  ROOT/_sweep/runs.json  every run a sweep into this root asked for: its command and where it came from
  ROOT/_sweep/state/     NAME.json: what the last job of the run reported (running, failed, done)
  ROOT/_sweep/jobs/      submitit's files: pickled jobs and their logs
"""
import dataclasses
import datetime
import shutil
import subprocess
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from icl import results
from icl.errors import UsageError
from icl.sweep.study import Run

SWEEP_DIR = '_sweep'
STATES = ('done', 'partial', 'failed', 'not started')
ACTIVE = ('submitted', 'running')  # job reports that a job's end replaces
SLURM_ENDED = ('BOOT_FAIL', 'CANCELLED', 'DEADLINE', 'FAILED', 'NODE_FAIL', 'OUT_OF_MEMORY', 'TIMEOUT')


def sweep_dir(root: Path) -> Path:
    return Path(root) / SWEEP_DIR


def manifest_path(root: Path) -> Path:
    return sweep_dir(root) / 'runs.json'


def state_path(root: Path, name: str) -> Path:
    return sweep_dir(root) / 'state' / f'{name}.json'


def jobs_dir(root: Path) -> Path:
    return sweep_dir(root) / 'jobs'


def read_manifest(root: Path) -> dict[str, dict]:
    path = manifest_path(root)
    return results.read_json(path)['runs'] if path.is_file() else {}


def record_runs(root: Path, runs: Sequence[Run], n_repeats: dict[str, int]) -> None:
    """Add the runs to ROOT/_sweep/runs.json (runs of earlier sweeps into the root stay listed)."""
    entries = read_manifest(root)
    for run in runs:
        entries[run.name] = {'class_names': run.class_names, 'flags': list(run.flags), 'processes': run.processes,
                             'sources': list(run.sources), 'n_repeats': n_repeats[run.name],
                             'command': run.command(Path(root) / run.name)}
    manifest_path(root).parent.mkdir(parents=True, exist_ok=True)
    results.write_json(manifest_path(root), {'runs': entries})


def write_state(root: Path, name: str, state: str, **details) -> None:
    """What a job of the run reports (its last report wins)."""
    path = state_path(root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    results.write_json(path, {'state': state, 'time': datetime.datetime.now().isoformat(timespec='seconds'),
                              **details})


def read_state(root: Path, name: str) -> dict:
    path = state_path(root, name)
    return results.read_json(path) if path.is_file() else {}


@dataclasses.dataclass
class RunStatus:
    name: str
    state: str  # one of STATES
    done: int  # repetitions with a part file
    n_repeats: int
    log: str = ''  # a failed run's log file
    error: str = ''  # ... and the error it ended with

    @property
    def detail(self) -> str:
        if self.state == 'failed':
            return f'{self.done} of {self.n_repeats} repetitions; log {self.log}' + (
                f' ({self.error})' if self.error else '')
        if self.state == 'partial':
            return f'{self.done} of {self.n_repeats} repetitions'
        return ''


def is_finished(run_dir: Path, n_repeats: int) -> bool:
    """Every repetition on disk and setup.json written at the end (it holds the timing then)."""
    setup = run_dir / 'setup.json'
    return (len(results.completed_repetitions(run_dir, n_repeats)) >= n_repeats and setup.is_file()
            and 'timing' in results.read_json(setup))


def slurm_states(job_ids: set[str]) -> dict[str, str]:
    """{job id: its SLURM state} from sacct (parsed by submitit); {} without sacct."""
    if not job_ids or shutil.which('sacct') is None:
        return {}
    command = ['sacct', '-o', 'JobID,State,NodeList', '--parsable2']
    for array in sorted({job.split('_')[0] for job in job_ids}):
        command += ['-j', array]
    try:
        output = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    from submitit.slurm.slurm import SlurmInfoWatcher
    return {job: info.get('State', '') for job, info in SlurmInfoWatcher().read_info(output).items()}


def slurm_failure(state: dict, slurm: dict[str, str]) -> str:
    """The SLURM state that ended a SLURM job reported as queued or running ('' if none did)."""
    if state.get('cluster') != 'slurm' or state.get('state') not in ACTIVE:
        return ''
    words = (slurm.get(state.get('job', '')) or '').split()  # e.g. 'CANCELLED by 1234'
    return f'SLURM state {words[0]}' if words and words[0] in SLURM_ENDED else ''


def run_status(root: Path, name: str, n_repeats: int, slurm: dict[str, str] | None = None) -> RunStatus:
    """The run's state; `slurm`: SLURM states of its job (a job SLURM ended without a report is failed)."""
    run_dir = Path(root) / name
    done = len(results.completed_repetitions(run_dir, n_repeats)) if run_dir.is_dir() else 0
    state = read_state(root, name)
    if is_finished(run_dir, n_repeats):
        return RunStatus(name, 'done', done, n_repeats)
    if state.get('state') == 'failed':
        return RunStatus(name, 'failed', done, n_repeats, state.get('log', ''), state.get('error', ''))
    if ended := slurm_failure(state, slurm or {}):
        return RunStatus(name, 'failed', done, n_repeats, state.get('log', ''), ended)
    if (run_dir / 'config.json').is_file():
        return RunStatus(name, 'partial', done, n_repeats)
    return RunStatus(name, 'not started', done, n_repeats)


def sweep_status(root: Path) -> list[RunStatus]:
    """The state of every run a sweep into `root` asked for; UsageError if there was none."""
    entries = read_manifest(root)
    if not entries:
        raise UsageError(f"'{root}' holds no sweep (no {SWEEP_DIR}/runs.json); start one with "
                         'python -m icl.sweep FILE --root=DIR')
    states = {name: read_state(root, name) for name in entries}
    slurm = slurm_states({s['job'] for s in states.values() if s.get('cluster') == 'slurm'
                          and s.get('state') in ACTIVE and s.get('job')})
    return [run_status(root, name, entry['n_repeats'], slurm) for name, entry in entries.items()]


def status_table(statuses: Sequence[RunStatus]) -> str:
    """One line per run (state, repetitions, a failed run's log) and a count per state."""
    width = max(len(s.name) for s in statuses)
    lines = [f"{'run':<{width}}  {'state':<11}  detail"]
    lines += [f'{s.name:<{width}}  {s.state:<11}  {s.detail}'.rstrip() for s in statuses]
    counts = Counter(s.state for s in statuses)
    lines.append(f'{len(statuses)} runs: ' + ', '.join(f'{counts[state]} {state}' for state in STATES))
    return '\n'.join(lines)
