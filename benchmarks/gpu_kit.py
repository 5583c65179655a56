r"""What a lent GPU machine (no internet, 64 MiB carried) needs to run bench_scoring.py, in `.gpu/`.

The packaged model's GGUF (98 MB) is too large to carry, and speed does not depend on the weights'
values, so the GPU check scores real SST-2 prompts with models of real shapes and random weights:
SmolLM2-135M's (its config and tokenizer) and a LLaMa-2-7B-class one (LLaMa-2-7B's layers on
SmolLM2's tokenizer). Label logits of the two ways are still compared, the speed ratios hold.

Here (CPU, ~10 s, writes .gpu/: data, configs, tokenizers, the ml_collections wheel, ~8 MB):
  python benchmarks/gpu_kit.py                # SST-2 from $ICL_DATA_DIR (or --data-dir)
There (device tool, carry ['.gpu']; estimated 5-6 min on an H100; JSON and logs under $OUT):
  bash benchmarks/gpu_check.sh
"""
import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from icl import packaged  # noqa: E402
from icl.config import REPO_ROOT  # noqa: E402

KIT = REPO_ROOT / '.gpu'
TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json')
LLAMA2_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=10000.0,
                 tie_word_embeddings=False)  # meta-llama/Llama-2-7b-hf, with a context long enough for 140 examples


def model_shapes() -> dict:
    """name -> transformers config: the packaged model's, and LLaMa-2-7B's layers on its tokenizer."""
    from transformers import AutoConfig, LlamaConfig
    base = AutoConfig.from_pretrained(packaged.packaged_folder('smollm2-135m'))
    return {'smollm2-135m': base,
            'llama2-7b-shape': LlamaConfig(**LLAMA2_7B, vocab_size=base.vocab_size, bos_token_id=base.bos_token_id,
                                           eos_token_id=base.eos_token_id, pad_token_id=base.pad_token_id)}


def pack_shapes(kit: Path) -> None:
    """kit/shapes/NAME/: each shape's config and the packaged model's tokenizer, no weights."""
    tokenizer = packaged.packaged_folder('smollm2-135m')
    for name, config in model_shapes().items():
        folder = kit / 'shapes' / name
        folder.mkdir(parents=True, exist_ok=True)
        config.save_pretrained(folder)
        for file in TOKENIZER_FILES:
            shutil.copy(tokenizer / file, folder / file)


def pack(kit: Path, data_dir: Path) -> None:
    """Write the kit here: sst2 files, the model shapes, the wheels the GPU machine lacks."""
    shutil.copytree(data_dir / 'sst2', kit / 'data' / 'sst2', dirs_exist_ok=True)
    pack_shapes(kit)
    subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--only-binary=:all:',
                    '--python-version', '3.12', '-d', str(kit / 'whl'), 'ml_collections==1.1.0'], check=True)
    print(f'wrote {kit}: carry it with the device tool (carry [".gpu"]) and run benchmarks/gpu_check.sh there')


def add_weights(kit: Path) -> None:
    """Random weights (bf16, initialised on the GPU when there is one) for each shape that has none."""
    from transformers import AutoConfig, AutoModelForCausalLM
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    for folder in sorted((kit / 'shapes').iterdir()):
        if (folder / 'model.safetensors.index.json').exists() or (folder / 'model.safetensors').exists():
            continue
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=torch.bfloat16)
        model.save_pretrained(folder)
        print(f'{folder.name}: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B random parameters')
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--weights', action='store_true', help='add random weights to the shapes (on the GPU side)')
    parser.add_argument('--data-dir', type=Path, default=os.environ.get('ICL_DATA_DIR'),
                        help='folder with sst2/ (the original data files, docs/data.md); default $ICL_DATA_DIR')
    args = parser.parse_args()
    if args.data_dir is None and not args.weights:
        parser.error('needs the original sst2 files: pass --data-dir or set ICL_DATA_DIR (docs/data.md)')
    add_weights(KIT) if args.weights else pack(KIT, args.data_dir)


if __name__ == '__main__':
    main()
