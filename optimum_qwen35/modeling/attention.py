"""Qwen3.5 full-attention layer with explicit key/value state.

Differences from a Llama-style layer that matter for exactness: ``q_proj`` emits, per head,
``[query_h | gate_h]`` interleaved (not all queries then all gates); per-head ``q_norm``/``k_norm``
use ``x * (1 + w)``; the attention output is multiplied by ``sigmoid(gate)`` before ``o_proj``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .rotary import apply_partial_rotary


def attention_mask_4d(attention_mask: torch.Tensor, query_length: int) -> torch.Tensor:
    """Additive float mask ``[B, 1, T, P+T]`` from a padding mask ``[B, P+T]`` (1 = token).

    Query ``i`` sits at absolute position ``P + i`` and may see key ``j`` when ``j <= P + i`` and
    key ``j`` is not padding. A finite minimum (not ``-inf``) keeps fully padded rows finite.
    """
    total = attention_mask.shape[1]
    key_pos = torch.arange(total, device=attention_mask.device)
    query_pos = key_pos[total - query_length :]
    causal = key_pos[None, :] <= query_pos[:, None]  # [T, P+T]
    allowed = causal[None, None] & attention_mask[:, None, None, :].bool()
    zero = torch.zeros((), dtype=torch.float32)
    return torch.where(allowed, zero, torch.finfo(torch.float32).min)


def _repeat_kv(states: torch.Tensor, groups: int) -> torch.Tensor:
    """``[B, kv_heads, L, D] -> [B, kv_heads * groups, L, D]``, each head repeated ``groups`` times.

    Written as unsqueeze → expand → reshape (not ``repeat_interleave``, which traces to a Gather):
    that is the GQA form openvino-genai's paged-attention conversion recognises between a KV-cache
    state and ``ScaledDotProductAttention``.
    """
    batch, kv_heads, length, head_dim = states.shape
    expanded = states[:, :, None].expand(batch, kv_heads, groups, length, head_dim)
    return expanded.reshape(batch, kv_heads * groups, length, head_dim)


def full_attention(
    attn: torch.nn.Module,
    hidden: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    mask: torch.Tensor,
    past_key: torch.Tensor,
    past_value: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One attention layer.

    Args:
        attn: the transformers ``Qwen3_5Attention`` module (only its weights are used).
        hidden: ``[B, T, hidden]``; cos/sin: ``[B, T, rotary_dim]``; mask: ``[B, 1, T, P+T]``.
        past_key, past_value: ``[B, kv_heads, P, head_dim]``.

    Returns:
        ``(out [B, T, hidden], key [B, kv_heads, P+T, head_dim], value [...same])``.
    """
    batch, length, _ = hidden.shape
    head_dim = attn.head_dim
    query, gate = torch.chunk(attn.q_proj(hidden).view(batch, length, -1, 2 * head_dim), 2, dim=-1)
    gate = gate.reshape(batch, length, -1)

    query = attn.q_norm(query).transpose(1, 2)
    key = attn.k_norm(attn.k_proj(hidden).view(batch, length, -1, head_dim)).transpose(1, 2)
    value = attn.v_proj(hidden).view(batch, length, -1, head_dim).transpose(1, 2)
    query = apply_partial_rotary(query, cos, sin)
    key = apply_partial_rotary(key, cos, sin)

    key = torch.cat([past_key, key], dim=2)
    value = torch.cat([past_value, value], dim=2)

    groups = query.shape[1] // key.shape[1]
    out = F.scaled_dot_product_attention(
        query, _repeat_kv(key, groups), _repeat_kv(value, groups), attn_mask=mask, scale=attn.scaling
    )
    out = out.transpose(1, 2).reshape(batch, length, -1) * torch.sigmoid(gate)
    return attn.o_proj(out), key, value
