"""Curves and hypothesis tests: against a hand computation from the stored logits of real
runs of the packaged model, and the statistics on synthetic data whose answer is known."""
import dataclasses
import itertools
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from evaluation_runs import FLIP_AFTER, RUNS, N, evaluation_runs
from scipy.special import log_softmax

from icl import analysis
from icl.errors import UsageError


@pytest.fixture(scope='session')
def run_dirs(tmp_path_factory):
    return evaluation_runs(tmp_path_factory)


@pytest.fixture(scope='module')
def runs(run_dirs):
    return {name: analysis.load_run(path) for name, path in run_dirs.items()}


def hand_metrics(run_dir, variant, names_of=None, invert=False, label='true_label'):
    """{metric: [repetitions, positions]} straight from the parquet files and setup.json."""
    table = pd.read_parquet(run_dir / 'results')
    setup = json.loads((run_dir / 'setup.json').read_text())
    columns = [setup['all_classes'].index(name) for name in setup['variants'][names_of or variant]]
    if invert:
        columns = columns[1:] + columns[:1]
    rows = table[(table['variant'] == variant) & ~table['is_query']].sort_values(['repetition', 'position'])
    out = {'accuracy': [], 'log_lik': [], 'entropy': []}
    for logits, y in zip(rows['label_logits'], rows[label]):
        lp = log_softmax(np.asarray(logits, dtype=np.float64)[columns])
        out['accuracy'].append(float(np.argmax(lp) == y))
        out['log_lik'].append(lp[y])
        out['entropy'].append(-(np.exp(lp) * lp).sum())
    repetitions = rows['repetition'].nunique()
    return {metric: np.reshape(values, (repetitions, -1)) for metric, values in out.items()}


def curve(curves, variant, metric):
    return curves[(curves['variant'] == variant) & (curves['metric'] == metric)]


@pytest.mark.parametrize('choose_logits, invert', [(None, False), ('default', False), (None, True), ('flip', True)])
def test_curves_equal_a_hand_computation_from_the_logits(runs, run_dirs, choose_logits, invert):
    curves = analysis.curves(runs['halfway'].metrics(choose_logits, invert))
    for variant in ('default', 'flip'):
        hand = hand_metrics(run_dirs['halfway'], variant, choose_logits, invert)
        for metric, values in hand.items():
            got = curve(curves, variant, metric)
            assert got['position'].tolist() == list(range(N))
            np.testing.assert_allclose(got['mean'], values.mean(0), rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(got['sem'], values.std(0, ddof=1) / np.sqrt(4), rtol=1e-6, atol=1e-9)
            assert got['n'].tolist() == [RUNS['halfway'][1]] * N


def test_invert_logits_turns_binary_accuracy_around(runs):
    own = runs['replacement'].metrics()
    inverted = runs['replacement'].metrics(invert_logits=True)
    np.testing.assert_array_equal(inverted['accuracy'], 1 - own['accuracy'])
    np.testing.assert_allclose(inverted['entropy'], own['entropy'])


def test_smoothing_is_the_original_convolution_of_the_mean_curve(runs, run_dirs):
    smoothed = analysis.curves(runs['default'].metrics(), smooth_n=3)
    hand = hand_metrics(run_dirs['default'], 'default')['log_lik']
    got = curve(smoothed, 'default', 'log_lik')
    np.testing.assert_allclose(got['mean'], np.convolve(hand.mean(0), np.ones(3) / 3, mode='valid'), rtol=1e-9)
    per_repetition = np.array([np.convolve(row, np.ones(3) / 3, mode='valid') for row in hand])
    np.testing.assert_allclose(got['sem'], per_repetition.std(0, ddof=1) / 2, rtol=1e-9)
    assert got['position'].tolist() == list(np.arange(1, N - 1, dtype=float))  # window centres


def test_shown_labels_differ_from_true_labels_exactly_where_labels_flip(runs, run_dirs):
    true = curve(analysis.curves(runs['halfway'].metrics()), 'default', 'accuracy')['mean'].to_numpy()
    shown = curve(analysis.curves(runs['halfway'].metrics(labels='shown')), 'default', 'accuracy')['mean'].to_numpy()
    np.testing.assert_allclose(shown[:FLIP_AFTER], true[:FLIP_AFTER])
    np.testing.assert_allclose(shown[FLIP_AFTER:], 1 - true[FLIP_AFTER:])
    hand = hand_metrics(run_dirs['halfway'], 'default', label='shown_label')['accuracy'].mean(0)
    np.testing.assert_allclose(shown, hand)


def test_bad_options_are_usage_errors(runs):
    with pytest.raises(UsageError, match="choose_logits='rating_1' is not a variant of this run; choose one of "
                                         "default, flip"):
        runs['halfway'].metrics(choose_logits='rating_1')
    with pytest.raises(UsageError, match="labels='flipped' is not valid; choose one of true, shown"):
        runs['halfway'].metrics(labels='flipped')


def test_runs_know_their_kind_and_where_labels_flip(runs):
    assert {name: run.kind for name, run in runs.items()} == {
        'default': 'default', 'random': 'random labels', 'replacement': 'default', 'halfway': 'flip halfway',
        'alternating': 'alternating flips'}
    assert runs['halfway'].change_points() == [FLIP_AFTER]
    assert runs['alternating'].change_points() == list(range(1, N))
    assert runs['default'].change_points() == []
    assert analysis.equal_count_positions(runs['halfway']).tolist() == [2 * FLIP_AFTER]
    assert analysis.equal_count_positions(runs['alternating']).tolist() == [2, 4, 6, 8]
    assert (runs['halfway'].name, runs['halfway'].num_examples, runs['halfway'].repetitions) == ('halfway', N, 4)


def test_halfway_flag_resolves_to_half_the_examples(runs):
    record = json.loads(json.dumps(runs['default'].record))
    record['config']['dataset']['config']['flip_labels_after_halfway'] = True
    assert dataclasses.replace(runs['default'], record=record).change_points() == [N // 2]


def test_runs_of_the_same_seed_and_data_are_paired(runs):
    assert analysis.same_examples(runs['default'], runs['random'])
    assert analysis.same_examples(runs['halfway'], runs['alternating'])
    table = runs['random'].table.copy()
    table.loc[table['repetition'] == 1, 'train_idx'] += 1
    assert not analysis.same_examples(runs['default'], dataclasses.replace(runs['random'], table=table))


def late_mean(hand, positions):
    return hand[:, positions].mean(1)


def test_nh1_compares_late_positions_of_default_and_random_labels(runs, run_dirs):
    result = analysis.nh1_random_labels(runs['default'], runs['random'], 'log_lik', window=10)
    a = late_mean(hand_metrics(run_dirs['default'], 'default')['log_lik'], slice(5, 10))
    b = late_mean(hand_metrics(run_dirs['random'], 'default')['log_lik'], slice(5, 10))
    assert (result.hypothesis, result.positions, result.paired, result.n_a, result.n_b) == ('NH1', '5-9', True, 4, 4)
    assert (result.a, result.b) == ('default: default', 'random: default')
    np.testing.assert_allclose([result.mean_a, result.mean_b, result.difference], [a.mean(), b.mean(), (a - b).mean()])
    np.testing.assert_allclose(result.effect_size, (a - b).mean() / (a - b).std(ddof=1))
    assert result.p_value == pytest.approx(exact_sign_flip_p(a - b))


def test_nh2_compares_each_variant_with_the_default_names(runs, run_dirs):
    [result] = analysis.nh2_pretraining_preference(runs['replacement'], 'accuracy', window=3)
    a = late_mean(hand_metrics(run_dirs['replacement'], 'default')['accuracy'], slice(7, 10))
    b = late_mean(hand_metrics(run_dirs['replacement'], 'flip')['accuracy'], slice(7, 10))
    assert (result.hypothesis, result.b, result.positions, result.paired, result.n_a) == (
        'NH2', 'replacement: flip', '7-9', True, 3)
    np.testing.assert_allclose([result.mean_a, result.mean_b], [a.mean(), b.mean()])
    with pytest.raises(UsageError, match="NH2 needs a run with the 'default' variant and at least one other"):
        analysis.nh2_pretraining_preference(runs['default'])


def test_nh3_reads_both_directions_with_default_names_at_equal_label_counts(runs, run_dirs):
    results = analysis.nh3_equal_treatment(runs['halfway'], runs['alternating'], 'log_lik')
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
        analysis.nh3_equal_treatment(late_flip, runs['alternating'])
    with pytest.raises(UsageError, match='NH3 needs a run that flips once'):
        analysis.nh3_equal_treatment(runs['alternating'], runs['halfway'])


# ------------------------------------------------------------------ statistics on synthetic data

def exact_sign_flip_p(differences):
    """Two-sided p of the paired permutation test, by enumerating every sign flip."""
    d = np.asarray(differences, dtype=float)
    observed = abs(d.mean())
    flips = np.array(list(itertools.product([1, -1], repeat=len(d))))
    return np.mean(np.abs((flips * d).mean(1)) >= observed - 1e-12)


def test_identical_samples_give_p_one_and_no_difference():
    x = np.random.default_rng(1).normal(size=20)
    paired = analysis.mean_difference_test(x, x.copy(), paired=True)
    assert paired['p_value'] == 1.0
    assert (paired['difference'], paired['ci_low'], paired['ci_high'], paired['effect_size']) == (0, 0, 0, 0)
    independent = analysis.mean_difference_test(x, x.copy(), paired=False)
    assert independent['p_value'] >= 0.95  # random shuffles: two-sided p = 2 min(P(T >= 0), P(T <= 0))
    assert (independent['difference'], independent['effect_size']) == (0, 0)
    assert independent['ci_low'] < 0 < independent['ci_high']  # each group resampled on its own


def test_paired_p_value_equals_full_enumeration_of_sign_flips():
    a = np.array([0.9, 0.4, 0.7, 1.3, 0.2, 0.8])
    b = np.array([0.5, 0.6, 0.1, 0.9, 0.3, 0.2])
    result = analysis.mean_difference_test(a, b, paired=True)
    assert result['p_value'] == pytest.approx(exact_sign_flip_p(a - b))
    # |d| = .4 .2 .6 .4 .1 .6 sums to 2.3, observed 1.7: only flipping a subset of {.1, .2} (4 ways), or its mirror
    assert result['p_value'] == pytest.approx(8 / 64)
    assert 'paired permutation test' in result['test']


@pytest.mark.parametrize('paired', [True, False])
def test_a_shift_gives_a_small_p_and_an_interval_around_it(paired):
    rng = np.random.default_rng(2)
    b = rng.normal(size=40)
    a = (b if paired else rng.normal(size=40)) + 1.0 + rng.normal(scale=0.5 if paired else 1.0, size=40)
    result = analysis.mean_difference_test(a, b, paired)
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
        result = analysis.mean_difference_test(a, b, paired=True, n_resamples=999, seed=int(rng.integers(1 << 30)))
        covered.append(result['ci_low'] <= 0.3 <= result['ci_high'])
    assert 0.83 <= np.mean(covered) <= 1.0  # nominal 0.95; P(< 50 of 60 covered) < 1% for a 95% interval


def test_too_few_repetitions_is_a_usage_error():
    with pytest.raises(UsageError, match=r'at least 2 repetitions per condition \(got 1 and 3\)'):
        analysis.mean_difference_test([1.0], [1.0, 2.0, 3.0], paired=False)


# ------------------------------------------------------------------ loading

def test_load_runs_gives_repeated_notes_distinct_names(run_dirs):
    runs = analysis.load_runs([run_dirs['default'], run_dirs['default'], run_dirs['random']])
    assert [run.name for run in runs] == ['default (default)', 'default (default) #2', 'random']


def test_a_missing_directory_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no run directory 'runs/nothing' \\(nor a wandb run path"):
        analysis.load_run('runs/nothing')
    (tmp_path / 'config.json').write_text('{}')
    with pytest.raises(UsageError, match='is not a finished run directory of this tool \\(it lacks setup.json, '
                                         'results/part-\\*.parquet\\)'):
        analysis.load_run(tmp_path)


def test_a_wandb_path_without_an_api_key_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.delenv('WANDB_API_KEY', raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv('NETRC', str(tmp_path / 'none'))
    with pytest.raises(UsageError, match="'someone/llm/abc123' is not a local run directory, and reading it from "
                                         'wandb needs an API key'):
        analysis.load_run('someone/llm/abc123')
    with pytest.raises(UsageError, match='needs an API key'):
        analysis.load_run('https://wandb.ai/someone/llm/runs/abc123')


class FakeWandbFile:
    """What wandb.Api().run(path).files() yields: a name, a size and download(root, replace)."""

    def __init__(self, source, name):
        self.source, self.name, self.size = source, name, (source / name).stat().st_size
        self.downloads = 0

    def download(self, root, replace):
        target = Path(root) / self.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.source / self.name, target)
        self.downloads += 1


def test_a_wandb_run_is_downloaded_into_the_cache_once(run_dirs, monkeypatch, tmp_path):
    import wandb
    source = shutil.copytree(run_dirs['default'], tmp_path / 'uploaded')
    names = ['config.json', 'setup.json', 'output.log', 'wandb-metadata.json'] + [
        f'results/{p.name}' for p in sorted((source / 'results').glob('*.parquet'))]
    (source / 'output.log').write_text('not part of the run table\n')
    (source / 'wandb-metadata.json').write_text('{}\n')
    files = [FakeWandbFile(source, name) for name in names]
    requested = []

    class FakeApi:
        def __init__(self, timeout):
            pass

        def run(self, path):
            requested.append(path)
            return SimpleNamespace(files=lambda: files)

    monkeypatch.setattr(wandb, 'Api', FakeApi)
    monkeypatch.setenv('WANDB_API_KEY', 'x' * 40)
    monkeypatch.setenv('ICL_CACHE_DIR', str(tmp_path / 'cache'))
    run = analysis.load_run('https://wandb.ai/someone/llm/runs/abc123')
    assert requested == ['someone/llm/abc123']
    assert run.path == tmp_path / 'cache' / 'wandb-runs' / 'someone' / 'llm' / 'abc123'
    assert sorted(str(p.relative_to(run.path)) for p in run.path.rglob('*') if p.is_file()) == sorted(
        n for n in names if n.endswith(('.json', '.parquet')) and n != 'wandb-metadata.json')
    pd.testing.assert_frame_equal(run.table, analysis.load_run(source).table)
    analysis.load_run('someone/llm/abc123')  # again: nothing new to fetch
    assert [f.downloads for f in files] == [1, 1, 0, 0] + [1] * RUNS['default'][1]
