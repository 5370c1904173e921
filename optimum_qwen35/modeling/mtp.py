"""The multi-token-prediction (MTP) head of a Qwen3.5 checkpoint, as a static traceable module.

Every hub checkpoint carries one MTP layer (``text_config.mtp_num_hidden_layers: 1``) stored as
``mtp.*`` tensors, which transformers skips when it loads the model. The head drafts the token
after next from the main model's last hidden state and the next token's embedding:

    x = fc(cat([pre_fc_norm_embedding(embed(token[t+1])), pre_fc_norm_hidden(hidden[t])]))
    x = decoder_layer(x)             # one full-attention layer (dense MLP, or MoE as the model's)
    last_hidden_state = norm(x)      # openvino-genai applies the main model's lm_head to it

openvino-genai's MTP decoding feeds ``hidden[t]`` from the main model's ``lm_head`` input (after
the final norm) and the draft's own ``last_hidden_state`` for later draft steps. The layer modules
are transformers' own classes, taken from the loaded model's full-attention layer (so a dense
and a MoE checkpoint each get their kind); the trace uses the static decoder's attention.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from .attention import attention_mask_4d, full_attention
from .rotary import rotary_cos_sin

PREFIX = "mtp."
FULL = "full_attention"


def fuse_expert_tensors(
    tensors: dict[str, torch.Tensor],
    num_experts: int,
    stack: Callable[[list[torch.Tensor]], torch.Tensor] = torch.stack,
) -> dict[str, torch.Tensor]:
    """``mlp.experts.{e}.{gate,up,down}_proj.weight`` (the hub's MTP layout) to transformers' fused
    ``mlp.experts.gate_up_proj [E, 2I, H]`` (gate rows first) and ``mlp.experts.down_proj [E, H, I]``.

    ``stack`` joins equal tensors along a new first axis (an export passes one that writes to
    file-backed scratch space); gate and up are stacked interleaved, ``[2E, I, H]``, which is the
    fused layout once viewed as ``[E, 2I, H]``.
    """
    layer = "layers.0.mlp.experts."
    if f"{layer}0.gate_proj.weight" not in tensors:
        return tensors
    fused = {k: v for k, v in tensors.items() if not k.startswith(layer)}
    experts = range(num_experts)
    halves = [tensors[f"{layer}{e}.{half}_proj.weight"] for e in experts for half in ("gate", "up")]
    gate_up = stack(halves)
    fused[layer + "gate_up_proj"] = gate_up.view(num_experts, 2 * gate_up.shape[1], gate_up.shape[2])
    fused[layer + "down_proj"] = stack([tensors[f"{layer}{e}.down_proj.weight"] for e in experts])
    return fused


class MTPHead(torch.nn.Module):
    """The ``mtp.*`` weights in transformers modules: ``fc [H, 2H]``, the three RMSNorms, ``layers[0]``.

    Args:
        text_model: the loaded model's text decoder (``embed_tokens``, ``layers``, ``norm``,
            ``rotary_emb``); its decoder layer's class and its norm's class build the head.
        text_config: the checkpoint's text config.
    """

    def __init__(self, text_model: torch.nn.Module, text_config):
        super().__init__()
        # Every decoder layer is one class that picks its mixer from ``config.layer_types``, so the
        # first layer's class builds the head's full-attention layer even in a depth cut with no
        # full-attention layer (benchmarks cut the 27B and 35B-A3B to 2 layers).
        layer_class = type(text_model.layers[0])
        norm_class = type(text_model.norm)
        hidden, eps = text_config.hidden_size, text_config.rms_norm_eps
        config = copy.deepcopy(text_config)
        config.num_hidden_layers = 1
        config.layer_types = [FULL]
        self.config = config
        self.fc = torch.nn.Linear(2 * hidden, hidden, bias=False)
        self.pre_fc_norm_embedding = norm_class(hidden, eps=eps)
        self.pre_fc_norm_hidden = norm_class(hidden, eps=eps)
        self.layers = torch.nn.ModuleList([layer_class(config, layer_idx=0)])
        self.norm = norm_class(hidden, eps=eps)
        rotary = text_model.rotary_emb
        self.register_buffer("inv_freq", rotary.inv_freq.detach().clone(), persistent=False)
        self.rotary_scaling = float(getattr(rotary, "attention_scaling", 1.0))

    def load_mtp_tensors(
        self, tensors: dict[str, torch.Tensor], stack: Callable[[list[torch.Tensor]], torch.Tensor] = torch.stack
    ) -> None:
        """Load ``mtp.*`` tensors (prefix stripped or not); raises ValueError naming any missing,
        unexpected or mis-shaped tensor.

        The tensors become the parameters themselves where their dtype is the head's (an export
        passes views of the mapped checkpoint); ``stack`` fuses per-expert tensors
        (:func:`fuse_expert_tensors`).
        """
        tensors = {k.removeprefix(PREFIX): v for k, v in tensors.items()}
        tensors = fuse_expert_tensors(tensors, getattr(self.config, "num_experts", 0) or 0, stack)
        expected = self.state_dict()
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        wrong = [
            f"{name} {tuple(tensors[name].shape)} (expected {tuple(expected[name].shape)})"
            for name in sorted(set(expected) & set(tensors))
            if tensors[name].shape != expected[name].shape
        ]
        problems = [f"missing {', '.join(PREFIX + n for n in missing)}"] if missing else []
        problems += [f"unexpected {', '.join(PREFIX + n for n in unexpected)}"] if unexpected else []
        problems += [f"mis-shaped {', '.join(PREFIX + w for w in wrong)}"] if wrong else []
        if problems:
            raise ValueError("; ".join(problems))
        self.load_state_dict({name: tensors[name].to(value.dtype) for name, value in expected.items()}, assign=True)

    def forward(
        self,
        hidden_states: torch.Tensor,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        past_key: torch.Tensor,
        past_value: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One draft step.

        Args:
            hidden_states, inputs_embeds: ``[B, T, H]``: the main model's normalised hidden state at
                position ``t`` and the embedding of token ``t+1``.
            attention_mask: ``[B, P+T]``; position_ids: ``[B, T]`` (text positions: every mRoPE axis
                equal, which is plain partial RoPE).
            past_key, past_value: ``[B, kv_heads, P, head_dim]``.

        Returns:
            ``(last_hidden_state [B, T, H] float32, key, value [B, kv_heads, P+T, head_dim])``.
        """
        embedding = self.pre_fc_norm_embedding(inputs_embeds.float())
        hidden = self.pre_fc_norm_hidden(hidden_states.float())
        x = self.fc(torch.cat([embedding, hidden], dim=-1))
        cos, sin = rotary_cos_sin(position_ids, self.inv_freq, self.rotary_scaling)
        mask = attention_mask_4d(attention_mask, x.shape[1])
        layer = self.layers[0]
        attended, key, value = full_attention(
            layer.self_attn, layer.input_layernorm(x), cos, sin, mask, past_key, past_value
        )
        x = x + attended
        x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.norm(x).float(), key, value
