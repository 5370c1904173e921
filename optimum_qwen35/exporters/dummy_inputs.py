"""Example inputs for tracing: a step with ``past_length`` cached tokens and ``length`` new ones.

Both lengths are non-zero so that every concat in the graph sees real data and no dimension is
specialised to 0 or 1 by the tracer.
"""

from __future__ import annotations

import torch

from ..modeling.state_layout import StateLayout


def dummy_inputs(layout: StateLayout, with_past: bool, batch: int = 2, length: int = 8, past_length: int = 8) -> dict:
    """``{input_ids [B,T], attention_mask [B,P+T], position_ids [B,T], cache_params?}`` for tracing."""
    past = past_length if with_past else 0
    inputs: dict = {
        "input_ids": torch.randint(0, layout.vocab_size, (batch, length)),
        "attention_mask": torch.ones(batch, past + length, dtype=torch.int64),
        "position_ids": torch.arange(past, past + length).expand(batch, -1).contiguous(),
    }
    if with_past:
        inputs["cache_params"] = [torch.randn(shape) * 0.1 for _, shape in layout.state_shapes(batch, past)]
    return inputs
