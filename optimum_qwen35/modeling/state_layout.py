"""Names and shapes of the IR's state tensors, derived from the text config alone.

Names follow optimum-intel's hybrid convention so that ``OVModelForCausalLM`` and
openvino-genai recognise them: ``cache_params.{past|present}.{conv|ssm}.{i}`` for the i-th
linear-attention layer and ``cache_params.{past|present}.{key|value}.{j}`` for the j-th
full-attention layer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StateLayout:
    vocab_size: int
    num_linear: int
    num_full: int
    conv_channels: int  # 2 * key_dim + value_dim
    conv_kernel: int
    v_heads: int
    k_head_dim: int
    v_head_dim: int
    kv_heads: int
    head_dim: int

    @classmethod
    def from_text_config(cls, config) -> StateLayout:
        key_dim = config.linear_num_key_heads * config.linear_key_head_dim
        value_dim = config.linear_num_value_heads * config.linear_value_head_dim
        return cls(
            vocab_size=config.vocab_size,
            num_linear=config.layer_types.count("linear_attention"),
            num_full=config.layer_types.count("full_attention"),
            conv_channels=2 * key_dim + value_dim,
            conv_kernel=config.linear_conv_kernel_dim,
            v_heads=config.linear_num_value_heads,
            k_head_dim=config.linear_key_head_dim,
            v_head_dim=config.linear_value_head_dim,
            kv_heads=config.num_key_value_heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads,
        )

    def state_names(self, direction: str) -> list[str]:
        """State tensor names in flat order; ``direction`` is ``"past"`` (inputs) or ``"present"``."""
        prefix = f"cache_params.{direction}"
        names = [f"{prefix}.{kind}.{i}" for i in range(self.num_linear) for kind in ("conv", "ssm")]
        names += [f"{prefix}.{kind}.{j}" for j in range(self.num_full) for kind in ("key", "value")]
        return names

    def state_shapes(self, batch: int, past_length: int) -> list[tuple[str, tuple[int, ...]]]:
        """``(kind, shape)`` per state in flat order."""
        conv = ("conv", (batch, self.conv_channels, self.conv_kernel))
        ssm = ("ssm", (batch, self.v_heads, self.k_head_dim, self.v_head_dim))
        kv = (batch, self.kv_heads, past_length, self.head_dim)
        return [conv, ssm] * self.num_linear + [("key", kv), ("value", kv)] * self.num_full
