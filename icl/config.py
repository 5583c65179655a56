"""The experiment config: load a config file, apply `--key.sub=value` overrides, check it.

Overrides follow the original tool (docs/behaviour.md#config): values are auto-typed
(true/false -> bool, then int, then float, else str; a value with a comma is a list),
but unlike the original an unknown key or a wrongly typed value is an error.
"""
import ast
import difflib
import importlib.machinery
import importlib.util
import io
import tokenize
from pathlib import Path
from typing import Any

from ml_collections import config_dict

from icl.errors import UsageError
from icl.settings import UNREAD_KEYS, DataSettings, ModelSettings, checked_class_names_mode

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / 'configs' / 'default.py'


def load_config(path: str | Path = DEFAULT_CONFIG) -> config_dict.ConfigDict:
    """Return `get_config()` of an ml_collections config file; one UsageError line for anything else."""
    path = Path(path)
    if not path.is_file():
        choices = ', '.join(sorted(p.name for p in (REPO_ROOT / 'configs').glob('*.py')))
        raise UsageError(f"config file '{path}' not found; configs/ holds: {choices}")
    loader = importlib.machinery.SourceFileLoader(f'_icl_config_{path.stem}', str(path))  # any suffix
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    hint = 'a config file is Python defining get_config() that returns an ml_collections ConfigDict'
    try:
        loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - whatever the file does wrong, the user gets one line
        raise UsageError(f"config file '{path}' could not be loaded ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}); {hint}") from None
    if not callable(getattr(module, 'get_config', None)):
        raise UsageError(f"config file '{path}' has no get_config(); {hint}")
    try:
        config = module.get_config()
    except UsageError:  # e.g. a wrong $CLASS_NAMES, which configs/default.py reads
        raise
    except Exception as error:  # noqa: BLE001
        raise UsageError(f"get_config() of config file '{path}' failed ({type(error).__name__}: {error}); "
                         f'{hint}') from None
    if not isinstance(config, config_dict.ConfigDict):
        raise UsageError(f"get_config() of config file '{path}' returned a {type(config).__name__}, not a "
                         'ConfigDict')
    return config


def key_descriptions(path: str | Path = DEFAULT_CONFIG) -> dict[str, str]:
    """{dotted key: its line comment} from a config file's source (`data = config.dataset.config` aliases
    included): what `--help_keys` shows next to each default."""
    source = Path(path).read_text()
    comments = {token.start[0]: token.string.lstrip('#').strip()
                for token in tokenize.generate_tokens(io.StringIO(source).readline) if token.type == tokenize.COMMENT}
    aliases, descriptions = {}, {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Assign):
            continue
        paths = [dotted for dotted in (_dotted(target, aliases) for target in node.targets) if dotted]
        for target in node.targets:
            if isinstance(target, ast.Name) and paths:  # data = config.dataset.config = ...
                aliases[target.id] = paths[0]
        for dotted in paths:
            if node.end_lineno in comments:
                descriptions[dotted] = comments[node.end_lineno]
    return descriptions


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """'dataset.config.x' for the target `config.dataset.config.x` (or `data.x` with data an alias)."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    if not names or (node.id != 'config' and node.id not in aliases):
        return None
    root = [aliases[node.id]] if node.id in aliases else []
    return '.'.join(root + names[::-1])


def base_config() -> config_dict.ConfigDict:
    """The defaults (configs/default.py); other config files start from these."""
    return load_config(DEFAULT_CONFIG)


def autotype(text: str) -> Any:
    """'true'/'false' (any case) -> bool, then int, then float, else the string."""
    if text.lower() in ('true', 'false'):
        return text.lower() == 'true'
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_value(text: str) -> Any:
    """Auto-type a flag value; '[a,b]' or 'a,b' becomes a list of auto-typed items."""
    value = autotype(text)
    if isinstance(value, str) and (',' in value or (value.startswith('[') and value.endswith(']'))):
        inner = value[1:-1] if value.startswith('[') and value.endswith(']') else value
        items = [item.strip().strip('\'"') for item in inner.split(',')]
        return [autotype(item) for item in items if item]
    return value


def split_argv(argv: list[str], own_flags: set[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Separate `--key=value` config overrides from the flags the program defines itself (`--help` among them).

    Returns (overrides, remaining argv). `--config.key=value` is accepted as `--key=value`.
    """
    overrides, rest = [], [argv[0]]
    for arg in argv[1:]:
        name = arg[2:].split('=', 1)[0] if arg.startswith('--') else ''
        if not name or name in own_flags or name.startswith('no') and name[2:] in own_flags:
            rest.append(arg)
        elif '=' not in arg:
            raise UsageError(f"flag '{arg}' needs a value: --{name}=VALUE")
        else:
            key, text = arg[2:].split('=', 1)
            overrides.append((key.removeprefix('config.'), text))
    return overrides, rest


def all_keys(config: config_dict.ConfigDict, prefix: str = '') -> list[str]:
    """Every leaf key of the config as a dotted path."""
    keys = []
    for name, value in config.items():
        path = f'{prefix}{name}'
        if isinstance(value, config_dict.ConfigDict):
            keys.extend(all_keys(value, path + '.'))
        else:
            keys.append(path)
    return keys


def close_keys(key: str, keys: list[str]) -> list[str]:
    """Up to three valid keys near `key`: first those it names without their group, then similar spellings."""
    same_leaf = [k for k in keys if k.endswith('.' + key)]
    similar = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    return (same_leaf + [k for k in similar if k not in same_leaf])[:3]


def set_value(config: config_dict.ConfigDict, key: str, text: str) -> None:
    """Set `key` (a dotted path) from its command-line text, checking name and type."""
    *parents, leaf = key.split('.')
    node = config
    for name in parents:
        node = node.get(name) if isinstance(node, config_dict.ConfigDict) else None
    if key in UNREAD_KEYS:
        raise UsageError(f"config key '{key}' was the original tool's and nothing read it (scoring generates no "
                         'text); remove the flag')
    if not isinstance(node, config_dict.ConfigDict) or leaf not in node:
        close = close_keys(key, all_keys(config))
        hint = f"; did you mean {' or '.join(close)}?" if close else '; run with --help_keys to list them'
        raise UsageError(f"unknown config key '{key}'{hint}")
    if isinstance(node[leaf], config_dict.ConfigDict):
        leaves = ', '.join(all_keys(node[leaf], key + '.'))
        raise UsageError(f"'{key}' is a group of keys, set one of its leaves: {leaves}")
    value = _value_for_field(node, leaf, text)
    if node.get_type(leaf) is int and isinstance(value, bool):
        value = text  # ml_collections would take True for 1
    try:
        node[leaf] = value
    except TypeError:
        expected = node.get_type(leaf).__name__
        raise UsageError(f"config key '{key}' expects {expected}, got '{text}'") from None


def _value_for_field(node: config_dict.ConfigDict, leaf: str, text: str) -> Any:
    """The value `text` stands for, given the type of the field it overrides."""
    field_type = node.get_type(leaf)
    if text in ('None', 'none') and node[leaf] is None:
        return None
    if field_type is str:
        return text  # a note or a name may look like a number or hold a comma
    value = parse_value(text)
    if field_type is list and not isinstance(value, list):
        return [value]
    return value


def apply_overrides(config: config_dict.ConfigDict, overrides: list[tuple[str, str]]) -> config_dict.ConfigDict:
    """Apply (key, text) pairs in order; return the same config."""
    for key, text in overrides:
        set_value(config, key, text)
    return config


def to_dict(config: config_dict.ConfigDict) -> dict:
    """The config as plain nested dicts (JSON-ready)."""
    return config.to_dict()


def flatten(tree: dict, prefix: str = '', separator: str = '.') -> dict:
    """Nested dict -> {'a.b': value} (the flags' names; separator '_' gives the original's wandb keys)."""
    flat = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f'{prefix}{name}{separator}', separator))
        else:
            flat[f'{prefix}{name}'] = value
    return flat


def validate(config: config_dict.ConfigDict) -> None:
    """Check values that types alone do not catch; UsageError names the key and the valid range.

    Settings the original accepted are accepted with its meaning, even where they change nothing
    (noop_settings() lists those); only what it could not run, or ran wrongly, is refused.
    """
    data = config.dataset.config
    counts = {'n_repeats': (config.n_repeats, 1), 'dataset.config.num_prompt_examples': (data.num_prompt_examples, 0),
              'dataset.config.num_test_samples': (data.num_test_samples, 1)}
    for key, (value, least) in counts.items():
        if value < least:
            raise UsageError(f"{key}={value} must be at least {least}")
    if config.random_seed < 0:  # numpy's generators take no negative seeds
        raise UsageError(f'random_seed={config.random_seed} must be 0 or more')
    n = data.num_prompt_examples
    if data.flip_labels_after < -1:
        raise UsageError(f'dataset.config.flip_labels_after={data.flip_labels_after} must be -1 (never) or an '
                         f'example index 0, 1, ... (num_prompt_examples={n}; from {n} on nothing is flipped)')
    if data.flip_labels_after_halfway and data.flip_labels_after != -1:
        raise UsageError('set either dataset.config.flip_labels_after_halfway=True or dataset.config.'
                         f'flip_labels_after={data.flip_labels_after}, not both')
    block = DataSettings.from_config(config).first_flipped
    if data.flip_labels_multi and block == 0:  # the original divides by it
        source = (f'flip_labels_after_halfway=True with num_prompt_examples={n} (blocks of {n} // 2 = 0)'
                  if data.flip_labels_after_halfway else 'flip_labels_after=0')
        raise UsageError(f'dataset.config.flip_labels_multi=True alternates in blocks of flip_labels_after examples '
                         f'and needs blocks of at least 1; got {source}')
    if data.replace_labels_until_step < -1:
        raise UsageError(f'dataset.config.replace_labels_until_step={data.replace_labels_until_step} must be -1 '
                         'or an example index')
    if data.inputs_off_by_one and n < 2:
        raise UsageError(f'dataset.config.inputs_off_by_one=True drops the last example, so it needs '
                         f'num_prompt_examples >= 2 (got {n})')
    if data.class_names is not None and (len(data.class_names) < 2 or len(set(map(str, data.class_names)))
                                         != len(data.class_names)):
        raise UsageError(f'dataset.config.class_names={data.class_names} needs at least two distinct names')
    if data.use_model_preds_as_labels:
        raise UsageError('dataset.config.use_model_preds_as_labels=True is not supported '
                         '(the original never filled in the model predictions it needs)')
    checked_class_names_mode(config.dataset.class_names_mode)
    ModelSettings.from_config(config)  # model.dtype and model.batch_size


def noop_settings(config: config_dict.ConfigDict) -> list[str]:
    """One line per setting that changes nothing in this (validated) config, for the dry-run plan:
    accepted, as the original accepted them, but worth knowing before paying for the run."""
    data, n = config.dataset.config, config.dataset.config.num_prompt_examples
    key = 'dataset.config.'
    settings = DataSettings.from_config(config)
    block, flips = settings.first_flipped, settings.label_rule(num_classes=2).flips(n)
    manipulations = [f'{key}{name}' for name in ('random_labels', 'flip_labels_after_halfway', 'flip_labels_multi',
                                                 'reverse_labels', 'inputs_off_by_one') if data[name]]
    if data.flip_labels_after != -1:
        manipulations.append(f'{key}flip_labels_after={data.flip_labels_after}')
    if data.replace_labels_by:
        manipulations.append(f'{key}replace_labels_by={data.replace_labels_by!r}')
    notes = []
    if n == 0:
        notes.append(f'{key}num_prompt_examples=0: zero-shot, each prompt is the query alone' +
                     (f"; {', '.join(manipulations)} change nothing" if manipulations else ''))
        return notes
    if block != -1 and not any(flips):
        why = (f'flip_labels_multi_lim={data.flip_labels_multi_lim}' if block < n
               else f'it is not below num_prompt_examples={n}')
        notes.append(f'{key}flip_labels_after={block}: no example is flipped ({why})')
    if data.flip_labels_multi and block == -1:
        notes.append(f'{key}flip_labels_multi=True changes nothing without flip_labels_after or '
                     'flip_labels_after_halfway (nothing is flipped)')
    elif data.flip_labels_multi and block > 0 and 2 * block >= n and any(flips):
        notes.append(f'{key}flip_labels_multi=True changes nothing here: with blocks of {block} of {n} examples '
                     'the labels flip once, as without it')
    replacing = data.random_labels or data.replace_labels_by
    if data.replace_labels_until_step != -1 and not replacing:
        notes.append(f'{key}replace_labels_until_step={data.replace_labels_until_step} changes nothing without '
                     'random_labels or replace_labels_by')
    elif data.replace_labels_until_step == 0 and replacing:
        notes.append(f'{key}replace_labels_until_step=0: no label is randomised or replaced')
    elif data.replace_labels_until_step >= n and replacing:
        notes.append(f'{key}replace_labels_until_step={data.replace_labels_until_step} >= num_prompt_examples={n}: '
                     'changes nothing, every label is randomised or replaced')
    return notes
