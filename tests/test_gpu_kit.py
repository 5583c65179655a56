"""The GPU check's kit: model shapes of the stated sizes with a working tokenizer, and random
weights that load through the tool's own model loading (here on the CPU)."""
import shutil

import torch
from benchmark_modules import benchmark_module
from transformers import AutoConfig, AutoModelForCausalLM

from icl import models, scoring

gpu_kit = benchmark_module('gpu_kit')


def parameters(folder) -> int:
    with torch.device('meta'):  # shapes only, no memory
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    return sum(p.numel() for p in model.parameters())


def test_kit_shapes_have_the_stated_sizes_and_the_packaged_tokenizer(tmp_path, smollm2_tokenizer):
    gpu_kit.pack_shapes(tmp_path)
    shapes = tmp_path / 'shapes'
    assert sorted(p.name for p in shapes.iterdir()) == ['llama2-7b-shape', 'smollm2-135m']
    assert parameters(shapes / 'smollm2-135m') == 134_515_008
    assert parameters(shapes / 'llama2-7b-shape') == 6_878_924_800  # LLaMa-2-7B's layers, a 49,152-token vocabulary
    expected, _ = scoring.encode(smollm2_tokenizer, 'Answer: positive')
    for name in ('smollm2-135m', 'llama2-7b-shape'):
        ids, _ = scoring.encode(models.load_tokenizer(models.resolve(str(shapes / name))), 'Answer: positive')
        assert ids == expected


def test_random_weights_load_as_a_local_model(tmp_path):
    gpu_kit.pack_shapes(tmp_path)
    shutil.rmtree(tmp_path / 'shapes' / 'llama2-7b-shape')  # 14 GB of weights: not on this machine
    gpu_kit.add_weights(tmp_path)
    folder = tmp_path / 'shapes' / 'smollm2-135m'
    model = models.load_model(models.resolve(str(folder)), torch.float32)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    again = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert torch.equal(model.model.layers[0].mlp.up_proj.weight, again.model.layers[0].mlp.up_proj.weight)
    assert model.model.layers[0].mlp.up_proj.weight.std() > 0.01  # initialised, not zeros
