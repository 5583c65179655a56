"""The blocked CPU attention equals SDPA: exactly in fp32 (same maths), within bf16 rounding in bf16;
it only serves the unmasked causal case and hands everything else to transformers' SDPA function."""
import types

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from icl import attention, models


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


@pytest.mark.parametrize('case', ['fp32', 'short', 'masked', 'softcap', 'cached'])
def test_attention_forward_hands_other_cases_to_sdpa(case):
    dtype = torch.float32 if case == 'fp32' else torch.bfloat16
    q, k, v = qkv(1, 9, 3, 100 if case == 'short' else 300, 64, dtype)
    mask, kwargs = None, {}
    if case == 'masked':  # e.g. padding in a batch
        mask = torch.ones(1, 1, 300, 300, dtype=torch.bool).tril_()
        mask[..., :5] = False
    if case == 'softcap':
        kwargs['softcap'] = 30.0
    if case == 'cached':  # fewer queries than keys
        q = q[:, :, -10:]
    assert not attention.serves(MODULE, q, k, mask, 0.0, kwargs)
    if case == 'softcap':  # SDPA refuses soft-capping itself
        with pytest.raises(ValueError, match='softcap'):
            attention.attention_forward(MODULE, q, k, v, mask, scaling=0.125, **kwargs)
        return
    out, _ = attention.attention_forward(MODULE, q, k, v, mask, scaling=0.125)
    assert torch.equal(out, sdpa_attention_forward(MODULE, q, k, v, mask, scaling=0.125)[0])


def test_bf16_cpu_models_use_the_blocked_attention(smollm2_fp32, smollm2_spec):
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


def test_cpus_with_amx_keep_sdpa(smollm2_spec, monkeypatch):
    monkeypatch.setattr(models, 'cpu_flags', lambda: {'avx512_bf16', 'amx_bf16', 'amx_tile'})
    assert models.load_model(smollm2_spec, torch.bfloat16).config._attn_implementation == 'sdpa'
