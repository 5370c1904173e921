"""Partial rotary position embedding, as Qwen3.5 text layers apply it.

Qwen3.5 rotates only the first ``partial_rotary_factor * head_dim`` channels of each head. Its
rotary module is 3-axis mRoPE, but for text every axis carries the same position, and then the
interleaved mRoPE layout equals plain 1-D RoPE; the text IR therefore takes ``position_ids [B, T]``.
The vision-language layout's language model gets the three axes (temporal, height, width), which
differ on image tokens, and applies the interleaved layout (:func:`mrope_cos_sin`).
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


def mrope_axis_mask(rotary_dim: int, mrope_section: list[int]) -> torch.Tensor:
    """``[3, rotary_dim // 2]`` one-hot: which position axis (T, H, W) drives each frequency.

    transformers' ``apply_interleaved_mrope``: frequency ``i`` takes the height axis when
    ``i % 3 == 1 and i < 3 * section[1]``, the width axis when ``i % 3 == 2 and i < 3 * section[2]``,
    the temporal axis otherwise.
    """
    axis = torch.zeros(rotary_dim // 2, dtype=torch.long)
    for dim, offset in ((1, 1), (2, 2)):
        axis[offset : 3 * mrope_section[dim] : 3] = dim
    return torch.nn.functional.one_hot(axis, 3).T.float()


def mrope_cos_sin(
    position_ids: torch.Tensor, inv_freq: torch.Tensor, mrope_section: list[int], scaling: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos``/``sin`` tables ``[B, T, rotary_dim]`` for 3-axis positions ``[3, B, T]`` (T, H, W).

    Every axis's frequencies are computed, then each frequency keeps its own axis through a
    constant one-hot mask: ``x * 1 + y * 0 + z * 0`` is exactly ``x``, so text positions (all axes
    equal) give the tables of :func:`rotary_cos_sin` bit for bit.
    """
    inv_freq = inv_freq.float()
    mask = mrope_axis_mask(2 * inv_freq.shape[0], mrope_section)  # [3, F]
    freqs = position_ids[..., None].float() * inv_freq[None, None, None, :]  # [3, B, T, F]
    freqs = (freqs * mask[:, None, None, :]).sum(dim=0)
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
