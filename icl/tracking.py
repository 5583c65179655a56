"""Weights & Biases logging: a real wandb run that needs no account.

Project 'llm' ('llm_debug' with debug=True), entity from $WANDB_API_ENTITY. Without an
API key the run is written offline (upload later with `wandb sync RUN_DIR/wandb/...`);
$WANDB_MODE, when set, wins (e.g. `disabled` in tests).
"""
import logging
import netrc
import os
from pathlib import Path

import pandas as pd

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
        logging.info('wandb run %s (%s)', self.run.id, self.mode)

    def info(self) -> dict:
        """What config.json records about the wandb run."""
        return {'id': self.run.id, 'mode': self.mode, 'path': '/'.join(filter(None, (
            self.run.entity, self.run.project, self.run.id))) if self.mode != 'disabled' else None,
            'dir': getattr(self.run, 'dir', None) if self.mode != 'disabled' else None}

    def log_repetition(self, repetition: int, summary: pd.DataFrame) -> None:
        """Per variant: this repetition's mean accuracy, log-likelihood and entropy over positions."""
        values = {'repetition': repetition}
        for row in summary.to_dict('records'):
            for key, value in row.items():
                if key != 'variant':
                    values[f"{row['variant']}/{key}"] = value
        self.run.log(values, step=repetition)

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

    def finish(self) -> None:
        offline_dir = Path(self.run.dir).parent if self.mode == 'offline' else None
        self.run.finish()
        if offline_dir is not None:
            logging.info('wandb run written offline; upload it with: wandb sync %s', offline_dir)
