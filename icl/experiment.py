"""The change-labels experiment: validate, then score every (repetition, variant) prompt.

`plan()` checks everything that can be checked without model weights (config, CLASS_NAMES,
data, label tokens, prompt lengths) so a wrong command fails in seconds; `run()` then
loads the model and writes one results part per repetition. A run directory of the same
config is resumed where it stopped; under `accelerate launch` or `torchrun` the processes
split the repetitions between them.
"""
import dataclasses
import datetime
import functools
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ml_collections import config_dict
from tqdm.auto import tqdm

from icl import analysis, models, results, scoring
from icl.config import noop_settings, to_dict, validate
from icl.datasets import BaseDataset, class_names_mode, dataset_class, old_class_names_note, uses_old_class_names
from icl.errors import UsageError
from icl.probs import calibrate, class_log_probs
from icl.processes import from_main, process_gpus, processes, wait_for_parts
from icl.prompts import Prompt
from icl.rundir import RunDir, default_run_dir, inspect_run_dir, start_run_dir

LIVE_CURVES = 20  # mean curves logged to wandb this often during a run, so long runs can be watched
PACKAGES = ('torch', 'transformers', 'accelerate', 'datasets', 'wandb', 'numpy', 'pandas', 'ml-collections')


@dataclasses.dataclass
class Plan:
    """Everything a run needs except the model weights."""
    config: config_dict.ConfigDict
    variants: dict[str, list[str]]
    label_tokens: scoring.LabelTokens
    model_spec: models.ModelSpec
    tokenizer: object
    model_config: object
    context: int  # tokens the model attends to
    longest_prompt: int  # tokens (see longest_prompt())
    examples_per_prompt: int  # in-context examples (one fewer with inputs_off_by_one)

    @property
    def num_prompts(self) -> int:
        return self.config.n_repeats * len(self.variants) * self.config.dataset.config.num_test_samples

    @property
    def rows_per_repetition(self) -> int:
        """Rows of one repetition's results part: every query's prompt (examples and query) of every variant."""
        return len(self.variants) * (self.examples_per_prompt + 1) * self.config.dataset.config.num_test_samples

    @property
    def shown_class_names(self) -> dict[str, list[str]]:
        """Per variant, the names its prompts show for labels 0, 1, ...: the variant's names, rotated by one
        with reverse_labels (the original's order of the query's log-probs and prior too)."""
        return {variant: make_dataset(self.config, 0, names).class_names for variant, names in self.variants.items()}


def make_dataset(config: config_dict.ConfigDict, repetition: int, class_names: list[str] | None) -> BaseDataset:
    """The dataset draw of one repetition: the same examples for every variant."""
    kwargs = {**config.dataset.config.to_dict(), 'class_names': class_names,
              'fix_space_bug': config.dataset.fix_space_bug}
    rng = np.random.default_rng(config.random_seed + repetition)
    return dataset_class(config.dataset.name)(rng=rng, **kwargs)


def plan_notes(config: config_dict.ConfigDict) -> list[str]:
    """Settings of a validated config that change nothing (the dry-run plan prints them)."""
    return noop_settings(config) + list(filter(None, [old_class_names_note(config.dataset.name)]))


def query_prompts(data: BaseDataset) -> list[tuple[int, Prompt]]:
    """(test row, prompt) for each query; each assembly draws its own random labels, as the original."""
    return [(i, data.build_prompt(data.get_feature(data.test_data[i]))) for i in data.test_indices]


load_tokenizer = functools.lru_cache(maxsize=4)(models.load_tokenizer)  # plan() of many configs in one process
LONGEST_CANDIDATES = 8  # repetitions whose prompts longest_prompt() tokenises


def first_query_prompt(data: BaseDataset) -> Prompt:
    return data.build_prompt(data.get_feature(data.test_data[data.test_indices[0]]))


def longest_prompt(config: config_dict.ConfigDict, variants: dict[str, list[str]], tokenizer) -> int:
    """Tokens of the longest prompt, tokenising only likely candidates (all of a 500-repetition
    run would take seconds; scoring checks every prompt again): in the repetitions whose first
    default prompt is longest in characters, each variant's longest query prompt."""
    chars = [len(first_query_prompt(make_dataset(config, r, None)).text) for r in range(config.n_repeats)]
    candidates = np.argsort(chars, kind='stable')[::-1][:LONGEST_CANDIDATES]
    texts = [max((prompt.text for _, prompt in query_prompts(make_dataset(config, int(r), names))), key=len)
             for r in candidates for names in variants.values()]
    return max(len(ids) for ids in tokenizer(texts, add_special_tokens=True)['input_ids'])


def plan(config: config_dict.ConfigDict) -> Plan:
    """Validate a config without loading model weights; UsageError on any problem."""
    validate(config)
    class_names_mode()
    klass = dataset_class(config.dataset.name)
    if config.dataset.config.class_names is not None:
        variants = {'custom': list(config.dataset.config.class_names)}
    else:
        variants = klass.class_name_variants
    first = make_dataset(config, 0, None)  # loads the data: missing files fail here
    classes = sorted({*klass.all_classes, *(n for names in variants.values() for n in names)})
    spec = models.resolve(config.model.name)
    models.dtype_policy(config.model.name, config.model.dtype)
    tokenizer = load_tokenizer(spec)
    label_tokens = scoring.label_tokens(tokenizer, first, classes)
    for variant, names in variants.items():
        label_tokens.check_variant(variant, names)
    model_config = models.load_model_config(spec)
    context = models.context_length(model_config)
    longest = longest_prompt(config, variants, tokenizer)
    if longest > context:
        raise UsageError(f'the longest prompt has {longest} tokens but {config.model.name} attends to {context}; '
                         f'use fewer than {config.dataset.config.num_prompt_examples} examples')
    return Plan(config=config, variants=variants, label_tokens=label_tokens, model_spec=spec, tokenizer=tokenizer,
                model_config=model_config, context=context, longest_prompt=longest,
                examples_per_prompt=first_query_prompt(first).num_examples)


def describe_plan(p: Plan) -> str:
    c = p.config
    dtype, why = models.dtype_policy(c.model.name, c.model.dtype)
    dtype += f', {why}' if c.model.dtype == 'auto' else ''  # why auto chose it
    source = p.model_spec.source or p.model_spec.package
    return '\n'.join([
        f'dataset        {c.dataset.name} ({c.dataset.config.num_prompt_examples} examples per prompt)',
        f'CLASS_NAMES    {class_names_mode()}: {", ".join(p.variants)}',
        f'model          {c.model.name} ({source}, dtype {c.model.dtype}: {dtype})',
        f'prompts        {c.n_repeats} repetitions x {len(p.variants)} variants = {p.num_prompts}',
        f'longest prompt {p.longest_prompt} tokens of {p.context}',
        f'label tokens   {", ".join(f"{n}={t!r}" for n, t in zip(p.label_tokens.classes, p.label_tokens.tokens))}',
    ])


def versions() -> dict:
    """Python's and each of PACKAGES' version (None: not installed)."""
    return {'python': sys.version.split()[0], **{package: models.installed_version(package) for package in PACKAGES}}


def run_record(p: Plan) -> dict:
    """config.json: what produced the run (resume compares it)."""
    return {'config': to_dict(p.config), 'class_names_env': class_names_mode(),
            'old_class_names': uses_old_class_names(p.config.dataset.name),
            'dtype': models.dtype_policy(p.config.model.name, p.config.model.dtype)[0],
            'model': models.describe(p.model_spec, p.model_config), 'versions': versions(),
            'command': sys.argv, 'created': datetime.datetime.now().isoformat(timespec='seconds')}


def setup_record(p: Plan, data: BaseDataset, priors: dict[str, np.ndarray]) -> dict:
    """setup.json: classes, label tokens, variants, the names each variant shows and its prior (in that order)."""
    lt = p.label_tokens
    return {'all_classes': lt.classes, 'label_token_ids': lt.ids, 'label_tokens': lt.tokens,
            'multi_token_classes': lt.multi_token, 'variants': p.variants, 'shown_class_names': p.shown_class_names,
            'priors': {v: prior.tolist() for v, prior in priors.items()},
            'dataset': {'name': p.config.dataset.name, 'train_rows': len(data.train_data),
                        'test_rows': len(data.test_data), 'label_frequencies': data.label_frequencies().tolist()},
            'context_length': p.context, 'longest_prompt_tokens': p.longest_prompt}


def repetition_rows(p: Plan, scorer: scoring.Scorer, repetition: int, priors: dict[str, np.ndarray],
                    calibrate_query: bool, progress=None) -> list[dict]:
    """Build, score and tabulate every prompt of one repetition: each query's in-context rows, then its row.

    The query's log-probs (and `priors`) are over the names in the order the prompt shows them
    (data.class_names: rotated with reverse_labels), as the original's.
    """
    jobs = []  # (variant, query number, test row, true label, shown names, prompt)
    for variant, names in p.variants.items():
        data = make_dataset(p.config, repetition, names)
        for q, (test_idx, prompt) in enumerate(query_prompts(data)):
            jobs.append((variant, q, test_idx, data.test_data[test_idx][data.label_name], data.class_names, prompt))
    scored = scorer.score([job[-1] for job in jobs], progress)
    rows = []
    for (variant, q, test_idx, true_label, shown, prompt), (positions, logits) in zip(jobs, scored):
        rows += results.prompt_rows(repetition, variant, prompt, positions, logits, query=q)
        log_probs = class_log_probs(logits[-1], p.label_tokens.index(shown))
        calibrated = calibrate(log_probs, priors[variant]) if calibrate_query else log_probs
        rows.append(results.query_row(repetition, variant, prompt.num_examples, test_idx, true_label,
                                      int(positions[-1]), logits[-1], log_probs, calibrated, priors[variant], query=q))
    return rows


def run(config: config_dict.ConfigDict, run_dir: str | Path | None = None, dry_run: bool = False) -> Path | None:
    """Run the experiment described by `config`; returns the run directory (None for a dry run).

    An existing run directory of the same config is resumed after its last complete repetition.
    Under `accelerate launch` or `torchrun` with N processes, each scores every N-th repetition
    still to do; process 0 alone writes config.json and setup.json, owns the wandb run and, once
    every part exists, logs the curves and prints the summary.
    """
    p = plan(config)
    state = processes()
    try:
        return run_planned(p, state, Path(run_dir) if run_dir else None, dry_run)
    finally:
        state.destroy_process_group()  # else gloo aborts the process when it exits


def run_planned(p: Plan, state, run_dir: Path | None, dry_run: bool) -> Path | None:
    config, main = p.config, state.is_main_process
    if main:
        print(describe_plan(p))
    run_dir = from_main(state, run_dir or default_run_dir(config))  # its time stamp is process 0's
    found = inspect_run_dir(run_dir, run_record(p), n_repeats=config.n_repeats,
                            rows_per_repetition=p.rows_per_repetition, variants=list(p.variants), check_parts=main)
    if dry_run:
        if main:
            print(found.describe(config.n_repeats))
        return None
    state.wait_for_everyone()  # every process has inspected the folder before process 0 writes to it
    tracker = open_tracked_run(p, found) if main else None
    todo = from_main(state, [r for r in range(config.n_repeats) if r not in set(found.done)])
    mine = todo[state.process_index::state.num_processes]
    if state.num_processes > 1:
        logging.info('Process %d of %d scores repetitions %s', state.process_index, state.num_processes, mine)
    if not main and not mine:
        return run_dir
    setup_path = run_dir / 'setup.json'
    if mine or not setup_path.is_file():
        setup = score_repetitions(p, run_dir, mine, tracker, process_gpus(state))
        setup['timing']['processes'] = state.num_processes  # the timing is process 0's
    else:  # nothing left to score: the model is not needed
        setup = results.read_json(setup_path)
    if main:
        finish_run(p, run_dir, setup, tracker, others=sorted(set(todo) - set(mine)))
    return run_dir


def open_tracked_run(p: Plan, found: RunDir):
    """Write config.json and start (or continue) the run's wandb run; the Tracker."""
    from icl.tracking import Tracker, wandb_config
    record = start_run_dir(found, run_record(p))
    c = p.config
    tracker = Tracker(config=wandb_config(record), run_dir=found.path, debug=c.debug, note=c.note,
                      resume_id=(record.get('wandb') or {}).get('id'))
    record['wandb'] = tracker.info()
    results.write_json(found.path / 'config.json', record)
    if found.done:
        logging.info('Resuming %s: %d of %d repetitions done', found.path, len(found.done), c.n_repeats)
    return tracker


def score_repetitions(p: Plan, run_dir: Path, repetitions: list[int], tracker, gpus: list[int] | None) -> dict:
    """Load the model and write one part per repetition; the setup record with `timing`.

    With a tracker (process 0), also writes setup.json and logs each repetition to wandb.
    """
    config = p.config
    start = time.perf_counter()
    dtype = models.DTYPES[models.dtype_policy(config.model.name, config.model.dtype)[0]]
    model = models.load_model(p.model_spec, dtype, gpus=gpus)
    load_s = time.perf_counter() - start
    scorer = scoring.Scorer(model, p.tokenizer, p.label_tokens, p.context,
                            scoring.resolve_batch_size(config.model.batch_size))

    first = make_dataset(config, 0, None)
    prior_all = scoring.prior_logits(model, p.tokenizer, first, p.label_tokens.ids)
    priors = {v: scoring.prior_log_probs(prior_all, p.label_tokens.index(names))
              for v, names in p.shown_class_names.items()}
    setup = setup_record(p, first, priors)
    if tracker is not None:
        results.write_json(run_dir / 'setup.json', setup)

    start = time.perf_counter()
    per_repetition = len(p.variants) * config.dataset.config.num_test_samples
    live_every = max(1, len(repetitions) // LIVE_CURVES)
    scored = []  # this process's per-position metrics, for the live curves
    with tqdm(total=len(repetitions) * per_repetition, desc='prompts', unit='prompt',
              disable=tracker is None) as progress:
        for done, repetition in enumerate(repetitions, 1):
            rows = repetition_rows(p, scorer, repetition, priors, config.model.calibrate, progress)
            part = results.write_part(run_dir, repetition, rows)
            if tracker is not None:
                tracker.save(part)
                table = pd.DataFrame(rows)
                means = query_accuracy(table)
                if p.examples_per_prompt:
                    scored.append(analysis.position_metrics(table, setup))
                    means = means.merge(scored[-1].groupby('variant', sort=False)[list(analysis.METRICS)].mean()
                                        .reset_index(), on='variant', sort=False)
                tracker.log_repetition(repetition, means.drop(columns='repetitions'),
                                       setup['dataset']['label_frequencies'])
                if scored and done % live_every == 0 and done < len(repetitions):  # finish_run logs the final ones
                    tracker.log_curves(analysis.curves(pd.concat(scored, ignore_index=True)))
    setup['timing'] = {'load_s': round(load_s, 3), 'scoring_s': round(time.perf_counter() - start, 3),
                       'prompts': scorer.prompts, 'tokens': scorer.tokens,
                       'peak_memory_mb': round(models.peak_memory_mb(), 1),  # weights too: load_model reset it
                       'dtype': models.dtype_name(dtype), 'device': str(scoring.output_device(model)),
                       'attention': model.config._attn_implementation}
    return setup


def finish_run(p: Plan, run_dir: Path, setup: dict, tracker, others: list[int]) -> None:
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
