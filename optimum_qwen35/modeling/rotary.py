"""Partial rotary position embedding, as Qwen3.5 text layers apply it.

Qwen3.5 rotates only the first ``partial_rotary_factor * head_dim`` channels of each head. Its
rotary module is 3-axis mRoPE, but for text every axis carries the same position, and then the
interleaved mRoPE layout equals plain 1-D RoPE; the IR therefore takes ``position_ids [B, T]``.
"""

from __future__ import annotations

import torch


def rotary_cos_sin(
    position_ids: torch.Tensor, inv_freq: torch.Tensor, scaling: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos``/``sin`` tables ``[B, T, rotary_dim]`` (float32) for ``position_ids [B, T]``.

    An elementwise product (not transformers' ``inv_freq @ positions`` MatMul, which has one
    input channel and trips weight compression) gives bit-identical frequencies.
    """
    freqs = position_ids[:, :, None].float() * inv_freq.float()[None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * scaling, emb.sin() * scaling


def apply_partial_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the leading ``cos.shape[-1]`` channels of ``x [B, H, T, D]``; pass the rest through."""
    rotary_dim = cos.shape[-1]
    cos, sin = cos[:, None], sin[:, None]
    x_rot, x_pass = x[..., :rotary_dim], x[..., rotary_dim:]
    half = rotary_dim // 2
    rotated = torch.cat((-x_rot[..., half:], x_rot[..., :half]), dim=-1)
    return torch.cat((x_rot * cos + rotated * sin, x_pass), dim=-1)
