"""Which dtype a run computes in: the original's precision for the original's models, else the native one.

The dtype names a user may give are settings.DTYPE_NAMES; this module maps them to torch dtypes and
chooses for 'auto'.
"""
import torch

from icl import hardware
from icl.models import HUB_NAMES, resolve
from icl.settings import AUTO, DTYPE_NAMES, checked_dtype

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


def resolve_dtype(name: str) -> torch.dtype:
    """'auto' -> bf16 on GPUs that have it (fp16 on older ones) and on bf16-native CPUs, else fp32."""
    if name == AUTO:
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if hardware.has_native_bf16() else torch.float32
    return DTYPES[checked_dtype(name)]


# The precision the original ran its models in (the paper's numbers): model.dtype=auto reproduces it.
LARGE_LLAMAS = ('llama-65b', 'Llama-2-70b')  # loaded in fp16 (with or without -8bit); 7B/13B in fp32
AUTO_RULE = 'auto: bf16 on GPUs that have it (fp16 on older ones) and on CPUs with native bf16, else fp32'


def original_dtype(name: str) -> tuple[str, str] | None:
    """(dtype, why) the original ran model `name` in; None for a model it did not know."""
    base = name.removesuffix('-8bit')
    if base not in HUB_NAMES:
        return None
    if base in LARGE_LLAMAS:
        return 'float16', f'the original loaded {base} in fp16'
    if resolve(name).load_in_8bit:
        return 'float16', "8-bit weights computing in fp16, as the original's bitsandbytes models"
    return 'float32', f'the original loaded {base} in fp32'


def dtype_policy(name: str, requested: str) -> tuple[str, str]:
    """(dtype name, why) a run of model `name` with model.dtype=`requested` computes in.

    'auto' means the original's precision for the original's model names (the paper's numbers;
    model.dtype=bfloat16 is faster) and the fastest native precision for any other model.
    """
    if requested != AUTO:
        return dtype_name(resolve_dtype(requested)), 'model.dtype as given'
    original = original_dtype(name)
    if original is not None:
        return original[0], f'{original[1]} (the paper\'s precision; --model.dtype=bfloat16 is faster)'
    return dtype_name(resolve_dtype(AUTO)), AUTO_RULE


def dtype_name(dtype: torch.dtype) -> str:
    """'bfloat16' for torch.bfloat16: how the plan, config.json and setup.json name a dtype."""
    return str(dtype).removeprefix('torch.')
