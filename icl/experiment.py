"""The change-labels experiment: validate, then score every (repetition, variant) prompt.

`plan()` checks everything that can be checked without model weights (config, CLASS_NAMES,
data, label tokens, prompt lengths) so a wrong command fails in seconds; `run()` then
loads the model and writes one results part per repetition.
"""
import dataclasses
import datetime
import importlib.metadata
import logging
import os
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from ml_collections import config_dict
from tqdm.auto import tqdm

from icl import analysis, models, results, scoring
from icl.config import flatten, to_dict, validate
from icl.datasets import CLASS_NAMES_ENV, BaseDataset, class_names_mode, dataset_class
from icl.errors import UsageError
from icl.probs import calibrate, log_softmax
from icl.prompts import Prompt

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
    longest_prompt: int  # tokens, over all repetitions (default variant)

    @property
    def num_prompts(self) -> int:
        return self.config.n_repeats * len(self.variants) * self.config.dataset.config.num_test_samples


def make_dataset(config: config_dict.ConfigDict, repetition: int, class_names: list[str] | None) -> BaseDataset:
    """The dataset draw of one repetition: the same examples for every variant."""
    kwargs = {**config.dataset.config.to_dict(), 'class_names': class_names,
              'fix_space_bug': config.dataset.fix_space_bug}
    rng = np.random.default_rng(config.random_seed + repetition)
    return dataset_class(config.dataset.name)(rng=rng, **kwargs)


def query_prompts(data: BaseDataset) -> list[tuple[int, Prompt]]:
    """(test row, prompt) for each query; each assembly draws its own random labels, as the original."""
    return [(i, data.build_prompt(data.get_feature(data.test_data[i]))) for i in data.test_indices]


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
    models.resolve_dtype(config.model.dtype)
    tokenizer = models.load_tokenizer(spec)
    label_tokens = scoring.label_tokens(tokenizer, first, classes)
    for variant, names in variants.items():
        label_tokens.check_variant(variant, names)
    model_config = models.load_model_config(spec)
    context = models.context_length(model_config)
    longest = max(len(scoring.encode(tokenizer, prompt.text)[0])
                  for r in range(config.n_repeats)
                  for _, prompt in query_prompts(make_dataset(config, r, None))[:1])
    if longest > context:
        raise UsageError(f'the longest prompt has {longest} tokens but {config.model.name} attends to {context}; '
                         f'use fewer than {config.dataset.config.num_prompt_examples} examples')
    return Plan(config=config, variants=variants, label_tokens=label_tokens, model_spec=spec, tokenizer=tokenizer,
                model_config=model_config, context=context, longest_prompt=longest)


def describe_plan(p: Plan) -> str:
    c = p.config
    return '\n'.join([
        f'dataset        {c.dataset.name} ({c.dataset.config.num_prompt_examples} examples per prompt)',
        f'CLASS_NAMES    {os.environ.get(CLASS_NAMES_ENV) or "ALL"}: {", ".join(p.variants)}',
        f'model          {c.model.name} ({p.model_spec.source or p.model_spec.package}, dtype {c.model.dtype})',
        f'prompts        {c.n_repeats} repetitions x {len(p.variants)} variants = {p.num_prompts}',
        f'longest prompt {p.longest_prompt} tokens of {p.context}',
        f'label tokens   {", ".join(f"{n}={t!r}" for n, t in zip(p.label_tokens.classes, p.label_tokens.tokens))}',
    ])


def default_run_dir(config: config_dict.ConfigDict) -> Path:
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    name = f'{config.dataset.name}-{config.model.name}-{config.note}-{stamp}'
    return Path('runs') / re.sub(r'[^\w.=-]+', '_', name)


def versions() -> dict:
    out = {'python': sys.version.split()[0]}
    for package in PACKAGES:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    return out


def run_record(p: Plan) -> dict:
    """config.json: what produced the run (resume compares it)."""
    return {'config': to_dict(p.config), 'class_names_env': os.environ.get(CLASS_NAMES_ENV),
            'model': models.describe(p.model_spec, p.model_config), 'versions': versions(),
            'command': sys.argv, 'created': datetime.datetime.now().isoformat(timespec='seconds')}


def open_run_dir(p: Plan, run_dir: Path | None) -> tuple[Path, dict]:
    """Create the run directory, or reopen one made by the same config (to resume)."""
    record = run_record(p)
    run_dir = Path(run_dir) if run_dir else default_run_dir(p.config)
    config_path = run_dir / 'config.json'
    if config_path.is_file():
        try:
            old = results.read_json(config_path)
        except ValueError:
            raise UsageError(f"'{config_path}' is not valid JSON; not a run directory of this tool") from None
        differing = config_differences(old, record)
        if differing:
            raise UsageError(f"'{run_dir}' holds a run with a different config ({', '.join(differing)}); "
                             'use a new --workdir')
        return run_dir, {**record, 'created': old.get('created'), 'wandb': old.get('wandb')}
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UsageError(f"'{run_dir}' exists and is not a run directory of this tool; use a new --workdir")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create run directory '{run_dir}': {error.strerror}") from None
    return run_dir, record


def config_differences(old: dict, new: dict) -> list[str]:
    """Keys whose values differ between two config.json records."""
    a = {**flatten(old.get('config', {})), 'CLASS_NAMES': old.get('class_names_env')}
    b = {**flatten(new['config']), 'CLASS_NAMES': new['class_names_env']}
    return sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))


def setup_record(p: Plan, data: BaseDataset, priors: dict[str, np.ndarray]) -> dict:
    lt = p.label_tokens
    return {'all_classes': lt.classes, 'label_token_ids': lt.ids, 'label_tokens': lt.tokens,
            'multi_token_classes': lt.multi_token, 'variants': p.variants,
            'priors': {v: prior.tolist() for v, prior in priors.items()},
            'dataset': {'name': p.config.dataset.name, 'train_rows': len(data.train_data),
                        'test_rows': len(data.test_data), 'label_frequencies': data.label_frequencies().tolist()},
            'context_length': p.context, 'longest_prompt_tokens': p.longest_prompt}


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class Scorer:
    """Scores prompts with a loaded model; counts tokens and checks label tokens."""

    def __init__(self, model, tokenizer, label_tokens: scoring.LabelTokens, context: int, batch_size: int):
        self.model, self.tokenizer, self.label_tokens = model, tokenizer, label_tokens
        self.context, self.batch_size = context, batch_size
        self.tokens = self.prompts = 0
        self._label_ids = dict(zip(label_tokens.classes, label_tokens.ids))
        self._mismatch_warned = False

    def positions(self, prompt: Prompt) -> tuple[list[int], np.ndarray]:
        ids, spans = scoring.encode(self.tokenizer, prompt.text)
        if len(ids) > self.context:
            raise UsageError(f'a prompt has {len(ids)} tokens but the model attends to {self.context}; '
                             'use fewer examples')
        positions = np.append(scoring.answer_positions(spans, prompt.answer_ends), len(ids) - 1)
        self._check_label_tokens(prompt, ids, positions)
        return ids, positions

    def _check_label_tokens(self, prompt: Prompt, ids: list[int], positions: np.ndarray) -> None:
        for text, position in zip(prompt.shown_texts, positions):
            expected = self._label_ids.get(text)
            if expected is not None and ids[position + 1] != expected and not self._mismatch_warned:
                self._mismatch_warned = True
                logging.warning("label %r is tokenised as %r in a prompt, not %r as in setup.json", text,
                                self.tokenizer.convert_ids_to_tokens(ids[position + 1]),
                                self.tokenizer.convert_ids_to_tokens(expected))

    def score(self, prompts: list[Prompt], progress=None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(token positions, class logits [positions, all_classes]) per prompt, in order."""
        encoded = [self.positions(p) for p in prompts]
        out = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i][0]))  # similar lengths batch well
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            logits = scoring.class_logits(self.model, [encoded[i][0] for i in chunk],
                                          [encoded[i][1] for i in chunk], self.label_tokens.ids)
            for i, values in zip(chunk, logits):
                out[i] = (encoded[i][1], values)
                self.tokens += len(encoded[i][0])
            self.prompts += len(chunk)
            if progress is not None:
                progress.update(len(chunk))
        return out


def repetition_rows(p: Plan, scorer: Scorer, repetition: int, priors: dict[str, np.ndarray],
                    calibrate_query: bool, progress=None) -> list[dict]:
    """Build, score and tabulate every prompt of one repetition."""
    jobs = []  # (variant, query number, test row, true label, prompt)
    for variant, names in p.variants.items():
        data = make_dataset(p.config, repetition, names)
        for q, (test_idx, prompt) in enumerate(query_prompts(data)):
            jobs.append((variant, q, test_idx, data.test_data[test_idx][data.label_name], prompt))
    scored = scorer.score([job[-1] for job in jobs], progress)
    rows = []
    for (variant, q, test_idx, true_label, prompt), (positions, logits) in zip(jobs, scored):
        if q == 0:
            rows += results.prompt_rows(repetition, variant, prompt, positions, logits)
        columns = p.label_tokens.index(p.variants[variant])
        log_probs = log_softmax(logits[-1, columns].astype(np.float64))
        calibrated = calibrate(log_probs, priors[variant]) if calibrate_query else log_probs
        rows.append(results.query_row(repetition, variant, prompt.num_examples + q, test_idx, true_label,
                                      int(positions[-1]), logits[-1], log_probs, calibrated, priors[variant]))
    return rows


def resolve_batch_size(value) -> int:
    if value == 'auto':
        return 8 if torch.cuda.is_available() else 1
    return int(value)


def run(config: config_dict.ConfigDict, run_dir: str | Path | None = None, dry_run: bool = False) -> Path | None:
    """Run the experiment described by `config`; returns the run directory (None for a dry run)."""
    p = plan(config)
    print(describe_plan(p))
    if dry_run:
        return None
    run_dir, record = open_run_dir(p, run_dir)
    done = set(results.completed_repetitions(run_dir))
    todo = [r for r in range(config.n_repeats) if r not in done]
    if done:
        logging.info('Resuming %s: %d of %d repetitions done', run_dir, len(done), config.n_repeats)

    from icl.tracking import Tracker
    tracker = Tracker(config=flatten(to_dict(config)), run_dir=run_dir, debug=config.debug, note=config.note,
                      resume_id=(record.get('wandb') or {}).get('id'))
    record['wandb'] = tracker.info()
    results.write_json(run_dir / 'config.json', record)

    start = time.perf_counter()
    dtype = models.resolve_dtype(config.model.dtype)
    model = models.load_model(p.model_spec, dtype)
    load_s = time.perf_counter() - start
    scorer = Scorer(model, p.tokenizer, p.label_tokens, p.context, resolve_batch_size(config.model.batch_size))

    first = make_dataset(config, 0, None)
    prior_all = scoring.prior_logits(model, p.tokenizer, first, p.label_tokens.ids)
    priors = {v: scoring.prior_log_probs(prior_all, p.label_tokens.index(names)) for v, names in p.variants.items()}
    setup = setup_record(p, first, priors)
    results.write_json(run_dir / 'setup.json', setup)

    start = time.perf_counter()
    per_repetition = len(p.variants) * config.dataset.config.num_test_samples
    with tqdm(total=len(todo) * per_repetition, desc='prompts', unit='prompt') as progress:
        for repetition in todo:
            rows = repetition_rows(p, scorer, repetition, priors, config.model.calibrate, progress)
            part = results.write_part(run_dir, repetition, rows)
            tracker.save(part)
            metrics = analysis.position_metrics(pd.DataFrame(rows), setup)
            tracker.log_repetition(repetition, metrics.groupby('variant', sort=False)[list(analysis.METRICS)]
                                   .mean().reset_index())
    scoring_s = time.perf_counter() - start

    setup['timing'] = {'load_s': round(load_s, 3), 'scoring_s': round(scoring_s, 3), 'prompts': scorer.prompts,
                       'tokens': scorer.tokens, 'peak_memory_mb': round(peak_memory_mb(), 1),
                       'dtype': str(dtype).removeprefix('torch.'), 'device': str(scoring.output_device(model))}
    results.write_json(run_dir / 'setup.json', setup)
    tracker.save(run_dir / 'setup.json')
    tracker.save(run_dir / 'config.json')

    metrics = analysis.position_metrics(results.read_table(run_dir), setup)
    tracker.log_curves(analysis.curves(metrics))
    tracker.finish()
    print(summary_text(analysis.early_late(metrics), run_dir))
    return run_dir


def summary_text(table: pd.DataFrame, run_dir: Path) -> str:
    lines = [f'\nResults in {run_dir} (accuracy / log-likelihood, first 10 -> last 10 positions):']
    for row in table.to_dict('records'):
        lines.append(f"  {row['variant']:<12} acc {row['accuracy_first']:.2f} -> {row['accuracy_last']:.2f}   "
                     f"loglik {row['log_lik_first']:.2f} -> {row['log_lik_last']:.2f}   "
                     f"({row['repetitions']} repetitions)")
    return '\n'.join(lines)
