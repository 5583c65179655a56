"""Figures, tidy curves and the null-hypothesis tests of one or more runs.

  python -m icl.report RUN_DIR [RUN_DIR ...] [--out DIR] [--smooth N] [--choose_logits VARIANT]
                       [--invert_logits] [--labels true|shown] [--window W] [--alpha A]

A RUN_DIR may also be a wandb run path ENTITY/PROJECT/RUN_ID (needs an API key). Writes
into --out (default: RUN_DIR/report of the first run):
  curves_<run>.png  accuracy, log-likelihood and entropy per position, a line per variant
  curves_runs.png   the runs side by side, one line per run (its default variant), when there are several
  curves.csv        the plotted curves: run, variant, metric, position, mean, sem, n
  summary.md        the runs, first vs last positions, and the tests of NH1-NH3

Which test uses which run is read from the runs' configs (analysis.RUN_KINDS): NH1 needs
a default run and a random-labels run, NH2 a default run with several label-name
variants (CLASS_NAMES=ALL or DEFAULT_AND_FLIP), NH3 a flip-halfway and an alternating run.
"""
import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

from icl import analysis, hypotheses, plots, results
from icl.analysis import Run
from icl.errors import UsageError

TEST_METRICS = ('accuracy', 'log_lik')
SUMMARY_COLUMNS = {  # comparisons_table column -> summary.md header
    'hypothesis': 'H0', 'a': 'a', 'b': 'b', 'metric': 'metric', 'positions': 'positions', 'n_a': 'n',
    'mean_a': 'mean a', 'mean_b': 'mean b', 'difference': 'a - b', 'ci': '95% CI', 'effect_size': 'effect size',
    'p_value': 'p', 'verdict': 'verdict',
}

EARLY_LATE_COLUMNS = {'variant': 'variant', 'repetitions': 'repetitions', 'accuracy_first': 'accuracy first',
                      'accuracy_last': 'accuracy last', 'log_lik_first': 'log-lik first',
                      'log_lik_last': 'log-lik last'}


def file_stem(name: str) -> str:
    return results.file_name(name).strip('_') or 'run'


def first_of(runs: Sequence[Run], kind: str, where: Callable[[Run], bool] = lambda run: True) -> Run | None:
    return next((run for run in runs if run.kind == kind and where(run)), None)


def hypothesis_tests(runs: Sequence[Run], window: int = 10) -> tuple[list[hypotheses.Comparison], list[str]]:
    """Every test the runs allow, for accuracy and log-likelihood; plus a note for each test they don't."""
    comparisons, notes = [], []
    default = first_of(runs, 'default', lambda run: 'default' in run.variants)
    random = first_of(runs, 'random labels', lambda run: 'default' in run.variants)
    if default and random:
        comparisons += [hypotheses.nh1_random_labels(default, random, metric, window) for metric in TEST_METRICS]
    else:
        notes.append('NH1 not tested: needs a default run and a run with dataset.config.random_labels=True.')
    several = [run for run in runs if run.kind == 'default' and 'default' in run.variants and len(run.variants) > 1]
    for run in several:
        comparisons += [c for metric in TEST_METRICS
                        for c in hypotheses.nh2_pretraining_preference(run, metric, window)]
    if not several:
        notes.append('NH2 not tested: needs a run without label manipulations and with several label-name variants '
                     '(CLASS_NAMES=ALL or DEFAULT_AND_FLIP).')
    halfway, alternating = first_of(runs, 'flip halfway'), first_of(runs, 'alternating flips')
    if halfway and alternating:
        try:
            comparisons += [c for metric in TEST_METRICS
                            for c in hypotheses.nh3_equal_treatment(halfway, alternating, metric)]
        except UsageError as error:
            notes.append(f'NH3 not tested: {error}.')
    else:
        notes.append('NH3 not tested: needs a run that flips labels once (dataset.config.flip_labels_after) and '
                     'one that alternates (dataset.config.flip_labels_multi=True).')
    return comparisons, notes


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (numbers to 3 significant digits)."""
    def cell(value) -> str:
        return f'{value:.3g}' if isinstance(value, float) else str(value).replace('|', '\\|')
    lines = ['| ' + ' | '.join(map(str, table.columns)) + ' |', '|' + '---|' * len(table.columns)]
    lines += ['| ' + ' | '.join(cell(v) for v in row) + ' |' for row in table.itertuples(index=False)]
    return '\n'.join(lines)


def tests_markdown(comparisons: Sequence[hypotheses.Comparison], notes: Sequence[str], alpha: float) -> str:
    lines = ['## Null hypotheses', '']
    lines += [f'- **{key}**: {text}.' for key, text in hypotheses.HYPOTHESES.items()]
    if comparisons:
        table = hypotheses.comparisons_table(comparisons, alpha)
        table['ci'] = [f'[{low:.3g}, {high:.3g}]' for low, high in zip(table['ci_low'], table['ci_high'])]
        tests = sorted(set(table['test']))
        lines += ['', markdown_table(table[list(SUMMARY_COLUMNS)].rename(columns=SUMMARY_COLUMNS)), '',
                  f'Verdicts at alpha = {alpha}, not corrected for multiple comparisons. Per repetition the metric '
                  'is averaged over the listed positions; a - b is the difference of the means over repetitions, '
                  "effect size is Cohen's d_z (paired) or d (independent). Test: " + '; '.join(tests) + '.',
                  'NH1 and NH2 average the last positions, each variant scored against the original labels with '
                  'its own names; NH3 takes the positions preceded by equally many flipped and unflipped labels and '
                  'scores every variant against the original labels with the default names '
                  '(see icl/hypotheses.py, nh3_equal_treatment).']
    lines += [''] + [f'- {note}' for note in notes]
    return '\n'.join(lines)


def summary_markdown(runs: Sequence[Run], figures: Sequence[Path], comparisons, notes, alpha: float,
                     window: int) -> str:
    described = pd.DataFrame([run.describe() for run in runs])
    width = min(len(hypotheses.late_positions(run.num_examples, window)) for run in runs)
    early_late = pd.concat([analysis.early_late(run.metrics(), width).assign(run=run.name) for run in runs])
    early_late = early_late[['run', *EARLY_LATE_COLUMNS]].rename(columns=EARLY_LATE_COLUMNS)
    parts = ['# ICL training curves', '', markdown_table(described), '',
             f'## First vs last {width} positions', '', markdown_table(early_late), '',
             tests_markdown(comparisons, notes, alpha), '', '## Figures', '']
    parts += [f'![{figure.stem}]({figure.name})' for figure in figures]
    return '\n'.join(parts) + '\n'


def main_variant(run: Run) -> str:
    """The variant that stands for a run when runs are compared: 'default', else its first."""
    return 'default' if 'default' in run.variants else run.variants[0]


def figure_title(run: Run) -> str:
    title = f"{run.name} ({run.record['config']['dataset']['name']}, {run.record['config']['model']['name']})"
    points = run.change_points()
    if len(points) > plots.MAX_CHANGE_LINES:
        title += f', labels alternate in blocks of {points[0]}'
    return title


def save_figure(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(runs: Sequence[Run], out: Path, smooth_n: int = 1, choose_logits: str | None = None,
                 invert_logits: bool = False, labels: str = 'true', window: int = 10, alpha: float = 0.05) -> Path:
    """Write figures, curves.csv and summary.md into `out`; returns the summary's path."""
    out.mkdir(parents=True, exist_ok=True)
    table = analysis.run_curves(runs, smooth_n, choose_logits, invert_logits, labels)
    table.to_csv(out / 'curves.csv', index=False)
    classes = {run.num_classes for run in runs}
    num_classes = classes.pop() if len(classes) == 1 else None
    figures = [save_figure(plots.plot_curves(table[table['run'] == run.name], {run.name: run.change_points()},
                                             num_classes, figure_title(run)), out / f'curves_{file_stem(run.name)}.png')
               for run in runs]
    if len(runs) > 1:
        firsts = pd.concat([table[(table['run'] == run.name) & (table['variant'] == main_variant(run))]
                            for run in runs])
        figures.append(save_figure(plots.plot_curves(firsts, {r.name: r.change_points() for r in runs}, num_classes,
                                                     'Runs compared'), out / 'curves_runs.png'))
    comparisons, notes = hypothesis_tests(runs, window)
    summary = out / 'summary.md'
    summary.write_text(summary_markdown(runs, figures, comparisons, notes, alpha, window))
    return summary


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m icl.report', description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='+', help='run directories or wandb run paths ENTITY/PROJECT/RUN_ID')
    parser.add_argument('--out', type=Path, help='output folder (default: RUN_DIR/report of the first run)')
    parser.add_argument('--smooth', type=int, default=1, help='moving average over N positions (default 1: none)')
    parser.add_argument('--choose_logits', help="figures: read every variant's logits with this variant's names")
    parser.add_argument('--invert_logits', action='store_true', help='figures: rotate the class names by one')
    parser.add_argument('--labels', choices=list(analysis.LABEL_COLUMNS), default='true',
                        help='figures: score against the original labels (paper) or the labels shown in context')
    parser.add_argument('--window', type=int, default=10, help='late positions averaged by NH1/NH2 (default 10)')
    parser.add_argument('--alpha', type=float, default=0.05, help='significance level of the verdicts')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    matplotlib.use('Agg')  # files only: no display needed
    if args.smooth < 1 or args.window < 1:
        raise UsageError(f'--smooth={args.smooth} and --window={args.window} must be at least 1')
    runs = analysis.load_runs(args.runs)
    out = args.out or runs[0].path / 'report'
    summary = write_report(runs, out, args.smooth, args.choose_logits, args.invert_logits, args.labels, args.window,
                           args.alpha)
    print(f'wrote {summary} and figures, curves.csv in {out}')
    return summary


if __name__ == '__main__':
    try:
        main()
    except UsageError as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(2)
