"""A study file (runs.md's format) -> the runs of a sweep.

The file holds `export CLASS_NAMES=...` lines, each followed by the commands that run with it:
`python change_labels.py --key=value ...` (or under `accelerate launch --num_processes N` /
`torchrun --nproc_per_node=N`); every other line is text. A run is one command after selection
(`--where`) and substitution (`--model`, `--set`); its directory name is derived from its settings,
so the same command always maps to the same directory and commands that become identical run once.
"""
import copy
import dataclasses
import functools
import hashlib
import json
import shlex
from collections.abc import Sequence
from pathlib import Path

from ml_collections import config_dict

from icl import config as icl_config
from icl.errors import UsageError
from icl.results import file_name
from icl.settings import CLASS_NAMES_ENV, CLASS_NAMES_MODE_KEY, CLASS_NAMES_MODES

SCRIPT = 'change_labels.py'
LAUNCHERS = {'python': None, 'python3': None, 'accelerate': '--num_processes', 'torchrun': '--nproc_per_node'}
REFUSED_FLAGS = ('workdir', 'resume', 'dry_run', 'help_keys')  # the sweep chooses the directory and the mode
CLASS_NAMES_KEY = 'CLASS_NAMES'
DIGEST_CHARS = 10


@dataclasses.dataclass(frozen=True)
class Command:
    """One command line of a study file."""
    source: str  # FILE:LINE
    class_names: str
    flags: tuple[str, ...]  # after change_labels.py
    processes: int  # from the launcher in front of it (1: plain python)


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of the sweep: a command after substitution, and its directory name under the root."""
    name: str
    class_names: str
    flags: tuple[str, ...]  # the command's flags, each substitution in place of its key's flag (or appended)
    processes: int
    sources: tuple[str, ...]  # every line of the file that became this run

    def command(self, run_dir: Path | str | None = None) -> str:
        workdir = () if run_dir is None else (f'--workdir={run_dir}',)
        return f'CLASS_NAMES={self.class_names} python {SCRIPT} {shlex.join([*self.flags, *workdir])}'


def read_commands(path: str | Path) -> list[Command]:
    """Every command of a study file with the CLASS_NAMES of the export line before it."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"study file '{path}' not found")
    commands, class_names = [], None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        source = f'{path}:{number}'
        if line.startswith(f'export {CLASS_NAMES_ENV}='):
            class_names = line.split('=', 1)[1].strip().strip('\'"')
            if class_names not in CLASS_NAMES_MODES:
                raise UsageError(f"{source}: CLASS_NAMES='{class_names}' is not valid; use one of "
                                 f"{', '.join(CLASS_NAMES_MODES)}")
        elif command := parse_command(line, source, class_names):
            commands.append(command)
    if not commands:
        raise UsageError(f"study file '{path}' holds no 'python {SCRIPT} ...' line")
    return commands


def parse_command(line: str, source: str, class_names: str | None) -> Command | None:
    """The Command of a line that runs change_labels.py (None for any other line)."""
    words = line.split()
    if not words or words[0] not in LAUNCHERS or not any(w.endswith(SCRIPT) for w in words):
        return None
    try:
        words = shlex.split(line, comments=True)
    except ValueError as error:
        raise UsageError(f'{source}: cannot split the command into words ({error})') from None
    script = next(i for i, w in enumerate(words) if w.endswith(SCRIPT))
    if class_names is None:
        raise UsageError(f'{source}: no `export {CLASS_NAMES_ENV}=...` line before this command')
    return Command(source, class_names, tuple(words[script + 1:]), launcher_processes(words[:script], source))


def launcher_processes(words: Sequence[str], source: str) -> int:
    """How many processes the launcher words before change_labels.py start."""
    option = LAUNCHERS[words[0]]
    for i, word in enumerate(words):
        if option and word.startswith(option + '='):
            return positive_int(word.split('=', 1)[1], option, source)
        if option and word == option and i + 1 < len(words):
            return positive_int(words[i + 1], option, source)
    return 1


def positive_int(text: str, name: str, source: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{source}: {name}={text} must be a positive integer")
    return int(text)


@functools.lru_cache(maxsize=8)
def _defaults(config_file: str) -> config_dict.ConfigDict:
    return icl_config.load_config(config_file)


def config_file_of(flags: Sequence[str]) -> str:
    """The --config a command names (configs/default.py without one)."""
    given = [flag.split('=', 1)[1] for flag in flags if flag.startswith('--config=')]
    return given[-1] if given else str(icl_config.DEFAULT_CONFIG)


def resolve_config(flags: Sequence[str], class_names: str, source: str = '') -> config_dict.ConfigDict:
    """The config a command's flags describe (change_labels.py's parsing) under `export CLASS_NAMES=class_names`;
    UsageError names the line."""
    prefix = f'{source}: ' if source else ''
    try:
        overrides, own = icl_config.split_argv([SCRIPT, *flags], {'config', *REFUSED_FLAGS})
        refused = [arg for arg in own[1:] if arg[2:].split('=', 1)[0] in REFUSED_FLAGS]
        if refused:
            raise UsageError(f"'{refused[0]}' is chosen by the sweep (--root, --dry_run); remove it from the command")
        if len(own) > 1 + sum(flag.startswith('--config=') for flag in flags):
            raise UsageError(f"unexpected argument '{own[1]}'; flags look like --key=value")
        config = copy.deepcopy(_defaults(config_file_of(flags)))
        config.dataset.class_names_mode = class_names  # the export line's, as change_labels.py reads it
        return icl_config.apply_overrides(config, overrides)
    except UsageError as error:
        raise UsageError(f'{prefix}{error}') from None


def settings(config: config_dict.ConfigDict, config_file: str) -> dict:
    """The config keys whose values differ from the config file's defaults (what names a run; the class names'
    mode apart, as run_name's CLASS_NAMES: its default comes from the environment)."""
    defaults = icl_config.flatten(_defaults(config_file).to_dict())
    return {key: value for key, value in icl_config.flatten(config.to_dict()).items()
            if defaults.get(key) != value and key != CLASS_NAMES_MODE_KEY}


def run_name(config: config_dict.ConfigDict, config_file: str) -> str:
    """DATASET-MODEL-NOTE-DIGEST: readable, and equal exactly for equal settings and CLASS_NAMES."""
    chosen = {CLASS_NAMES_KEY: config.dataset.class_names_mode, 'settings': settings(config, config_file)}
    if Path(config_file).resolve() != icl_config.DEFAULT_CONFIG.resolve():
        chosen['config'] = Path(config_file).name
    digest = hashlib.sha1(json.dumps(chosen, sort_keys=True, default=repr).encode()).hexdigest()[:DIGEST_CHARS]
    model = Path(str(config.model.name)).name  # a hub id or folder: its last part
    return file_name(f'{config.dataset.name}-{model}-{config.note}-{digest}')


@dataclasses.dataclass(frozen=True)
class Where:
    """`--where KEY=V1,V2`: keep commands whose KEY is one of the values."""
    key: str  # a full config key, or CLASS_NAMES
    values: tuple  # typed as the key's field
    texts: tuple[str, ...]  # as given

    def matches(self, command: Command, config: config_dict.ConfigDict) -> bool:
        return value_of(command, config, self.key) in self.values


def value_of(command: Command, config: config_dict.ConfigDict, key: str):
    if key == CLASS_NAMES_KEY:
        return command.class_names
    node = config
    for part in key.split('.'):
        node = node[part]
    return node


def full_key(key: str) -> str:
    """A config key from its full path, its group (`dataset` -> dataset.name) or its unique last part."""
    keys = icl_config.all_keys(icl_config.base_config())
    if key == CLASS_NAMES_KEY or key in keys:
        return key
    if f'{key}.name' in keys:
        return f'{key}.name'
    same_leaf = [k for k in keys if k.endswith('.' + key)]
    if len(same_leaf) == 1:
        return same_leaf[0]
    if same_leaf:
        raise UsageError(f"--where: '{key}' is ambiguous; use one of {', '.join(same_leaf)}")
    close = icl_config.close_keys(key, keys)
    hint = f"; did you mean {' or '.join(close)}?" if close else f'; use a config key or {CLASS_NAMES_KEY}'
    raise UsageError(f"--where: unknown key '{key}'{hint}")


def parse_where(text: str) -> Where:
    """`KEY=V1,V2` -> Where, each value typed and checked as `--KEY=V` would be."""
    if '=' not in text:
        raise UsageError(f"--where '{text}' needs the form KEY=VALUE[,VALUE...]")
    key, values = text.split('=', 1)
    key = full_key(key.strip())
    texts = tuple(v.strip() for v in values.split(',') if v.strip())
    if not texts:
        raise UsageError(f"--where '{text}' names no value")
    if key == CLASS_NAMES_KEY:
        bad = [t for t in texts if t not in CLASS_NAMES_MODES]
        if bad:
            raise UsageError(f"--where CLASS_NAMES={bad[0]} is not valid; use {', '.join(CLASS_NAMES_MODES)}")
        return Where(key, texts, texts)
    typed = []
    for value in texts:
        config = icl_config.apply_overrides(icl_config.base_config(), [(key, value)])
        typed.append(value_of(Command('', '', (), 1), config, key))
    return Where(key, tuple(typed), texts)


def parse_set(text: str) -> tuple[str, str]:
    """`KEY=VALUE` -> (KEY, VALUE), the key checked against the config."""
    if '=' not in text:
        raise UsageError(f"--set '{text}' needs the form KEY=VALUE")
    key, value = text.split('=', 1)
    key = key.strip().removeprefix('--').removeprefix('config.')
    icl_config.apply_overrides(icl_config.base_config(), [(key, value)])  # an unknown key or bad type fails here
    return key, value


def select(commands: Sequence[Command], wheres: Sequence[Where]) -> list[Command]:
    """The commands every --where keeps; UsageError for a --where value no command of the file has."""
    configs = [resolve_config(c.flags, c.class_names, c.source) for c in commands]
    for where in wheres:
        present = {repr(value_of(c, config, where.key)) for c, config in zip(commands, configs)}
        missing = [t for t, v in zip(where.texts, where.values) if repr(v) not in present]
        if missing:
            shown = ', '.join(sorted({str(value_of(c, cf, where.key)) for c, cf in zip(commands, configs)}))
            raise UsageError(f"--where {where.key}={missing[0]} matches no command of the file; "
                             f'its values there: {shown}')
    kept = [c for c, config in zip(commands, configs) if all(w.matches(c, config) for w in wheres)]
    if not kept:
        raise UsageError('no command of the file satisfies every --where together')
    return kept


def flag_key(flag: str) -> str | None:
    return flag[2:].split('=', 1)[0].removeprefix('config.') if flag.startswith('--') else None


def with_flag(flags: Sequence[str], key: str, value: str) -> tuple[str, ...]:
    """`flags` with `--key=value` in place of the key's flags (appended when it has none)."""
    flag, out = f'--{key}={value}', []
    for given in flags:
        if flag_key(given) != key:
            out.append(given)
        elif flag not in out:
            out.append(flag)
    return tuple(out if flag in out else [*out, flag])


def substituted(command: Command, substitutions: Sequence[tuple[str, str]], processes: int | None) -> Run:
    """The run a command becomes with each `--KEY=VALUE` substitution in place of the command's value."""
    flags = command.flags
    for key, value in substitutions:
        flags = with_flag(flags, key, value)
    config = resolve_config(flags, command.class_names, command.source)
    name = run_name(config, config_file_of(flags))
    return Run(name, command.class_names, flags, processes or command.processes, (command.source,))


def expand(path: str | Path, wheres: Sequence[Where] = (), substitutions: Sequence[tuple[str, str]] = (),
           processes: int | None = None) -> list[Run]:
    """The sweep's runs, in file order; commands that become identical are one run (all their lines kept)."""
    runs: dict[str, Run] = {}
    for command in select(read_commands(path), wheres):
        run = substituted(command, substitutions, processes)
        if run.name in runs:
            first = runs[run.name]
            run = dataclasses.replace(first, sources=(*first.sources, *run.sources))
        runs[run.name] = run
    return list(runs.values())
