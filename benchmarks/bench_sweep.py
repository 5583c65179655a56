"""Sweep planning speed: expand and validate every command of runs.md with the packaged model substituted.

  python benchmarks/bench_sweep.py               # the whole file; target: under 120 s on 2 cores
  python benchmarks/bench_sweep.py --where dataset=sst2

Runs `python -m icl.sweep runs.md --model=smollm2-135m --dry_run=True` into an empty temporary root
(nothing is scored or written) and times it end to end, Python's start included. Every command goes
through the experiment's dry run: config, CLASS_NAMES, data files, label tokens, longest prompt,
run directory, plus the token estimate. Needs the paper's data files in $ICL_DATA_DIR.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 120.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default='smollm2-135m')
    parser.add_argument('--where', action='append', default=[])
    parser.add_argument('--json', help='also write the measurement here')
    args = parser.parse_args()
    if not os.environ.get('ICL_DATA_DIR'):
        sys.exit('error: set ICL_DATA_DIR to a copy of the paper\'s data files')
    with tempfile.TemporaryDirectory() as root:
        command = [sys.executable, '-m', 'icl.sweep', str(REPO_ROOT / 'runs.md'), f'--model={args.model}',
                   f'--root={root}', '--dry_run=True', *(f'--where={w}' for w in args.where)]
        env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                         os.environ.get('PYTHONPATH')]))}
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f'the dry run failed ({done.returncode}): {done.stderr[-2000:]}')
    summary = next(line for line in done.stdout.splitlines() if line.startswith('runs '))
    runs, commands = map(int, re.match(r'runs\s+(\d+) from (\d+) commands', summary).groups())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    result = {'commands': commands, 'runs': runs, 'seconds': round(seconds, 1), 'cores': cores,
              'target_s': TARGET_S, 'within_target': seconds < TARGET_S}
    print('\n'.join(done.stdout.splitlines()[-4:]))
    print(f'{commands} commands -> {runs} runs validated in {seconds:.1f} s on {cores} cores '
          f"({'within' if seconds < TARGET_S else 'OVER'} the {TARGET_S:.0f} s target)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + '\n')
    return 0 if seconds < TARGET_S else 1


if __name__ == '__main__':
    sys.exit(main())
