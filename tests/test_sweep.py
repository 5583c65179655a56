"""python -m icl.sweep: expanding a study file, validating it, running it through submitit (locally and
on stand-in SLURM commands), surviving killed and pre-empted jobs, and reporting each run's state."""
import hashlib
import json
import os
import re
import signal
import stat
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from icl import experiment, models, results
from icl.config import REPO_ROOT
from icl.sweep import jobs, plan, status, study
from icl.sweep.__main__ import main

TINY = '--dataset.config.num_prompt_examples=4 --n_repeats=2'
STUDY = f"""\
# Three experiment kinds on two datasets
export CLASS_NAMES=DEFAULT_ONLY
python change_labels.py --note=default --dataset.name=tiny_sentiment {TINY}
python change_labels.py --note=default --dataset.name=sst2 {TINY}
python change_labels.py --note=random --dataset.name=tiny_sentiment {TINY} --dataset.config.random_labels=True
python change_labels.py --note=random --dataset.name=sst2 {TINY} --dataset.config.random_labels=True
export CLASS_NAMES=DEFAULT_AND_FLIP
python change_labels.py --note=halfway --dataset.name=tiny_sentiment {TINY} --dataset.config.flip_labels_after=2
accelerate launch --num_processes 2 change_labels.py --note=halfway --dataset.name=sst2 {TINY} \
--dataset.config.flip_labels_after=2
python change_labels.py --dataset.name=sst2 --note=halfway --dataset.config.flip_labels_after=2 {TINY} --debug=False
"""
# Stops a run's job once its first repetition is on disk, writing the job's process id (test only).
HOLD_HOOK = """\
import os
if os.environ.get('ICL_TEST_HOLD'):
    import time
    from pathlib import Path
    from icl import experiment, models, results
    _write_part = results.write_part

    def write_part(run_dir, repetition, rows):
        path = _write_part(run_dir, repetition, rows)
        if Path(run_dir).name in os.environ['ICL_TEST_HOLD'].split(',') and repetition == 0:
            (Path(os.environ['ICL_TEST_HOLD_DIR']) / Path(run_dir).name).write_text(str(os.getpid()))
            while True:
                time.sleep(0.05)
        return path
    results.write_part = write_part
"""


def write_study(tmp_path: Path, text: str = STUDY) -> Path:
    path = tmp_path / 'study.md'
    path.write_text(text)
    return path


def sweep_env(monkeypatch, tmp_path: Path, data_dir: Path, **extra) -> None:
    """The environment the sweep's jobs inherit: this repository (and the test hook) importable, one thread."""
    hook = tmp_path / 'hook'
    hook.mkdir(exist_ok=True)
    (hook / 'sitecustomize.py').write_text(HOLD_HOOK)
    for name, value in {'PYTHONPATH': f'{hook}{os.pathsep}{REPO_ROOT}', 'WANDB_MODE': 'disabled',
                        'OMP_NUM_THREADS': '1', 'ICL_DATA_DIR': str(data_dir), **extra}.items():
        monkeypatch.setenv(name, value)


def in_thread(argv: list[str]) -> tuple[threading.Thread, dict]:
    """`python -m icl.sweep ARGV` in a thread of this process; the dict gets its exit status."""
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(status=main(argv)), daemon=True)
    thread.start()
    return thread, outcome


def wait_for(condition, what: str, thread: threading.Thread, timeout_s: float = 600):
    start = time.monotonic()
    while not condition():
        if not thread.is_alive() or time.monotonic() - start > timeout_s:
            pytest.fail(f'gave up waiting for {what}')
        time.sleep(0.2)


def states(root: Path) -> dict[str, str]:
    return {s.name: (s.state, s.done) for s in status.sweep_status(root)}


def run_alone(change_labels, monkeypatch, entry: dict, workdir: Path) -> pd.DataFrame:
    """The run's command on its own, as `CLASS_NAMES=... python change_labels.py ... --workdir=...`."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the sweep's jobs (OMP_NUM_THREADS=1)
    monkeypatch.setenv('CLASS_NAMES', entry['class_names'])
    try:
        assert change_labels.run_command(['change_labels.py', *entry['flags'], f'--workdir={workdir}']) == 0
    finally:
        torch.set_num_threads(threads)
    return results.read_table(workdir)


# --- expanding a study file -------------------------------------------------------------------------------------


def test_expand_keeps_class_names_selects_substitutes_and_runs_identical_commands_once(tmp_path):
    path = write_study(tmp_path)
    runs = study.expand(path, substitutions=[('model.dtype', 'float32')])

    assert [(r.name.rsplit('-', 1)[0], r.class_names, len(r.sources)) for r in runs] == [
        ('tiny_sentiment-smollm2-135m-default', 'DEFAULT_ONLY', 1), ('sst2-smollm2-135m-default', 'DEFAULT_ONLY', 1),
        ('tiny_sentiment-smollm2-135m-random', 'DEFAULT_ONLY', 1), ('sst2-smollm2-135m-random', 'DEFAULT_ONLY', 1),
        ('tiny_sentiment-smollm2-135m-halfway', 'DEFAULT_AND_FLIP', 1),
        ('sst2-smollm2-135m-halfway', 'DEFAULT_AND_FLIP', 2)]  # flag order and a default value name no new run
    assert runs[-1].sources == (f'{path}:9', f'{path}:10') and [r.processes for r in runs] == [1] * 5 + [2]
    assert all(re.fullmatch(r'[\w.=-]+-[0-9a-f]{10}', r.name) for r in runs)
    assert runs[2].flags[-2:] == ('--dataset.config.random_labels=True', '--model.dtype=float32')
    assert runs[1].command('R') == ('CLASS_NAMES=DEFAULT_ONLY python change_labels.py --note=default '
                                    '--dataset.name=sst2 --dataset.config.num_prompt_examples=4 --n_repeats=2 '
                                    '--model.dtype=float32 --workdir=R')
    again = study.expand(path, substitutions=[('model.dtype', 'float32')])
    assert [r.name for r in again] == [r.name for r in runs]  # the same command, the same directory
    other = study.expand(path, substitutions=[('model.dtype', 'bfloat16')])
    assert not {r.name for r in other} & {r.name for r in runs}


def test_where_selects_by_any_config_key_and_model_substitutes(tmp_path):
    path = write_study(tmp_path)
    wheres = [study.parse_where('dataset=sst2'), study.parse_where('random_labels=false'),
              study.parse_where('CLASS_NAMES=DEFAULT_ONLY,DEFAULT_AND_FLIP')]
    runs = study.expand(path, wheres, [('model.name', 'gemma3-270m')])

    assert [r.name.rsplit('-', 1)[0] for r in runs] == ['sst2-gemma3-270m-default', 'sst2-gemma3-270m-halfway']
    assert all('--model.name=gemma3-270m' in r.flags for r in runs)
    assert study.parse_where('n_repeats=3,2').values == (3, 2)
    assert study.parse_where('note=default').key == 'note'


@pytest.mark.parametrize('where, message', [
    ('datset=sst2', "--where: unknown key 'datset'; did you mean dataset.name"),
    ('dataset=sst3', '--where dataset.name=sst3 matches no command of the file; its values there: sst2, '
                     'tiny_sentiment'),
    ('n_repeats=many', "config key 'n_repeats' expects int, got 'many'"),
    ('CLASS_NAMES=SOME', '--where CLASS_NAMES=SOME is not valid; use ALL, DEFAULT_ONLY, DEFAULT_AND_FLIP'),
    ('name=sst2', "--where: 'name' is ambiguous; use one of dataset.name, model.name"),
])
def test_a_bad_where_is_one_line_and_exit_status_2(tmp_path, capsys, where, message):
    assert main([str(write_study(tmp_path)), f'--root={tmp_path / "root"}', f'--where={where}']) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'error: {message}') and err.count('\n') == 1
    assert not (tmp_path / 'root').exists()


def test_a_command_that_names_its_own_workdir_or_a_bad_key_is_refused_with_its_line(tmp_path, capsys):
    bad = write_study(tmp_path, 'export CLASS_NAMES=ALL\npython change_labels.py --workdir=x\n')
    assert main([str(bad), f'--root={tmp_path}']) == 2
    assert capsys.readouterr().err == (f"error: {bad}:2: '--workdir=x' is chosen by the sweep (--root, --dry_run); "
                                       'remove it from the command\n')
    assert main([str(write_study(tmp_path)), f'--root={tmp_path}', '--set', 'n_repeat=2']) == 2
    assert capsys.readouterr().err == "error: unknown config key 'n_repeat'; did you mean n_repeats?\n"
    missing = write_study(tmp_path, 'python change_labels.py --n_repeats=2\n')
    assert main([str(missing), f'--root={tmp_path}']) == 2
    assert capsys.readouterr().err == f'error: {missing}:1: no `export CLASS_NAMES=...` line before this command\n'


def test_runs_md_expands_to_its_distinct_commands():
    runs = study.expand(REPO_ROOT / 'runs.md')
    assert len(runs) == 450  # 455 lines; the quick reference repeats 5 of them
    assert sum(len(r.sources) for r in runs) == 455
    # run directory names are stable across versions (a sweep resumes by them); these are the names of 2026-11
    assert (runs[0].name, runs[-1].name) == ('sst2-Llama-2-70b-default-961c80541c',
                                             'ag_news-Llama-2-70b-centered_flip_labels_both_directions-6d66c234cc')
    assert hashlib.sha1(' '.join(r.name for r in runs).encode()).hexdigest() == \
        'c274ab3a06eaf24a98df529566e8d5e10d6dd7e3'
    assert len(study.expand(REPO_ROOT / 'runs.md', substitutions=[('model.name', 'smollm2-135m')])) == 90


def test_a_launcher_line_asks_for_processes_and_runs_under_accelerate_launch(tmp_path):
    path = write_study(tmp_path, 'export CLASS_NAMES=ALL\naccelerate launch --num_processes 4 change_labels.py '
                                 '--n_repeats=8\ntorchrun --nproc_per_node=2 change_labels.py --n_repeats=9\n')
    assert [r.processes for r in study.expand(path)] == [4, 2]
    assert [r.processes for r in study.expand(path, processes=3)] == [3, 3]
    assert jobs.launch_argv(['change_labels.py', '--n_repeats=8', '--workdir=R'], 4) == [
        sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes=4', '--num_machines=1',
        '--mixed_precision=no', '--dynamo_backend=no', str(REPO_ROOT / 'change_labels.py'), '--n_repeats=8',
        '--workdir=R']


def test_a_preempted_job_checkpoints_as_the_same_run():
    run = study.Run('r', 'ALL', ('--n_repeats=2',), 1, ('f:1',))
    job = jobs.RunJob(run, '/root')
    again = job.checkpoint()
    assert again.function is job and again.args == () and again.kwargs == {}


def test_slurm_options_pass_through_and_time_is_minutes(capsys, tmp_path):
    assert jobs.slurm_parameters({'partition': 'gpu', 'time': '1-02:30:00', 'gpus_per_node': '2', 'qos': 'high',
                                  'account': 'proj', 'array_parallelism': '4'}) == {
        'partition': 'gpu', 'time': 1590, 'gpus_per_node': 2, 'qos': 'high', 'account': 'proj',
        'array_parallelism': 4}
    assert [jobs.slurm_minutes(t) for t in ('90', '1:30', '0:01:01', '2-3', '1-0:30', '1-00:00:01')] == [
        90, 2, 2, 3060, 1470, 1441]  # sbatch's readings: MM:SS, D-HH, D-HH:MM
    args = [str(write_study(tmp_path)), f'--root={tmp_path}', '--launcher=slurm']
    assert main([*args, '--slurm.partitions=gpu', '--slurm.time=60']) == 2
    assert capsys.readouterr().err.startswith('error: --slurm.partitions is not a SLURM parameter of submitit; '
                                              'valid: account, additional_parameters, array_parallelism,')
    assert main([*args, '--slurm.partition=gpu']) == 2
    assert capsys.readouterr().err == ('error: --launcher=slurm needs --slurm.time (the limit of each run: minutes '
                                       'or HH:MM:SS)\n')
    assert main([str(write_study(tmp_path)), f'--root={tmp_path}', '--slurm.time=60']) == 2
    assert capsys.readouterr().err == "error: '--slurm.time' needs --launcher=slurm\n"


# --- running a sweep ---------------------------------------------------------------------------------------------


def test_local_sweep_resumes_killed_and_preempted_jobs_and_matches_each_command_run_alone(
        tmp_path, real_data_dir, change_labels, monkeypatch, capsys):
    """Six runs (two datasets x three kinds), two jobs at a time. The first two jobs stop after their
    first repetition: `status` then shows them partial and the rest not started. One is killed with
    SIGKILL (failed), the other pre-empted (SIGUSR2: submitit checkpoints and requeues it, and it
    resumes); the sweep run again resumes the killed one, and every table equals its command's alone (one
    command runs as two processes under accelerate launch)."""
    root, held = tmp_path / 'root', tmp_path / 'held'
    held.mkdir()
    args = [str(write_study(tmp_path)), f'--root={root}', '--parallel=2', '--set', 'model.dtype=float32',
            '--where', 'dataset=tiny_sentiment,sst2']
    names = [r.name for r in study.expand(tmp_path / 'study.md', substitutions=[('model.dtype', 'float32')])]
    killed, preempted = names[:2]
    sweep_env(monkeypatch, tmp_path, real_data_dir, ICL_TEST_HOLD=f'{killed},{preempted}', ICL_TEST_HOLD_DIR=str(held))
    sweep, outcome = in_thread(args)
    wait_for(lambda: (held / killed).exists() and (held / preempted).exists(), 'the first two jobs', sweep)

    assert states(root) == {killed: ('partial', 1), preempted: ('partial', 1),
                            **{name: ('not started', 0) for name in names[2:]}}
    table = status.status_table(status.sweep_status(root)).splitlines()
    assert table[0].split() == ['run', 'state', 'detail'] and len(table) == 8
    assert table[1].split() == [killed, 'partial', '1', 'of', '2', 'repetitions']
    assert table[3].split() == [names[2], 'not', 'started']
    assert table[-1] == '6 runs: 0 done, 2 partial, 0 failed, 4 not started'

    os.kill(int((held / killed).read_text()), signal.SIGKILL)
    os.kill(int((held / preempted).read_text()), signal.SIGUSR2)
    sweep.join(timeout=600)
    output = capsys.readouterr().out
    assert outcome == {'status': 1}, output[-3000:]
    found = status.sweep_status(root)
    assert [(s.name, s.state, s.done) for s in found] == [
        (killed, 'failed', 1), *[(name, 'done', 2) for name in names[1:]]]
    assert Path(found[0].log).is_file() and found[0].log.startswith(str(root / '_sweep' / 'jobs'))
    assert found[0].error == 'the job ended without a result (killed?)'
    assert main(['status', f'--root={root}']) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == [killed, 'failed', '1', 'of', '2', 'repetitions;', 'log', found[0].log, '(the', 'job',
                                'ended', 'without', 'a', 'result', '(killed?))']
    assert table[-1] == '6 runs: 5 done, 0 partial, 1 failed, 0 not started'
    job_log = Path(status.read_state(root, preempted)['log'])
    assert 'this job is preempted' in job_log.read_text() + job_log.with_suffix('.out').read_text()
    # our log lines are in the log file sweep status names, beside the traceback and the progress bar
    assert re.search(r'^\d\d:\d\d:\d\d (INFO|WARNING) ', job_log.read_text(), re.MULTILINE)

    monkeypatch.delenv('ICL_TEST_HOLD')
    assert main(args) == 0
    again = capsys.readouterr().out
    assert '5 finished run(s) skipped, 1 to run' in again
    assert again.splitlines()[-1] == '6 runs: 6 done, 0 partial, 0 failed, 0 not started'
    assert json.loads((root / killed / 'config.json').read_text())['resumed']  # resumed, not started over

    manifest = status.read_manifest(root)
    for name in names:
        alone = run_alone(change_labels, monkeypatch, manifest[name], tmp_path / 'alone' / name)
        pd.testing.assert_frame_equal(results.read_table(root / name), alone, check_exact=True)

    # the plan of the finished sweep: nothing to do, the throughput measured on its runs
    capsys.readouterr()
    assert main([str(tmp_path / 'study.md'), f'--root={root}', '--set=model.dtype=float32', '--dry_run=True']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-3:-1] == ['runs           6 from 7 commands (6 done, 0 to resume, 0 new)',
                          'prompts        0 to score (of 16)']  # 4 runs x 2 + 2 runs x 2 x 2 variants
    assert re.fullmatch(r'tokens         about 0 to score \(of about [\d,]+\)', out[-1])  # no time left to guess
    for p in [plan.plan_run(run, root) for run in study.expand(tmp_path / 'study.md', substitutions=[
            ('model.dtype', 'float32')]) if run.name not in (killed, preempted) and run.processes == 1]:
        # (runs scored in one go by one process: the timing is process 0's)
        timing = results.read_json(root / p.run.name / 'setup.json')['timing']
        assert p.prompts == timing['prompts'] and abs(p.tokens / timing['tokens'] - 1) < 0.1, (p, timing)


def test_plan_estimates_time_from_finished_runs_and_a_changed_run_directory_is_refused(tmp_path, capsys,
                                                                                          real_data_dir, monkeypatch):
    """A dry run writes nothing; its time estimate uses the scoring speed of the finished runs under the root;
    a run directory holding another config stops the sweep with the command named."""
    monkeypatch.setenv('ICL_DATA_DIR', str(real_data_dir))
    monkeypatch.setattr(models, 'load_model', lambda *a, **k: pytest.fail('a dry run loaded the model weights'))
    root = tmp_path / 'root'
    path = write_study(tmp_path, f'export CLASS_NAMES=DEFAULT_ONLY\npython change_labels.py {TINY} '
                                 '--dataset.name=sst2 --model.dtype=float32 --n_repeats=40\n')
    run = study.expand(path)[0]
    (root / 'finished').mkdir(parents=True)  # a finished run of the same model and dtype, and one of another
    results.write_json(root / 'finished' / 'config.json', {'config': {'model': {'name': 'smollm2-135m'}},
                                                           'dtype': 'float32'})
    results.write_json(root / 'finished' / 'setup.json', {'timing': {'tokens': 5000, 'scoring_s': 4.0, 'load_s': 3}})
    (root / 'other').mkdir()
    results.write_json(root / 'other' / 'config.json', {'config': {'model': {'name': 'smollm2-135m'}},
                                                        'dtype': 'bfloat16'})
    results.write_json(root / 'other' / 'setup.json', {'timing': {'tokens': 9000, 'scoring_s': 1.0, 'load_s': 1}})

    assert main([str(path), f'--root={root}', '--dry_run=True']) == 0
    out = capsys.readouterr().out.splitlines()
    p = plan.plan_run(run, root)
    assert 4 * 40 * 8 < p.tokens < 40 * p.longest  # 'Sentence: ...' of 4 examples and a query, 40 times
    assert out[1].split() == [run.name, 'DEFAULT_ONLY', '40', f'{p.longest}/8192', 'new']
    assert out[-4:] == [
        'runs           1 from 1 commands (0 done, 0 to resume, 1 new)', 'prompts        40 to score (of 40)',
        f'tokens         about {p.tokens:,} to score (of about {p.tokens:,})',
        f'time           smollm2-135m (float32): about {plan.duration(p.tokens / 1250 + 3)} one run at a time '
        f'(1,250 tokens/s per process, measured over 1 finished run(s) under {root})']
    assert sorted(p.name for p in root.iterdir()) == ['finished', 'other']  # nothing written

    (root / run.name).mkdir()
    record = experiment.run_record(experiment.plan(study.resolve_config(run.flags, 'DEFAULT_ONLY')))
    record['config']['random_seed'] = 7
    results.write_json(root / run.name / 'config.json', record)
    assert main([str(path), f'--root={root}']) == 2
    assert capsys.readouterr().err == (
        f"error: {path}:2 (CLASS_NAMES=DEFAULT_ONLY python change_labels.py --dataset.config.num_prompt_examples=4 "
        "--n_repeats=2 --dataset.name=sst2 --model.dtype=float32 --n_repeats=40): "
        f"'{root / run.name}' holds a run of a different config (random_seed 7 -> 200); resume it with its own "
        "command (see its config.json) or use a new --workdir\n")
    assert not status.manifest_path(root).exists()

    # model.dtype=auto resolves on the machine that runs the job: only a local sweep compares it here
    record['config']['random_seed'], record['dtype'] = 200, 'bfloat16'
    results.write_json(root / run.name / 'config.json', record)
    assert main([str(path), f'--root={root}', '--dry_run=True']) == 2
    assert "holds a run of a different config (dtype (resolved model.dtype) 'bfloat16' -> 'float32')" in (
        capsys.readouterr().err)
    assert main([str(path), f'--root={root}', '--dry_run=True', '--launcher=slurm', '--slurm.time=60']) == 0


STAND_INS = {
    'sbatch': r'''
        import os, re, subprocess, sys, time
        from pathlib import Path
        log, script = Path(os.environ['SLURM_STAND_IN_LOG']), Path(sys.argv[-1])
        text = script.read_text()
        with open(log / 'sbatch.txt', 'a') as f:
            f.write(' '.join(sys.argv[1:]) + '\n' + text + '\n')
        first, last, _ = map(int, re.search(r'#SBATCH --array=(\d+)-(\d+)%(\d+)', text).groups())
        print('Submitted batch job 4242', flush=True)
        if os.fork() == 0:  # the "cluster": once submitit has put the jobs' pickles in place, run each task here
            os.setsid()
            quiet = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(quiet, fd)
            pickles = [script.parent / f'4242_{task}_submitted.pkl' for task in range(first, last + 1)]
            while not all(p.exists() for p in pickles):
                time.sleep(0.1)
            for task in range(first, last + 1):
                env = {**os.environ, 'SLURM_JOB_ID': str(4242 + task + 1), 'SLURM_ARRAY_JOB_ID': '4242',
                       'SLURM_ARRAY_TASK_ID': str(task), 'SLURM_NTASKS': '1', 'SLURM_PROCID': '0',
                       'SLURM_LOCALID': '0', 'SLURM_NODEID': '0', 'SLURM_JOB_NUM_NODES': '1',
                       'SLURM_JOB_NODELIST': 'localhost'}
                subprocess.run(['bash', str(script)], env=env)
            (log / 'array-finished').touch()
            os._exit(0)
    ''',
    'srun': r'''
        import os, subprocess, sys
        args, files = sys.argv[1:], {}
        while args[0].startswith('--'):
            option = args.pop(0)
            if option in ('--output', '--error'):
                files[option] = (args.pop(0).replace('%A', os.environ['SLURM_ARRAY_JOB_ID'])
                                 .replace('%a', os.environ['SLURM_ARRAY_TASK_ID']).replace('%t', '0'))
        with open(files['--output'], 'a') as out, open(files['--error'], 'a') as err:
            sys.exit(subprocess.run(args, stdout=out, stderr=err).returncode)
    ''',
    'sacct': r'''
        import os, sys
        log = os.environ['SLURM_STAND_IN_LOG']
        with open(os.path.join(log, 'sacct.txt'), 'a') as f:
            f.write(' '.join(sys.argv[1:]) + '\n')
        print('JobID|State|NodeList')
        if os.path.exists(os.path.join(log, 'sacct-states.txt')):  # what the test says SLURM knows
            print(open(os.path.join(log, 'sacct-states.txt')).read(), end='')
    ''',
    'squeue': r'''
        import os, sys
        with open(os.path.join(os.environ['SLURM_STAND_IN_LOG'], 'squeue.txt'), 'a') as f:
            f.write(' '.join(sys.argv[1:]) + '\n')
    ''',
}


def test_slurm_sweep_submits_one_job_array_with_the_resources(tmp_path, real_data_dir, monkeypatch, capsys):
    """Stand-in sbatch/srun/sacct/squeue on PATH record what is submitted and run the array's tasks here."""
    bin_dir, log_dir, root = tmp_path / 'bin', tmp_path / 'slurm', tmp_path / 'root'
    bin_dir.mkdir()
    log_dir.mkdir()
    for name, code in STAND_INS.items():
        (bin_dir / name).write_text(f'#!{sys.executable}\n' + textwrap.dedent(code))
        (bin_dir / name).chmod(stat.S_IRWXU)
    path = write_study(tmp_path, 'export CLASS_NAMES=DEFAULT_ONLY\n'
                                 f'python change_labels.py --note=a {TINY} --model.dtype=float32\n'
                                 f'python change_labels.py --note=b {TINY} --model.dtype=float32 --random_seed=7\n')
    sweep_env(monkeypatch, tmp_path, real_data_dir, SLURM_STAND_IN_LOG=str(log_dir),
              PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    assert main([str(path), f'--root={root}', '--launcher=slurm', '--slurm.partition=gpu', '--slurm.gpus_per_node=1',
                 '--slurm.time=1:30:00', '--slurm.array_parallelism=1', '--slurm.account=proj',
                 '--slurm.qos=high']) == 0
    assert 'submitted 2 run(s) as SLURM job(s) 4242_0 ... 4242_1' in capsys.readouterr().out
    runs = study.expand(path)
    assert [s.state for s in status.sweep_status(root)] == ['not started', 'not started']
    assert [status.read_state(root, r.name)['state'] for r in runs] == ['submitted', 'submitted']
    assert (log_dir / 'sacct.txt').read_text() == '-o JobID,State,NodeList --parsable2 -j 4242\n'  # queued: asked
    (log_dir / 'sacct.txt').unlink()
    start = time.monotonic()
    while not (log_dir / 'array-finished').exists():
        assert time.monotonic() - start < 600, 'the stand-in cluster did not finish the job array'
        time.sleep(0.2)

    submitted = (log_dir / 'sbatch.txt').read_text()
    assert submitted.count('#!/bin/bash') == 1  # one job array
    sbatch = [line for line in submitted.splitlines() if line.startswith('#SBATCH')]
    jobs_folder = root / '_sweep' / 'jobs'
    assert sbatch == ['#SBATCH --account=proj', '#SBATCH --array=0-1%1',  # 2 runs, 1 at a time
                      f'#SBATCH --error={jobs_folder}/%A_%a_0_log.err', '#SBATCH --gpus-per-node=1',
                      '#SBATCH --job-name=icl-sweep', '#SBATCH --nodes=1',
                      '#SBATCH --open-mode=append', f'#SBATCH --output={jobs_folder}/%A_%a_0_log.out',
                      '#SBATCH --partition=gpu', '#SBATCH --qos=high', '#SBATCH --signal=USR2@90',
                      '#SBATCH --time=90', '#SBATCH --wckey=submitit']
    assert (f'srun --unbuffered --output {jobs_folder}/%A_%a_%t_log.out --error {jobs_folder}/%A_%a_%t_log.err '
            f'{sys.executable} -u -m submitit.core._submit {jobs_folder}') in submitted
    assert [(s.name, s.state, s.done) for s in status.sweep_status(root)] == [(r.name, 'done', 2) for r in runs]
    assert [status.read_state(root, r.name)['job'] for r in runs] == ['4242_0', '4242_1']
    assert len(results.read_table(root / runs[1].name)) == 2 * 5  # 4 examples and a query per repetition
    assert not (log_dir / 'sacct.txt').exists()  # no job of the sweep is still queued or running

    # a job SLURM ended without a word from the job (out of memory): failed, from sacct
    lost = study.Run('lost', 'ALL', ('--n_repeats=2',), 1, ('f:1',))
    status.record_runs(root, [lost], {'lost': 2})
    status.write_state(root, 'lost', 'running', job='4243_3', cluster='slurm', log='/logs/4243_3_0_log.err')
    assert status.run_status(root, 'lost', 2).state == 'not started'
    (log_dir / 'sacct-states.txt').write_text('4243_3|OUT_OF_MEMORY|node7\n4243_3.batch|OUT_OF_MEMORY|node7\n')
    lost_status = status.sweep_status(root)[-1]
    assert (lost_status.state, lost_status.log, lost_status.error) == (
        'failed', '/logs/4243_3_0_log.err', 'SLURM state OUT_OF_MEMORY')
    assert (log_dir / 'sacct.txt').read_text() == '-o JobID,State,NodeList --parsable2 -j 4243\n'


def test_a_part_beyond_n_repeats_does_not_make_a_run_finished(tmp_path):
    (tmp_path / 'results').mkdir()
    for repetition in (0, 1, 9):  # 9: a stray part, not one of the run's 0..2
        results.part_path(tmp_path, repetition).write_bytes(b'')
    (tmp_path / 'setup.json').write_text('{"timing": {}}')
    assert results.completed_repetitions(tmp_path, 3) == [0, 1]
    assert not status.is_finished(tmp_path, 3)
    results.part_path(tmp_path, 2).write_bytes(b'')
    assert status.is_finished(tmp_path, 3)
