"""The config unpacked once, at the edge, into frozen settings; each vocabulary of values in one place.

Torch-free, so the command line checks a config in milliseconds.
"""
import dataclasses

from icl.errors import UsageError

AUTO = 'auto'
DTYPE_NAMES = ('float32', 'bfloat16', 'float16')  # model.dtype's choices besides 'auto'


def checked_dtype(value: str) -> str:
    """model.dtype as given, or a UsageError listing the choices."""
    if value != AUTO and value not in DTYPE_NAMES:
        raise UsageError(f"model.dtype='{value}' is not valid; choose {AUTO}, {', '.join(DTYPE_NAMES[:-1])} "
                         f'or {DTYPE_NAMES[-1]}')
    return value


def checked_batch_size(value: object) -> int | None:
    """model.batch_size as prompts per forward pass; None for 'auto' (scoring.Scorer decides)."""
    if value == AUTO:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise UsageError(f"model.batch_size={value!r} must be a positive integer or '{AUTO}'")


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """config.model, checked."""
    name: str
    dtype: str  # 'auto' or one of DTYPE_NAMES
    batch_size: int | None  # None: 'auto'
    calibrate: bool

    @classmethod
    def from_config(cls, config) -> 'ModelSettings':
        model = config['model']
        return cls(name=model['name'], dtype=checked_dtype(model['dtype']),
                   batch_size=checked_batch_size(model['batch_size']), calibrate=bool(model['calibrate']))
