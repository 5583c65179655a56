"""`python -m icl.report`: figures, curves.csv against a hand computation, the Markdown summary,
and the final curves logged to wandb (offline)."""
import json
import subprocess
import sys

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from evaluation_runs import FLIP_AFTER, RUNS
from scipy.special import log_softmax

from icl import analysis, hypotheses, plots, report
from icl.config import REPO_ROOT

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


def test_writes_a_figure_per_run_and_one_comparing_them(written):
    out, _ = written
    names = sorted(p.name for p in out.glob('*.png'))
    assert names == sorted([f'curves_{name}.png' for name in ORDER] + ['curves_runs.png'])
    for path in out.glob('*.png'):
        assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
        assert path.stat().st_size > 30_000  # three panels of lines, not an empty canvas
        height, width, _ = matplotlib.image.imread(path).shape
        assert (height, width) == (408, 1548)


def test_curves_csv_equals_a_hand_computation_from_the_table(written, run_dirs):
    out, _ = written
    got = pd.read_csv(out / 'curves.csv')
    assert list(got.columns) == ['run', 'variant', 'metric', 'position', 'mean', 'sem', 'n']
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
           f'{nh1.difference:.3g} | [{nh1.ci_low:.3g}, {nh1.ci_high:.3g}] | {nh1.effect_size:.3g} | '
           f'{nh1.p_value:.3g} | {"rejected" if nh1.p_value < 0.05 else "not rejected"} |')
    assert row in text
    assert 'paired permutation test (sign flips within repetitions), 95% BCa bootstrap interval' in text
    lines = text.splitlines()
    assert sum(line.startswith('| NH1 |') for line in lines) == 2  # accuracy, log-likelihood
    assert sum(line.startswith('| NH2 | replacement: default | replacement: flip |') for line in lines) == 2
    assert sum(line.startswith('| NH3 | halfway: ') and '| 8 |' in line for line in lines) == 4
    assert '- **NH2**: ICL overcomes the pre-training preference for label names.' in text
    assert '![curves_halfway](curves_halfway.png)' in text
    assert 'not tested' not in text


def test_missing_runs_are_named_as_untested(run_dirs):
    summary = report.main([str(run_dirs['default'])])
    assert summary == run_dirs['default'] / 'report' / 'summary.md'  # default --out
    text = summary.read_text()
    assert '- NH1 not tested: needs a default run and a run with dataset.config.random_labels=True.' in text
    assert 'NH2 not tested' in text and 'NH3 not tested' in text
    assert sorted(p.name for p in summary.parent.glob('*.png')) == ['curves_default.png']
    assert '| default | default | 4 |' in text  # first vs last positions table


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
