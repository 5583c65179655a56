"""The dtype a run computes in: the paper's for the original's models, the native one for others."""
import pytest
import torch

from icl import hardware, precision
from icl.errors import UsageError


def test_resolve_dtype(monkeypatch):
    assert precision.resolve_dtype('float16') is torch.float16
    with pytest.raises(UsageError, match=r"model.dtype='half' is not valid; choose auto, float32, bfloat16 or float16"):
        precision.resolve_dtype('half')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(hardware, 'has_native_bf16', lambda: False)
    assert precision.resolve_dtype('auto') is torch.float32
    monkeypatch.setattr(hardware, 'has_native_bf16', lambda: True)
    assert precision.resolve_dtype('auto') is torch.bfloat16
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: False)  # e.g. a V100
    assert precision.resolve_dtype('auto') is torch.float16


PAPER_DTYPES = {  # model.dtype=auto for the original's names: the precision it ran them in
    'llama-7b': 'float32', 'llama-13b': 'float32', 'Llama-2-7b': 'float32', 'Llama-2-13b': 'float32',
    'llama-7b-8bit': 'float16', 'llama-13b-8bit': 'float16', 'Llama-2-7b-8bit': 'float16',  # 8-bit, fp16 compute
    'Llama-2-13b-8bit': 'float16', 'llama-65b': 'float16', 'Llama-2-70b': 'float16', 'llama-65b-8bit': 'float16',
    'Llama-2-70b-8bit': 'float16', 'falcon-7b': 'float16', 'falcon-40b': 'float16', 'falcon-7b-instruct': 'float16',
    'falcon-40b-instruct': 'float16', 'falcon-7b-8bit': 'float16',
}


@pytest.mark.parametrize('name', sorted(PAPER_DTYPES))
def test_auto_dtype_of_the_original_models_is_the_papers(name, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)  # the GPU default would be bf16
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: True)
    dtype, why = precision.dtype_policy(name, 'auto')
    assert dtype == PAPER_DTYPES[name]
    assert why.endswith("(the paper's precision; --model.dtype=bfloat16 is faster)")
    assert precision.dtype_policy(name, 'bfloat16') == ('bfloat16', 'model.dtype as given')  # one flag away


def test_auto_dtype_of_other_models_is_the_native_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: True)
    rule = 'auto: bf16 on GPUs that have it (fp16 on older ones) and on CPUs with native bf16, else fp32'
    for name in ('smollm2-135m', 'gemma3-270m', 'mistralai/Mistral-7B-v0.1', 'huggyllama/llama-7b'):
        assert precision.dtype_policy(name, 'auto') == ('bfloat16', rule)
        assert precision.dtype_policy(name, 'float32') == ('float32', 'model.dtype as given')
    assert precision.dtype_policy('llama-7b', 'auto') == (
        'float32', "the original loaded llama-7b in fp32 (the paper's precision; --model.dtype=bfloat16 is faster)")
    assert precision.dtype_policy('falcon-7b', 'auto')[1].startswith(
        "8-bit weights computing in fp16, as the original's")
    with pytest.raises(UsageError, match="model.dtype='half' is not valid"):
        precision.dtype_policy('llama-7b', 'half')


