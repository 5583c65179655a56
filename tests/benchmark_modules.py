"""The benchmarks' modules, for the tests: benchmarks/ is a folder of scripts, not an installed package."""
import importlib.util
from types import ModuleType

from icl.config import REPO_ROOT


def benchmark_module(name: str) -> ModuleType:
    """benchmarks/<name>.py, loaded by its path."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / 'benchmarks' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
