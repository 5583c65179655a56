"""A study: many runs over datasets and models, reported together (`python -m icl.report STUDY_ROOT`).

A STUDY_ROOT is a folder whose subfolders, at any depth, are run directories (holding
config.json). Runs are grouped by (dataset, model, examples per prompt) and only compared
within a group (icl/pairing.py). Writes, besides the per-run report:
  study_<kind>.png  per experiment kind, the paper's layout: a column of panels per dataset,
                    accuracy / log-likelihood / entropy against in-context examples, a line per model
  verdicts.png      per null hypothesis and metric, datasets x models coloured by effect size
and in summary.md one verdict table per null hypothesis across the groups, with p-values
Holm-adjusted over all the study's tests.
"""
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from icl import analysis, hypotheses, pairing, plots, results
from icl.analysis import Run
from icl.errors import UsageError

KINDS = ('default', 'random labels', 'flip halfway', 'alternating flips', 'other')
VERDICT_COLUMNS = {'dataset': 'dataset', 'model': 'model', 'examples': 'examples', 'a': 'a', 'b': 'b',
                   'metric': 'metric', 'n_a': 'n', 'difference': 'a - b', 'ci': 'CI', 'effect_size': 'effect size',
                   'p_value': 'p', 'p_holm': 'p (Holm, study)', 'verdict': 'verdict'}
EFFECT_LIMIT = 3  # the verdict matrix's colour scale: Cohen's d from -3 to 3


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (numbers to 3 significant digits)."""
    def cell(value) -> str:
        return f'{value:.3g}' if isinstance(value, float) else str(value).replace('|', '\\|')
    lines = ['| ' + ' | '.join(map(str, table.columns)) + ' |', '|' + '---|' * len(table.columns)]
    lines += ['| ' + ' | '.join(cell(v) for v in row) + ' |' for row in table.itertuples(index=False)]
    return '\n'.join(lines)


def interval_text(low: float, high: float) -> str:
    return f'[{low:.3g}, {high:.3g}]'


def find_run_dirs(root: Path) -> list[Path]:
    """Folders under `root` (any depth, hidden ones skipped) holding a config.json; not those inside a run
    directory (its wandb folder keeps copies of config.json and setup.json)."""
    found = []
    for folder, subfolders, files in os.walk(root):
        if 'config.json' in files:
            found.append(Path(folder))
            subfolders.clear()
        subfolders[:] = sorted(name for name in subfolders if not name.startswith('.'))
    return sorted(found)


def load_sources(sources: Sequence[str | Path]) -> tuple[list[Run], Path | None, dict[str, str]]:
    """(runs, the first study root or None, {run directory: why it could not be read}).

    A run directory or wandb path given directly must load (UsageError otherwise); a folder
    without config.json is a study root, and its run directories that cannot be read (not
    started, damaged) are listed rather than stopping the report."""
    runs, root, skipped = [], None, {}
    for source in sources:
        path = Path(source).expanduser()
        if not (path.is_dir() and not (path / 'config.json').exists()):
            runs.append(analysis.load_run(source))
            continue
        found = find_run_dirs(path)
        if not found:
            raise UsageError(f"'{path}' is neither a run directory nor a study root: no folder below it holds a "
                             'config.json')
        root = root or path
        for run_dir in found:
            try:
                runs.append(analysis.read_run(run_dir))
            except UsageError as error:
                skipped[str(run_dir)] = str(error)
    if not runs:
        raise UsageError('no run could be read: ' + '; '.join(skipped.values()))
    return analysis.distinct_names(runs), root, skipped


def kind_curves(runs: Sequence[Run], table: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The curves of every run of `kind`, its default variant (else its first), with an 'examples' column."""
    chosen = [run for run in runs if run.kind == kind]
    frames = [table[(table['run'] == run.name) & (table['variant'] == main_variant(run))]
              .assign(examples=run.group[2]) for run in chosen]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def main_variant(run: Run) -> str:
    return 'default' if 'default' in run.variants else run.variants[0]


def verdict_table(tests: pairing.Tests, alpha: float) -> pd.DataFrame:
    """Every comparison of the study with its group, Holm-adjusted over all of them."""
    table = hypotheses.comparisons_table(tests.comparisons, alpha)
    groups = pd.DataFrame(tests.groups, columns=['dataset', 'model', 'examples'])
    table = pd.concat([groups, table], axis=1)
    table['ci'] = [interval_text(low, high) for low, high in zip(table['ci_low'], table['ci_high'])]
    return table


def verdicts_markdown(table: pd.DataFrame, alpha: float) -> str:
    lines = ['## Study verdicts', '',
             f'Holm-Bonferroni over all {len(table)} tests of the study (p (Holm, study)); verdicts at alpha = '
             f'{alpha:g} on it. Each row compares two runs of one group (dataset, model, examples per prompt).']
    headers = {**VERDICT_COLUMNS, 'ci': f'{1 - alpha:.0%} CI'}
    table = table.assign(verdict=[f'{verdict} (weak: {n} position{"s" if n != 1 else ""})' if weak else verdict
                                  for verdict, weak, n in zip(table['verdict'], table['weak'], table['num_positions'])])
    for hypothesis, text in hypotheses.HYPOTHESES.items():
        rows = table[table['hypothesis'] == hypothesis].sort_values(['dataset', 'model', 'examples'], kind='stable')
        lines += ['', f'### {hypothesis}: {text}', '']
        lines.append(markdown_table(rows[list(headers)].rename(columns=headers)) if len(rows)
                     else 'Not tested in any group.')
    return '\n'.join(lines)


def write_study(runs: Sequence[Run], plans: Sequence[pairing.Plan], tests: pairing.Tests, table: pd.DataFrame,
                out: Path, alpha: float, skipped: dict[str, str]) -> tuple[list[Path], str]:
    """The study's figures, written into `out`, and its Markdown section."""
    figures = []
    for kind in KINDS:
        curves = kind_curves(runs, table, kind)
        if len(curves):
            fig = plot_study(curves, f'{kind} runs: a column per dataset, a line per model')
            figures.append(save(fig, out / f'study_{results.file_name(kind)}.png'))
    verdicts = verdict_table(tests, alpha) if tests.comparisons else pd.DataFrame()
    if len(verdicts):
        figures.append(save(plot_verdict_matrix(verdicts, alpha), out / 'verdicts.png'))
    lines = [f'{len(runs)} runs in {len(plans)} groups of (dataset, model, examples per prompt): '
             + '; '.join(f'{pairing.group_text(plan.group)}: {len(plan.runs)}' for plan in plans) + '.']
    if len(verdicts):
        lines += ['', verdicts_markdown(verdicts, alpha)]
    if skipped:
        lines += ['', '## Run directories not read', ''] + [f"- '{path}': {why}" for path, why in skipped.items()]
    return figures, '\n'.join(lines)


def save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_study(curves: pd.DataFrame, title: str) -> plt.Figure:
    """The paper's layout: a column per dataset, a row per metric, a line per model (shaded standard error)."""
    datasets = list(dict.fromkeys(curves['dataset']))
    fig, axes = plt.subplots(len(analysis.METRICS), len(datasets), figsize=(3.6 * len(datasets) + 0.8, 8.2),
                             constrained_layout=True, squeeze=False, sharex='col')
    lines = list(dict.fromkeys(zip(curves['model'], curves['examples'])))  # a colour per model (and examples)
    several = {model for model, _ in lines if sum(m == model for m, _ in lines) > 1}  # name the examples then
    legend = {}
    for column, dataset in enumerate(datasets):
        here = curves[curves['dataset'] == dataset]
        for (model, examples), same in here.groupby(['model', 'examples'], sort=False):
            runs = list(dict.fromkeys(same['run']))  # several runs of one kind and group: each drawn and named
            for style, run in zip(('-', '--', ':', '-.') * len(runs), runs):
                label = f'{model}, {examples} examples' if model in several else model
                label += f' ({run})' if len(runs) > 1 else ''
                colour = f'C{lines.index((model, examples)) % 10}'
                for row, metric in enumerate(analysis.METRICS):
                    line = same[(same['run'] == run) & (same['metric'] == metric)]
                    x, mean = line['position'].to_numpy(), line['mean'].to_numpy()
                    sem = line['sem'].fillna(0).to_numpy()
                    ax = axes[row, column]
                    (drawn,) = ax.plot(x, mean, color=colour, ls=style, lw=1.5, label=label)
                    ax.fill_between(x, mean - sem, mean + sem, color=colour, alpha=0.2, lw=0)
                    legend.setdefault(label, drawn)
        axes[0, column].set_title(dataset)
        axes[-1, column].set_xlabel(plots.X_LABEL)
    for row, metric in enumerate(analysis.METRICS):
        axes[row, 0].set_ylabel(plots.Y_LABELS[metric], fontsize='small')
        for ax in axes[row]:
            ax.grid(alpha=0.3)
    fig.legend(list(legend.values()), list(legend), loc='outside lower center', ncol=min(len(legend), 4),
               frameon=False, fontsize='small')
    fig.suptitle(title)
    return fig


def matrix_cells(verdicts: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Per (hypothesis, metric, dataset, model): median effect size, and how many of its comparisons are rejected."""
    cells = verdicts.assign(rejected=verdicts['verdict'] == 'rejected').groupby(
        ['hypothesis', 'metric', 'dataset', 'model'], sort=False)
    return cells.agg(effect=('effect_size', 'median'), rejected=('rejected', 'sum'), tests=('rejected', 'size')) \
        .reset_index()


def plot_verdict_matrix(verdicts: pd.DataFrame, alpha: float) -> plt.Figure:
    """A panel per (null hypothesis, metric): datasets x models coloured by the median effect size of the
    group's comparisons; 'k/m' counts the rejected ones (Holm over the study), bold where any is."""
    cells = matrix_cells(verdicts, alpha)
    datasets, models = sorted(set(verdicts['dataset'])), sorted(set(verdicts['model']))
    panels = list(dict.fromkeys(zip(cells['hypothesis'], cells['metric'])))
    fig, axes = plt.subplots(1, len(panels), figsize=(1.2 + (1.1 * len(models) + 1.2) * len(panels),
                                                      1.6 + 0.5 * len(datasets)), constrained_layout=True,
                             squeeze=False)
    image = None
    for ax, (hypothesis, metric) in zip(axes[0], panels):
        grid = np.full((len(datasets), len(models)), np.nan)
        here = cells[(cells['hypothesis'] == hypothesis) & (cells['metric'] == metric)]
        for cell in here.itertuples():
            i, j = datasets.index(cell.dataset), models.index(cell.model)
            grid[i, j] = np.clip(cell.effect, -EFFECT_LIMIT, EFFECT_LIMIT)
            ax.text(j, i, f'{cell.rejected}/{cell.tests}', ha='center', va='center', fontsize='small',
                    fontweight='bold' if cell.rejected else 'normal')
        image = ax.imshow(grid, cmap='coolwarm', vmin=-EFFECT_LIMIT, vmax=EFFECT_LIMIT, aspect='auto')
        ax.set_title(f'{hypothesis}, {metric}', fontsize='medium')
        ax.set_xticks(range(len(models)), models, rotation=30, ha='right', fontsize='small')
        ax.set_yticks(range(len(datasets)), datasets if ax is axes[0, 0] else [''] * len(datasets),
                      fontsize='small')
    fig.colorbar(image, ax=axes[0, -1], label="median effect size (Cohen's d)")
    fig.suptitle(f'Verdicts: rejected / tested comparisons per cell, alpha = {alpha:g}, Holm over the study')
    return fig
