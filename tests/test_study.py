"""`python -m icl.report STUDY_ROOT`: run directories at any depth, grouped by (dataset, model,
examples per prompt), compared only within a group, verdicts Holm-adjusted over the whole study."""
import shutil

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from icl import hypotheses, pairing, report, study

TINY = ('default', 'random', 'halfway', 'alternating')


@pytest.fixture(scope='module')
def study_root(run_dirs, real_data_dir, tmp_path_factory):
    from evaluation_runs import sst2_runs
    sst2 = sst2_runs(tmp_path_factory, real_data_dir)
    root = tmp_path_factory.mktemp('study')
    for name in TINY:
        shutil.copytree(run_dirs[name], root / 'tiny' / name)
    for name, path in sst2.items():
        shutil.copytree(path, root / 'sst2' / 'nested' / name)
    waiting = root / 'sst2' / 'not-started'  # a run of the sweep that has not finished a repetition yet
    waiting.mkdir()
    shutil.copy(sst2['sst2-default'] / 'config.json', waiting / 'config.json')
    kept = root / 'tiny' / 'default' / 'wandb' / 'offline-run-1' / 'files'  # files a run keeps with its wandb run
    shutil.copytree(run_dirs['default'], kept, ignore=shutil.ignore_patterns('wandb'))
    return root


@pytest.fixture(scope='module')
def summary(study_root):
    return report.main([str(study_root)])


def section(text: str, title: str) -> list[str]:
    """The table rows under a '### title' heading."""
    lines = text.split(f'### {title}')[1].split('\n### ')[0].splitlines()
    return [line for line in lines if line.startswith('| ') and not line.startswith('| dataset')]


def test_a_study_root_is_read_at_any_depth_and_grouped(study_root, summary):
    assert summary == study_root / 'report' / 'summary.md'
    text = summary.read_text()
    assert ('6 runs in 2 groups of (dataset, model, examples per prompt): sst2, smollm2-135m, 10 examples: 2; '
            'tiny_sentiment, smollm2-135m, 10 examples: 4.') in text
    assert (f"- '{study_root / 'sst2' / 'not-started'}': '{study_root / 'sst2' / 'not-started'}' is not a run "
            'directory of this tool with a finished repetition (it lacks setup.json, results/part-*.parquet)') in text


def test_runs_are_compared_only_within_their_group(summary):
    text = summary.read_text()
    nh1 = [line.split(' | ')[:5] for line in section(text, 'NH1')]
    assert nh1 == [['| sst2', 'smollm2-135m', '10', 'sst2-default: default', 'sst2-random: default']] * 2 + \
        [['| tiny_sentiment', 'smollm2-135m', '10', 'default: default', 'random: default']] * 2
    nh3 = [line.split(' | ')[:3] for line in section(text, 'NH3')]
    assert nh3 == [['| tiny_sentiment', 'smollm2-135m', '10']] * 4
    assert section(text, 'NH2') == []
    assert 'Holm-Bonferroni over all 8 tests of the study (p (Holm, study))' in text


def test_study_figures_and_curves_name_dataset_and_model(study_root, summary):
    out = summary.parent
    for name in ('study_default', 'study_random_labels', 'study_flip_halfway', 'study_alternating_flips',
                 'verdicts', 'nh1_tiny_sentiment-smollm2-135m-10', 'nh1_sst2-smollm2-135m-10',
                 'nh3_tiny_sentiment-smollm2-135m-10'):
        assert (out / f'{name}.png').stat().st_size > 20_000, name
        assert f'![{name}]({name}.png)' in summary.read_text()
    height, width, _ = matplotlib.image.imread(out / 'study_default.png').shape
    assert width > height * 0.8  # two dataset columns side by side
    curves = pd.read_csv(out / 'curves.csv')
    assert sorted(set(zip(curves['run'], curves['dataset']))) == [
        ('alternating', 'tiny_sentiment'), ('default', 'tiny_sentiment'), ('halfway', 'tiny_sentiment'),
        ('random', 'tiny_sentiment'), ('sst2-default', 'sst2'), ('sst2-random', 'sst2')]
    assert set(curves['model']) == {'smollm2-135m'}


def test_the_study_figure_has_a_panel_per_dataset_and_a_line_per_model():
    rows = [{'run': f'{d}-{m}', 'dataset': d, 'model': m, 'variant': 'default', 'metric': metric, 'position': p,
             'mean': 0.5, 'sem': 0.1, 'n': 3, 'examples': 10}
            for d in ('sst2', 'subj') for m in ('m1', 'm2') for metric in ('accuracy', 'log_lik', 'entropy')
            for p in range(5)]
    fig = study.plot_study(pd.DataFrame(rows), 't')
    assert [ax.get_title() for ax in fig.axes[:2]] == ['sst2', 'subj']
    assert len(fig.axes) == 6 and all(len(ax.lines) == 2 for ax in fig.axes)
    assert [line.get_label() for line in fig.axes[0].lines] == ['m1', 'm2']


def fixed(p_value, hypothesis='NH1', metric='accuracy', effect=1.0):
    return hypotheses.Comparison(hypothesis=hypothesis, a='a', b='b', metric=metric, positions='5-9', paired=True,
                                 n_a=10, n_b=10, mean_a=1.0, mean_b=0.5, difference=0.5, ci_low=0.1, ci_high=0.9,
                                 effect_size=effect, p_value=p_value, test='t', num_positions=5)


def test_holm_over_the_study_equals_a_hand_computation():
    groups = [('sst2', 'm1', 10), ('sst2', 'm2', 10), ('subj', 'm1', 10), ('subj', 'm2', 10), ('sst2', 'm1', 10)]
    p_values = [0.004, 0.02, 0.011, 0.3, 0.0125]
    tests = pairing.Tests([fixed(p, 'NH2' if i == 4 else 'NH1') for i, p in enumerate(p_values)], groups, [])
    table = study.verdict_table(tests, alpha=0.05)
    # by hand, sorted .004 * 5 = .02, .011 * 4 = .044, .0125 * 3 = .0375 -> .044, .02 * 2 = .04 -> .044, .3 * 1 = .3
    np.testing.assert_allclose(table['p_holm'], [0.02, 0.044, 0.044, 0.3, 0.044])
    assert table['verdict'].tolist() == ['rejected', 'rejected', 'rejected', 'not rejected', 'rejected']
    assert table[['dataset', 'model']].values.tolist() == [list(g[:2]) for g in groups]
    cells = study.matrix_cells(table, 0.05)
    assert cells[['hypothesis', 'dataset', 'model', 'rejected', 'tests']].values.tolist() == [
        ['NH1', 'sst2', 'm1', 1, 1], ['NH1', 'sst2', 'm2', 1, 1], ['NH1', 'subj', 'm1', 1, 1],
        ['NH1', 'subj', 'm2', 0, 1], ['NH2', 'sst2', 'm1', 1, 1]]


def test_a_folder_without_run_directories_is_a_usage_error(tmp_path):
    from icl.errors import UsageError
    (tmp_path / 'empty' / 'deeper').mkdir(parents=True)
    with pytest.raises(UsageError, match=f"^'{tmp_path / 'empty'}' is neither a run directory nor a study root: "
                                         'no folder below it holds a config.json$'):
        report.main([str(tmp_path / 'empty')])
