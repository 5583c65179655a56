"""ICL training curves from runs, and the paper's three null hypotheses as statistical tests.

Curves: at each in-context position the class-token logits are renormalised over one
variant's class names (its own, or another's with `choose_logits`; `invert_logits` rotates
them by one); accuracy (argmax == label), log-likelihood of the label and entropy are taken
per repetition, then averaged over repetitions with their standard error. The label is the
row's label before any flip or randomisation (`labels='true'`, as in the paper) or the
label shown in context (`labels='shown'`).

Tests (see `mean_difference_test`): per repetition, a metric is averaged over a set of
positions; two conditions are compared by the mean of that value over repetitions.
  NH1  predictions do not depend on the in-context labels: default vs random labels.
  NH2  ICL overcomes the pre-training preference: default vs other label names, late in context.
  NH3  all in-context information is treated equally: flip halfway (both directions) vs
       alternating flips, at positions preceded by equally many flipped and unflipped labels.

Runs are read from a local run directory, or from wandb (ENTITY/PROJECT/RUN_ID, downloaded
once into the cache; needs an API key and network).
"""
import dataclasses
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from icl import results
from icl.errors import UsageError
from icl.probs import entropy, log_softmax
from icl.prompts import LabelRule

METRICS = ('accuracy', 'log_lik', 'entropy')
LABEL_COLUMNS = {'true': 'true_label', 'shown': 'shown_label'}  # what accuracy / log_lik are measured against
RUN_FILES = ('config.json', 'setup.json')
# ENTITY/PROJECT/RUN_ID, ENTITY/PROJECT/runs/RUN_ID or the run's wandb.ai address
WANDB_PATH = re.compile(r'^(?:https?://[^/]+/)?(?P<entity>[\w.-]+)/(?P<project>[\w.-]+)/(?:runs/)?(?P<id>[\w-]+)/?$')


# ------------------------------------------------------------------ curves

def class_columns(all_classes: Sequence[str], names: Sequence[str], invert_logits: bool = False) -> list[int]:
    """Columns of `names` in the table's label_logits; `invert_logits` rotates them by one."""
    columns = [list(all_classes).index(name) for name in names]
    if invert_logits:
        columns = [columns[(i + 1) % len(columns)] for i in range(len(columns))]
    return columns


def position_metrics(table: pd.DataFrame, setup: dict, choose_logits: str | None = None,
                     invert_logits: bool = False, labels: str = 'true') -> pd.DataFrame:
    """One row per in-context (repetition, variant, position) with accuracy, log_lik, entropy.

    With labels='shown', examples whose shown label is literal replacement text get NaN.
    """
    if choose_logits is not None and choose_logits not in setup['variants']:
        raise UsageError(f"choose_logits='{choose_logits}' is not a variant of this run; "
                         f"choose one of {', '.join(setup['variants'])}")
    if labels not in LABEL_COLUMNS:
        raise UsageError(f"labels='{labels}' is not valid; choose one of {', '.join(LABEL_COLUMNS)}")
    frames = []
    context = table[~table['is_query']]
    for variant, group in context.groupby('variant', sort=False):
        names = setup['variants'][choose_logits or variant]
        columns = class_columns(setup['all_classes'], names, invert_logits)
        log_probs = log_softmax(np.stack(group['label_logits'].to_numpy())[:, columns].astype(np.float64))
        label = group[LABEL_COLUMNS[labels]].to_numpy()
        known = label >= 0  # -1: a literal replacement text, no class to score
        picked = log_probs[np.arange(len(label)), np.where(known, label, 0)]
        frames.append(pd.DataFrame({
            'repetition': group['repetition'].to_numpy(), 'variant': variant,
            'position': group['position'].to_numpy(),
            'accuracy': np.where(known, log_probs.argmax(-1) == label, np.nan),
            'log_lik': np.where(known, picked, np.nan),
            'entropy': entropy(log_probs),
        }))
    return pd.concat(frames, ignore_index=True)


def smooth(values: np.ndarray, n: int) -> np.ndarray:
    """Moving average over `n` positions along the last axis (the original's 'valid' convolution)."""
    if n <= 1:
        return values
    return np.apply_along_axis(lambda row: np.convolve(row, np.ones(n) / n, mode='valid'), -1, values)


def curves(metrics: pd.DataFrame, smooth_n: int = 1) -> pd.DataFrame:
    """Mean over repetitions per (variant, metric, position), with standard error and count.

    Smoothing is applied to each repetition's curve before averaging (so the mean equals the
    original's smoothed mean curve and the standard error is that of the smoothed value);
    position is then the centre of the window.
    """
    if smooth_n > metrics['position'].nunique():
        raise UsageError(f'smoothing over {smooth_n} positions needs at least that many; '
                         f"the run has {metrics['position'].nunique()}")
    rows = []
    for variant, group in metrics.groupby('variant', sort=False):
        for metric in METRICS:
            grid = group.pivot(index='repetition', columns='position', values=metric)  # repetitions x positions
            values = smooth(grid.to_numpy(), smooth_n)
            n = np.isfinite(values).sum(0)
            with warnings.catch_warnings():  # all-NaN positions (literal labels) stay NaN
                warnings.simplefilter('ignore', RuntimeWarning)
                mean = np.nanmean(values, 0)
                sem = np.nanstd(values, 0, ddof=1) / np.sqrt(n)
            positions = grid.columns.to_numpy()[:values.shape[1]] + (smooth_n - 1) / 2 if smooth_n > 1 \
                else grid.columns.to_numpy()
            rows.append(pd.DataFrame({'variant': variant, 'metric': metric, 'position': positions,
                                      'mean': mean, 'sem': sem, 'n': n}))
    return pd.concat(rows, ignore_index=True)


def early_late(metrics: pd.DataFrame, window: int = 10) -> pd.DataFrame:
    """Per variant: accuracy and log-likelihood over the first and the last `window` positions."""
    rows = []
    for variant, group in metrics.groupby('variant', sort=False):
        last = group['position'].max()
        early = group[group['position'] < window]
        late = group[group['position'] > last - window]
        rows.append({'variant': variant, 'repetitions': group['repetition'].nunique(),
                     'accuracy_first': early['accuracy'].mean(), 'accuracy_last': late['accuracy'].mean(),
                     'log_lik_first': early['log_lik'].mean(), 'log_lik_last': late['log_lik'].mean()})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ runs

@dataclasses.dataclass
class Run:
    """One run: its config.json record, setup.json and results table."""
    name: str
    path: Path
    record: dict
    setup: dict
    table: pd.DataFrame

    @property
    def data_config(self) -> dict:
        return self.record['config']['dataset']['config']

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(self.table['variant']))

    @property
    def num_examples(self) -> int:
        return int(self.table.loc[~self.table['is_query'], 'position'].max()) + 1

    @property
    def repetitions(self) -> int:
        return self.table['repetition'].nunique()

    @property
    def num_classes(self) -> int:
        return len(self.setup['variants'][self.variants[0]])

    def label_rule(self) -> LabelRule:
        """The run's flip rule (random and replaced labels are not needed here)."""
        c = self.data_config
        # datasets.py resolves flip_labels_after_halfway the same way
        after = c['num_prompt_examples'] // 2 if c.get('flip_labels_after_halfway') else c['flip_labels_after']
        return LabelRule(num_classes=self.num_classes, flip_labels_after=after,
                         flip_labels_multi=c['flip_labels_multi'], flip_labels_multi_lim=c['flip_labels_multi_lim'])

    def flipped(self) -> np.ndarray:
        """Per in-context position: does that example show a flipped label?"""
        rule = self.label_rule()
        return np.array([rule.flipped(i) for i in range(self.num_examples)])

    def change_points(self) -> list[int]:
        """First example of each stretch of flipped or unflipped labels, after the first."""
        flipped = self.flipped()
        return [int(i) for i in np.flatnonzero(flipped[1:] != flipped[:-1]) + 1]

    @property
    def kind(self) -> str:
        """What the run manipulates: one of RUN_KINDS."""
        return next(kind for kind, matches in RUN_KINDS.items() if matches(self))

    def metrics(self, choose_logits: str | None = None, invert_logits: bool = False,
                labels: str = 'true') -> pd.DataFrame:
        return position_metrics(self.table, self.setup, choose_logits, invert_logits, labels)

    def describe(self) -> dict:
        c = self.record['config']
        return {'run': self.name, 'kind': self.kind, 'dataset': c['dataset']['name'], 'model': c['model']['name'],
                'examples': self.num_examples, 'repetitions': self.repetitions,
                'variants': ', '.join(self.variants), 'change points': ', '.join(map(str, self.change_points())),
                'directory': str(self.path)}


def _unmanipulated(run: Run) -> bool:
    c = run.data_config
    return not (c['random_labels'] or c['replace_labels_by'] or c['inputs_off_by_one'] or run.change_points()
                or c['reverse_labels'] or c.get('prompt_string'))


RUN_KINDS = {  # the first that matches names the run
    'random labels': lambda run: bool(run.data_config['random_labels']),
    'alternating flips': lambda run: run.data_config['flip_labels_multi'] and len(run.change_points()) > 1,
    'flip halfway': lambda run: len(run.change_points()) == 1,
    'default': _unmanipulated,
    'other': lambda run: True,
}


def read_run(path: str | Path, name: str | None = None) -> Run:
    """A run directory of this tool (config.json, setup.json, results/)."""
    path = Path(path)
    missing = [f for f in RUN_FILES if not (path / f).is_file()]
    if missing or not results.completed_repetitions(path):
        lacking = ', '.join(missing + ([] if results.completed_repetitions(path) else ['results/part-*.parquet']))
        raise UsageError(f"'{path}' is not a finished run directory of this tool (it lacks {lacking})")
    record = results.read_json(path / 'config.json')
    note = record['config'].get('note')
    return Run(name=name or (note if note not in (None, '', 'None') else path.name), path=path, record=record,
               setup=results.read_json(path / 'setup.json'), table=results.read_table(path))


def load_run(source: str | Path, name: str | None = None) -> Run:
    """A run from a local directory, or from wandb given ENTITY/PROJECT/RUN_ID (or its wandb.ai address)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return read_run(path, name)
    if WANDB_PATH.match(str(source)):
        return read_run(fetch_wandb_run(str(source)), name)
    raise UsageError(f"no run directory '{source}' (nor a wandb run path ENTITY/PROJECT/RUN_ID)")


def load_runs(sources: Sequence[str | Path]) -> list[Run]:
    """Runs with distinct names (a repeated note falls back to the directory name, then a number)."""
    runs = [load_run(source) for source in sources]
    notes = Counter(run.name for run in runs)
    for run in runs:
        if notes[run.name] > 1:
            run.name = f'{run.name} ({run.path.name})'
    seen = Counter()
    for run in runs:
        seen[run.name] += 1
        if seen[run.name] > 1:
            run.name = f'{run.name} #{seen[run.name]}'
    return runs


def fetch_wandb_run(run_path: str, dest: Path | None = None) -> Path:
    """Download a wandb run's config.json, setup.json and results/ into `dest` (default: the cache)."""
    from icl.tracking import has_api_key
    match = WANDB_PATH.match(run_path)
    if match is None:
        raise UsageError(f"'{run_path}' is not a wandb run path; use ENTITY/PROJECT/RUN_ID")
    entity, project, run_id = match['entity'], match['project'], match['id']
    if not has_api_key():
        raise UsageError(f"'{run_path}' is not a local run directory, and reading it from wandb needs an API key "
                         '(run `wandb login` on a machine with network, or give the run directory)')
    import wandb

    from icl.models import cache_dir  # imports torch: only on this rare path
    dest = Path(dest) if dest else cache_dir() / 'wandb-runs' / entity / project / run_id
    try:
        run = wandb.Api(timeout=30).run(f'{entity}/{project}/{run_id}')
        for file in run.files():
            wanted = file.name in RUN_FILES or (file.name.startswith(results.TABLE_DIR + '/')
                                                and file.name.endswith('.parquet'))
            local = dest / file.name
            if wanted and not (local.is_file() and local.stat().st_size == file.size):  # parts never change
                file.download(root=str(dest), replace=True)
    except (wandb.errors.Error, OSError, ValueError) as error:
        raise UsageError(f"cannot read wandb run '{run_path}': {str(error).splitlines()[0]}") from None
    return dest


def run_curves(runs: Sequence[Run], smooth_n: int = 1, choose_logits: str | None = None,
               invert_logits: bool = False, labels: str = 'true') -> pd.DataFrame:
    """Tidy curves of several runs: run, variant, metric, position, mean, sem, n."""
    frames = [curves(run.metrics(choose_logits, invert_logits, labels), smooth_n).assign(run=run.name)
              for run in runs]
    table = pd.concat(frames, ignore_index=True)
    return table[['run', 'variant', 'metric', 'position', 'mean', 'sem', 'n']]


# ------------------------------------------------------------------ tests

HYPOTHESES = {
    'NH1': 'ICL predictions do not depend on the in-context labels',
    'NH2': 'ICL overcomes the pre-training preference for label names',
    'NH3': 'ICL treats all in-context information equally',
}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One test of 'condition a and condition b have the same mean' over repetitions."""
    hypothesis: str
    a: str
    b: str
    metric: str
    positions: str  # the in-context positions averaged per repetition
    paired: bool
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    difference: float  # mean_a - mean_b
    ci_low: float
    ci_high: float
    effect_size: float  # Cohen's d_z (paired) or d (independent)
    p_value: float
    test: str

    def rejected(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def mean_difference_test(a: Sequence[float], b: Sequence[float], paired: bool, confidence: float = 0.95,
                         n_resamples: int = 9999, seed: int = 0) -> dict:
    """Two-sided permutation test and bootstrap interval for mean(a) - mean(b).

    Paired (a[i], b[i] from the same repetition, i.e. the same in-context examples): the
    permutation test swaps a[i] and b[i] within pairs (exact when 2**n <= n_resamples);
    it assumes independent repetitions and, under the null, exchangeable conditions
    within a repetition. Effect size: Cohen's d_z = mean(a - b) / sd(a - b).
    Independent: the test shuffles values between the groups; it assumes independent,
    exchangeable repetitions. Effect size: Cohen's d with the pooled standard deviation.
    The interval is a bias-corrected and accelerated (BCa) bootstrap over repetitions
    (percentile bootstrap where BCa is undefined, e.g. constant data).
    Returns mean_a, mean_b, difference, ci_low, ci_high, effect_size, p_value, test.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if min(len(a), len(b)) < 2 or (paired and len(a) != len(b)):
        raise UsageError(f'a test needs at least 2 repetitions per condition{" and equal counts" if paired else ""}'
                         f' (got {len(a)} and {len(b)})')
    rng = np.random.default_rng(seed)
    kind = 'samples' if paired else 'independent'
    p_value = stats.permutation_test((a, b), _mean_difference, permutation_type=kind, vectorized=True,
                                     n_resamples=n_resamples, alternative='two-sided', rng=rng).pvalue
    ci_low, ci_high = _bootstrap_interval(a, b, paired, confidence, n_resamples, rng)
    difference = float(a.mean() - b.mean())
    spread = np.std(a - b, ddof=1) if paired else np.sqrt(
        ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    effect = 0.0 if difference == 0 else difference / spread if spread > 0 else np.copysign(np.inf, difference)
    test = ('paired permutation test (sign flips within repetitions)' if paired
            else 'permutation test (independent groups)')
    return {'mean_a': float(a.mean()), 'mean_b': float(b.mean()), 'difference': difference,
            'ci_low': ci_low, 'ci_high': ci_high, 'effect_size': float(effect), 'p_value': float(min(p_value, 1.0)),
            'test': f'{test}, {confidence:.0%} BCa bootstrap interval'}


def _bootstrap_interval(a, b, paired, confidence, n_resamples, rng) -> tuple[float, float]:
    constant = np.ptp(a - b) == 0 if paired else np.ptp(a) == 0 and np.ptp(b) == 0
    if constant:
        return float(a.mean() - b.mean()), float(a.mean() - b.mean())  # constant: no spread to resample
    for method in ('BCa', 'percentile'):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # BCa warns (and gives NaN) on degenerate resamples
            interval = stats.bootstrap((a, b), _mean_difference, paired=paired, vectorized=True,
                                       confidence_level=confidence, n_resamples=n_resamples, method=method,
                                       rng=rng).confidence_interval
        if np.isfinite(interval.low) and np.isfinite(interval.high):
            return float(interval.low), float(interval.high)
    return float('nan'), float('nan')


def late_positions(num_examples: int, window: int = 10) -> np.ndarray:
    """The last `window` in-context positions (at most the second half)."""
    window = max(1, min(window, num_examples // 2))
    return np.arange(num_examples - window, num_examples)


def per_repetition(metrics: pd.DataFrame, variant: str, positions: Sequence[int], metric: str) -> pd.Series:
    """Per repetition: `metric` of `variant` averaged over `positions` (index: repetition)."""
    rows = metrics[(metrics['variant'] == variant) & metrics['position'].isin(positions)]
    if rows.empty:
        raise UsageError(f"no rows of variant '{variant}' at positions {list(positions)}")
    return rows.groupby('repetition')[metric].mean()


def same_examples(a: Run, b: Run) -> bool:
    """Did each repetition of both runs show the same training rows (same data, seed, count)? Then pair them."""
    def rows(run: Run) -> pd.Series:
        context = run.table[~run.table['is_query'] & (run.table['variant'] == run.variants[0])]
        return context.groupby('repetition')['train_idx'].apply(tuple)
    if a.record['config']['dataset']['name'] != b.record['config']['dataset']['name']:
        return False
    ra, rb = rows(a), rows(b)
    common = ra.index.intersection(rb.index)
    return len(common) >= 2 and bool((ra[common] == rb[common]).all())


def _compare(hypothesis: str, a: str, values_a: pd.Series, b: str, values_b: pd.Series, metric: str,
             positions: Sequence[int], paired: bool, **kwargs) -> Comparison:
    if paired:
        common = values_a.index.intersection(values_b.index)
        values_a, values_b = values_a[common], values_b[common]
    result = mean_difference_test(values_a.to_numpy(), values_b.to_numpy(), paired, **kwargs)
    return Comparison(hypothesis=hypothesis, a=a, b=b, metric=metric, positions=_span(positions), paired=paired,
                      n_a=len(values_a), n_b=len(values_b), **result)


def _span(positions: Sequence[int]) -> str:
    positions = [int(p) for p in positions]
    contiguous = len(positions) > 2 and positions == list(range(positions[0], positions[-1] + 1))
    return f'{positions[0]}-{positions[-1]}' if contiguous else ', '.join(map(str, positions))


def nh1_random_labels(default: Run, random: Run, metric: str = 'log_lik', window: int = 10,
                      variant: str = 'default', **kwargs) -> Comparison:
    """NH1: predictions do not depend on the in-context labels.

    Compares `variant` of a run with the true labels against the same variant with random
    labels, over the last `window` positions (each repetition's mean). Paired when both runs
    showed the same examples per repetition (same data and seed), else independent.
    Rejecting NH1 with a positive difference: the model uses the in-context labels.
    """
    positions = late_positions(min(default.num_examples, random.num_examples), window)
    return _compare('NH1', f'{default.name}: {variant}', per_repetition(default.metrics(), variant, positions, metric),
                    f'{random.name}: {variant}', per_repetition(random.metrics(), variant, positions, metric),
                    metric, positions, same_examples(default, random), **kwargs)


def nh2_pretraining_preference(run: Run, metric: str = 'log_lik', window: int = 10, baseline: str = 'default',
                               **kwargs) -> list[Comparison]:
    """NH2: late in the context, ICL overcomes the pre-training preference for label names.

    For every other variant of a run (flipped or replacement names), compares `baseline`
    against it over the last `window` positions, each variant measured against its own
    names; paired (the variants of a repetition share their examples). Rejecting NH2 with a
    positive difference: the default names still do better after `window` examples.
    """
    if baseline not in run.variants or len(run.variants) < 2:
        raise UsageError(f"NH2 needs a run with the '{baseline}' variant and at least one other "
                         f"(run '{run.name}' has {', '.join(run.variants)}; use CLASS_NAMES=ALL or DEFAULT_AND_FLIP)")
    positions = late_positions(run.num_examples, window)
    metrics = run.metrics()
    reference = per_repetition(metrics, baseline, positions, metric)
    return [_compare('NH2', f'{run.name}: {baseline}', reference, f'{run.name}: {variant}',
                     per_repetition(metrics, variant, positions, metric), metric, positions, True, **kwargs)
            for variant in run.variants if variant != baseline]


def equal_count_positions(run: Run) -> np.ndarray:
    """Positions i > 0 whose examples 0..i-1 carry as many flipped as unflipped labels."""
    flipped = run.flipped()
    before = np.concatenate([[0], np.cumsum(flipped)[:-1]])
    positions = np.arange(run.num_examples)
    return positions[(positions > 0) & (2 * before == positions)]


def nh3_equal_treatment(halfway: Run, alternating: Run, metric: str = 'log_lik', reference: str = 'default',
                        **kwargs) -> list[Comparison]:
    """NH3: all in-context information is treated equally (order does not matter).

    Compared at the positions where both runs have shown equally many flipped and unflipped
    labels (the halfway run needs flip_labels_after < num_prompt_examples / 2). Every variant
    is measured against the original labels read with the `reference` (default) class names,
    i.e. the probability of the pre-training label relationship: for the default variant of
    the halfway run the context goes correct -> flipped, for its flipped variant flipped ->
    correct; both are compared with the alternating run's `reference` variant. Accuracy
    w.r.t. the shown label would not do: at the same position it is the flipped label in one
    run and the unflipped one in the other. Under NH3 both differences are zero; a recency
    bias makes correct -> flipped negative and flipped -> correct positive.
    """
    if len(halfway.change_points()) != 1 or len(alternating.change_points()) < 2:
        raise UsageError(f"NH3 needs a run that flips once ('{halfway.name}' changes at "
                         f'{halfway.change_points()}) and one that alternates (flip_labels_multi=True; '
                         f"'{alternating.name}' changes at {alternating.change_points()})")
    positions = np.intersect1d(equal_count_positions(halfway), equal_count_positions(alternating))
    if not len(positions):
        raise UsageError(f"no position of '{halfway.name}' and '{alternating.name}' follows equally many flipped and "
                         'unflipped labels; flip after fewer than half the examples (runs.md: 60 of 140)')
    paired = same_examples(halfway, alternating)
    values = per_repetition(alternating.metrics(choose_logits=reference), reference, positions, metric)
    metrics = halfway.metrics(choose_logits=reference)
    comparisons = []
    for variant in halfway.variants:
        direction = 'correct -> flipped' if variant == reference else 'flipped -> correct'
        comparisons.append(_compare('NH3', f'{halfway.name}: {variant} ({direction})',
                                    per_repetition(metrics, variant, positions, metric),
                                    f'{alternating.name}: {reference}', values, metric, positions, paired, **kwargs))
    return comparisons


def comparisons_table(comparisons: Sequence[Comparison], alpha: float = 0.05) -> pd.DataFrame:
    """One row per comparison, with the null hypothesis and whether it is rejected at `alpha`."""
    rows = [{**dataclasses.asdict(c), 'null hypothesis': HYPOTHESES[c.hypothesis],
             'verdict': 'rejected' if c.rejected(alpha) else 'not rejected'} for c in comparisons]
    return pd.DataFrame(rows)
