"""Figures like the paper's: accuracy, log-likelihood and entropy side by side over in-context positions.

One line per (run, variant) with the standard error shaded; dotted grey lines show chance
(uniform prediction). Where labels flip: a dashed vertical line when the figure shows one run,
else a marker on that run's own lines only. Positions a null hypothesis was tested at are shaded.
"""
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from icl.analysis import METRICS
from icl.prompts import stretches

TITLES = {'accuracy': 'Accuracy', 'log_lik': 'Log-likelihood', 'entropy': 'Entropy'}
Y_LABELS = {'accuracy': 'accuracy (fraction correct)', 'log_lik': 'log-likelihood of the label (nats)',
            'entropy': 'entropy of the prediction (nats)'}
X_LABEL = 'in-context examples seen'
TESTED_METRICS = ('accuracy', 'log_lik')  # the null hypotheses are tested on these; shaded where tested
TESTED = 'tested positions'
MAX_CHANGE_LINES = 8  # more flips than this (alternating labels) would hide the curves
Key = tuple[str, str]  # (run, variant)


def chance_levels(num_classes: int) -> dict[str, float]:
    """Each metric's value for a uniform prediction over `num_classes` classes."""
    return {'accuracy': 1 / num_classes, 'log_lik': -np.log(num_classes), 'entropy': np.log(num_classes)}


def line_label(run: str, variant: str, runs: int) -> str:
    return variant if runs == 1 else f'{run}: {variant}'


def spans(positions: Sequence[int]) -> list[tuple[float, float]]:
    """Contiguous stretches of positions as (start - 0.5, end + 0.5), for shading."""
    return [(first - 0.5, last + 0.5) for first, last in stretches(positions)]


def plot_curves(curves: pd.DataFrame, change_points: Mapping[str, Sequence[int]] | None = None,
                num_classes: int | None = None, title: str | None = None, labels: Mapping[Key, str] | None = None,
                tested: Sequence[int] | None = None, rows: Sequence[tuple[str, Sequence[Key]]] | None = None
                ) -> plt.Figure:
    """A figure of `curves` (columns [run,] variant, metric, position, mean, sem).

    `change_points` maps a run name to the positions where its labels flip; `labels` names the
    lines in the legend (default 'variant' or 'run: variant'); `tested` are positions to shade;
    `rows` splits the lines into rows of panels, each (title, the (run, variant) lines it shows).
    """
    curves = curves if 'run' in curves else curves.assign(run='')
    keys = list(dict.fromkeys(zip(curves['run'], curves['variant'])))
    runs = curves['run'].nunique()
    rows = rows or [('', keys)]
    fig, axes = plt.subplots(len(rows), len(METRICS), figsize=(4.3 * len(METRICS), 3.4 + 2.8 * (len(rows) - 1)),
                             constrained_layout=True, squeeze=False)
    colours = {key: f'C{i % 10}' for i, key in enumerate(keys)}  # a line keeps its colour in every row
    legend = {}
    for (row_title, row_keys), row_axes in zip(rows, axes):
        for key in row_keys:
            group = curves[(curves['run'] == key[0]) & (curves['variant'] == key[1])]
            label = (labels or {}).get(key) or line_label(*key, runs)
            for ax, metric in zip(row_axes, METRICS):
                line = group[group['metric'] == metric]
                x, mean, sem = line['position'].to_numpy(), line['mean'].to_numpy(), line['sem'].fillna(0).to_numpy()
                (drawn,) = ax.plot(x, mean, lw=1.6, color=colours[key], label=label)
                ax.fill_between(x, mean - sem, mean + sem, color=drawn.get_color(), alpha=0.2, lw=0)
                legend.setdefault(label, drawn)
                if runs > 1:
                    _mark_on_line(ax, x, mean, (change_points or {}).get(key[0], []), colours[key], legend)
        if row_title:
            row_axes[0].annotate(row_title, (0, 1.13), xycoords='axes fraction', fontweight='bold')
    for row_axes in axes:
        if runs == 1:
            _mark_change_points(row_axes, change_points or {}, legend)
        _decorate(row_axes, num_classes, tested, legend)
    for ax in axes[-1]:
        ax.set_xlabel(X_LABEL)
    fig.legend(list(legend.values()), list(legend), loc='outside lower center', ncol=min(len(legend), 4),
               frameon=False, fontsize='small')
    if title:
        fig.suptitle(title)
    return fig


def _decorate(row_axes, num_classes: int | None, tested: Sequence[int] | None, legend: dict) -> None:
    for ax, metric in zip(row_axes, METRICS):
        if num_classes:
            legend.setdefault('chance', ax.axhline(chance_levels(num_classes)[metric], color='grey', ls=':', lw=1,
                                                   label='chance'))
        for start, end in spans(tested if tested is not None and metric in TESTED_METRICS else []):
            legend.setdefault(TESTED, ax.axvspan(start, end, color='0.6', alpha=0.2, lw=0, label=TESTED))
        ax.set_title(TITLES[metric])
        ax.set_ylabel(Y_LABELS[metric], fontsize='small')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # positions count examples
        ax.grid(alpha=0.3)


def _mark_on_line(ax, x, mean, points: Sequence[int], colour: str, legend: dict) -> None:
    """A run's label flips as markers on its own line (several runs share the axes)."""
    points = [p for p in points if x.min() <= p <= x.max()] if len(points) <= MAX_CHANGE_LINES and len(x) else []
    if points:
        (drawn,) = ax.plot(points, np.interp(points, x, mean), ls='none', marker='v', ms=7, mec='black', mew=0.6,
                           color=colour, label='label flip (on its run)')
        legend.setdefault('label flip (on its run)', drawn)


def _mark_change_points(axes, change_points: Mapping[str, Sequence[int]], legend: dict) -> None:
    positions = sorted({int(p) for points in change_points.values() if len(points) <= MAX_CHANGE_LINES
                        for p in points})
    for ax in axes:
        for position in positions:
            legend.setdefault('label flip', ax.axvline(position, color='black', ls='--', lw=1, alpha=0.6,
                                                       label='label flip'))
