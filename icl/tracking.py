"""Weights & Biases logging: a real wandb run that needs no account.

Project 'llm' ('llm_debug' with debug=True), entity from $WANDB_API_ENTITY. Without an
API key the run is written offline (upload later with `wandb sync RUN_DIR/wandb/...`);
$WANDB_MODE, when set, wins (e.g. `disabled` in tests).

Keys follow the original's where it had them, so filters and notebooks written for its
projects work: the config flattened with '_' (`dataset_config_num_prompt_examples`),
`label_frequencies` and `guessing_acc`. One history row per repetition, with `repetition`
as the step metric; curves are logged beside them without a repetition of their own; the
final per-variant means (first / last window) go into the run's summary.

Only process 0 of a run owns its wandb run; the other processes get a NullTracker, so the code
that logs never asks which process it is in.
"""
import contextlib
import logging
import netrc
import os
from pathlib import Path

import pandas as pd

from icl.config import flatten

ENTITY_ENV = 'WANDB_API_ENTITY'


def has_api_key() -> bool:
    """True when wandb could log in without asking: $WANDB_API_KEY or a netrc entry."""
    if os.environ.get('WANDB_API_KEY'):
        return True
    host = os.environ.get('WANDB_BASE_URL', 'https://api.wandb.ai').split('://')[-1].split('/')[0]
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def mode() -> str:
    return os.environ.get('WANDB_MODE') or ('online' if has_api_key() else 'offline')


def wandb_config(record: dict) -> dict:
    """A run's wandb config from its config.json record: the config keys flattened with '_' (the original's
    names; CLASS_NAMES is dataset_class_names_mode) and the dtype the model computes in."""
    return {**flatten(record['config'], separator='_'), 'dtype': record['dtype']}


class Tracker:
    """One wandb run beside one run directory; each points to the other."""

    def __init__(self, *, config: dict, run_dir: Path, debug: bool, note: str, resume_id: str | None = None):
        os.environ.setdefault('WANDB_SILENT', 'true')  # our own log lines say where the run is
        import wandb  # slow import, only for real runs
        self._wandb = wandb
        self.mode = mode()
        self.run_dir = Path(run_dir)
        self.run = wandb.init(
            project='llm_debug' if debug else 'llm', entity=os.environ.get(ENTITY_ENV), dir=str(self.run_dir),
            config={**config, 'run_dir': str(self.run_dir.resolve())}, notes=f'note: {note}',
            mode=self.mode, id=resume_id, resume='allow' if resume_id else None,
            settings=wandb.Settings(silent=True))
        if self.mode != 'disabled':  # wandb's own step only counts log calls: every repetition is kept
            self.run.define_metric('repetition')
            self.run.define_metric('*', step_metric='repetition')
        logging.info('wandb run %s (%s)', self.run.id, self.mode)

    def info(self) -> dict:
        """What config.json records about the wandb run."""
        return {'id': self.run.id, 'mode': self.mode, 'path': '/'.join(filter(None, (
            self.run.entity, self.run.project, self.run.id))) if self.mode != 'disabled' else None,
            'dir': getattr(self.run, 'dir', None) if self.mode != 'disabled' else None}

    def log_repetition(self, repetition: int, summary: pd.DataFrame, label_frequencies=None) -> None:
        """Per variant: this repetition's means (`summary`: a row per variant); with the dataset draw's
        label frequencies, also the original's `label_frequencies` and `guessing_acc`."""
        values = {'repetition': repetition}
        for row in summary.to_dict('records'):
            for key, value in row.items():
                if key != 'variant':
                    values[f"{row['variant']}/{key}"] = value
        if label_frequencies is not None:
            values.update(label_frequencies=list(label_frequencies), guessing_acc=max(label_frequencies))
        self.run.log(values)

    def log_summary(self, summary: pd.DataFrame) -> None:
        """The run's final numbers (a row per variant) as `<variant>/<column>` in the wandb run's summary."""
        for row in summary.to_dict('records'):
            for key, value in row.items():
                if key != 'variant':
                    self.run.summary[f"{row['variant']}/{key}"] = value

    def log_curves(self, curves: pd.DataFrame) -> None:
        """The final mean curves as wandb line plots (one per metric, a line per variant), and as a
        table with their standard errors (analysis.curves' columns) for custom charts."""
        wandb = self._wandb
        for metric, group in curves.groupby('metric', sort=False):
            variants = list(dict.fromkeys(group['variant']))
            xs = group[group['variant'] == variants[0]]['position'].tolist()
            ys = [group[group['variant'] == v]['mean'].tolist() for v in variants]
            self.run.log({f'curves/{metric}': wandb.plot.line_series(
                xs=xs, ys=ys, keys=variants, title=metric, xname='in-context examples seen')})
        self.run.log({'curves/table': wandb.Table(dataframe=curves)})

    def save(self, path: Path) -> None:
        """Keep a file with the wandb run (uploaded with it)."""
        if self.mode != 'disabled':
            self.run.save(str(path), base_path=str(self.run_dir), policy='now')

    def stop(self, exit_code: int) -> None:
        """End the wandb run of a run that stopped (exit_code: the command's); never raises, as wandb may
        fail to write on a full disk too."""
        with contextlib.suppress(Exception):
            self.run.finish(exit_code=exit_code)

    def finish(self) -> None:
        offline_dir = Path(self.run.dir).parent if self.mode == 'offline' else None
        self.run.finish()
        if offline_dir is not None:
            logging.info('wandb run written offline; upload it with: wandb sync %s', offline_dir)


class NullTracker:
    """The tracker of the processes that do not own the wandb run: Tracker's methods, doing nothing."""

    def info(self) -> dict:
        return {'id': None, 'mode': None, 'path': None, 'dir': None}

    def log_repetition(self, repetition: int, summary: pd.DataFrame, label_frequencies=None) -> None:
        pass

    def log_summary(self, summary: pd.DataFrame) -> None:
        pass

    def log_curves(self, curves: pd.DataFrame) -> None:
        pass

    def save(self, path: Path) -> None:
        pass

    def stop(self, exit_code: int) -> None:
        pass

    def finish(self) -> None:
        pass


AnyTracker = Tracker | NullTracker  # what the scoring loop logs to, whichever process it runs in
