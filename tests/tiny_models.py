"""Tiny random Qwen3.5 checkpoints, saved in bf16 like the hub's, for offline tests.

Weights are scaled up so that logits are decisive (greedy comparisons mean something).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    Qwen3_5Config,
    Qwen3_5ForCausalLM,
    Qwen3_5ForConditionalGeneration,
    Qwen3_5MoeConfig,
    Qwen3_5MoeForCausalLM,
    Qwen3_5MoeForConditionalGeneration,
    Qwen3_5MoeTextConfig,
    Qwen3_5TextConfig,
)

TEXT_CONFIG = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=5,
    layer_types=["linear_attention", "linear_attention", "full_attention", "linear_attention", "full_attention"],
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    linear_num_key_heads=2,
    linear_num_value_heads=4,
    linear_key_head_dim=16,
    linear_value_head_dim=16,
    linear_conv_kernel_dim=4,
    max_position_embeddings=1024,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
    tie_word_embeddings=True,
    pad_token_id=0,
    eos_token_id=1,
    bos_token_id=None,
)

#: The dense text config with a sparse MoE block in every layer: 6 experts, top-2, shared expert.
MOE_TEXT_CONFIG = dict(
    {k: v for k, v in TEXT_CONFIG.items() if k != "intermediate_size"},
    num_experts=6,
    num_experts_per_tok=2,
    moe_intermediate_size=48,
    shared_expert_intermediate_size=96,
)

VISION_CONFIG = dict(
    depth=1,
    hidden_size=32,
    intermediate_size=64,
    num_heads=2,
    out_hidden_size=64,
    patch_size=8,
    spatial_merge_size=2,
    temporal_patch_size=2,
    num_position_embeddings=64,
)


def _decisive(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("A_log") or name.endswith("dt_bias"):
                continue
            if param.ndim >= 2:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.08)
            elif "norm" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
        if model.config.get_text_config().tie_word_embeddings:
            # Composite models do not share the tensors in memory; make the saved copies equal.
            model.lm_head.weight.copy_(model.get_input_embeddings().weight)
    return model


def _save(model: torch.nn.Module, path: Path, seed: int) -> Path:
    model = _decisive(model, seed)
    model.to(torch.bfloat16).save_pretrained(path)
    return path


def make_text_checkpoint(path: Path, seed: int = 0, **overrides) -> Path:
    """Save a random ``Qwen3_5ForCausalLM`` (``qwen3_5_text``) in bf16 under ``path``."""
    torch.manual_seed(seed)
    return _save(Qwen3_5ForCausalLM(Qwen3_5TextConfig(**{**TEXT_CONFIG, **overrides})), path, seed)


def make_composite_checkpoint(path: Path, seed: int = 0) -> Path:
    """Save a random ``Qwen3_5ForConditionalGeneration`` (``qwen3_5``) in bf16 under ``path``."""
    torch.manual_seed(seed)
    config = Qwen3_5Config(text_config=TEXT_CONFIG, vision_config=VISION_CONFIG)
    return _save(Qwen3_5ForConditionalGeneration(config), path, seed)


def make_moe_text_checkpoint(path: Path, seed: int = 0) -> Path:
    """Save a random ``Qwen3_5MoeForCausalLM`` (``qwen3_5_moe_text``) in bf16 under ``path``."""
    torch.manual_seed(seed)
    return _save(Qwen3_5MoeForCausalLM(Qwen3_5MoeTextConfig(**MOE_TEXT_CONFIG)), path, seed)


def make_moe_composite_checkpoint(path: Path, seed: int = 0) -> Path:
    """Save a random ``Qwen3_5MoeForConditionalGeneration`` (``qwen3_5_moe``) in bf16 under ``path``."""
    torch.manual_seed(seed)
    config = Qwen3_5MoeConfig(text_config=MOE_TEXT_CONFIG, vision_config=VISION_CONFIG)
    return _save(Qwen3_5MoeForConditionalGeneration(config), path, seed)
