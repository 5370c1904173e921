"""The static decoder: embeddings → layers (per ``config.layer_types``) → norm → lm_head.

State travels as one flat list, in the order the IR names it (``cache_params.past.*``):
``[conv_0, ssm_0, conv_1, ssm_1, …, key_0, value_0, key_1, value_1, …]`` where ``i`` counts
linear-attention layers and ``j`` counts full-attention layers, each in model order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .attention import attention_mask_4d, full_attention
from .delta_rule_cell import GatedDeltaRuleCell
from .gated_delta_net import gated_delta_net
from .rotary import mrope_cos_sin, rotary_cos_sin
from .sparse_moe import is_sparse_moe, restore_experts, vectorize_experts
from .state_layout import StateLayout

LINEAR = "linear_attention"
FULL = "full_attention"

#: Attribute under which each Gated DeltaNet module carries its recurrence cell while traced.
CELL_ATTRIBUTE = "ov_delta_rule_cell"


@dataclass
class TextModelParts:
    """Where a loaded Qwen3.5 model keeps the pieces of its text decoder."""

    text_model: torch.nn.Module  # has embed_tokens, layers, norm, rotary_emb
    lm_head: torch.nn.Module
    config: object  # the text config (layer_types, head sizes, …)


def locate_text_model(model: torch.nn.Module) -> TextModelParts:
    """Find the text decoder of a text (``…ForCausalLM``) or composite (``…ForConditionalGeneration``) model."""
    inner = model.model
    text_model = getattr(inner, "language_model", inner)
    config = getattr(model.config, "text_config", model.config)
    return TextModelParts(text_model=text_model, lm_head=model.lm_head, config=config)


class StaticQwen35Decoder:
    """Traceable forward over a transformers Qwen3.5 model's weights.

    ``forward(input_ids [B, T], attention_mask [B, P+T], position_ids [B, T], cache_params)`` (and
    :meth:`forward_embeds` with ``inputs_embeds [B, T, hidden]``, ``position_ids [4, B, T]``)
    returns ``{"logits": [B, T, vocab] float32, "present_key_values": [...]}`` where
    ``cache_params`` and ``present_key_values`` follow the module docstring's order and shapes:
    conv ``[B, 2*key_dim + value_dim, kernel]``, ssm ``[B, v_heads, k_head_dim, v_head_dim]``,
    key/value ``[B, kv_heads, P(+T), head_dim]`` — all float32.
    """

    def __init__(self, model: torch.nn.Module):
        self.parts = locate_text_model(model)
        self.layer_types = list(self.parts.config.layer_types)
        self.layout = StateLayout.from_text_config(self.parts.config)
        self.num_linear = self.layout.num_linear
        rotary = self.parts.text_model.rotary_emb
        self.inv_freq = rotary.inv_freq
        self.rotary_scaling = float(getattr(rotary, "attention_scaling", 1.0))
        rope = getattr(self.parts.config, "rope_parameters", None) or {}
        self.mrope_section = list(rope.get("mrope_section") or getattr(rotary, "mrope_section", [11, 11, 10]))
        #: Called after each decoder layer's forward (the export counts layers while it traces).
        self.layer_done: Callable[[], None] | None = None

    def attach_cells(self) -> None:
        """Prepare the modules for tracing: every Gated DeltaNet module gets a recurrence cell
        (OpenVINO replaces it by a Loop) and every sparse MoE block vectorised experts."""
        for layer in self._layers(LINEAR):
            setattr(layer.linear_attn, CELL_ATTRIBUTE, GatedDeltaRuleCell())
        for mlp in self._sparse_moe_blocks():
            vectorize_experts(mlp)

    def detach_cells(self) -> None:
        """Undo :meth:`attach_cells`."""
        for layer in self._layers(LINEAR):
            if hasattr(layer.linear_attn, CELL_ATTRIBUTE):
                delattr(layer.linear_attn, CELL_ATTRIBUTE)
        for mlp in self._sparse_moe_blocks():
            restore_experts(mlp)

    def _sparse_moe_blocks(self) -> list[torch.nn.Module]:
        return [layer.mlp for layer in self.parts.text_model.layers if is_sparse_moe(layer.mlp)]

    def empty_state(self, batch: int) -> list[torch.Tensor]:
        """Zero conv/recurrent states and empty key/value caches for a fresh sequence."""
        return [torch.zeros(shape) for _, shape in self.layout.state_shapes(batch, 0)]

    def _layers(self, kind: str):
        pairs = zip(self.parts.text_model.layers, self.layer_types, strict=True)
        return [layer for layer, layer_type in pairs if layer_type == kind]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache_params: list[torch.Tensor],
    ) -> dict:
        """The text LLM's step: token ids ``[B, T]``, 1-D positions ``[B, T]``."""
        hidden = self.parts.text_model.embed_tokens(input_ids).float()
        cos_sin = rotary_cos_sin(position_ids, self.inv_freq, self.rotary_scaling)
        return self.decode(hidden, attention_mask, cos_sin, cache_params)

    def forward_embeds(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache_params: list[torch.Tensor],
    ) -> dict:
        """The vision-language layout's step: embeddings ``[B, T, hidden]`` (text and image tokens
        merged by the caller) and positions ``[4, B, T]`` as openvino-genai and transformers lay them
        out — row 0 the text positions (the causal mask comes from ``attention_mask`` here, so it is
        unused), rows 1–3 the temporal/height/width mRoPE axes."""
        cos_sin = mrope_cos_sin(position_ids[1:], self.inv_freq, self.mrope_section, self.rotary_scaling)
        return self.decode(inputs_embeds.float(), attention_mask, cos_sin, cache_params)

    def decode(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        cos_sin: tuple[torch.Tensor, torch.Tensor],
        cache_params: list[torch.Tensor],
    ) -> dict:
        """Layers → norm → lm_head over ``hidden [B, T, hidden]`` with rotary tables ``[B, T, rotary_dim]``."""
        text = self.parts.text_model
        length = hidden.shape[1]
        cos, sin = cos_sin
        mask = attention_mask_4d(attention_mask, length)
        token_mask = attention_mask[:, -length:]

        linear_states = iter(cache_params[: 2 * self.num_linear])
        attention_states = iter(cache_params[2 * self.num_linear :])
        new_linear: list[torch.Tensor] = []
        new_attention: list[torch.Tensor] = []
        for layer, layer_type in zip(text.layers, self.layer_types, strict=True):
            residual = hidden
            hidden = layer.input_layernorm(hidden)
            if layer_type == LINEAR:
                gdn = layer.linear_attn
                hidden, conv, ssm = gated_delta_net(
                    gdn, getattr(gdn, CELL_ATTRIBUTE), hidden, token_mask, next(linear_states), next(linear_states)
                )
                new_linear += [conv, ssm]
            else:
                hidden, key, value = full_attention(
                    layer.self_attn, hidden, cos, sin, mask, next(attention_states), next(attention_states)
                )
                new_attention += [key, value]
            hidden = residual + hidden
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
            if self.layer_done is not None:
                self.layer_done()

        logits = self.parts.lm_head(text.norm(hidden)).float()
        return {"logits": logits, "present_key_values": new_linear + new_attention}

    __call__ = forward
