"""Checking every run of a sweep without model weights, and what is left to do.

Each run goes through the experiment's own dry run (`experiment.plan`: config, CLASS_NAMES, data,
label tokens, prompt lengths) and the run directory's own check (`rundir.inspect_run_dir`: a new
run, one of the same config to resume, or a refusal naming the differing keys). Tokens are
estimated from the prompts' characters (the first prompt of repetitions spread over the run) and
the tokens per character of one tokenised prompt; time from the throughput of finished runs under the root.
"""
import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from icl import datasets, experiment, results
from icl.errors import UsageError
from icl.rundir import inspect_run_dir
from icl.sweep.status import is_finished
from icl.sweep.study import Run, resolve_config


@dataclasses.dataclass
class RunPlan:
    run: Run
    model: str
    dtype: str  # resolved model.dtype
    n_repeats: int
    done: int  # repetitions already on disk
    finished: bool
    prompts: int  # the whole run's
    tokens: int  # the whole run's, estimated
    longest: int
    context: int

    @property
    def share_left(self) -> float:
        return 0.0 if self.finished else (self.n_repeats - self.done) / self.n_repeats

    @property
    def state(self) -> str:
        if self.finished:
            return 'done'
        return f'resume {self.done}/{self.n_repeats}' if self.done else 'new'


TOKEN_SAMPLE = 50  # repetitions whose first prompt estimated_tokens() measures


def estimated_tokens(p: experiment.Plan) -> int:
    """Tokens of every prompt of the run: the mean characters of the first prompt of up to TOKEN_SAMPLE
    repetitions, spread over the run, x tokens per character of one tokenised prompt x prompts."""
    config = p.config
    sample = range(0, config.n_repeats, max(1, config.n_repeats // TOKEN_SAMPLE))
    texts = [experiment.first_query_prompt(datasets.repetition(p.data, r)).text for r in sample]
    per_char = len(p.tokenizer(texts[0], add_special_tokens=True)['input_ids']) / len(texts[0])
    return round(sum(map(len, texts)) / len(texts) * per_char * p.num_prompts)


def run_dir_record(p: experiment.Plan, run_dir: Path, here: bool) -> dict:
    """The config.json the run would write, to compare with the one in its directory. Jobs on other machines
    (here=False) resolve model.dtype=auto there: the existing run's dtype stands in, and the job checks it."""
    record = experiment.run_record(p)
    try:
        existing = results.read_json(run_dir / 'config.json') if not here else None
    except (OSError, ValueError):  # none, or damaged: inspect_run_dir says which
        existing = None
    if isinstance(existing, dict) and 'dtype' in existing:
        record['dtype'] = existing['dtype']
    return record


def plan_run(run: Run, root: Path, here: bool = True) -> RunPlan:
    """Validate one run as its dry run would (`here`: on this machine); UsageError names the run's command
    and its lines in the file."""
    try:
        config = resolve_config(run.flags, run.class_names)
        p = experiment.plan(config)
        record = run_dir_record(p, Path(root) / run.name, here)
        found = inspect_run_dir(Path(root) / run.name, record, n_repeats=config.n_repeats,
                                rows_per_repetition=p.rows_per_repetition, variants=list(p.variants),
                                check_parts=False)
        tokens = estimated_tokens(p)
    except UsageError as error:
        raise UsageError(f"{', '.join(run.sources)} ({run.command()}): {error}") from None
    done = len([r for r in found.done if r < config.n_repeats])
    return RunPlan(run, config.model.name, record['dtype'], config.n_repeats, done,
                   is_finished(found.path, config.n_repeats), p.num_prompts, tokens, p.longest_prompt, p.context)


@dataclasses.dataclass
class Throughput:
    tokens_per_s: float  # per process
    load_s: float
    runs: int  # finished runs measured


def measured_throughput(root: Path) -> dict[tuple[str, str], Throughput]:
    """{(model, dtype): scoring speed} over the finished runs under `root` (their setup.json timing)."""
    sums = defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    for setup_path in sorted(Path(root).glob('*/setup.json')):
        config_path = setup_path.with_name('config.json')
        timing = results.read_json(setup_path).get('timing')
        if not timing or not timing.get('tokens') or not timing.get('scoring_s') or not config_path.is_file():
            continue
        record = results.read_json(config_path)
        entry = sums[(record['config']['model']['name'], record.get('dtype'))]
        entry[0] += timing['tokens']
        entry[1] += timing['scoring_s']
        entry[2] += timing.get('load_s', 0.0)
        entry[3] += 1
    return {key: Throughput(tokens / seconds, load / n, n) for key, (tokens, seconds, load, n) in sums.items()}


def duration(seconds: float) -> str:
    if seconds < 90:
        return f'{seconds:.0f} s'
    return f'{seconds / 60:.1f} min' if seconds < 5400 else f'{seconds / 3600:.1f} h'


def time_lines(plans: Sequence[RunPlan], root: Path) -> list[str]:
    """Estimated time left per model and dtype, or why it is unknown."""
    speeds, lines = measured_throughput(root), []
    for model, dtype in sorted({(p.model, p.dtype) for p in plans if not p.finished}):
        left = [p for p in plans if (p.model, p.dtype) == (model, dtype) and not p.finished]
        speed = speeds.get((model, dtype))
        if speed is None:
            lines.append(f'time           {model} ({dtype}): unknown, no finished run of it under {root} to measure '
                         'its throughput')
            continue
        seconds = sum(p.tokens * p.share_left / (speed.tokens_per_s * p.run.processes) + speed.load_s for p in left)
        lines.append(f'time           {model} ({dtype}): about {duration(seconds)} one run at a time '
                     f'({speed.tokens_per_s:,.0f} tokens/s per process, measured over {speed.runs} finished '
                     f'run(s) under {root})')
    return lines


def describe(plans: Sequence[RunPlan], root: Path, commands: int) -> str:
    """The sweep's plan: one line per run, then the totals and the estimated time left."""
    width = max(len(p.run.name) for p in plans)
    lines = [f"{'run':<{width}}  {'CLASS_NAMES':<16}  {'prompts':>8}  {'longest':>13}  state"]
    lines += [f'{p.run.name:<{width}}  {p.run.class_names:<16}  {p.prompts:>8,}  {p.longest:>6}/{p.context:<6}  '
              f'{p.state}' for p in plans]
    finished = sum(p.finished for p in plans)
    resumed = sum(p.done > 0 and not p.finished for p in plans)
    prompts_left = round(sum(p.prompts * p.share_left for p in plans))
    tokens_left = round(sum(p.tokens * p.share_left for p in plans))
    lines += [
        f'runs           {len(plans)} from {commands} commands ({finished} done, {resumed} to resume, '
        f'{len(plans) - finished - resumed} new)',
        f'prompts        {prompts_left:,} to score (of {sum(p.prompts for p in plans):,})',
        f'tokens         about {tokens_left:,} to score (of about {sum(p.tokens for p in plans):,})',
        *time_lines(plans, root),
    ]
    return '\n'.join(lines)
