"""ICL training curves from a run's table: accuracy, log-likelihood and entropy per position.

At each in-context position the class-token logits are renormalised over one variant's
class names (its own, or another's with `choose_logits`); the true label is the row's
label before any flip or randomisation, as in the paper.
"""
from collections.abc import Sequence

import numpy as np
import pandas as pd

from icl.probs import entropy, log_softmax

METRICS = ('accuracy', 'log_lik', 'entropy')


def class_columns(all_classes: Sequence[str], names: Sequence[str], invert_logits: bool = False) -> list[int]:
    """Columns of `names` in the table's label_logits; `invert_logits` rotates them by one."""
    columns = [list(all_classes).index(name) for name in names]
    if invert_logits:
        columns = [columns[(i + 1) % len(columns)] for i in range(len(columns))]
    return columns


def position_metrics(table: pd.DataFrame, setup: dict, choose_logits: str | None = None,
                     invert_logits: bool = False) -> pd.DataFrame:
    """One row per in-context (repetition, variant, position) with accuracy, log_lik, entropy."""
    frames = []
    context = table[~table['is_query']]
    for variant, group in context.groupby('variant', sort=False):
        names = setup['variants'][choose_logits or variant]
        columns = class_columns(setup['all_classes'], names, invert_logits)
        log_probs = log_softmax(np.stack(group['label_logits'].to_numpy())[:, columns].astype(np.float64))
        labels = group['true_label'].to_numpy()
        frames.append(pd.DataFrame({
            'repetition': group['repetition'].to_numpy(), 'variant': variant,
            'position': group['position'].to_numpy(),
            'accuracy': (log_probs.argmax(-1) == labels).astype(float),
            'log_lik': log_probs[np.arange(len(labels)), labels],
            'entropy': entropy(log_probs),
        }))
    return pd.concat(frames, ignore_index=True)


def smooth(values: np.ndarray, n: int) -> np.ndarray:
    """Moving average over `n` positions (the original's 'valid' convolution)."""
    return values if n <= 1 else np.convolve(values, np.ones(n) / n, mode='valid')


def curves(metrics: pd.DataFrame, smooth_n: int = 1) -> pd.DataFrame:
    """Mean over repetitions per (variant, metric, position), with standard error and count.

    Smoothing averages the per-position means and standard errors over `smooth_n`
    positions; position is then the window's first position.
    """
    rows = []
    for variant, group in metrics.groupby('variant', sort=False):
        by_position = group.groupby('position')
        for metric in METRICS:
            mean = by_position[metric].mean().to_numpy()
            sem = by_position[metric].sem(ddof=1).fillna(0.0).to_numpy()
            n = by_position[metric].count().to_numpy()
            positions = by_position[metric].mean().index.to_numpy()
            mean, sem = smooth(mean, smooth_n), smooth(sem, smooth_n)
            rows.append(pd.DataFrame({'variant': variant, 'metric': metric, 'position': positions[:len(mean)],
                                      'mean': mean, 'sem': sem, 'n': n[:len(mean)]}))
    return pd.concat(rows, ignore_index=True)


def early_late(metrics: pd.DataFrame, window: int = 10) -> pd.DataFrame:
    """Per variant: accuracy and log-likelihood over the first and the last `window` positions."""
    rows = []
    for variant, group in metrics.groupby('variant', sort=False):
        last = group['position'].max()
        early = group[group['position'] < window]
        late = group[group['position'] > last - window]
        rows.append({'variant': variant, 'repetitions': group['repetition'].nunique(),
                     'accuracy_first': early['accuracy'].mean(), 'accuracy_last': late['accuracy'].mean(),
                     'log_lik_first': early['log_lik'].mean(), 'log_lik_last': late['log_lik'].mean()})
    return pd.DataFrame(rows)
