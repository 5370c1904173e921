"""Perplexity and top-1 agreement over fixed token windows, for HF float32 and for an IR.

Both sides score the same windows: ``count`` windows of ``length`` tokens spread evenly over the
tokenized text, each scored from an empty state (no context carried between windows). A window
of ``length`` tokens gives ``length - 1`` predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: OpenVINO CPU compile options for scoring: f32 compute and KV cache, so only the weights differ.
F32_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}


@dataclass
class Scores:
    """Per-position results of one model over all windows (concatenated)."""

    nll: np.ndarray  # [N] negative log-likelihood of each next token
    argmax: np.ndarray  # [N] predicted token at each position

    @property
    def perplexity(self) -> float:
        return float(np.exp(self.nll.mean()))

    def agreement(self, reference: Scores) -> float:
        """Fraction of positions whose top-1 token equals the reference's."""
        return float((self.argmax == reference.argmax).mean())


def token_windows(token_ids: np.ndarray, count: int, length: int) -> list[np.ndarray]:
    """``count`` windows ``[length]`` of ``token_ids [N]`` with evenly spaced starts."""
    if len(token_ids) < length:
        raise ValueError(f"The text has {len(token_ids)} tokens, fewer than one window of {length}.")
    last_start = len(token_ids) - length
    starts = [0] if count == 1 else [round(i * last_start / (count - 1)) for i in range(count)]
    return [token_ids[s : s + length] for s in starts]


def _score(logits: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``logits [T, V]`` (float64 math) → NLL ``[T-1]`` of ``window[1:]`` and argmax ``[T-1]``."""
    logits = logits[:-1].astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    targets = window[1:]
    return -log_probs[np.arange(len(targets)), targets], logits.argmax(axis=-1)


def _collect(per_window: list[tuple[np.ndarray, np.ndarray]]) -> Scores:
    return Scores(np.concatenate([n for n, _ in per_window]), np.concatenate([a for _, a in per_window]))


def score_hf(checkpoint: str | Path, windows: list[np.ndarray]) -> Scores:
    """Score the windows with transformers in float32 (the correctness reference)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32).float().eval()
    results = []
    with torch.no_grad():
        for window in windows:
            logits = model(torch.from_numpy(window[None].astype(np.int64))).logits[0].numpy()
            results.append(_score(logits, window))
    return _collect(results)


def score_ir(ir_dir: str | Path, windows: list[np.ndarray], device: str = "CPU") -> Scores:
    """Score the windows with the plugin's stateful IR, one full-window inference per window."""
    import openvino as ov

    compiled = ov.Core().compile_model(Path(ir_dir) / "openvino_model.xml", device, F32_CONFIG)
    request = compiled.create_infer_request()
    results = []
    for window in windows:
        request.reset_state()
        length = len(window)
        request.infer(
            {
                "input_ids": window[None].astype(np.int64),
                "attention_mask": np.ones((1, length), dtype=np.int64),
                "position_ids": np.arange(length, dtype=np.int64)[None],
                "beam_idx": np.zeros(1, dtype=np.int32),
            }
        )
        results.append(_score(request.get_tensor("logits").data[0], window))
    return _collect(results)


def ir_size_mb(ir_dir: str | Path) -> float:
    """Size of the model weights file in MB (10^6 bytes)."""
    return (Path(ir_dir) / "openvino_model.bin").stat().st_size / 1e6
