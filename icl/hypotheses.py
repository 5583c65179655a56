"""The paper's three null hypotheses as statistical tests on runs (curves: icl/analysis.py).

Per repetition, a metric is averaged over a set of positions; two conditions are compared
by the mean of that value over repetitions (see `mean_difference_test`).
  NH1  predictions do not depend on the in-context labels: default vs random labels.
  NH2  ICL overcomes the pre-training preference: default vs other label names, late in context.
  NH3  all in-context information is treated equally: flip halfway (both directions) vs
       alternating flips, at positions preceded by equally many flipped and unflipped labels.
"""
import dataclasses
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from icl.analysis import Run
from icl.errors import UsageError

N_RESAMPLES = 9999  # permutations and bootstrap resamples; the test is exact while 2**n <= this

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
                         n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict:
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


def smallest_p_value(n_a: int, n_b: int | None = None, paired: bool = True, n_resamples: int = N_RESAMPLES) -> float:
    """The smallest two-sided p-value `mean_difference_test` can return for these counts.

    Exact test (all assignments, while they number at most n_resamples): the observed one and its
    mirror image, 2 / assignments; randomised test: 2 / (n_resamples + 1). No data can do better,
    so a test with smallest_p_value >= alpha cannot reject at alpha.
    """
    assignments = 2 ** n_a if paired else math.comb(n_a + n_b, n_a)
    return min(1.0, 2 / assignments if assignments <= n_resamples else 2 / (n_resamples + 1))


def repetitions_needed(alpha: float, paired: bool = True) -> int:
    """Fewest repetitions (per condition) with which a test can reject at `alpha`."""
    n = 2
    while smallest_p_value(n, n, paired) >= alpha:
        n += 1
    return n


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


def equal_count_positions(flipped: Sequence[bool]) -> np.ndarray:
    """Positions i > 0 whose examples 0..i-1 carry as many flipped as unflipped labels."""
    flipped = np.asarray(flipped, dtype=int)
    before = np.concatenate([[0], np.cumsum(flipped)[:-1]])
    positions = np.arange(len(flipped))
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
    positions = np.intersect1d(equal_count_positions(halfway.flipped()), equal_count_positions(alternating.flipped()))
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
