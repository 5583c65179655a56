"""Figures like the paper's: accuracy, log-likelihood and entropy side by side over in-context positions.

One line per (run, variant) with the standard error shaded; dashed vertical lines mark
where the in-context labels flip; dotted grey lines show chance (uniform prediction).
"""
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from icl.analysis import METRICS

TITLES = {'accuracy': 'Accuracy', 'log_lik': 'Log-likelihood', 'entropy': 'Entropy'}
MAX_CHANGE_LINES = 8  # more flips than this (alternating labels) would hide the curves


def chance_levels(num_classes: int) -> dict[str, float]:
    """Each metric's value for a uniform prediction over `num_classes` classes."""
    return {'accuracy': 1 / num_classes, 'log_lik': -np.log(num_classes), 'entropy': np.log(num_classes)}


def line_label(run: str, variant: str, runs: int) -> str:
    return variant if runs == 1 else f'{run}: {variant}'


def plot_curves(curves: pd.DataFrame, change_points: Mapping[str, Sequence[int]] | None = None,
                num_classes: int | None = None, title: str | None = None) -> plt.Figure:
    """A figure of `curves` (columns [run,] variant, metric, position, mean, sem).

    `change_points` maps a run name to the positions where its labels flip.
    """
    curves = curves if 'run' in curves else curves.assign(run='')
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.3 * len(METRICS), 3.4), constrained_layout=True)
    runs = curves['run'].nunique()
    for (run, variant), group in curves.groupby(['run', 'variant'], sort=False):
        for ax, metric in zip(axes, METRICS):
            line = group[group['metric'] == metric]
            x, mean, sem = line['position'].to_numpy(), line['mean'].to_numpy(), line['sem'].fillna(0).to_numpy()
            (drawn,) = ax.plot(x, mean, lw=1.6, label=line_label(run, variant, runs))
            ax.fill_between(x, mean - sem, mean + sem, color=drawn.get_color(), alpha=0.2, lw=0)
    _mark_change_points(axes, change_points or {})
    if num_classes:
        for ax, metric in zip(axes, METRICS):
            ax.axhline(chance_levels(num_classes)[metric], color='grey', ls=':', lw=1, label='chance')
    for ax, metric in zip(axes, METRICS):
        ax.set_title(TITLES[metric])
        ax.set_xlabel('in-context examples seen')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # positions count examples
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='outside lower center', ncol=min(len(labels), 6), frameon=False, fontsize='small')
    if title:
        fig.suptitle(title)
    return fig


def _mark_change_points(axes, change_points: Mapping[str, Sequence[int]]) -> None:
    positions = sorted({int(p) for points in change_points.values() if len(points) <= MAX_CHANGE_LINES
                        for p in points})
    for ax in axes:
        for i, position in enumerate(positions):
            ax.axvline(position, color='black', ls='--', lw=1, alpha=0.6, label='label flip' if i == 0 else None)
