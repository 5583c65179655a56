"""`python -m icl.report`: figures, curves.csv against a hand computation, the Markdown summary,
and the final curves logged to wandb (offline)."""
import json
import shutil
import subprocess
import sys

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from evaluation_runs import FLIP_AFTER, RUNS
from scipy.special import log_softmax

from icl import analysis, hypotheses, pairing, plots, report
from icl.config import REPO_ROOT
from icl.errors import UsageError

ORDER = ['default', 'random', 'replacement', 'halfway', 'alternating']


@pytest.fixture(scope='module')
def written(run_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp('report')
    summary = report.main([str(run_dirs[name]) for name in ORDER] + ['--out', str(out)])
    return out, summary


def hand_curves(run_dir, name):
    """Tidy curves from the parquet files and setup.json, computed without icl.analysis."""
    table = pd.read_parquet(run_dir / 'results')
    setup = json.loads((run_dir / 'setup.json').read_text())
    rows = []
    for variant, names in setup['variants'].items():
        columns = [setup['all_classes'].index(n) for n in names]
        context = table[(table['variant'] == variant) & ~table['is_query']]
        for position, at in context.groupby('position'):
            lp = log_softmax(np.stack(at['label_logits'].to_numpy()).astype(np.float64)[:, columns], axis=1)
            y = at['true_label'].to_numpy()
            values = {'accuracy': (lp.argmax(1) == y).astype(float), 'log_lik': lp[np.arange(len(y)), y],
                      'entropy': -(np.exp(lp) * lp).sum(1)}
            for metric, v in values.items():
                rows.append({'run': name, 'variant': variant, 'metric': metric, 'position': position,
                             'mean': v.mean(), 'sem': v.std(ddof=1) / np.sqrt(len(v)), 'n': len(v)})
    return pd.DataFrame(rows)


def test_writes_a_figure_per_run_one_comparing_them_and_one_per_hypothesis(written):
    out, _ = written
    names = sorted(p.name for p in out.glob('*.png'))
    assert names == sorted([f'curves_{name}.png' for name in ORDER]
                           + ['curves_runs.png', 'nh1.png', 'nh2_replacement.png', 'nh3.png'])
    for path in out.glob('*.png'):
        assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
        assert path.stat().st_size > 30_000  # three panels of lines, not an empty canvas
        height, width, _ = matplotlib.image.imread(path).shape
        assert (height, width) == (408, 1548)


def test_curves_csv_equals_a_hand_computation_from_the_table(written, run_dirs):
    out, _ = written
    got = pd.read_csv(out / 'curves.csv')
    assert list(got.columns) == ['run', 'dataset', 'model', 'variant', 'metric', 'position', 'mean', 'sem', 'n']
    assert set(zip(got['dataset'], got['model'])) == {('tiny_sentiment', 'smollm2-135m')}
    expected = pd.concat([hand_curves(run_dirs[name], name) for name in ORDER])
    variants = {'DEFAULT_ONLY': 1, 'DEFAULT_AND_FLIP': 2}
    assert len(got) == len(expected) == 3 * 10 * sum(variants[class_names] for class_names, *_ in RUNS.values())
    merged = got.merge(expected, on=['run', 'variant', 'metric', 'position'], suffixes=('', '_hand'))
    assert len(merged) == len(got)
    np.testing.assert_allclose(merged['mean'], merged['mean_hand'], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(merged['sem'], merged['sem_hand'], rtol=1e-6, atol=1e-9)
    assert (merged['n'] == merged['n_hand']).all()


def test_summary_names_the_tests_and_their_numbers(written, run_dirs):
    out, summary = written
    assert summary == out / 'summary.md'
    text = summary.read_text()
    runs = {name: analysis.load_run(run_dirs[name]) for name in ORDER}
    nh1 = hypotheses.nh1_random_labels(runs['default'], runs['random'], 'log_lik')
    row = (f'| NH1 | default: default | random: default | log_lik | 5-9 | 4 | {nh1.mean_a:.3g} | {nh1.mean_b:.3g} | '
           f'{nh1.difference:.3g} | [-inf, inf] | {nh1.effect_size:.3g} | {nh1.p_value:.3g} | 1 | '
           'cannot reject at alpha = 0.05 with n = 4; need >= 6 repetitions | default: default is ahead of random: '
           f'default by {nh1.difference:.3g} nats of log-likelihood over positions 5-9 (p = {nh1.p_value:.2g}, Holm '
           'p = 1), but with these repetitions no data could reach p < 0.05: no evidence either way |')
    assert row in text
    assert '| H0 | a | b | metric | positions | n | mean a | mean b | a - b | 95% CI | effect size | p | p (Holm) | ' \
           'verdict | reading |' in text
    assert 'paired permutation test (sign flips within repetitions), 95% interval inverting the same test' in text
    assert 'on Holm-Bonferroni adjusted p-values over the 8 tests of this report' in text
    assert 'so it excludes 0 exactly when the raw p < 0.05' in text
    lines = text.splitlines()
    assert sum(line.startswith('| NH1 |') for line in lines) == 2  # accuracy, log-likelihood
    assert sum(line.startswith('| NH2 | replacement: default | replacement: flip |') for line in lines) == 2
    nh3 = [line for line in lines if line.startswith('| NH3 | halfway: ')]
    assert len(nh3) == 4 and all('| 8 |' in line and line.endswith('; weak: rests on 1 position |') for line in nh3)
    assert '- **NH2**: ICL overcomes the pre-training preference for label names.' in text
    assert '![nh3](nh3.png)' in text
    assert 'not tested' not in text and 'Runs no test uses' not in text and 'partial' not in text


def test_missing_runs_are_named_as_untested(run_dirs):
    summary = report.main([str(run_dirs['default'])])
    assert summary == run_dirs['default'] / 'report' / 'summary.md'  # default --out
    text = summary.read_text()
    assert ('- NH1 not tested: needs a default run and a run with dataset.config.random_labels=True of the same '
            'dataset, model and examples per prompt.') in text
    assert 'NH2 not tested' in text and 'NH3 not tested' in text
    assert ("- 'default': no random-labels run in its group (tiny_sentiment, smollm2-135m, 10 examples) (NH1); one "
            'label-name variant only (NH2 needs several).') in text
    assert sorted(p.name for p in summary.parent.glob('*.png')) == ['curves_default.png']
    assert '| default | default | 4 of 4 repetitions |' in text  # first vs last positions table


def test_smoothing_option_writes_smoothed_curves(run_dirs, tmp_path):
    report.main([str(run_dirs['halfway']), '--out', str(tmp_path), '--smooth', '3'])
    got = pd.read_csv(tmp_path / 'curves.csv')
    raw = hand_curves(run_dirs['halfway'], 'halfway')
    for variant in ('default', 'flip'):
        line = got[(got['variant'] == variant) & (got['metric'] == 'accuracy')]
        mean = raw[(raw['variant'] == variant) & (raw['metric'] == 'accuracy')]['mean'].to_numpy()
        np.testing.assert_allclose(line['mean'], np.convolve(mean, np.ones(3) / 3, mode='valid'))
        assert line['position'].tolist() == list(np.arange(1.0, 9.0))


def test_figure_marks_the_change_point_and_chance():
    curves = pd.DataFrame([{'run': 'r', 'variant': v, 'metric': m, 'position': p, 'mean': 0.5, 'sem': 0.1, 'n': 2}
                           for v in ('default', 'flip') for m in analysis.METRICS for p in range(10)])
    fig = plots.plot_curves(curves, {'r': [FLIP_AFTER]}, num_classes=2, title='t')
    for ax, metric in zip(fig.axes, analysis.METRICS):
        labels = [line.get_label() for line in ax.lines]
        assert labels[:2] == ['default', 'flip']
        flip = ax.lines[labels.index('label flip')]
        assert list(flip.get_xdata()) == [FLIP_AFTER, FLIP_AFTER]
        chance = ax.lines[labels.index('chance')]
        assert chance.get_ydata()[0] == pytest.approx(plots.chance_levels(2)[metric])
    many = plots.plot_curves(curves, {'r': list(range(1, 10))})  # alternating: too many lines to draw
    assert 'label flip' not in [line.get_label() for line in many.axes[0].lines]


def test_command_line_errors_exit_with_status_2(tmp_path):
    done = subprocess.run([sys.executable, '-m', 'icl.report', str(tmp_path / 'missing')], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: no run directory '{tmp_path / 'missing'}' (nor a wandb run path " \
                                  'ENTITY/PROJECT/RUN_ID)'


def test_final_curves_reach_wandb_as_line_plots(run_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv('WANDB_MODE', 'offline')
    from icl.tracking import Tracker
    run = analysis.load_run(run_dirs['halfway'])
    curves = analysis.curves(run.metrics())
    tracker = Tracker(config={'note': 'test'}, run_dir=tmp_path, debug=True, note='test')
    tracker.log_curves(curves)
    tracker.finish()
    [folder] = (tmp_path / 'wandb').glob('offline-run-*/files/media/table/curves')
    [accuracy] = folder.glob('accuracy_table_*.table.json')
    logged = json.loads(accuracy.read_text())
    assert logged['columns'] == ['step', 'lineKey', 'lineVal']
    expected = curves[curves['metric'] == 'accuracy']
    assert [row[1] for row in logged['data']] == expected['variant'].tolist()
    np.testing.assert_allclose([row[2] for row in logged['data']], expected['mean'])
    [table] = folder.glob('table_*.table.json')
    assert json.loads(table.read_text())['columns'] == list(curves.columns)


# ------------------------------------------------------------------ groups, partial and damaged runs

@pytest.fixture(scope='module')
def sst2_dirs(real_data_dir, tmp_path_factory):
    from evaluation_runs import sst2_runs
    return sst2_runs(tmp_path_factory, real_data_dir)


def test_runs_of_different_datasets_are_never_paired(run_dirs, sst2_dirs, tmp_path):
    text = report.main([str(run_dirs['default']), str(sst2_dirs['sst2-random']), '--out', str(tmp_path)]).read_text()
    assert not [line for line in text.splitlines() if line.startswith('| NH1 |')]
    assert ("- 'sst2-random': no default run (no label manipulation) in its group (sst2, smollm2-135m, 10 examples) "
            'to compare with for NH1.') in text
    assert "- 'default': no random-labels run in its group (tiny_sentiment, smollm2-135m, 10 examples) (NH1)" in text
    assert not (tmp_path / 'nh1.png').exists()


def partial_copy(run_dir, tmp_path, keep: int):
    copy = shutil.copytree(run_dir, tmp_path / run_dir.name)
    for repetition in range(keep, 10):
        (copy / 'results' / f'part-{repetition:06d}.parquet').unlink(missing_ok=True)
    return copy


def test_a_partial_run_says_k_of_n_repetitions_in_title_table_and_figure(run_dirs, tmp_path):
    halfway = partial_copy(run_dirs['halfway'], tmp_path, keep=3)
    summary = report.main([str(halfway), str(run_dirs['alternating']), '--out', str(tmp_path / 'out')])
    text = summary.read_text()
    assert text.startswith('# ICL training curves (partial: halfway 3 of 4 repetitions)\n')
    assert '| halfway | flip halfway | tiny_sentiment | smollm2-135m | 10 | partial: 3 of 4 repetitions |' in text
    assert '| alternating | alternating flips | tiny_sentiment | smollm2-135m | 10 | 4 of 4 repetitions |' in text
    assert '| halfway | default | partial: 3 of 4 repetitions |' in text
    run = analysis.load_run(halfway)
    assert report.figure_title(run) == 'halfway (tiny_sentiment, smollm2-135m) - partial: 3 of 4 repetitions'
    assert [line for line in text.splitlines() if line.startswith('| NH3 |')][0].split(' | ')[5] == '3'  # n


def damage(kind, run_dir, tmp_path):
    """A copy of `run_dir` damaged as `kind` says, and the one line the report must answer with."""
    copy = shutil.copytree(run_dir, tmp_path / 'damaged')
    if kind == 'truncated part':
        part = copy / 'results' / 'part-000001.parquet'
        part.write_bytes(part.read_bytes()[:200])
        return copy, f"'{part}' is damaged ("
    name = {'corrupt setup.json': 'setup.json', 'corrupt config.json': 'config.json'}[kind]
    (copy / name).write_text('{"config": {"n_repeats": ')
    return copy, f"'{copy / name}' is damaged (Expecting value: line 1 column 26 (char 25)); it cannot be evaluated"


@pytest.mark.parametrize('kind', ['truncated part', 'corrupt setup.json', 'corrupt config.json'])
def test_damaged_runs_are_one_line_usage_errors(run_dirs, tmp_path, kind):
    copy, message = damage(kind, run_dirs['default'], tmp_path)
    with pytest.raises(UsageError) as error:
        report.main([str(copy), '--out', str(tmp_path / 'out')])
    assert str(error.value).startswith(message) and '\n' not in str(error.value)
    assert not (tmp_path / 'out').exists()


def test_a_config_json_of_another_tool_is_named(run_dirs, tmp_path):
    copy = shutil.copytree(run_dirs['default'], tmp_path / 'other')
    (copy / 'config.json').write_text('{"config": {"n_repeats": 3}}')
    with pytest.raises(UsageError, match=f"^'{copy / 'config.json'}' is not a file of this tool \\(it lacks "
                                         "dataset.name\\); it cannot be evaluated$"):
        report.main([str(copy)])


def test_out_naming_a_file_exits_2_with_one_line(run_dirs, tmp_path):
    (tmp_path / 'file').write_text('x')
    done = subprocess.run([sys.executable, '-m', 'icl.report', str(run_dirs['default']), '--out',
                           str(tmp_path / 'file')], cwd=REPO_ROOT, capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (2, f"error: --out '{tmp_path / 'file'}' is a file, not a folder; name "
                                                 'a folder to write the report into\n')
    assert (tmp_path / 'file').read_text() == 'x'


def test_hypothesis_figures_name_their_lines_and_shade_the_tested_positions(runs, tmp_path):
    plan = pairing.plan_group(runs['halfway'].group, [runs['halfway'], runs['alternating']])
    table = analysis.run_curves(plan.runs)
    assert report.hypothesis_figures([plan], table, tmp_path, 1, 10) == [tmp_path / 'nh3.png']
    fig = plots.plot_curves(table[table['run'] == 'halfway'], {'halfway': [4]}, 2, 't',
                            report.variant_labels([runs['halfway']], False), tested=[8, 9])
    accuracy, log_lik, entropy = fig.axes
    assert [line.get_label() for line in accuracy.lines[:2]] == ['default (negative / positive)',
                                                                  'flip (positive / negative)']
    assert [ax.get_ylabel() for ax in fig.axes] == ['accuracy (fraction correct)', 'log-likelihood of the label (nats)',
                                                    'entropy of the prediction (nats)']
    assert accuracy.get_xlabel() == 'in-context examples seen'
    shaded = [patch for patch in accuracy.patches if patch.get_label() == 'tested positions']
    assert len(shaded) == 1 and shaded[0].get_x() == 7.5 and shaded[0].get_width() == 2.0
    assert not [p for p in entropy.patches if p.get_label() == 'tested positions']  # entropy is not tested


def test_with_several_runs_a_change_point_marks_only_its_own_run(runs):
    table = analysis.run_curves([runs['default'], runs['halfway']])
    table = table[table['variant'] == 'default']
    fig = plots.plot_curves(table, {'default': [], 'halfway': [4]}, 2)
    ax = fig.axes[0]
    assert 'label flip' not in [line.get_label() for line in ax.lines]  # no line across every run
    [marker] = [line for line in ax.lines if line.get_label() == 'label flip (on its run)']
    halfway = [line for line in ax.lines if line.get_label() == 'halfway: default'][0]
    assert list(marker.get_xdata()) == [4] and marker.get_color() == halfway.get_color()
    assert marker.get_ydata()[0] == pytest.approx(halfway.get_ydata()[4])
