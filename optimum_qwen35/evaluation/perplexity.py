"""Perplexity and top-1 agreement over consecutive token windows, for HF float32 and for an IR.

The tokenized text is cut into a grid of consecutive, non-overlapping windows of ``length`` tokens
(the tail shorter than one window is dropped); window ``i`` covers tokens
``[i * length, (i + 1) * length)``. Both sides score the same windows, all of the grid or an evenly
spread subset of it, each from an empty state (no context carried between windows). A window of
``length`` tokens gives ``length - 1`` predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

if TYPE_CHECKING:
    import openvino as ov

#: OpenVINO CPU compile options for scoring: f32 compute and KV cache, so only the weights differ.
F32_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}

#: ``optimum-qwen35 eval --device-config`` choices. ``f32`` measures what the weight format alone
#: costs; ``default`` compiles with the CPU plugin's own defaults, what users run (on CPUs with
#: AVX-512 BF16 or AMX: bf16 activations, u8 KV cache, dynamic quantization of activations; the
#: plugin picks them per CPU, so an AVX2-only CPU computes in f32 under both).
DEVICE_CONFIGS: dict[str, dict[str, str]] = {"f32": F32_CONFIG, "default": {}}


@dataclass
class Scores:
    """Per-position results of one model, one row per window."""

    nll: np.ndarray  # [W, T-1] float64 negative log-likelihood of each next token
    argmax: np.ndarray  # [W, T-1] predicted token at each position

    @property
    def perplexity(self) -> float:
        """exp of the mean NLL over every scored token of every window."""
        return float(np.exp(self.nll.mean()))

    @property
    def window_nll(self) -> np.ndarray:
        """``[W]`` summed NLL of each window (what the bootstrap resamples)."""
        return self.nll.sum(axis=1)

    def agreement(self, reference: Scores) -> float:
        """Fraction of positions whose top-1 token equals the reference's."""
        return float((self.argmax == reference.argmax).mean())


def select_windows(n_tokens: int, length: int, max_windows: int | None = None) -> np.ndarray:
    """Grid indices ``[K]`` of the windows to score in a text of ``n_tokens`` tokens.

    All ``n_tokens // length`` windows of the grid, or, with ``max_windows`` below that, that many
    of them evenly spread from the first to the last (indices on the same grid, so a capped run
    scores a subset of the whole-file windows).
    """
    grid = n_tokens // length
    if grid == 0:
        raise ValueError(f"The text has {n_tokens} tokens, fewer than one window of {length}. Fix: a longer text.")
    if max_windows is None or max_windows >= grid:
        return np.arange(grid)
    if max_windows < 1:
        raise ValueError(f"max_windows must be at least 1, got {max_windows}.")
    # The spacing is > 1 when max_windows < grid, so rounding never maps two picks to one window.
    return np.rint(np.linspace(0, grid - 1, max_windows)).astype(np.int64)


def windows_at(token_ids: np.ndarray, indices: np.ndarray, length: int) -> np.ndarray:
    """``[K, length]`` token windows at grid ``indices [K]`` of ``token_ids [N]``."""
    grid = len(token_ids) // length
    return token_ids[: grid * length].reshape(grid, length)[indices]


def _score(logits: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``logits [T, V]`` (float64 math) → NLL ``[T-1]`` of ``window[1:]`` and argmax ``[T-1]``.

    ``NLL = log(sum(exp(shifted))) - shifted[target]`` with ``shifted = logits - max``: the same
    float64 values as negating a full log-softmax, without computing it for every vocabulary entry.
    """
    logits = logits[:-1]
    argmax = logits.argmax(axis=-1)  # float32 → float64 is exact and monotonic: the same argmax
    shifted = logits.astype(np.float64)
    shifted -= shifted.max(axis=-1, keepdims=True)
    targets = window[1:]
    picked = shifted[np.arange(len(targets)), targets]
    np.exp(shifted, out=shifted)
    return np.log(shifted.sum(axis=-1)) - picked, argmax


def _collect(per_window: list[tuple[np.ndarray, np.ndarray]]) -> Scores:
    return Scores(np.stack([n for n, _ in per_window]), np.stack([a for _, a in per_window]))


#: Windows per inference, and inferences in flight at once (each on its own infer request and
#: CPU stream). Every window still starts from an empty state and scores exactly what it scores
#: alone (tests/test_evaluation.py). Measured on the dense reference, 32 windows of 512 tokens,
#: 2 cores shared with other work, windows/s: one window on one stream (the previous scorer) 0.81;
#: 1 window x 2 streams 1.13; 4 x 2 streams 1.04; 8 x 2 streams 1.03. A 512-token window already
#: keeps the matrix multiplications busy, so batching gains nothing; two single-threaded streams do.
BATCH_SIZE = 1
STREAMS = 2

#: Streams under each device config. The plugin defaults run one: with bf16 inference, compiling
#: the references' IRs for two streams on this 2-core AMX CPU dies with SIGFPE (OpenVINO 2026.4.1;
#: f32 with two streams and bf16 with one compile fine).
DEVICE_CONFIG_STREAMS = {"f32": STREAMS, "default": 1}


def _batches(windows: np.ndarray, batch_size: int) -> list[np.ndarray]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    return [windows[start : start + batch_size] for start in range(0, len(windows), batch_size)]


def score_hf(checkpoint: str | Path, windows: np.ndarray) -> Scores:
    """Score ``windows [W, T]`` with transformers in float32 (the correctness reference).

    One window per forward pass: batching them gave no speed-up on the references (2 cores).
    """
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32).float().eval()
    results = []
    with torch.no_grad():
        for window in tqdm(windows, desc="HF float32", unit="window"):
            logits = model(torch.from_numpy(window[None].astype(np.int64))).logits[0].numpy()
            results.append(_score(logits, window))
    return _collect(results)


def compile_for_scoring(
    ir_dir: str | Path, device: str = "CPU", device_config: str = "f32", streams: int | None = None
) -> ov.CompiledModel:
    """Compile the IR in ``ir_dir`` with the compile options of ``DEVICE_CONFIGS[device_config]``.

    ``streams`` defaults to ``DEVICE_CONFIG_STREAMS[device_config]``.
    """
    import openvino as ov

    if device_config not in DEVICE_CONFIGS:
        raise ValueError(f"Unknown device config {device_config!r}. Fix: choose from {', '.join(DEVICE_CONFIGS)}.")
    streams = DEVICE_CONFIG_STREAMS[device_config] if streams is None else streams
    config = DEVICE_CONFIGS[device_config] | {"NUM_STREAMS": streams}
    return ov.Core().compile_model(Path(ir_dir) / "openvino_model.xml", device, config)


def score_ir(
    ir_dir: str | Path,
    windows: np.ndarray,
    device: str = "CPU",
    desc: str = "OpenVINO",
    batch_size: int = BATCH_SIZE,
    streams: int | None = None,
    device_config: str = "f32",
) -> Scores:
    """Score ``windows [W, T]`` with the plugin's stateful IR, ``batch_size`` full windows per inference.

    Each inference starts from a reset state, so every window starts from an empty state, as when
    scored alone: rows of a batch share no state (``beam_idx`` is the identity). ``streams``
    (default: ``DEVICE_CONFIG_STREAMS[device_config]``) inferences run at once, each on its own
    infer request and CPU stream; results keep the order of ``windows``. ``device_config`` names
    the compile options (``DEVICE_CONFIGS``).
    """

    compiled = compile_for_scoring(ir_dir, device, device_config, streams)
    idle = [compiled.create_infer_request() for _ in range(int(compiled.get_property("NUM_STREAMS")))]
    running: list[tuple[ov.InferRequest, np.ndarray]] = []  # oldest first
    results = []

    def finish_oldest() -> None:
        request, batch = running.pop(0)
        request.wait()
        logits = request.get_tensor("logits").data
        results.extend(_score(logits[row], window) for row, window in enumerate(batch))
        bar.update(len(batch))
        idle.append(request)

    with tqdm(total=len(windows), desc=desc, unit="window") as bar:
        for batch in _batches(windows, batch_size):
            if not idle:
                finish_oldest()
            request = idle.pop()
            request.reset_state()
            rows, length = batch.shape
            request.start_async(
                {
                    "input_ids": batch.astype(np.int64),
                    "attention_mask": np.ones((rows, length), dtype=np.int64),
                    "position_ids": np.broadcast_to(np.arange(length, dtype=np.int64), (rows, length)).copy(),
                    "beam_idx": np.arange(rows, dtype=np.int32),
                }
            )
            running.append((request, batch))
        while running:
            finish_oldest()
    return _collect(results)


def ir_size_mb(ir_dir: str | Path) -> float:
    """Size of the model weights file in MB (10^6 bytes)."""
    return (Path(ir_dir) / "openvino_model.bin").stat().st_size / 1e6
