"""Causal attention for long prompts on CPUs, where torch's SDPA kernel leaves speed unused.

On CPUs that multiply in bf16 (AVX512-BF16) but have no AMX, SDPA computes bf16 attention no faster
than fp32 (measured here: 86 ms per SmolLM2 layer at 3,300 tokens either way), while a bf16 matmul
runs 4x faster than fp32; and given a mask (sliding-window layers), SDPA computes every query
against every key, in any dtype. This kernel walks over blocks of queries; each block is two batched
matmuls (scores against the keys it can see, then the weighted sum of values) and a softmax: 35 ms
per SmolLM2 layer in bf16; Gemma 3's 15 sliding-window layers at 2,900 tokens take 0.25 s instead of
2.8 s in bf16. Its bf16 label log-probs are as close to fp32 as SDPA's (benchmarks/bench_scoring.py
and tests/test_attention.py measure both); in fp32 it equals SDPA to float rounding.

On CPUs with AMX, SDPA's bf16 kernel is the fast one for plain causal layers (measured at 140 SST-2
examples, bf16: SmolLM2 1.52 s per prompt with SDPA, 2.74 with this kernel on every layer), while
sliding-window layers still gain (Gemma 3: 1.55 s with SDPA, 1.39 with this kernel on every layer): there
it serves the sliding-window layers only (WINDOWS_NAME).

It serves only what it is exact and fast for: a CPU forward pass, queries = keys (no cache), no
soft-capping or dropout, and either no mask in bf16 (transformers passes none for plain causal
attention; in fp32 SDPA's causal kernel is the faster one) or, in bf16 or fp32, the mask of a
sliding window with nothing else in it (no padding). Everything else goes to transformers' SDPA
function unchanged.
"""
import functools
import logging
import weakref

import torch
import transformers

try:  # transformers' private paths: if a later version moves them, models keep SDPA (use_for warns once)
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
    UNAVAILABLE = None
except ImportError as error:
    UNAVAILABLE = str(error)  # why this kernel cannot be plugged in

NAME = 'icl_blocked'  # the attn_implementation name this module registers with transformers: every layer it serves
WINDOWS_NAME = 'icl_blocked_windows'  # the same for sliding-window layers only (plain causal layers keep SDPA)
BLOCK = 128  # queries per block: 64-256 are equally fast here; larger blocks spill the cache


def blocked_causal_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float,
                             window: int | None = None) -> torch.Tensor:
    """softmax(scaling * q k^T + causal mask) v for q [batch, heads, n, dim], k and v [batch, kv_heads, n, dim]
    (grouped-query attention when kv_heads < heads); returns [batch, n, heads, dim], as transformers expects.
    With a `window`, query i sees only keys j with i - window < j <= i (transformers' sliding window)."""
    batch, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    groups, stacks = heads // kv_heads, batch * kv_heads  # the query heads that share a key head are stacked
    q = query.reshape(stacks, groups, length, dim)
    k, v = key.reshape(stacks, length, dim), value.reshape(stacks, length, dim)
    out = torch.empty(stacks, groups, length, dim, dtype=query.dtype, device=query.device)
    hidden = keys_hidden(window, query.device)
    for start in range(0, length, BLOCK):
        end = min(start + BLOCK, length)
        n, first = end - start, 0 if window is None else max(0, start - window + 1)  # the keys [first, end) matter
        rows = q[:, :, start:end].reshape(stacks, groups * n, dim)
        # scaling inside the matmul: applied to the fp32 accumulator, before the bf16 rounding
        scores = torch.baddbmm(torch.empty(stacks, groups * n, end - first, dtype=query.dtype, device=query.device),
                               rows, k[:, first:end].transpose(1, 2), beta=0, alpha=scaling)
        scores = scores.view(stacks, groups, n, end - first)
        if window is None:  # only the diagonal block has future keys
            scores[..., -n:].masked_fill_(hidden[:n, :n], float('-inf'))
        else:
            shift = window - 1 - (start - first)  # blocks near the start see fewer than window - 1 earlier keys
            scores.masked_fill_(hidden[:n, shift:shift + end - first], float('-inf'))
        weights = torch.softmax(scores, dim=-1)  # accumulates in fp32 internally
        out[:, :, start:end] = torch.bmm(weights.view(stacks, groups * n, end - first),
                                         v[:, first:end]).view(stacks, groups, n, dim)
    return out.view(batch, heads, length, dim).transpose(1, 2).contiguous()


def keys_hidden(window: int | None, device) -> torch.Tensor:
    """Which keys a block's queries must not see. Without a window: [BLOCK, BLOCK] over the diagonal block,
    True above the diagonal. With one: [BLOCK, BLOCK + window - 1] over the keys of a block that has a full
    window before it, True for keys in the query's future or window or more positions back."""
    width = BLOCK if window is None else BLOCK + window - 1
    back = torch.arange(BLOCK, device=device)[:, None] + (width - BLOCK) - torch.arange(width, device=device)
    return (back < 0) if window is None else (back < 0) | (back >= window)  # back = query - key position


def is_sliding_causal(mask: torch.Tensor, window: int) -> bool:
    """True when the boolean [1, 1, n, n] `mask` is exactly causal attention within `window` (no padding)."""
    length = mask.shape[-1]
    if mask.shape != (1, 1, length, length):
        return False
    expected = torch.ones(length, length, dtype=torch.bool, device=mask.device).tril_().triu_(1 - window)
    return torch.equal(mask[0, 0], expected)


_checked: list = [None, False]  # the mask last checked (weak reference) and the answer: layers share one mask


def _sliding_causal_once(mask: torch.Tensor, window: int) -> bool:
    if _checked[0] is None or _checked[0]() is not mask:
        _checked[:] = [weakref.ref(mask), is_sliding_causal(mask, window)]
    return _checked[1]


def serves(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, attention_mask, dropout: float,
           kwargs: dict, plain_causal: bool = True) -> bool:
    """True when the blocked kernel computes exactly what SDPA would here, and faster: plain causal
    attention in bf16 (transformers passes no mask then; in fp32 SDPA's own kernel is faster; not at all
    unless `plain_causal`), or a sliding window in bf16 or fp32 whose mask has nothing else in it."""
    if not (query.device.type == 'cpu' and query.dtype in (torch.bfloat16, torch.float32)
            and query.shape[2] == key.shape[2] > BLOCK and kwargs.get('is_causal', getattr(module, 'is_causal', True))
            and not dropout and kwargs.get('softcap') is None and kwargs.get('position_bias') is None):
        return False
    if attention_mask is None:
        return plain_causal and query.dtype == torch.bfloat16
    window = kwargs.get('sliding_window')
    return (isinstance(window, int) and attention_mask.dtype == torch.bool
            and _sliding_causal_once(attention_mask, window))


def attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                      plain_causal: bool = True, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: the blocked kernel where it serves, else SDPA."""
    if serves(module, query, key, attention_mask, dropout, kwargs, plain_causal):
        scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
        window = kwargs.get('sliding_window') if attention_mask is not None else None  # no mask: the window
        return blocked_causal_attention(query, key, value, scaling, window), None  # covers the whole prompt
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                  **kwargs)


def has_sliding_windows(model) -> bool:
    """True for models with sliding-window layers (Gemma 3, Mistral, ...)."""
    return bool(getattr(model.config.get_text_config(), 'sliding_window', None))


def windows_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    attention_mask: torch.Tensor | None, **kwargs) -> tuple[torch.Tensor, None]:
    """attention_forward for sliding-window layers only; plain causal layers get SDPA."""
    return attention_forward(module, query, key, value, attention_mask, plain_causal=False, **kwargs)


def implementation(dtype: torch.dtype, amx: bool, sliding_windows: bool) -> str | None:
    """Which of this module's attentions pays on the CPU (see the module's measurements): every layer in
    bf16 without AMX; only sliding-window layers in bf16 with AMX and in fp32; else None (SDPA)."""
    if dtype == torch.bfloat16 and not amx:
        return NAME
    if sliding_windows and dtype in (torch.bfloat16, torch.float32):
        return WINDOWS_NAME
    return None


def use_for(model, amx: bool) -> bool:
    """Switch a model on the CPU to this attention where it pays (implementation()). False where it
    does not pay, or the model does not take pluggable attention functions (it keeps its own), or this
    transformers lacks the paths it plugs into (the model keeps SDPA; warns once)."""
    name = implementation(model.dtype, amx, has_sliding_windows(model))
    if name is None or not model.is_backend_compatible():
        return False
    if UNAVAILABLE is not None:
        _warn_unavailable()
        return False
    model.set_attn_implementation(name)
    return True


@functools.cache  # once per process
def _warn_unavailable() -> None:
    logging.warning("icl.attention is off: transformers %s moved what it plugs into (%s); models keep transformers' "
                    'SDPA attention, slower for long prompts on CPUs', transformers.__version__, UNAVAILABLE)


if UNAVAILABLE is None:
    AttentionInterface.register(NAME, attention_forward)
    AttentionInterface.register(WINDOWS_NAME, windows_forward)
    for _name in (NAME, WINDOWS_NAME):  # the same masks as SDPA: None for plain causal attention
        ALL_MASK_ATTENTION_FUNCTIONS.register(_name, sdpa_mask)
