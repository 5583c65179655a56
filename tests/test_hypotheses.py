"""The null-hypothesis tests: against a hand computation from the stored logits of real runs
of the packaged model, and the statistics on synthetic data whose answer is known."""
import dataclasses
import itertools
import json

import numpy as np
import pytest
from evaluation_runs import FLIP_AFTER, hand_metrics

from icl import hypotheses
from icl.errors import UsageError


def test_equal_label_counts_follow_where_labels_flip(runs):
    assert hypotheses.equal_count_positions(runs['halfway'].flipped()).tolist() == [2 * FLIP_AFTER]
    assert hypotheses.equal_count_positions(runs['alternating'].flipped()).tolist() == [2, 4, 6, 8]


def test_runs_of_the_same_seed_and_data_are_paired(runs):
    assert hypotheses.same_examples(runs['default'], runs['random'])
    assert hypotheses.same_examples(runs['halfway'], runs['alternating'])
    table = runs['random'].table.copy()
    table.loc[table['repetition'] == 1, 'train_idx'] += 1
    assert not hypotheses.same_examples(runs['default'], dataclasses.replace(runs['random'], table=table))


def late_mean(hand, positions):
    return hand[:, positions].mean(1)


def test_nh1_compares_late_positions_of_default_and_random_labels(runs, run_dirs):
    result = hypotheses.nh1_random_labels(runs['default'], runs['random'], 'log_lik', window=10)
    a = late_mean(hand_metrics(run_dirs['default'], 'default')['log_lik'], slice(5, 10))
    b = late_mean(hand_metrics(run_dirs['random'], 'default')['log_lik'], slice(5, 10))
    assert (result.hypothesis, result.positions, result.paired, result.n_a, result.n_b) == ('NH1', '5-9', True, 4, 4)
    assert (result.a, result.b) == ('default: default', 'random: default')
    np.testing.assert_allclose([result.mean_a, result.mean_b, result.difference], [a.mean(), b.mean(), (a - b).mean()])
    np.testing.assert_allclose(result.effect_size, (a - b).mean() / (a - b).std(ddof=1))
    assert result.p_value == pytest.approx(exact_sign_flip_p(a - b))


def test_nh2_compares_each_variant_with_the_default_names(runs, run_dirs):
    [result] = hypotheses.nh2_pretraining_preference(runs['replacement'], 'accuracy', window=3)
    a = late_mean(hand_metrics(run_dirs['replacement'], 'default')['accuracy'], slice(7, 10))
    b = late_mean(hand_metrics(run_dirs['replacement'], 'flip')['accuracy'], slice(7, 10))
    assert (result.hypothesis, result.b, result.positions, result.paired, result.n_a) == (
        'NH2', 'replacement: flip', '7-9', True, 3)
    np.testing.assert_allclose([result.mean_a, result.mean_b], [a.mean(), b.mean()])
    with pytest.raises(UsageError, match="NH2 needs a run with the 'default' variant and at least one other"):
        hypotheses.nh2_pretraining_preference(runs['default'])


def test_nh3_reads_both_directions_with_default_names_at_equal_label_counts(runs, run_dirs):
    results = hypotheses.nh3_equal_treatment(runs['halfway'], runs['alternating'], 'log_lik')
    assert [r.a for r in results] == ['halfway: default (correct -> flipped)', 'halfway: flip (flipped -> correct)']
    b = hand_metrics(run_dirs['alternating'], 'default')['log_lik'][:, 8]
    for result, variant in zip(results, ('default', 'flip')):
        a = hand_metrics(run_dirs['halfway'], variant, names_of='default')['log_lik'][:, 8]
        assert (result.positions, result.paired, result.b) == ('8', True, 'alternating: default')
        np.testing.assert_allclose([result.mean_a, result.mean_b, result.difference],
                                   [a.mean(), b.mean(), (a - b).mean()])


def test_nh3_needs_a_position_with_equal_label_counts(runs):
    record = json.loads(json.dumps(runs['halfway'].record))
    record['config']['dataset']['config']['flip_labels_after'] = 6  # 6 unflipped, then only 3 flipped ones
    late_flip = dataclasses.replace(runs['halfway'], record=record)
    with pytest.raises(UsageError, match='flip after fewer than half the examples'):
        hypotheses.nh3_equal_treatment(late_flip, runs['alternating'])
    with pytest.raises(UsageError, match='NH3 needs a run that flips once'):
        hypotheses.nh3_equal_treatment(runs['alternating'], runs['halfway'])


# ------------------------------------------------------------------ statistics on synthetic data

def exact_sign_flip_p(differences):
    """Two-sided p of the paired permutation test, by enumerating every sign flip."""
    d = np.asarray(differences, dtype=float)
    observed = abs(d.mean())
    flips = np.array(list(itertools.product([1, -1], repeat=len(d))))
    return np.mean(np.abs((flips * d).mean(1)) >= observed - 1e-12)


def test_identical_samples_give_p_one_and_no_difference():
    x = np.random.default_rng(1).normal(size=20)
    paired = hypotheses.mean_difference_test(x, x.copy(), paired=True)
    assert paired['p_value'] == 1.0
    assert (paired['difference'], paired['ci_low'], paired['ci_high'], paired['effect_size']) == (0, 0, 0, 0)
    independent = hypotheses.mean_difference_test(x, x.copy(), paired=False)
    assert independent['p_value'] >= 0.95  # random shuffles: two-sided p = 2 min(P(T >= 0), P(T <= 0))
    assert (independent['difference'], independent['effect_size']) == (0, 0)
    assert independent['ci_low'] < 0 < independent['ci_high']


def test_paired_p_value_equals_full_enumeration_of_sign_flips():
    a = np.array([0.9, 0.4, 0.7, 1.3, 0.2, 0.8])
    b = np.array([0.5, 0.6, 0.1, 0.9, 0.3, 0.2])
    result = hypotheses.mean_difference_test(a, b, paired=True)
    assert result['p_value'] == pytest.approx(exact_sign_flip_p(a - b))
    # |d| = .4 .2 .6 .4 .1 .6 sums to 2.3, observed 1.7: only flipping a subset of {.1, .2} (4 ways), or its mirror
    assert result['p_value'] == pytest.approx(8 / 64)
    assert 'paired permutation test' in result['test']


@pytest.mark.parametrize('paired', [True, False])
def test_a_shift_gives_a_small_p_and_an_interval_around_it(paired):
    rng = np.random.default_rng(2)
    b = rng.normal(size=40)
    a = (b if paired else rng.normal(size=40)) + 1.0 + rng.normal(scale=0.5 if paired else 1.0, size=40)
    result = hypotheses.mean_difference_test(a, b, paired)
    assert result['p_value'] < 0.001
    assert result['ci_low'] < 1.0 < result['ci_high'] and result['ci_low'] > 0
    assert result['ci_low'] <= result['difference'] <= result['ci_high']
    spread = (a - b).std(ddof=1) if paired else np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)  # equal sizes
    assert result['effect_size'] == pytest.approx((a.mean() - b.mean()) / spread)


def test_intervals_cover_the_true_difference_about_as_often_as_they_claim():
    rng = np.random.default_rng(3)
    covered = []
    for _ in range(60):
        b = rng.normal(size=25)
        a = b + 0.3 + rng.normal(size=25)
        result = hypotheses.mean_difference_test(a, b, paired=True, n_resamples=999, seed=int(rng.integers(1 << 30)))
        covered.append(result['ci_low'] <= 0.3 <= result['ci_high'])
    assert 0.83 <= np.mean(covered) <= 1.0  # nominal 0.95; P(< 50 of 60 covered) < 1% for a 95% interval


def test_too_few_repetitions_is_a_usage_error():
    with pytest.raises(UsageError, match=r'at least 2 repetitions per condition \(got 1 and 3\)'):
        hypotheses.mean_difference_test([1.0], [1.0, 2.0, 3.0], paired=False)


def test_smallest_p_value_is_what_the_test_returns_at_its_most_extreme():
    for n in (3, 5, 8):
        a, b = np.arange(n) + 1.0, np.zeros(n)  # every difference positive: the most extreme data
        p = hypotheses.mean_difference_test(a, b, paired=True)['p_value']
        assert p == pytest.approx(hypotheses.smallest_p_value(n)) == pytest.approx(2 / 2 ** n)
    assert hypotheses.smallest_p_value(5) == 0.0625
    assert hypotheses.smallest_p_value(20) == pytest.approx(2 / 10000)  # randomised beyond 2**n > 9999
    assert hypotheses.smallest_p_value(3, 3, paired=False) == pytest.approx(2 / 20)
    assert hypotheses.repetitions_needed(0.05) == 6  # 2/2**5 = 0.0625 >= 0.05, 2/2**6 < 0.05


def comparison(p_value=0.01, n=6, difference=0.35, hypothesis='NH1', a='default: default', b='random: default',
               metric='accuracy', positions='10-19', num_positions=10, paired=True):
    return hypotheses.Comparison(
        hypothesis=hypothesis, a=a, b=b, metric=metric, positions=positions, paired=paired, n_a=n, n_b=n,
        mean_a=0.9, mean_b=0.9 - difference, difference=difference, ci_low=0.1, ci_high=0.5, effect_size=1.5,
        p_value=p_value, test='t', num_positions=num_positions)


@pytest.mark.parametrize('paired', [True, False])
def test_the_interval_excludes_zero_exactly_when_the_test_rejects(paired):
    """The issue's contradiction (CI excluding 0 with p = 0.066) cannot happen: one resampling scheme for both."""
    rng = np.random.default_rng(5)
    agreements, rejections = [], 0
    for n in (5, 6, 7, 9, 12, 20):
        for _ in range(15):
            b = rng.normal(size=n)
            a = b * paired + rng.normal(size=n) + rng.uniform(0, 1.5)
            for alpha in (0.05, 0.1):
                result = hypotheses.mean_difference_test(a, b, paired, confidence=1 - alpha)
                rejections += result['p_value'] < alpha
                agreements.append((result['ci_low'] > 0 or result['ci_high'] < 0) == (result['p_value'] < alpha))
    assert all(agreements) and 20 < rejections < len(agreements) - 20  # both outcomes occur


def test_p_values_equal_scipys_exact_permutation_test():
    from scipy import stats
    rng = np.random.default_rng(6)
    for paired, n in ((True, 7), (True, 10), (False, 5), (False, 6)):
        a, b = rng.normal(size=n) + 0.6, rng.normal(size=n)
        expected = stats.permutation_test((a, b), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis), vectorized=True,
                                          permutation_type='samples' if paired else 'independent').pvalue
        assert hypotheses.mean_difference_test(a, b, paired)['p_value'] == pytest.approx(expected)


def test_an_interval_is_unbounded_when_no_data_could_reject():
    result = hypotheses.mean_difference_test([1.0, 2, 3, 4, 5], [0.0] * 5, paired=True)  # smallest p: 0.0625
    assert (result['p_value'], result['ci_low'], result['ci_high']) == (0.0625, -np.inf, np.inf)
    six = hypotheses.mean_difference_test([1.0, 2, 3, 4, 5, 6], [0.0] * 6, paired=True)
    assert (six['p_value'], six['ci_low'], six['ci_high']) == pytest.approx((2 / 64, 1.0, 6.0))  # d - delta all > 0


def test_holm_adjusted_p_values_equal_a_hand_computation():
    # sorted: .005 * 4 = .02, .01 * 3 = .03, .03 * 2 = .06, then .04 * 1 = .04 -> raised to the running max .06
    np.testing.assert_allclose(hypotheses.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(hypotheses.holm([0.5, 0.6]), [1.0, 1.0])


def test_a_verdict_says_when_the_test_cannot_reject_at_all():
    assert hypotheses.verdict(comparison(p_value=0.0625, n=5), 0.0625, 0.05) == \
        'cannot reject at alpha = 0.05 with n = 5; need >= 6 repetitions'
    assert hypotheses.verdict(comparison(p_value=0.03, n=6), 0.03, 0.05) == 'rejected'
    assert hypotheses.verdict(comparison(p_value=0.03, n=6), 0.09, 0.05) == 'not rejected'  # Holm decides
    assert hypotheses.verdict(comparison(p_value=0.03, n=6), 0.5, 0.05, tests=18, family_floor=2 / 64) == \
        'cannot reject at alpha = 0.05 over 18 tests (Holm) with n = 6; need >= 10 repetitions'  # 18 * 2/64 > .05
    assert hypotheses.verdict(comparison(n=2, paired=False), 0.5, 0.05) == \
        'cannot reject at alpha = 0.05 with n = 2 and 2; need >= 4 repetitions'  # C(4, 2) = 6: smallest p 1/3


def test_each_row_has_a_plain_reading():
    rejected = comparison(p_value=0.0002)
    assert hypotheses.reading(rejected, 0.001, 0.05) == (
        'default: default beats random: default by 0.35 accuracy over positions 10-19 (p = 0.0002, Holm p = 0.001): '
        'the model uses '
        'the in-context labels')
    nh2 = comparison(p_value=0.3, hypothesis='NH2', a='all: default', b='all: rating_1', difference=-0.02,
                     metric='log_lik')
    assert hypotheses.reading(nh2, 0.6, 0.05) == (
        'all: rating_1 is ahead of all: default by 0.02 nats of log-likelihood over positions 10-19 (p = 0.3, '
        'Holm p = 0.6), which chance alone could explain: consistent with "ICL overcomes the pre-training preference '
        'for label names" (not proof of it)')
    assert hypotheses.reading(comparison(p_value=0.03), 0.09, 0.05) == (
        'default: default is ahead of random: default by 0.35 accuracy over positions 10-19 (p = 0.03, Holm p = '
        '0.09): '
        'significant alone, but not once corrected for the other tests; weak evidence that the model uses the '
        'in-context labels')
    nh3 = comparison(p_value=0.001, hypothesis='NH3', a='halfway: default (correct -> flipped)', b='alt: default',
                     difference=-0.2, positions='8', num_positions=1)
    assert hypotheses.reading(nh3, 0.004, 0.05) == (
        'alt: default beats halfway: default by 0.2 accuracy over position 8 (p = 0.001, Holm p = 0.004): the order '
        'of the labels matters: the labels seen last weigh more (recency); weak: rests on 1 position')
    table = hypotheses.comparisons_table([rejected, nh2, nh3])
    assert table['weak'].tolist() == [False, False, True]
    np.testing.assert_allclose(table['p_holm'], [0.0006, 0.3, 0.002])
