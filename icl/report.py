"""Figures, tidy curves and the null-hypothesis tests of one or more runs, or of a whole study.

  python -m icl.report RUN_DIR|STUDY_ROOT [...] [--out DIR] [--smooth N] [--choose_logits VARIANT]
                       [--invert_logits] [--labels true|shown] [--window W] [--alpha A]

A RUN_DIR may also be a wandb run path ENTITY/PROJECT/RUN_ID (needs an API key); a folder
without config.json is a STUDY_ROOT whose run directories (at any depth) are all read. A run
that is still going is reported as 'partial: k of n repetitions'. Writes into --out (default:
RUN_DIR/report of the first run, or STUDY_ROOT/report):
  curves_<run>.png  accuracy, log-likelihood and entropy per position, a line per variant
  curves_runs.png   the runs of one group side by side, one line per run (its default variant)
  nh1*.png, nh2_<run>.png, nh3*.png  per hypothesis, the compared curves with the tested positions shaded
  curves.csv        the plotted curves: run, dataset, model, variant, metric, position, mean, sem, n
  summary.md        the runs, first vs last positions, the tests of NH1-NH3, runs no test uses and why
With several (dataset, model, examples) groups, also the study's figures and verdict tables (icl/study.py).

Runs are compared only within a group of (dataset, model, examples per prompt); which test
uses which run is read from the runs' configs (icl/pairing.py).
"""
import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import pandas as pd

from icl import analysis, cli, hypotheses, pairing, plots, results, study
from icl.analysis import Run
from icl.errors import UsageError
from icl.study import interval_text, main_variant, markdown_table, save

SUMMARY_COLUMNS = {  # comparisons_table column -> summary.md header
    'hypothesis': 'H0', 'a': 'a', 'b': 'b', 'metric': 'metric', 'positions': 'positions', 'n_a': 'n',
    'mean_a': 'mean a', 'mean_b': 'mean b', 'difference': 'a - b', 'ci': 'CI', 'effect_size': 'effect size',
    'p_value': 'p', 'p_holm': 'p (Holm)', 'verdict': 'verdict', 'reading': 'reading',
}
EARLY_LATE_COLUMNS = {'variant': 'variant', 'repetitions': 'repetitions', 'accuracy_first': 'accuracy first',
                      'accuracy_last': 'accuracy last', 'log_lik_first': 'log-lik first',
                      'log_lik_last': 'log-lik last'}
MANY_VARIANTS = 4  # a run with more variants is drawn in two rows: default and flip, then the replacement names


def file_stem(name: str) -> str:
    return results.file_name(name).strip('_') or 'run'


def statistics_note(table: pd.DataFrame, alpha: float, family: str = 'this report') -> str:
    """How to read the verdicts, p-values and intervals of `table` (a comparisons_table)."""
    tests = '; '.join(sorted(set(table['test'])))
    cannot = table['verdict'].str.startswith('cannot').sum()
    text = (f'Verdicts at alpha = {alpha:g} on Holm-Bonferroni adjusted p-values over the {len(table)} tests of '
            f'{family} (p (Holm)); the raw p is beside it. Per repetition the metric is averaged over the listed '
            "positions; a - b is the difference of the means over repetitions, effect size is Cohen's d_z (paired) or "
            f'd (independent). Test: {tests}. The CI is the {1 - alpha:.0%} interval of a - b that inverts this same '
            f'test (every shift it does not reject), so it excludes 0 exactly when the raw p < {alpha:g}; it is not '
            'adjusted for multiple tests (a CI without 0 beside "not rejected": the raw p passes alpha, the Holm '
            'p does not), and it is unbounded where the repetitions are too few for any data to reject. NH1 and '
            'NH2 average the last positions, each variant scored against the original labels with '
            'its own names; NH3 takes the positions preceded by equally many flipped and unflipped labels and '
            'scores every variant against the original labels with the default names '
            f'(icl/hypotheses.py, nh3_equal_treatment); NH3 on fewer than {hypotheses.WEAK_BELOW} positions is '
            'marked weak.')
    if cannot:
        text += (f' {cannot} test(s) cannot reject at all: a permutation test over n repetitions cannot give a p '
                 'below its smallest possible value (paired: 2 / 2^n), whatever the data, and Holm rejects nothing '
                 'unless the smallest p is below alpha / (number of tests).')
    return text


def comparisons_markdown(comparisons: Sequence[hypotheses.Comparison], alpha: float,
                         family: str = 'this report') -> str:
    table = hypotheses.comparisons_table(comparisons, alpha)
    table['ci'] = [interval_text(low, high) for low, high in zip(table['ci_low'], table['ci_high'])]
    headers = {**SUMMARY_COLUMNS, 'ci': f'{1 - alpha:.0%} CI'}
    return '\n'.join([markdown_table(table[list(headers)].rename(columns=headers)), '',
                      statistics_note(table, alpha, family)])


def tests_markdown(tests: pairing.Tests, unused: dict[str, str], alpha: float) -> str:
    lines = ['## Null hypotheses', '']
    lines += [f'- **{key}**: {text}.' for key, text in hypotheses.HYPOTHESES.items()]
    lines += ['', 'Runs are only compared within one group of (dataset, model, examples per prompt).']
    if tests.comparisons:
        lines += ['', comparisons_markdown(tests.comparisons, alpha)]
    lines += [''] + [f'- {note}' for note in tests.notes]
    if unused:
        lines += ['', '## Runs no test uses', ''] + [f"- '{name}': {why}." for name, why in unused.items()]
    return '\n'.join(lines)


def summary_title(runs: Sequence[Run]) -> str:
    partial = [f'{run.name} {run.repetitions} of {run.n_repeats}' for run in runs if run.partial]
    return '# ICL training curves' + (f" (partial: {', '.join(partial)} repetitions)" if partial else '')


def summary_markdown(runs: Sequence[Run], figures: Sequence[Path], tests: pairing.Tests, unused: dict[str, str],
                     alpha: float, window: int, extra: str = '') -> str:
    described = pd.DataFrame([run.describe() for run in runs])
    width = min(len(hypotheses.late_positions(run.num_examples, window)) for run in runs)
    early_late = pd.concat([analysis.early_late(run.metrics(), width).assign(run=run.name) for run in runs])
    early_late = early_late[['run', *EARLY_LATE_COLUMNS]].rename(columns=EARLY_LATE_COLUMNS)
    progress = {run.name: run.progress for run in runs}
    early_late['repetitions'] = early_late['run'].map(progress)
    parts = [summary_title(runs), '', markdown_table(described), '',
             f'## First vs last {width} positions', '', markdown_table(early_late), '',
             tests_markdown(tests, unused, alpha), '']
    if extra:
        parts += [extra, '']
    parts += ['## Figures', ''] + [f'![{figure.stem}]({figure.name})' for figure in figures]
    return '\n'.join(parts) + '\n'


def figure_title(run: Run) -> str:
    title = f"{run.name} ({run.record['config']['dataset']['name']}, {run.record['config']['model']['name']})"
    points = run.change_points()
    if len(points) > plots.MAX_CHANGE_LINES:
        title += f', labels alternate in blocks of {points[0]}'
    return title + (f' - {run.progress}' if run.partial else '')


def variant_labels(runs: Sequence[Run], with_run: bool) -> dict[plots.Key, str]:
    """Legend text per (run, variant): 'rating_1 (bad / good)', prefixed by the run when several are drawn."""
    return {(run.name, v): f'{run.name}: {run.variant_label(v)}' if with_run else run.variant_label(v)
            for run in runs for v in run.variants}


def variant_rows(run: Run) -> list[tuple[str, list[plots.Key]]] | None:
    """Two rows for a run with many variants (default and flipped names; replacement names), else one."""
    if len(run.variants) <= MANY_VARIANTS:
        return None
    first = [v for v in ('default', 'flip') if v in run.variants] or run.variants[:1]
    rest = [v for v in run.variants if v not in first]
    return [('default and flipped names', [(run.name, v) for v in first]),
            ('replacement names (default for reference)', [(run.name, v) for v in [first[0], *rest]])]


def run_figure(run: Run, table: pd.DataFrame, num_classes: int | None, tested=None, title: str | None = None):
    return plots.plot_curves(table[table['run'] == run.name], {run.name: run.change_points()}, num_classes,
                             title or figure_title(run), variant_labels([run], False), tested, variant_rows(run))


def _positions_or_none(plan: pairing.Plan, hypothesis: str, window: int):
    try:
        return pairing.tested_positions(plan, hypothesis, window)
    except UsageError:
        return None  # the summary says why the test did not run


def hypothesis_figures(plans: Sequence[pairing.Plan], table: pd.DataFrame, out: Path, smooth_n: int,
                       window: int) -> list[Path]:
    """Per group: NH1 default vs random labels, NH2 the label-name variants, NH3 halfway vs alternating
    read with the default names; each shades the positions the hypothesis is tested at."""
    figures = []
    for plan in plans:
        tag = file_stem('-'.join(map(str, plan.group))) if len(plans) > 1 else ''
        where = pairing.group_text(plan.group)
        num_classes = plan.runs[0].num_classes
        if plan.nh1:
            default, random = plan.nh1
            lines = table[table['run'].isin([default.name, random.name]) & (table['variant'] == 'default')]
            labels = {(default.name, 'default'): f'{default.name}: true labels, {default.variant_label("default")}',
                      (random.name, 'default'): f'{random.name}: random labels, {random.variant_label("default")}'}
            fig = plots.plot_curves(lines, {}, num_classes, f'NH1: default vs random labels ({where})', labels,
                                    _positions_or_none(plan, 'NH1', window))
            figures.append(save(fig, out / f'nh1{"_" + tag if tag else ""}.png'))
        for run in plan.nh2:
            fig = run_figure(run, table, num_classes, _positions_or_none(plan, 'NH2', window),
                             f'NH2: label names of {run.name} ({where})')
            figures.append(save(fig, out / f'nh2_{file_stem(run.name)}.png'))
        if plan.nh3:
            halfway, alternating = plan.nh3
            lines = analysis.run_curves(plan.nh3, smooth_n, choose_logits='default')
            keys = [(halfway.name, v) for v in halfway.variants] + [(alternating.name, 'default')]
            lines = lines[[key in keys for key in zip(lines['run'], lines['variant'])]]
            labels = {(halfway.name, v): f'{halfway.name}: {v} '
                                         f'({"correct -> flipped" if v == "default" else "flipped -> correct"})'
                      for v in halfway.variants}
            labels[alternating.name, 'default'] = f'{alternating.name}: alternating'
            fig = plots.plot_curves(lines, {run.name: run.change_points() for run in plan.nh3}, num_classes,
                                    f'NH3: read with the default names ({where})', labels,
                                    _positions_or_none(plan, 'NH3', window))
            figures.append(save(fig, out / f'nh3{"_" + tag if tag else ""}.png'))
    return figures


def write_report(runs: Sequence[Run], out: Path, smooth_n: int = 1, choose_logits: str | None = None,
                 invert_logits: bool = False, labels: str = 'true', window: int = 10, alpha: float = 0.05,
                 study_root: Path | None = None, skipped: dict[str, str] | None = None) -> Path:
    """Write figures, curves.csv and summary.md into `out`; returns the summary's path.

    With several groups of (dataset, model, examples) or a `study_root`, also the study's figures and
    verdict tables (icl/study.py); `skipped` names run directories that could not be read, with why."""
    out.mkdir(parents=True, exist_ok=True)
    table = analysis.run_curves(runs, smooth_n, choose_logits, invert_logits, labels)
    table.to_csv(out / 'curves.csv', index=False)
    classes = {run.num_classes for run in runs}
    num_classes = classes.pop() if len(classes) == 1 else None
    plans, unused = pairing.plan_runs(runs)
    tests = pairing.run_tests(plans, window, alpha)
    figures = [save(run_figure(run, table, run.num_classes), out / f'curves_{file_stem(run.name)}.png')
               for run in runs]
    if 1 < len(runs) and len(plans) == 1:
        firsts = pd.concat([table[(table['run'] == run.name) & (table['variant'] == main_variant(run))]
                            for run in runs])
        legend = {(run.name, main_variant(run)): f'{run.name}: {run.variant_label(main_variant(run))}'
                  for run in runs}
        figures.append(save(plots.plot_curves(firsts, {r.name: r.change_points() for r in runs}, num_classes,
                                                     'Runs compared', legend), out / 'curves_runs.png'))
    figures += hypothesis_figures(plans, table, out, smooth_n, window)
    extra = ''
    if study_root is not None or len(plans) > 1 or skipped:
        study_figures, extra = study.write_study(runs, plans, tests, table, out, alpha, skipped or {})
        figures += study_figures
    summary = out / 'summary.md'
    summary.write_text(summary_markdown(runs, figures, tests, unused, alpha, window, extra))
    return summary


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = cli.Parser(prog='python -m icl.report', description=__doc__)
    parser.add_argument('runs', nargs='+', help='run directories or wandb run paths ENTITY/PROJECT/RUN_ID')
    parser.add_argument('--out', type=Path, help='output folder (default: RUN_DIR/report of the first run)')
    parser.add_argument('--smooth', type=int, default=1, help='moving average over N positions (default 1: none)')
    parser.add_argument('--choose_logits', help="figures: read every variant's logits with this variant's names")
    parser.add_switch('invert_logits', 'figures: rotate the class names by one')
    parser.add_argument('--labels', choices=list(analysis.LABEL_COLUMNS), default='true',
                        help='figures: score against the original labels (paper) or the labels shown in context')
    parser.add_argument('--window', type=int, default=10, help='late positions averaged by NH1/NH2 (default 10)')
    parser.add_argument('--alpha', type=float, default=0.05, help='significance level of the verdicts')
    return parser.parse_args(argv)


def check_out(out: Path) -> None:
    """UsageError unless `out` is, or can become, a folder."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out '{out}' is a file, not a folder; name a folder to write the report into")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the --out folder '{out}' ({error.strerror})") from None


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    matplotlib.use('Agg')  # files only: no display needed
    if args.smooth < 1 or args.window < 1:
        raise UsageError(f'--smooth={args.smooth} and --window={args.window} must be at least 1')
    if not 0 < args.alpha < 1:
        raise UsageError(f'--alpha={args.alpha} must lie between 0 and 1')
    runs, root, skipped = study.load_sources(args.runs)
    out = args.out or (root or runs[0].path) / 'report'
    check_out(out)
    summary = write_report(runs, out, args.smooth, args.choose_logits, args.invert_logits, args.labels, args.window,
                           args.alpha, root, skipped)
    print(f'wrote {summary} and figures, curves.csv in {out}')
    return summary


def command(argv: list[str]) -> None:
    """The program (its exit status: icl.cli)."""
    main(argv)


if __name__ == '__main__':
    sys.exit(cli.exit_status(command, sys.argv[1:], 'interrupted: the report may be incomplete; run it again'))
