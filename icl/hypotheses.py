"""The paper's three null hypotheses as statistical tests on runs (curves: icl/analysis.py).

Per repetition, a metric is averaged over a set of positions; two conditions are compared
by the mean of that value over repetitions (see `mean_difference_test`).
  NH1  predictions do not depend on the in-context labels: default vs random labels.
  NH2  ICL overcomes the pre-training preference: default vs other label names, late in context.
  NH3  all in-context information is treated equally: flip halfway (both directions) vs
       alternating flips, at positions preceded by equally many flipped and unflipped labels.
"""
import dataclasses
import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from icl.analysis import Run, context_rows
from icl.errors import UsageError
from icl.prompts import positions_text

N_RESAMPLES = 9999  # random permutations; the test is exact while 2**n <= this
WEAK_BELOW = 3  # an NH3 comparison on fewer positions is flagged as weak

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
    num_positions: int = 0  # how many positions `positions` names

    def rejected(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha

    def can_reject(self, alpha: float = 0.05) -> bool:
        """Could any data reach p < alpha with these repetition counts?"""
        return smallest_p_value(self.n_a, self.n_b, self.paired) < alpha

    @property
    def weak(self) -> bool:
        """An NH3 comparison resting on fewer than WEAK_BELOW positions (one noisy position decides it)."""
        return self.hypothesis == 'NH3' and self.num_positions < WEAK_BELOW


@dataclasses.dataclass(frozen=True)
class ResampledNull:
    """The mean difference under every resampled assignment of the values to a and b, for any shift of a.

    Shifting a by -delta (testing 'mean(a) - mean(b) = delta') moves the observed statistic to
    observed - delta and resample k's to offsets[k] - delta * slopes[k]; slopes <= 1, so the
    count of resamples at or above (below) the observed value never falls (rises) with delta.
    The accepted shifts {delta: p(delta) >= alpha} therefore form one interval: the confidence
    interval that agrees with the test (0 lies in it exactly when p >= alpha).
    """
    observed: float
    offsets: np.ndarray
    slopes: np.ndarray
    exact: bool  # every assignment enumerated (else random ones, p counted as (hits + 1) / (K + 1))
    tolerance: float  # statistics closer than this count as ties

    def tail_fractions(self, delta: float) -> tuple[float, float]:
        """(P(T* >= T), P(T* <= T)) at shift delta."""
        t, null = self.observed - delta, self.offsets - delta * self.slopes
        extra = 0 if self.exact else 1
        size = len(null) + extra
        return (np.sum(null >= t - self.tolerance) + extra) / size, (np.sum(null <= t + self.tolerance) + extra) / size

    def p_value(self, delta: float = 0.0) -> float:
        """Two-sided: twice the smaller tail, at most 1."""
        return float(min(1.0, 2 * min(self.tail_fractions(delta))))

    def interval(self, alpha: float) -> tuple[float, float]:
        """The shifts the test does not reject at `alpha` (infinite where no data could reject)."""
        moving = self.slopes < 1
        breaks = (self.observed - self.offsets[moving]) / (1 - self.slopes[moving])  # where a resample ties
        span = np.concatenate([breaks, [self.observed, 0.0]])
        far_low, far_high = span.min() - 1 - np.ptp(span), span.max() + 1 + np.ptp(span)
        # the upper tail grows with delta, the lower one shrinks: each bound is where one crosses alpha / 2
        low = self._crossing(lambda d: self.tail_fractions(d)[0] >= alpha / 2, far_low, far_high)
        high = self._crossing(lambda d: self.tail_fractions(d)[1] < alpha / 2, far_low, far_high)
        return self._snap(low, breaks), self._snap(high, breaks)

    def _snap(self, bound: float, breaks: np.ndarray) -> float:
        """The tie point a bisected bound converged to (bounds of the accepted set lie on tie points)."""
        if not np.isfinite(bound) or not len(breaks):
            return bound
        nearest = breaks[np.argmin(np.abs(breaks - bound))]
        bound = float(nearest) if abs(nearest - bound) <= 1e3 * self.tolerance else bound
        return 0.0 if abs(bound) <= 1e3 * self.tolerance else bound  # a tie at 0 up to rounding

    @staticmethod
    def _crossing(accepted, low: float, high: float) -> float:
        """The delta where the monotone predicate turns from False (low) to True (high); inf if never."""
        if accepted(low):
            return -math.inf
        if not accepted(high):
            return math.inf
        for _ in range(200):
            middle = (low + high) / 2
            if middle in (low, high):
                break
            low, high = (low, middle) if accepted(middle) else (middle, high)
        return float(high)


def resampled_null(a: np.ndarray, b: np.ndarray, paired: bool, n_resamples: int = N_RESAMPLES,
                   seed: int = 0) -> ResampledNull:
    """The permutation distribution of mean(a) - mean(b): sign flips within pairs, or reassignments of groups."""
    rng = np.random.default_rng(seed)
    scale = max(np.abs(a).max(), np.abs(b).max(), 1e-300)
    if paired:
        n = len(a)
        exact = 2 ** n <= n_resamples
        signs = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1) * 2 - 1 if exact \
            else rng.choice([-1, 1], size=(n_resamples, n))
        offsets, slopes = signs @ (a - b) / n, signs.sum(1) / n
    else:
        n_a, values = len(a), np.concatenate([a, b])
        n_b = len(b)
        exact = math.comb(len(values), n_a) <= n_resamples
        if exact:
            chosen = np.zeros((math.comb(len(values), n_a), len(values)), dtype=bool)
            for row, members in enumerate(itertools.combinations(range(len(values)), n_a)):
                chosen[row, list(members)] = True
        else:
            chosen = rng.permuted(np.tile(np.arange(len(values)) < n_a, (n_resamples, 1)), axis=1)
        offsets = chosen @ values / n_a - ~chosen @ values / n_b
        from_a = chosen[:, :n_a].sum(1)
        slopes = from_a / n_a - (n_a - from_a) / n_b
    return ResampledNull(observed=float(a.mean() - b.mean()), offsets=offsets, slopes=slopes, exact=exact,
                         tolerance=1e-12 * scale)


def mean_difference_test(a: Sequence[float], b: Sequence[float], paired: bool, confidence: float = 0.95,
                         n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict:
    """Two-sided permutation test of mean(a) - mean(b) and the confidence interval that inverts it.

    Paired (a[i], b[i] from the same repetition, i.e. the same in-context examples): the
    test flips the sign of a[i] - b[i] (all 2**n flips while they number at most n_resamples,
    else n_resamples random ones); it assumes independent repetitions and, under the null,
    exchangeable conditions within a repetition. Effect size: Cohen's d_z = mean(a - b) / sd(a - b).
    Independent: the test reassigns the values to the groups; it assumes independent,
    exchangeable repetitions. Effect size: Cohen's d with the pooled standard deviation.
    The interval holds every shift delta that the same test, run on a - delta vs b, does not
    reject at 1 - confidence (`ResampledNull.interval`): with confidence = 1 - alpha it contains
    0 exactly when p >= alpha, and it is unbounded when no data could reject (too few repetitions).
    Returns mean_a, mean_b, difference, ci_low, ci_high, effect_size, p_value, test.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if min(len(a), len(b)) < 2 or (paired and len(a) != len(b)):
        raise UsageError(f'a test needs at least 2 repetitions per condition{" and equal counts" if paired else ""}'
                         f' (got {len(a)} and {len(b)})')
    null = resampled_null(a, b, paired, n_resamples, seed)
    ci_low, ci_high = null.interval(1 - confidence)
    difference = float(a.mean() - b.mean())
    spread = np.std(a - b, ddof=1) if paired else np.sqrt(
        ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    effect = 0.0 if difference == 0 else difference / spread if spread > 0 else np.copysign(np.inf, difference)
    test = ('paired permutation test (sign flips within repetitions)' if paired
            else 'permutation test (independent groups)')
    return {'mean_a': float(a.mean()), 'mean_b': float(b.mean()), 'difference': difference,
            'ci_low': ci_low, 'ci_high': ci_high, 'effect_size': float(effect), 'p_value': null.p_value(),
            'test': f'{test}, {confidence:.0%} interval inverting the same test'}


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
        context = context_rows(run.table)
        context = context[context['variant'] == run.variants[0]]
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
    return Comparison(hypothesis=hypothesis, a=a, b=b, metric=metric, positions=positions_text(positions),
                      paired=paired, n_a=len(values_a), n_b=len(values_b), num_positions=len(positions), **result)


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


def nh3_positions(halfway: Run, alternating: Run) -> np.ndarray:
    """Where both runs have shown equally many flipped and unflipped labels; UsageError if nowhere."""
    if len(halfway.change_points()) != 1 or len(alternating.change_points()) < 2:
        raise UsageError(f"NH3 needs a run that flips once ('{halfway.name}' changes at "
                         f'{halfway.change_points()}) and one that alternates (flip_labels_multi=True; '
                         f"'{alternating.name}' changes at {alternating.change_points()})")
    positions = np.intersect1d(equal_count_positions(halfway.flipped()), equal_count_positions(alternating.flipped()))
    if not len(positions):
        raise UsageError(f"no position of '{halfway.name}' and '{alternating.name}' follows equally many flipped and "
                         'unflipped labels; flip after fewer than half the examples (runs.md: 60 of 140)')
    return positions


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
    positions = nh3_positions(halfway, alternating)
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


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (family-wise error over all of `p_values`), in their order."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind='stable')
    adjusted = np.minimum(1.0, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def verdict(c: Comparison, p_holm: float, alpha: float, tests: int = 1, family_floor: float = 0.0) -> str:
    """'rejected' / 'not rejected' on the Holm-adjusted p, or why this test could not reject at all: its
    repetitions are too few for p < alpha, or, among `tests` tests whose smallest possible p is
    `family_floor`, too few for Holm's first step (p < alpha / tests)."""
    n = c.n_a if c.paired else f'{c.n_a} and {c.n_b}'
    if not c.can_reject(alpha):
        return f'cannot reject at alpha = {alpha:g} with n = {n}; need >= {repetitions_needed(alpha, c.paired)} ' \
               'repetitions'
    if tests > 1 and tests * family_floor >= alpha:
        return (f'cannot reject at alpha = {alpha:g} over {tests} tests (Holm) with n = {n}; need >= '
                f'{repetitions_needed(alpha / tests, c.paired)} repetitions')
    return 'rejected' if p_holm < alpha else 'not rejected'


METRIC_UNITS = {'accuracy': 'accuracy', 'log_lik': 'nats of log-likelihood'}
FINDINGS = {  # (hypothesis, a does better) -> what a rejection says
    ('NH1', True): 'the model uses the in-context labels',
    ('NH1', False): 'the predictions depend on the in-context labels (random labels do better)',
    ('NH2', True): 'ICL did not overcome the pre-training preference for the default names',
    ('NH2', False): 'the label names still matter late in the context (the other names do better)',
    ('NH3', True): 'the order of the labels matters',
    ('NH3', False): 'the order of the labels matters',
}


def _name(side: str) -> str:
    return side.split(' (')[0]


def _finding(c: Comparison) -> str:
    finding = FINDINGS[c.hypothesis, c.difference > 0]
    if c.hypothesis == 'NH3':  # recency: the labels seen last weigh more
        recent_wins = ('flipped -> correct' in c.a) == (c.difference > 0)
        finding += ': the labels seen last weigh more (recency)' if recent_wins else \
            ': the labels seen first weigh more'
    return finding


def reading(c: Comparison, p_holm: float, alpha: float, decided: str | None = None) -> str:
    """The row in plain words: who does better by how much, where, and what it says about the hypothesis
    (`decided`: the row's verdict, by default `verdict` of this test alone)."""
    better, worse = (_name(c.a), _name(c.b)) if c.difference >= 0 else (_name(c.b), _name(c.a))
    size = f'{abs(c.difference):.3g} {METRIC_UNITS.get(c.metric, c.metric)}'
    where = f'over position{"s" if c.num_positions != 1 else ""} {c.positions}'
    p_text = f'p = {c.p_value:.2g}, Holm p = {p_holm:.2g}'
    decided = decided or verdict(c, p_holm, alpha)
    if decided.startswith('cannot'):
        bar = f'p < {alpha:g}' if '(Holm)' not in decided else f"Holm's p < {alpha:g} over these tests"
        text = (f'{better} is ahead of {worse} by {size} {where} ({p_text}), but with these repetitions no data '
                f'could reach {bar}: no evidence either way')
    elif decided == 'rejected':
        text = f'{better} beats {worse} by {size} {where} ({p_text}): {_finding(c)}'
    elif c.p_value < alpha:
        text = (f'{better} is ahead of {worse} by {size} {where} ({p_text}): significant alone, but not once '
                f'corrected for the other tests; weak evidence that {_finding(c)}')
    else:
        text = (f'{better} is ahead of {worse} by {size} {where} ({p_text}), which chance alone could explain: '
                f'consistent with "{HYPOTHESES[c.hypothesis]}" (not proof of it)')
    if c.weak:
        text += f'; weak: rests on {c.num_positions} position{"s" if c.num_positions != 1 else ""}'
    return text


def comparisons_table(comparisons: Sequence[Comparison], alpha: float = 0.05) -> pd.DataFrame:
    """One row per comparison with its Holm-adjusted p (over all `comparisons`), verdict and plain reading;
    'cannot reject' where no data could pass alpha with these repetitions (alone, or Holm over all of them)."""
    p_holm = holm([c.p_value for c in comparisons])
    floor = min((smallest_p_value(c.n_a, c.n_b, c.paired) for c in comparisons), default=1.0)
    verdicts = [verdict(c, p, alpha, len(comparisons), floor) for c, p in zip(comparisons, p_holm)]
    rows = [{**dataclasses.asdict(c), 'p_holm': p, 'null hypothesis': HYPOTHESES[c.hypothesis],
             'verdict': v, 'weak': c.weak, 'reading': reading(c, p, alpha, v)}
            for c, p, v in zip(comparisons, p_holm, verdicts)]
    return pd.DataFrame(rows)
