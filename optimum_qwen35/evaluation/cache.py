"""On-disk cache of HF float32 per-window scores, so repeated eval runs cost only the OpenVINO side.

One ``.npz`` file per key holds the windows scored so far (grid index, per-token NLL, argmax): a
``--max-windows`` run fills part of it and a later run computes only the windows it lacks. The
key covers everything the HF scores depend on:

- the checkpoint: ``config.json`` and, per weight file, its name, size, safetensors header and
  64 KiB from the start and the end of its data (a retrained checkpoint with the same shapes
  differs there; hashing gigabytes of weights would cost more than the scoring it saves);
- the token ids (so a changed text or tokenizer misses) and the window length;
- the transformers and torch versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..checkpoint import safetensors_header, weight_files
from .perplexity import Scores, score_hf, windows_at

_FORMAT = 1
_SAMPLE_BYTES = 64 * 1024


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/optimum-qwen35/eval`` (``~/.cache/optimum-qwen35/eval`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "optimum-qwen35" / "eval"


def checkpoint_fingerprint(checkpoint: str | Path) -> str:
    """sha256 hex of a checkpoint's config and weight-file metadata, without reading whole weights."""
    folder = Path(checkpoint)
    files = weight_files(folder)
    if not (folder / "config.json").is_file() or not files:
        raise ValueError(
            f"{folder} is not a local safetensors checkpoint, so its HF scores cannot be cached. Fix: --no-cache."
        )
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for file in files:
        data_start, header = safetensors_header(file)
        size = file.stat().st_size
        digest.update(json.dumps([file.name, size, header], sort_keys=True).encode())
        with file.open("rb") as handle:
            handle.seek(data_start)
            digest.update(handle.read(_SAMPLE_BYTES))
            handle.seek(max(data_start, size - _SAMPLE_BYTES))
            digest.update(handle.read())
    return digest.hexdigest()


def cache_key(checkpoint: str | Path, token_ids: np.ndarray, length: int) -> dict[str, object]:
    """What the HF scores of every window on the grid of ``token_ids [N]`` depend on."""
    import torch
    import transformers

    return {
        "format": _FORMAT,
        "checkpoint": checkpoint_fingerprint(checkpoint),
        "tokens": hashlib.sha256(np.ascontiguousarray(token_ids, dtype="<i8").tobytes()).hexdigest(),
        "window_length": length,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }


def _load(path: Path, key_json: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{grid index: (nll [T-1], argmax [T-1])}`` stored at ``path``; {} if absent, unreadable or another key."""
    try:
        with np.load(path) as stored:
            if str(stored["key"]) != key_json:  # a truncated-hash collision, however unlikely
                return {}
            return {int(i): (n, a) for i, n, a in zip(stored["indices"], stored["nll"], stored["argmax"], strict=True)}
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile):
        return {}


def _save(path: Path, key_json: str, windows: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write ``windows`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    indices = sorted(windows)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(
                file,
                key=np.array(key_json),
                indices=np.array(indices, dtype=np.int64),
                nll=np.stack([windows[i][0] for i in indices]),
                argmax=np.stack([windows[i][1] for i in indices]).astype(np.int32),
            )
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def cached_score_hf(
    checkpoint: str | Path, token_ids: np.ndarray, indices: np.ndarray, length: int, cache_dir: Path | None
) -> tuple[Scores, int]:
    """HF float32 scores ``[K, length-1]`` of the grid windows ``indices [K]`` of ``token_ids [N]``.

    Windows found in ``cache_dir`` are not scored again; the others are scored with
    :func:`score_hf` and added to the cache. ``cache_dir=None`` scores everything and stores
    nothing. Returns the scores and the number of windows transformers scored (0: fully cached).
    """
    if cache_dir is None:
        return score_hf(checkpoint, windows_at(token_ids, indices, length)), len(indices)
    key_json = json.dumps(cache_key(checkpoint, token_ids, length), sort_keys=True)
    path = Path(cache_dir) / f"{hashlib.sha256(key_json.encode()).hexdigest()[:32]}.npz"
    stored = _load(path, key_json)
    missing = np.array([i for i in indices if int(i) not in stored], dtype=np.int64)
    if len(missing):
        scores = score_hf(checkpoint, windows_at(token_ids, missing, length))
        stored.update(zip(missing.tolist(), zip(scores.nll, scores.argmax, strict=True), strict=True))
        try:  # re-read first: windows another run stored meanwhile are kept
            _save(path, key_json, _load(path, key_json) | stored)
        except OSError as error:  # a read-only cache must not cost the evaluation
            print(f"HF scores not cached: {error}", file=sys.stderr)
    nll, argmax = zip(*(stored[int(i)] for i in indices), strict=True)
    return Scores(np.stack(nll), np.stack(argmax)), len(missing)
