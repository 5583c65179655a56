"""ICL training curves from runs (the paper's null-hypothesis tests are in icl/hypotheses.py).

Curves: at each in-context position the class-token logits are renormalised over one
variant's class names (its own, or another's with `choose_logits`; `invert_logits` rotates
them by one); accuracy (argmax == label), log-likelihood of the label and entropy are taken
per repetition, then averaged over repetitions with their standard error. The label is the
row's label before any flip or randomisation (`labels='true'`, as in the paper) or the
label shown in context (`labels='shown'`).

Runs are read from a local run directory, or from wandb (ENTITY/PROJECT/RUN_ID, downloaded
once into the cache; needs an API key and network).
"""
import dataclasses
import functools
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from icl import results
from icl.errors import UsageError
from icl.packaged import cache_dir
from icl.probs import class_log_probs, entropy
from icl.prompts import LabelRule, change_points
from icl.settings import DataSettings

METRICS = ('accuracy', 'log_lik', 'entropy')
LABEL_COLUMNS = {'true': 'true_label', 'shown': 'shown_label'}  # what accuracy / log_lik are measured against
RUN_FILES = ('config.json', 'setup.json')
# ENTITY/PROJECT/RUN_ID, ENTITY/PROJECT/runs/RUN_ID or the run's wandb.ai address
WANDB_PATH = re.compile(r'^(?:https?://[^/]+/)?(?P<entity>[\w.-]+)/(?P<project>[\w.-]+)/(?:runs/)?(?P<id>[\w-]+)/?$')


# ------------------------------------------------------------------ curves

def class_columns(all_classes: Sequence[str], names: Sequence[str], invert_logits: bool = False) -> list[int]:
    """Columns of `names` in the table's label_logits; `invert_logits` rotates them by one."""
    columns = [list(all_classes).index(name) for name in names]
    if invert_logits:
        columns = [columns[(i + 1) % len(columns)] for i in range(len(columns))]
    return columns


def context_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The in-context rows of each repetition's first query prompt: what the curves and tests read, as the original."""
    return table[~table['is_query'] & (table.get('query', 0) == 0)]


def position_metrics(table: pd.DataFrame, setup: dict, choose_logits: str | None = None,
                     invert_logits: bool = False, labels: str = 'true') -> pd.DataFrame:
    """One row per in-context (repetition, variant, position) with accuracy, log_lik, entropy.

    With labels='shown', examples whose shown label is literal replacement text get NaN.
    """
    if choose_logits is not None and choose_logits not in setup['variants']:
        raise UsageError(f"choose_logits='{choose_logits}' is not a variant of this run; "
                         f"choose one of {', '.join(setup['variants'])}")
    if labels not in LABEL_COLUMNS:
        raise UsageError(f"labels='{labels}' is not valid; choose one of {', '.join(LABEL_COLUMNS)}")
    frames = []
    context = context_rows(table)
    for variant, group in context.groupby('variant', sort=False):
        names = setup['variants'][choose_logits or variant]
        columns = class_columns(setup['all_classes'], names, invert_logits)
        log_probs = class_log_probs(np.stack(group['label_logits'].to_numpy()), columns)
        label = group[LABEL_COLUMNS[labels]].to_numpy()
        known = label >= 0  # -1: a literal replacement text, no class to score
        picked = log_probs[np.arange(len(label)), np.where(known, label, 0)]
        frames.append(pd.DataFrame({
            'repetition': group['repetition'].to_numpy(), 'variant': variant,
            'position': group['position'].to_numpy(),
            'accuracy': np.where(known, log_probs.argmax(-1) == label, np.nan),
            'log_lik': np.where(known, picked, np.nan),
            'entropy': entropy(log_probs),
        }))
    return pd.concat(frames, ignore_index=True)


def smooth(values: np.ndarray, n: int) -> np.ndarray:
    """Moving average over `n` positions along the last axis (the original's 'valid' convolution)."""
    if n <= 1:
        return values
    return np.apply_along_axis(lambda row: np.convolve(row, np.ones(n) / n, mode='valid'), -1, values)


def curves(metrics: pd.DataFrame, smooth_n: int = 1) -> pd.DataFrame:
    """Mean over repetitions per (variant, metric, position), with standard error and count.

    Smoothing is applied to each repetition's curve before averaging (so the mean equals the
    original's smoothed mean curve and the standard error is that of the smoothed value);
    position is then the centre of the window.
    """
    if smooth_n > metrics['position'].nunique():
        raise UsageError(f'smoothing over {smooth_n} positions needs at least that many; '
                         f"the run has {metrics['position'].nunique()}")
    rows = []
    for variant, group in metrics.groupby('variant', sort=False):
        for metric in METRICS:
            grid = group.pivot(index='repetition', columns='position', values=metric)  # repetitions x positions
            values = smooth(grid.to_numpy(), smooth_n)
            n = np.isfinite(values).sum(0)
            with warnings.catch_warnings():  # all-NaN positions (literal labels) stay NaN
                warnings.simplefilter('ignore', RuntimeWarning)
                mean = np.nanmean(values, 0)
                sem = np.nanstd(values, 0, ddof=1) / np.sqrt(n)
            positions = grid.columns.to_numpy()[:values.shape[1]] + (smooth_n - 1) / 2 if smooth_n > 1 \
                else grid.columns.to_numpy()
            rows.append(pd.DataFrame({'variant': variant, 'metric': metric, 'position': positions,
                                      'mean': mean, 'sem': sem, 'n': n}))
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


# ------------------------------------------------------------------ runs

@dataclasses.dataclass
class Run:
    """One run: its config.json record, setup.json and results table."""
    name: str
    path: Path
    record: dict
    setup: dict
    table: pd.DataFrame

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(self.table['variant']))

    @property
    def num_examples(self) -> int:
        return int(self.table.loc[~self.table['is_query'], 'position'].max()) + 1

    @property
    def repetitions(self) -> int:
        return self.table['repetition'].nunique()

    @property
    def num_classes(self) -> int:
        return len(self.setup['variants'][self.variants[0]])

    @property
    def n_repeats(self) -> int:
        """Repetitions the run was asked for (config n_repeats); `repetitions` of them are done."""
        return int(self.record['config']['n_repeats'])

    @property
    def partial(self) -> bool:
        return self.repetitions < self.n_repeats

    @property
    def progress(self) -> str:
        """'k of n repetitions', with 'partial: ' in front while the run is unfinished."""
        return f'{"partial: " if self.partial else ""}{self.repetitions} of {self.n_repeats} repetitions'

    @property
    def group(self) -> tuple[str, str, int]:
        """(dataset, model, examples per prompt): only runs of one group are ever compared."""
        return self.settings.name, self.record['config']['model']['name'], self.settings.num_prompt_examples

    def variant_label(self, variant: str) -> str:
        """A variant with its class names, e.g. 'rating_1 (bad / good)'."""
        return f"{variant} ({' / '.join(self.setup['variants'][variant])})"

    @functools.cached_property
    def settings(self) -> DataSettings:
        """The run's dataset settings (its config.json, in today's shape)."""
        return DataSettings.from_config(self.record['config'])

    def label_rule(self) -> LabelRule:
        """The run's label rule, as its prompts had it."""
        return self.settings.label_rule(self.num_classes)

    def flipped(self) -> np.ndarray:
        """Per in-context position: does that example show a flipped label?"""
        return np.array(self.label_rule().flips(self.num_examples))

    def change_points(self) -> list[int]:
        """First example of each stretch of flipped or unflipped labels, after the first."""
        return change_points(self.label_rule().flips(self.num_examples))

    @property
    def kind(self) -> str:
        """What the run manipulates: one of RUN_KINDS."""
        return next(kind for kind, matches in RUN_KINDS.items() if matches(self))

    def metrics(self, choose_logits: str | None = None, invert_logits: bool = False,
                labels: str = 'true') -> pd.DataFrame:
        return position_metrics(self.table, self.setup, choose_logits, invert_logits, labels)

    def describe(self) -> dict:
        c = self.record['config']
        return {'run': self.name, 'kind': self.kind, 'dataset': c['dataset']['name'], 'model': c['model']['name'],
                'examples': self.num_examples, 'repetitions': self.progress,
                'variants': ', '.join(self.variants), 'change points': ', '.join(map(str, self.change_points())),
                'directory': str(self.path)}


def _unmanipulated(run: Run) -> bool:
    c = run.settings
    return not (c.random_labels or c.replace_labels_by or c.inputs_off_by_one or run.change_points()
                or c.reverse_labels or c.prompt_string)


RUN_KINDS = {  # the first that matches names the run
    'random labels': lambda run: run.settings.random_labels,
    'alternating flips': lambda run: run.settings.flip_labels_multi and len(run.change_points()) > 1,
    'flip halfway': lambda run: len(run.change_points()) == 1,
    'default': _unmanipulated,
    'other': lambda run: True,
}


CONFIG_KEYS = ('n_repeats', 'dataset.name', 'model.name', 'dataset.config.num_prompt_examples')  # read here
SETUP_KEYS = ('variants', 'all_classes')


def _read_json_file(path: Path, keys: Sequence[str], inside: str | None = None) -> dict:
    """A JSON object holding every dotted key (under `inside`); UsageError naming the file otherwise."""
    try:
        data = results.read_json(path)
    except (OSError, ValueError) as error:
        raise UsageError(f"'{path}' is damaged ({str(error).splitlines()[0][:80]}); it cannot be evaluated") from None
    for key in keys:
        value = data.get(inside) if inside else data
        for part in key.split('.'):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            raise UsageError(f"'{path}' is not a file of this tool (it lacks {key}); it cannot be evaluated")
    return data


def _read_parts(path: Path, n_repeats: int) -> pd.DataFrame:
    """Every finished repetition's part (0..n_repeats-1); UsageError naming a damaged one."""
    frames = []
    for repetition, part in results.part_files(path):
        if repetition is None or repetition >= n_repeats:
            continue  # not one of the run's repetitions
        try:
            frames.append(pd.read_parquet(part))
        except (OSError, ValueError, pa.ArrowException) as error:
            raise UsageError(f"'{part}' is damaged ({str(error).splitlines()[0][:80]}); resume the run to redo it "
                             f'(python change_labels.py ... --workdir={path})') from None
    if not frames:
        raise UsageError(f"'{path}' has no finished repetition among 0..{n_repeats - 1}")
    return pd.concat(frames, ignore_index=True)


def read_run(path: str | Path, name: str | None = None) -> Run:
    """A run directory of this tool (config.json, setup.json, results/), finished or partial (some parts done)."""
    path = Path(path)
    missing = [f for f in RUN_FILES if not (path / f).is_file()]
    if missing or not results.completed_repetitions(path):
        lacking = ', '.join(missing + ([] if results.completed_repetitions(path) else ['results/part-*.parquet']))
        raise UsageError(f"'{path}' is not a run directory of this tool with a finished repetition "
                         f'(it lacks {lacking})')
    record = results.upgraded_record(_read_json_file(path / 'config.json', CONFIG_KEYS, inside='config'))
    setup = _read_json_file(path / 'setup.json', SETUP_KEYS)
    table = _read_parts(path, int(record['config']['n_repeats']))
    if context_rows(table).empty:  # num_prompt_examples=0: queries only
        raise UsageError(f"'{path}' is a zero-shot run (no in-context examples), so it has no curves or tests to "
                         'report; its query accuracy is printed at the end of the run (icl.experiment.query_accuracy)')
    return Run(name=name or short_name(path.name), path=path, record=record, setup=setup, table=table)


STAMP = re.compile(r'-\d{8}-\d{6}$')  # the time stamp of a default run directory name


def short_name(directory: str) -> str:
    """A run directory's name without its time stamp."""
    return STAMP.sub('', directory) or directory


def load_run(source: str | Path, name: str | None = None) -> Run:
    """A run from a local directory, or from wandb given ENTITY/PROJECT/RUN_ID (or its wandb.ai address)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return read_run(path, name)
    if WANDB_PATH.match(str(source)):
        return read_run(fetch_wandb_run(str(source)), name)
    raise UsageError(f"no run directory '{source}' (nor a wandb run path ENTITY/PROJECT/RUN_ID)")


def load_runs(sources: Sequence[str | Path]) -> list[Run]:
    """Runs with distinct names: the directory name without its time stamp, else the whole directory name,
    else the parent folder too, then a number."""
    return distinct_names([load_run(source) for source in sources])


def distinct_names(runs: list[Run]) -> list[Run]:
    """`runs`, renamed where their short names collide (see load_runs)."""
    for longer in (lambda run: run.path.name, lambda run: f'{run.path.parent.name}/{run.path.name}'):
        names = Counter(run.name for run in runs)
        for run in runs:
            if names[run.name] > 1:
                run.name = longer(run)
    seen = Counter()
    for run in runs:
        seen[run.name] += 1
        if seen[run.name] > 1:
            run.name = f'{run.name} #{seen[run.name]}'
    return runs


def fetch_wandb_run(run_path: str, dest: Path | None = None) -> Path:
    """Download a wandb run's config.json, setup.json and results/ into `dest` (default: the cache)."""
    from icl.tracking import has_api_key
    match = WANDB_PATH.match(run_path)
    if match is None:
        raise UsageError(f"'{run_path}' is not a wandb run path; use ENTITY/PROJECT/RUN_ID")
    entity, project, run_id = match['entity'], match['project'], match['id']
    if not has_api_key():
        raise UsageError(f"'{run_path}' is not a local run directory, and reading it from wandb needs an API key "
                         '(run `wandb login` on a machine with network, or give the run directory)')
    import wandb

    dest = Path(dest) if dest else cache_dir() / 'wandb-runs' / entity / project / run_id
    try:
        run = wandb.Api(timeout=30).run(f'{entity}/{project}/{run_id}')
        for file in run.files():
            wanted = file.name in RUN_FILES or (file.name.startswith(results.TABLE_DIR + '/')
                                                and file.name.endswith('.parquet'))
            local = dest / file.name
            if wanted and not (local.is_file() and local.stat().st_size == file.size):  # parts never change
                file.download(root=str(dest), replace=True)
    except (wandb.errors.Error, OSError, ValueError) as error:
        raise UsageError(f"cannot read wandb run '{run_path}': {str(error).splitlines()[0]}") from None
    return dest


def run_curves(runs: Sequence[Run], smooth_n: int = 1, choose_logits: str | None = None,
               invert_logits: bool = False, labels: str = 'true') -> pd.DataFrame:
    """Tidy curves of several runs: run, dataset, model, variant, metric, position, mean, sem, n."""
    frames = [curves(run.metrics(choose_logits, invert_logits, labels), smooth_n).assign(
        run=run.name, dataset=run.group[0], model=run.group[1]) for run in runs]
    table = pd.concat(frames, ignore_index=True)
    return table[['run', 'dataset', 'model', 'variant', 'metric', 'position', 'mean', 'sem', 'n']]

