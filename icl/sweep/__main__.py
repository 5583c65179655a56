r"""python -m icl.sweep: run a selection of a study file's commands as one sweep.

  python -m icl.sweep runs.md --where dataset=sst2,subj --where note=default,random \
      --model=Llama-3.1-8B --root=studies/llama31 --dry_run=True      # check everything, print the plan
  python -m icl.sweep runs.md ... --root=studies/llama31 --launcher=local --parallel=2
  python -m icl.sweep runs.md ... --root=studies/llama31 --launcher=slurm --slurm.partition=gpu \
      --slurm.gpus_per_node=1 --slurm.time=4:00:00 --slurm.array_parallelism=8
  python -m icl.sweep status --root=studies/llama31

Every selected command is validated without model weights before anything runs; a mistake in any
of them stops the sweep with one line naming its command. Running the same sweep again skips
finished runs and resumes partial ones.
"""
import argparse
import os
import sys
from pathlib import Path

from icl import cli
from icl.errors import UsageError
from icl.sweep import jobs, plan, status, study

SLURM_PREFIX = '--slurm.'
INTERRUPTED = 'interrupted: the runs keep what they finished; run the same sweep again to resume'


def parser() -> cli.Parser:
    p = cli.Parser(prog='python -m icl.sweep', description=__doc__)
    p.add_argument('file', help="a study file in runs.md's format, or 'status'")
    p.add_argument('--root', required=True, help='folder of the sweep: one run directory per run')
    p.add_argument('--where', action='append', default=[], metavar='KEY=V1,V2',
                   help='keep commands whose KEY (config key, group, CLASS_NAMES) is one of the values')
    p.add_argument('--model', help='substitute model.name in every command')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='substitute any config key')
    p.add_argument('--launcher', choices=('local', 'slurm'), default='local')
    p.add_argument('--parallel', type=int, default=1, help='local launcher: runs at a time')
    p.add_argument('--processes', type=int, help="processes per run under accelerate launch (default: the command's)")
    p.add_switch('dry_run', 'True: validate every run and print the plan only')
    return p


def parse(argv: list[str]) -> tuple[argparse.Namespace, dict[str, str]]:
    """The options, and the --slurm.KEY=VALUE ones apart."""
    slurm = {}
    rest = []
    for arg in argv:
        if arg.startswith(SLURM_PREFIX):
            key, sep, value = arg[len(SLURM_PREFIX):].partition('=')
            if not sep:
                raise UsageError(f"flag '{arg}' needs a value: {SLURM_PREFIX}{key}=VALUE")
            slurm[key] = value
        else:
            rest.append(arg)
    args = parser().parse_args(rest)
    for name in ('parallel', 'processes'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UsageError(f'--{name}={getattr(args, name)} must be at least 1')
    if slurm and args.launcher != 'slurm':
        raise UsageError(f"'{SLURM_PREFIX}{next(iter(slurm))}' needs --launcher=slurm")
    return args, slurm


def show_status(root: Path) -> int:
    print(status.status_table(status.sweep_status(root)))
    return 0


def sweep(args: argparse.Namespace, slurm: dict[str, str]) -> int:
    root = Path(args.root).resolve()
    substitutions = [('model.name', args.model)] if args.model else []
    substitutions += [study.parse_set(text) for text in args.set]
    slurm_params = jobs.slurm_parameters(slurm) if args.launcher == 'slurm' else {}
    runs = study.expand(args.file, [study.parse_where(text) for text in args.where], substitutions, args.processes)
    plans = [plan.plan_run(run, root, here=args.launcher == 'local') for run in runs]
    print(plan.describe(plans, root, commands=sum(len(run.sources) for run in runs)), flush=True)
    if args.dry_run:
        return 0
    status.record_runs(root, runs, {p.run.name: p.n_repeats for p in plans})
    threads = None
    if args.launcher == 'local' and 'OMP_NUM_THREADS' not in os.environ:
        threads = max(1, jobs.core_count() // args.parallel)
    todo = [jobs.RunJob(p.run, str(root), threads) for p in plans if not p.finished]
    print(f'{len(plans) - len(todo)} finished run(s) skipped, {len(todo)} to run', flush=True)
    return LAUNCH[args.launcher](todo, plans, root, args, slurm_params)


def launch_local(todo: list, plans: list, root: Path, args: argparse.Namespace, _slurm: dict) -> int:
    """Run here and wait; 1 unless every run is done."""
    jobs.run_local(todo, root, args.parallel)
    statuses = [status.run_status(root, p.run.name, p.n_repeats) for p in plans]
    print(status.status_table(statuses))
    return 0 if all(s.state == 'done' for s in statuses) else 1


def launch_slurm(todo: list, _plans: list, root: Path, _args: argparse.Namespace, slurm_params: dict) -> int:
    """Submit one job array and return."""
    if todo:
        ids = jobs.submit_slurm(todo, root, slurm_params)
        print(f'submitted {len(ids)} run(s) as SLURM job(s) {ids[0]}{" ... " + ids[-1] if len(ids) > 1 else ""}; '
              f'follow them with: python -m icl.sweep status --root={root}')
    return 0


LAUNCH = {'local': launch_local, 'slurm': launch_slurm}


def command(argv: list[str]) -> int:
    args, slurm = parse(argv)
    if args.file == 'status':
        return show_status(Path(args.root))
    return sweep(args, slurm)


def main(argv: list[str]) -> int:
    """The program (ARGV without its name); its exit status (icl.cli)."""
    return cli.exit_status(command, argv, INTERRUPTED)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
