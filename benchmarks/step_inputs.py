"""Inputs of one step of a stateful Qwen3.5 IR at batch 1, shared by the benchmark scripts."""

from __future__ import annotations

from collections.abc import Container

import numpy as np


def step_inputs(
    ids: np.ndarray, past: int, names: Container[str] | None = None, **extra: np.ndarray
) -> dict[str, np.ndarray]:
    """``input_ids`` ``ids`` ``[1, T]`` after ``past`` cached tokens, with ``attention_mask
    [1, past + T]``, ``position_ids [1, T]``, ``beam_idx [1]`` and any ``extra`` inputs; only those
    in ``names`` when given (IRs of different exporters differ in their optional inputs)."""
    length = ids.shape[1]
    inputs = {"input_ids": ids, "attention_mask": np.ones((1, past + length), np.int64)}
    inputs |= {"position_ids": np.arange(past, past + length)[None], "beam_idx": np.zeros(1, np.int32)}
    inputs |= extra
    return inputs if names is None else {name: value for name, value in inputs.items() if name in names}
