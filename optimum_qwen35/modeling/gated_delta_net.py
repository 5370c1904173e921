"""Qwen3.5 Gated DeltaNet (linear attention) layer with explicit conv and recurrent state.

transformers runs this layer in two modes (chunked kernel without state for prefill, recurrent
update for single-token decode) and, when several tokens follow a cache, restarts from an empty
state. Here there is one mode for any length: the causal conv runs over ``concat(conv_state, x)``
and the recurrence starts from the stored state, which is the exact continuation of the sequence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .delta_rule_cell import split_cell_output


def _l2norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    # Same formula as transformers' (and FLA's) l2norm, so rounding matches.
    return x * torch.rsqrt((x * x).sum(dim=-1, keepdim=True) + eps)


def _gated_rms_norm(norm: torch.nn.Module, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``RMSNorm(x) * w * silu(gate)`` over the last axis, in float32."""
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight.float() * x * F.silu(gate.float())


def gated_delta_net(
    gdn: torch.nn.Module,
    cell: torch.nn.Module,
    hidden: torch.Tensor,
    token_mask: torch.Tensor,
    conv_state: torch.Tensor,
    recurrent_state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Gated DeltaNet layer.

    Args:
        gdn: the transformers ``Qwen3_5GatedDeltaNet`` module (only its weights are used).
        cell: a :class:`~.delta_rule_cell.GatedDeltaRuleCell` registered in the traced model.
        hidden: ``[B, T, hidden]``; token_mask: ``[B, T]`` (0 at left padding).
        conv_state: ``[B, 2*key_dim + value_dim, kernel]``.
        recurrent_state: ``[B, v_heads, k_head_dim, v_head_dim]`` (float32).

    Returns:
        ``(out [B, T, hidden], new conv_state, new recurrent_state)`` with the input shapes.
    """
    batch, length, _ = hidden.shape
    # Padding tokens must not leak into the conv window or the recurrence.
    hidden = hidden * token_mask[:, :, None].to(hidden.dtype)

    mixed_qkv = gdn.in_proj_qkv(hidden).transpose(1, 2)  # [B, C, T]
    z = gdn.in_proj_z(hidden)  # [B, T, value_dim]
    b = gdn.in_proj_b(hidden)  # [B, T, v_heads]
    a = gdn.in_proj_a(hidden)  # [B, T, v_heads]

    # Depthwise causal conv over the stored window followed by the new tokens: one formula for
    # prefill, chunked prefill and decode. The last `kernel` columns are the next window.
    window = torch.cat([conv_state, mixed_qkv.to(conv_state.dtype)], dim=-1)  # [B, C, K+T]
    weight = gdn.conv1d.weight.float()  # [C, 1, K]
    conv = F.conv1d(window, weight, None, groups=weight.shape[0])[:, :, -length:]
    new_conv_state = window[:, :, -conv_state.shape[-1] :]
    # SiLU after the transpose: openvino-genai's paged conv outputs [tokens, C, 1], on which the
    # CPU plugin's Swish ran ~10x slower than on [B, T, C] (docs/performance.md).
    mixed_qkv = F.silu(conv.transpose(1, 2))  # [B, T, C]

    # Split q|k|v on a rank-4 tensor: the Intel GPU plugin has no layout for a rank-3 bf16
    # VariadicSplit, and a unit axis costs nothing.
    query, key, value = torch.split(mixed_qkv[:, :, None, :], [gdn.key_dim, gdn.key_dim, gdn.value_dim], dim=-1)
    query = query.reshape(batch, length, gdn.num_k_heads, gdn.head_k_dim)
    key = key.reshape(batch, length, gdn.num_k_heads, gdn.head_k_dim)
    value = value.reshape(batch, length, gdn.num_v_heads, gdn.head_v_dim)

    beta = b.float().sigmoid()
    g = -gdn.A_log.float().exp() * F.softplus(a.float() + gdn.dt_bias.float())
    # L2-normalise q and k per key head *before* repeating them for the value heads (the same
    # values either way). Repeated after the norm, the repeat is not folded into OpenVINO's
    # GatedDeltaNet op (FuseGroupedQueryIntoGDN): openvino-genai 2026.4's paged conversion of a
    # folded op reshapes its output with the key-head count and fails to compile (continuous
    # batching on checkpoints with more value than key heads, e.g. 4B and larger).
    query, key = _l2norm(query.float()), _l2norm(key.float())
    repeats = gdn.num_v_heads // gdn.num_k_heads
    if repeats > 1:
        query = query.repeat_interleave(repeats, dim=2)
        key = key.repeat_interleave(repeats, dim=2)

    # Cell layout: heads before time ([B, H, T, D]) as OpenVINO's GatedDeltaNet fusion expects.
    query, key, value = (x.transpose(1, 2) for x in (query, key, value.float()))
    # Written as `q / size(q, -1) ** 0.5` (not a constant factor): FuseGDNLoop matches this form.
    query = query / query.shape[-1] ** 0.5
    flat = cell(query, key, value, g.transpose(1, 2), beta.transpose(1, 2), recurrent_state)
    core, new_recurrent_state = split_cell_output(flat, value, recurrent_state)

    core = core.transpose(1, 2)  # [B, T, v_heads, v_head_dim]
    core = _gated_rms_norm(gdn.norm, core, z.reshape(batch, length, -1, gdn.head_v_dim))
    return gdn.out_proj(core.reshape(batch, length, -1)), new_conv_state, new_recurrent_state
