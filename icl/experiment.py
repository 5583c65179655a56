"""The change-labels experiment: validate, then score every (repetition, variant) prompt.

`plan()` checks everything that can be checked without model weights (config, CLASS_NAMES,
data, label tokens, prompt lengths) so a wrong command fails in seconds; `run()` then
loads the model and writes one results part per repetition. A run directory of the same
config is resumed where it stopped; under `accelerate launch` or `torchrun` the processes
split the repetitions between them.
"""
import contextlib
import copy
import dataclasses
import datetime
import errno
import functools
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ml_collections import config_dict
from tqdm.auto import tqdm

from icl import analysis, datasets, hardware, hypotheses, loaders, models, packaged, precision, results, scoring
from icl.config import noop_settings, to_dict, validate
from icl.datasets import Repetition
from icl.errors import OutOfMemory, RunStopped, UsageError
from icl.probs import calibrate, class_log_probs
from icl.processes import from_main, process_gpus, processes, wait_for_parts
from icl.prompts import Prompt, change_points, positions_text
from icl.rundir import RunDir, default_run_dir, inspect_run_dir, lock_run_dir, start_run_dir, write_record
from icl.settings import AUTO, DataSettings, ModelSettings
from icl.tracking import AnyTracker, NullTracker, Tracker, wandb_config

LIVE_CURVES = 20  # mean curves logged to wandb this often during a run, so long runs can be watched
FULL_DISK = {errno.ENOSPC, errno.EDQUOT}  # write errors that end a run with one line (see stopped())
PACKAGES = ('torch', 'transformers', 'accelerate', 'datasets', 'wandb', 'numpy', 'pandas', 'ml-collections')


@dataclasses.dataclass
class Plan:
    """Everything a run needs except the model weights."""
    config: config_dict.ConfigDict
    data: DataSettings  # config.dataset, unpacked once
    model: ModelSettings  # config.model, unpacked once
    dtype: str  # what the model computes in (model.dtype resolved: precision.dtype_policy)
    dtype_why: str  # why, for the plan
    variants: dict[str, list[str]]
    label_tokens: scoring.LabelTokens
    model_spec: models.ModelSpec
    tokenizer: object
    model_config: object
    context: int  # tokens the model attends to
    longest_prompt: int  # tokens (see longest_prompt())
    examples_per_prompt: int  # in-context examples (one fewer with inputs_off_by_one)
    flips: list[bool] = dataclasses.field(default_factory=list)  # per in-context example: flipped label?
    scanned_repetitions: int = 0  # longest_prompt looked at repetitions 0..scanned_repetitions - 1

    @property
    def num_prompts(self) -> int:
        return self.config.n_repeats * len(self.variants) * self.data.num_test_samples

    @property
    def rows_per_repetition(self) -> int:
        """Rows of one repetition's results part: every query's prompt (examples and query) of every variant."""
        return len(self.variants) * (self.examples_per_prompt + 1) * self.data.num_test_samples

    @property
    def shown_class_names(self) -> dict[str, list[str]]:
        """Per variant, the names its prompts show for labels 0, 1, ...: the variant's names, rotated by one
        with reverse_labels (the original's order of the query's log-probs and prior too)."""
        return {variant: list(datasets.prompt_format(self.data, names).class_names)
                for variant, names in self.variants.items()}


def plan_notes(config: config_dict.ConfigDict, data: DataSettings) -> list[str]:
    """Settings of a validated config that change nothing (the dry-run plan prints them)."""
    return noop_settings(config) + list(filter(None, [datasets.old_class_names_note(data)]))


load_tokenizer = functools.lru_cache(maxsize=4)(models.load_tokenizer)  # plan() of many configs in one process
LONGEST_CANDIDATES = 8  # repetitions whose prompts longest_prompt() tokenises
SCANNED_EXAMPLES = 70_000  # longest_prompt() builds at most this many examples' prompts (500 x 140: runs.md's most)
SCANNED_REPETITIONS = 1_000  # ... of at most this many repetitions (~1 ms each; runs.md has at most 500)
FIRST_EXAMPLES = 256  # first_examples_tokens() tokenises a prompt's first examples, 4x more at a time
LONGEST_QUERIES = 2  # longest_prompt() builds the prompts of a draw's longest queries only (ag_news: 7,600)


def first_query_prompt(data: Repetition) -> Prompt:
    return data.build_prompt(data.query(data.draw.test_indices[0])[0])


def scanned_repetitions(data: DataSettings, n_repeats: int) -> int:
    """How many repetitions longest_prompt() looks at: all, unless they are more than SCANNED_REPETITIONS or
    would build more than SCANNED_EXAMPLES examples (the plan must take seconds whatever n_repeats)."""
    per_repetition = max(1, data.num_prompt_examples)
    return min(n_repeats, max(LONGEST_CANDIDATES, min(SCANNED_REPETITIONS, SCANNED_EXAMPLES // per_repetition)))


def first_examples_tokens(data: Repetition, tokenizer, limit: int) -> tuple[int, int]:
    """(tokens, examples) of the first query prompt of `data`, built from its first examples only, 4x more
    at a time, until the prompt is whole or already longer than `limit` tokens: a prompt of a million
    examples is never built. `data` is left as it was (its random-label draws included)."""
    indices, k = data.draw.fewshot_indices, FIRST_EXAMPLES
    while True:
        # a copy of the draw's generator: the same labels as the whole prompt
        trial = dataclasses.replace(data, draw=dataclasses.replace(data.draw, fewshot_indices=indices[:k],
                                                                   rng=copy.deepcopy(data.draw.rng)))
        prompt = first_query_prompt(trial)
        tokens = len(tokenizer(prompt.text, add_special_tokens=True)['input_ids'])
        if tokens > limit or k >= len(indices):
            return tokens, prompt.num_examples
        k *= 4


def longest_prompt(config: config_dict.ConfigDict, data: DataSettings, variants: dict[str, list[str]], tokenizer,
                   context: int | None = None) -> int:
    """Tokens of the longest prompt, tokenising only likely candidates (all of a 500-repetition
    run would take seconds; scoring checks every prompt again): in the repetitions whose first
    default prompt is longest in characters, each variant's prompts of the longest queries. Only the first
    scanned_repetitions() repetitions are looked at. With a `context`, a UsageError as soon as
    the first prompt's first examples exceed it (before any long prompt is built)."""
    if context is not None:
        examples = data.num_prompt_examples
        for names in variants.values():
            tokens, shown = first_examples_tokens(datasets.repetition(data, 0, names), tokenizer, context)
            if tokens > context:
                first = f'the first {shown} examples of a prompt take' if shown < examples else 'a prompt has'
                raise UsageError(f'{first} {tokens} tokens but {config.model.name} attends to {context}; '
                                 f'use fewer than {examples} examples')
    scanned = scanned_repetitions(data, config.n_repeats)
    chars = [len(first_query_prompt(datasets.repetition(data, r)).text) for r in range(scanned)]
    candidates = np.argsort(chars, kind='stable')[::-1][:LONGEST_CANDIDATES]
    texts = [prompt.text for r in candidates for names in variants.values()
             for prompt in longest_query_prompts(datasets.repetition(data, int(r), names))]
    return max(len(ids) for ids in tokenizer(texts, add_special_tokens=True)['input_ids'])


def longest_query_prompts(data: Repetition) -> list[Prompt]:
    """The prompts of the LONGEST_QUERIES queries of a draw with the longest text (all of them: hours for
    thousands of queries)."""
    features = [data.query(i)[0] for i in data.draw.test_indices]
    longest = sorted(features, key=lambda feature: len(str(feature)), reverse=True)[:LONGEST_QUERIES]
    return [data.build_prompt(feature) for feature in longest]


def check_class_names(data: DataSettings) -> None:
    """dataset.config.class_names: one string per class of the dataset (a third name on a binary
    dataset would be shown for flipped labels)."""
    names, dataset = data.class_names, data.name
    if names is None:
        return
    classes = datasets.dataset_class(dataset).variants['default']
    if not all(isinstance(name, str) for name in names):
        raise UsageError(f'dataset.config.class_names={list(names)} must be names (text), e.g. '
                         f"[{','.join(classes)}] for {dataset}")
    if len(names) != len(classes):
        raise UsageError(f'dataset.config.class_names={list(names)} has {len(names)} names but {dataset} has '
                         f"{len(classes)} classes ({', '.join(classes)}); give {len(classes)} names")


def plan(config: config_dict.ConfigDict) -> Plan:
    """Validate a config without loading model weights; UsageError on any problem. Takes seconds whatever
    n_repeats and num_prompt_examples (see longest_prompt)."""
    validate(config)
    data = DataSettings.from_config(config)
    check_class_names(data)
    variants = datasets.variants_for(data)
    model = ModelSettings.from_config(config)
    spec = models.resolve(model.name)
    packaged.check_cache(spec.name)  # before the data: an unwritable cache fails in seconds
    first = datasets.repetition(data, 0)  # loads the data: missing files fail here
    dtype, dtype_why = precision.dtype_policy(model.name, model.dtype)
    tokenizer = load_tokenizer(spec)
    label_tokens = scoring.label_tokens(tokenizer, first.format.example, datasets.all_classes(data))
    for variant, names in variants.items():
        label_tokens.check_variant(variant, names)
    model_config = models.load_model_config(spec)
    context = models.context_length(model_config)
    longest = longest_prompt(config, data, variants, tokenizer, context)
    if longest > context:
        raise UsageError(f'the longest prompt has {longest} tokens but {config.model.name} attends to {context}; '
                         f'use fewer than {data.num_prompt_examples} examples')
    examples = first.num_examples
    return Plan(config=config, data=data, model=model, dtype=dtype, dtype_why=dtype_why, variants=variants,
                label_tokens=label_tokens, model_spec=spec, tokenizer=tokenizer, model_config=model_config,
                context=context, longest_prompt=longest,
                examples_per_prompt=examples, flips=first.format.label_rule.flips(examples),
                scanned_repetitions=scanned_repetitions(data, config.n_repeats))


ALPHA = 0.05  # the level the plan checks the tests against (the report's default)


def hypothesis_lines(p: Plan) -> list[str]:
    """The plan's label schedule, the positions each null hypothesis is tested at, whether n_repeats
    can reject at ALPHA, and a warning where this run cannot serve a test it is made for."""
    n, examples = p.config.n_repeats, p.examples_per_prompt
    late = hypotheses.late_positions(examples)
    lines = []
    if any(p.flips):
        flipped = [i for i, f in enumerate(p.flips) if f]
        lines.append(f'labels         flipped at examples {positions_text(flipped)} of 0-{examples - 1} '
                     f'(change points: {positions_text(change_points(p.flips))})')
    if len(p.variants) > 1:
        lines.append(f'NH1, NH2       tested at positions {positions_text(late)} (the last {len(late)})')
    else:
        lines.append(f'NH1            tested at positions {positions_text(late)} (the last {len(late)})')
        lines.append(f'NH2            not from this run: it scores one set of names ({", ".join(p.variants)}); '
                     'CLASS_NAMES=ALL or DEFAULT_AND_FLIP add the others')
    if any(p.flips):
        equal = hypotheses.equal_count_positions(p.flips)
        if len(equal):
            lines.append(f'NH3            tested at positions {positions_text(equal)} (as many flipped as unflipped '
                         'labels before)')
        else:
            lines.append('warning        NH3 impossible: no position follows equally many flipped and unflipped '
                         'labels; flip after fewer than half the examples (runs.md: 60 of 140)')
        if 0 < len(equal) < 3:
            lines.append(f'warning        NH3 would rest on {len(equal)} position(s) only: a weak comparison')
    smallest = hypotheses.smallest_p_value(min(n, 64))  # 2**n is exact only to n = 13; no need to compute 2**1e11
    if smallest >= ALPHA:
        lines.append(f'tests          cannot reject at {ALPHA} with n={n}; need ≥ '
                     f'{hypotheses.repetitions_needed(ALPHA)} repetitions (smallest possible p: {smallest:.4g})')
    else:
        lines.append(f'tests          paired over {n} repetitions: smallest possible p {smallest:.4g} < {ALPHA}')
    return lines


def describe_plan(p: Plan) -> str:
    c = p.config
    dtype = p.dtype + (f', {p.dtype_why}' if p.model.dtype == AUTO else '')  # why auto chose it
    source = p.model_spec.source or p.model_spec.package
    scanned = '' if p.scanned_repetitions >= c.n_repeats else \
        f' (of repetitions 0-{p.scanned_repetitions - 1}; scoring checks every prompt)'
    return '\n'.join([
        f'dataset        {p.data.name} ({p.data.num_prompt_examples} examples per prompt)',
        f'CLASS_NAMES    {p.data.class_names_mode}: {", ".join(p.variants)}',
        f'model          {p.model.name} ({source}, dtype {p.model.dtype}: {dtype})',
        f'prompts        {c.n_repeats} repetitions x {len(p.variants)} variants = {p.num_prompts}',
        f'longest prompt {p.longest_prompt} tokens of {p.context}{scanned}',
        f'label tokens   {", ".join(f"{n}={t!r}" for n, t in zip(p.label_tokens.classes, p.label_tokens.tokens))}',
        *hypothesis_lines(p),
        *(f'note           {note}' for note in plan_notes(c, p.data)),
    ])


def example_prompts(p: Plan) -> str:
    """The first query prompt of each variant (repetition 0), exactly the text that is scored."""
    blocks = []
    for variant, names in p.variants.items():
        prompt = first_query_prompt(datasets.repetition(p.data, 0, names))  # query_prompts()' first, as scored
        blocks.append(f'=== variant {variant} ({" / ".join(names)}): repetition 0, first query; '
                      f'the model predicts the token after the last line ===\n{prompt.text}\n')
    return '\n'.join(blocks)


def write_example_prompts(p: Plan, run_dir: Path) -> None:
    """prompts.txt in the run directory: example_prompts(), to see what the model was shown."""
    (run_dir / 'prompts.txt').write_text(example_prompts(p))


def versions() -> dict:
    """Python's and each of PACKAGES' version (None: not installed)."""
    return {'python': sys.version.split()[0], **{package: packaged.installed_version(package) for package in PACKAGES}}


def run_record(p: Plan) -> dict:
    """config.json: what produced the run, from which data (resume compares both)."""
    records = datasets.load(p.data).records  # loaded once per process (cached)
    return {'config': to_dict(p.config),
            'data': loaders.records_fingerprint(p.data.name, records, p.data.data_dir),
            'dtype': p.dtype,
            'model': models.describe(p.model_spec, p.model_config), 'versions': versions(),
            'command': sys.argv, 'created': datetime.datetime.now().isoformat(timespec='seconds')}


def setup_record(p: Plan, priors: dict[str, np.ndarray]) -> dict:
    """setup.json: classes, label tokens, variants, the names each variant shows and its prior (in that order)."""
    lt, loaded = p.label_tokens, datasets.load(p.data)
    num_classes = len(next(iter(p.variants.values())))
    return {'all_classes': lt.classes, 'label_token_ids': lt.ids, 'label_tokens': lt.tokens,
            'multi_token_classes': lt.multi_token, 'variants': p.variants, 'shown_class_names': p.shown_class_names,
            'priors': {v: prior.tolist() for v, prior in priors.items()},
            'dataset': {'name': p.data.name, 'train_rows': len(loaded.train_data), 'test_rows': len(loaded.test_data),
                        'label_frequencies': loaded.label_frequencies(num_classes).tolist()},
            'context_length': p.context, 'longest_prompt_tokens': p.longest_prompt}


def repetition_rows(p: Plan, scorer: scoring.Scorer, repetition: int, priors: dict[str, np.ndarray],
                    calibrate_query: bool, progress=None) -> list[dict]:
    """Build, score and tabulate every prompt of one repetition: each query's in-context rows, then its row.

    The query's log-probs (and `priors`) are over the names in the order the prompt shows them
    (the format's class_names: rotated with reverse_labels), as the original's.
    """
    jobs = []  # (variant, query number, test row, true label, shown names, prompt)
    for variant, names in p.variants.items():
        data = datasets.repetition(p.data, repetition, names)
        for q, (test_idx, prompt) in enumerate(data.query_prompts()):
            jobs.append((variant, q, test_idx, data.query(test_idx)[1], data.format.class_names, prompt))
    scored = scorer.score([job[-1] for job in jobs], progress)
    rows = []
    for (variant, q, test_idx, true_label, shown, prompt), (positions, logits) in zip(jobs, scored):
        rows += results.prompt_rows(repetition, variant, prompt, positions, logits, query=q)
        log_probs = class_log_probs(logits[-1], p.label_tokens.index(shown))
        calibrated = calibrate(log_probs, priors[variant]) if calibrate_query else log_probs
        rows.append(results.query_row(repetition, variant, prompt.num_examples, test_idx, true_label,
                                      int(positions[-1]), logits[-1], log_probs, calibrated, priors[variant], query=q))
    return rows


def run(config: config_dict.ConfigDict, run_dir: str | Path | None = None, dry_run: bool = False,
        show_prompt: bool = False) -> Path | None:
    """Run the experiment described by `config`; returns the run directory (None for a dry run).

    An existing run directory of the same config and data is resumed after its last complete
    repetition (a larger n_repeats extends it); one launch at a time holds a run directory.
    Under `accelerate launch` or `torchrun` with N processes, each scores every N-th repetition
    still to do; process 0 alone writes config.json and setup.json, owns the wandb run and, once
    every part exists, logs the curves and prints the summary.
    """
    p = plan(config)
    state = processes()
    if show_prompt and state.is_main_process:
        print(example_prompts(p))
    try:
        return run_planned(p, state, Path(run_dir) if run_dir else None, dry_run)
    finally:
        state.destroy_process_group()  # else gloo aborts the process when it exits


def run_planned(p: Plan, state, run_dir: Path | None, dry_run: bool) -> Path | None:
    config, main = p.config, state.is_main_process
    if main:
        print(describe_plan(p))
    run_dir = from_main(state, run_dir or default_run_dir(config))  # its time stamp is process 0's
    record = run_record(p) if main else None  # what config.json holds; process 0 alone needs it
    # process 0 alone checks and writes the folder (the others' checks would race with its writes)
    found = in_main(state, lambda: inspect_run_dir(run_dir, record, **dir_checks(p), check_parts=dry_run))
    if dry_run:
        if main:
            print(found.describe(config.n_repeats))
        return None
    with contextlib.ExitStack() as held:
        def start() -> tuple[RunDir, object]:
            # under the lock, the folder is checked again: another launch may have written to it meanwhile
            held.enter_context(lock_run_dir(run_dir))
            found = inspect_run_dir(run_dir, record, **dir_checks(p))
            tracker = open_tracked_run(p, found, record)
            write_example_prompts(p, run_dir)
            return found, tracker
        found, tracker = in_main(state, start) or (None, NullTracker())  # process 0 alone owns the wandb run
        try:
            return score_and_finish(p, state, run_dir, found, tracker)
        except (KeyboardInterrupt, OSError, OutOfMemory) as error:
            if isinstance(error, OSError) and error.errno not in FULL_DISK:
                raise  # any other error is a bug: its traceback
            raise stopped(error, tracker, run_dir, config.n_repeats) from None


def in_main(state, work):
    """work() in process 0 alone (None in the others); its UsageError is raised in every process."""
    value, refused = None, None
    if state.is_main_process:
        try:
            value = work()
        except UsageError as error:
            refused = str(error)
    refused = from_main(state, refused)  # also a barrier
    if refused is not None:
        raise UsageError(refused)
    return value


def dir_checks(p: Plan) -> dict:
    """What inspect_run_dir checks the parts on disk against."""
    return {'n_repeats': p.config.n_repeats, 'rows_per_repetition': p.rows_per_repetition,
            'variants': list(p.variants)}


def score_and_finish(p: Plan, state, run_dir: Path, found: RunDir | None, tracker: AnyTracker) -> Path:
    """Score this process's share of the repetitions still to do (process 0 knows them: `found`);
    process 0 then finishes the run."""
    config, main = p.config, state.is_main_process
    todo = from_main(state, [r for r in range(config.n_repeats) if r not in set(found.done)] if main else None)
    mine = todo[state.process_index::state.num_processes]
    if state.num_processes > 1:
        logging.info('Process %d of %d scores repetitions %s', state.process_index, state.num_processes, mine)
    if not main and not mine:
        return run_dir
    setup_path = run_dir / 'setup.json'
    if mine or not setup_path.is_file():
        setup = score_repetitions(p, run_dir, mine, tracker, process_gpus(state), is_main=main)
        setup['timing']['processes'] = state.num_processes  # the timing is process 0's
    else:  # nothing left to score: the model is not needed
        setup = results.read_json(setup_path)
    if main:
        finish_run(p, run_dir, setup, tracker, others=sorted(set(todo) - set(mine)))
    return run_dir


def stopped(error: BaseException, tracker: AnyTracker, run_dir: Path, n_repeats: int) -> RunStopped:
    """Ctrl-C, a full disk or GPU memory running out while the run scores: one line (what is saved, how to
    resume) instead of a traceback; the wandb run is ended quietly."""
    tracker.stop(exit_code=130 if isinstance(error, KeyboardInterrupt) else 1)
    saved = len(results.completed_repetitions(run_dir, n_repeats))
    resume = f'{saved} of {n_repeats} repetitions are saved in {run_dir}; rerun the same command to resume'
    if isinstance(error, KeyboardInterrupt):
        return RunStopped(f'interrupted: {resume}', status=130)
    if isinstance(error, OutOfMemory):
        return RunStopped(f'{error}: {resume}', status=1)
    return RunStopped(f"could not write '{error.filename}' ({error.strerror}); nothing finished was lost: {resume}",
                      status=1)


def open_tracked_run(p: Plan, found: RunDir, record: dict) -> Tracker:
    """Write config.json and start (or continue) the run's wandb run; the Tracker."""
    record = start_run_dir(found, record)
    c = p.config
    tracker = Tracker(config=wandb_config(record), run_dir=found.path, debug=c.debug, note=c.note,
                      resume_id=(record.get('wandb') or {}).get('id'))
    record['wandb'] = tracker.info()
    write_record(found.path, record)
    if found.done:
        logging.info('Resuming %s: %d of %d repetitions done', found.path, len(found.done), c.n_repeats)
    return tracker


@dataclasses.dataclass
class LoadedModel:
    """What scoring needs once the weights are loaded."""
    scorer: scoring.Scorer
    priors: dict[str, np.ndarray]  # per variant, over the names in the order its prompts show them
    setup: dict  # setup.json's record, without its timing
    load_s: float  # seconds the weights took to load
    computes_in: dict  # setup.json's timing: the dtype, output device and attention the model computes with


def load_scoring(p: Plan, gpus: list[int] | None) -> LoadedModel:
    """Load the model and compute each variant's calibration prior."""
    start = time.perf_counter()
    dtype = precision.DTYPES[p.dtype]
    model = models.load_model(p.model_spec, dtype, gpus=gpus)
    load_s = time.perf_counter() - start
    scorer = scoring.Scorer(model, p.tokenizer, p.label_tokens, p.context,
                            scoring.resolve_batch_size(p.model.batch_size))
    example_format = datasets.prompt_format(p.data).example
    prior_all = scoring.prior_logits(model, p.tokenizer, example_format, p.label_tokens.ids)
    priors = {v: scoring.prior_log_probs(prior_all, p.label_tokens.index(names))
              for v, names in p.shown_class_names.items()}
    computes_in = {'dtype': precision.dtype_name(dtype), 'device': str(scoring.output_device(model)),
                   'attention': model.config._attn_implementation}
    return LoadedModel(scorer, priors, setup_record(p, priors), load_s, computes_in)


def score_repetitions(p: Plan, run_dir: Path, repetitions: list[int], tracker: AnyTracker,
                      gpus: list[int] | None, is_main: bool) -> dict:
    """Load the model and write one part per repetition; the setup record with `timing`. Process 0
    (`is_main`) writes setup.json before scoring and shows the progress bar."""
    loaded = load_scoring(p, gpus)
    if is_main:
        results.write_json(run_dir / 'setup.json', loaded.setup)
    return score_parts(p, run_dir, repetitions, loaded, tracker, show_progress=is_main)


def score_parts(p: Plan, run_dir: Path, repetitions: list[int], loaded: LoadedModel,
                tracker: AnyTracker, show_progress: bool) -> dict:
    """Write one part per repetition, logging each to `tracker` and the mean curves every
    len(repetitions) // LIVE_CURVES; the setup record with `timing`."""
    setup, scorer = loaded.setup, loaded.scorer
    start = time.perf_counter()
    per_repetition = len(p.variants) * p.data.num_test_samples
    live_every = max(1, len(repetitions) // LIVE_CURVES)
    scored = []  # this process's per-position metrics, for the live curves
    with tqdm(total=len(repetitions) * per_repetition, desc='prompts', unit='prompt',
              disable=not show_progress) as progress:
        for done, repetition in enumerate(repetitions, 1):
            rows = repetition_rows(p, scorer, repetition, loaded.priors, p.model.calibrate, progress)
            tracker.save(results.write_part(run_dir, repetition, rows))
            table = pd.DataFrame(rows)
            means = query_accuracy(table)
            if p.examples_per_prompt:
                scored.append(analysis.position_metrics(table, setup))
                means = means.merge(scored[-1].groupby('variant', sort=False)[list(analysis.METRICS)].mean()
                                    .reset_index(), on='variant', sort=False)
            tracker.log_repetition(repetition, means.drop(columns='repetitions'), setup['dataset']['label_frequencies'])
            if scored and done % live_every == 0 and done < len(repetitions):  # finish_run logs the final ones
                tracker.log_curves(analysis.curves(pd.concat(scored, ignore_index=True)))
    timing = {'load_s': round(loaded.load_s, 3), 'scoring_s': round(time.perf_counter() - start, 3),
              'prompts': scorer.prompts, 'tokens': scorer.tokens,
              'peak_memory_mb': round(hardware.peak_memory_mb(), 1),  # weights too: load_model reset it
              **loaded.computes_in}
    return {**setup, 'timing': timing}


def finish_run(p: Plan, run_dir: Path, setup: dict, tracker: Tracker, others: list[int]) -> None:
    """Process 0, once the other processes' repetitions are on disk: setup.json, wandb curves, summary."""
    wait_for_parts(run_dir, others)
    for repetition in others:
        tracker.save(results.part_path(run_dir, repetition))
    results.write_json(run_dir / 'setup.json', setup)
    tracker.save(run_dir / 'setup.json')
    tracker.save(run_dir / 'config.json')
    table = results.read_table(run_dir)
    queries = query_accuracy(table)
    if not p.examples_per_prompt:  # zero-shot: no curves, the query accuracy is the result
        tracker.log_summary(queries)
        tracker.finish()
        print(zero_shot_text(queries, run_dir))
        return
    metrics = analysis.position_metrics(table, setup)
    tracker.log_curves(analysis.curves(metrics))
    summary = analysis.early_late(metrics)
    tracker.log_summary(summary.merge(queries.drop(columns='repetitions'), on='variant', sort=False))
    tracker.finish()
    print(summary_text(summary, run_dir))


def query_accuracy(table: pd.DataFrame) -> pd.DataFrame:
    """Per variant: share of queries whose (calibrated, if the run calibrates) prediction is the true label."""
    queries = table[table['is_query']]
    correct = [int(np.argmax(log_probs)) == label for log_probs, label in
               zip(queries['query_log_probs_calibrated'], queries['true_label'])]
    return (queries.assign(query_accuracy=np.array(correct, dtype=float))
            .groupby('variant', sort=False).agg(query_accuracy=('query_accuracy', 'mean'),
                                                repetitions=('repetition', 'nunique')).reset_index())


def summary_text(table: pd.DataFrame, run_dir: Path) -> str:
    lines = [f'\nResults in {run_dir} (accuracy / log-likelihood, first 10 -> last 10 positions):']
    for row in table.to_dict('records'):
        lines.append(f"  {row['variant']:<12} acc {row['accuracy_first']:.2f} -> {row['accuracy_last']:.2f}   "
                     f"loglik {row['log_lik_first']:.2f} -> {row['log_lik_last']:.2f}   "
                     f"({row['repetitions']} repetitions)")
    return '\n'.join(lines)


def zero_shot_text(queries: pd.DataFrame, run_dir: Path) -> str:
    lines = [f'\nResults in {run_dir} (zero-shot: query accuracy):']
    lines += [f"  {row['variant']:<12} acc {row['query_accuracy']:.2f}   ({row['repetitions']} repetitions)"
              for row in queries.to_dict('records')]
    return '\n'.join(lines)
