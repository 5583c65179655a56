"""Dataset settings and draws for tests: the default config's, with changes."""
import dataclasses

from icl import datasets
from icl.config import base_config
from icl.settings import DataSettings


def data_settings(**changes) -> DataSettings:
    """configs/default.py's dataset settings with `changes` (DataSettings fields; class_names a list or tuple)."""
    if changes.get('class_names') is not None:
        changes['class_names'] = tuple(changes['class_names'])
    return dataclasses.replace(DataSettings.from_config(base_config()), **changes)


def repetition(names: list[str] | None = None, r: int = 0, **changes) -> datasets.Repetition:
    """Repetition r's draw shown with `names` (None: the default names) under data_settings(**changes)."""
    return datasets.repetition(data_settings(**changes), r, names)
