"""Cheap checks on a checkpoint before any heavy work: is it Qwen3.5, and are its weights whole?

Only ``config.json`` and the safetensors headers are read, so a wrong or broken checkpoint fails
in milliseconds with a message that says what to do, instead of deep inside loading or tracing.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from .errors import CheckpointError, NotQwen35Error

CONFIG_FILE = "config.json"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


def read_model_type(config: dict) -> str | None:
    """``model_type`` of a composite config's text part, or of the config itself."""
    text = config.get("text_config") or {}
    return text.get("model_type") or config.get("model_type")


def is_qwen35_config(config: dict, text_model_types: set[str]) -> bool:
    """True when ``config`` (a parsed ``config.json``) describes a Qwen3.5 model we export."""
    return config.get("model_type") in text_model_types or read_model_type(config) in text_model_types


def load_config(path: Path) -> dict:
    config_file = path / CONFIG_FILE
    if not config_file.is_file():
        raise CheckpointError(
            f"{path} has no {CONFIG_FILE}. Fix: point --model at a Hugging Face checkpoint folder "
            "(the one that holds config.json and *.safetensors)."
        )
    try:
        return json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{config_file} is not valid JSON ({error}). Fix: re-download the checkpoint.") from None


def _safetensors_tensor_names(file: Path) -> set[str]:
    """Tensor names in a safetensors file, after checking that the data it declares is present."""
    size = file.stat().st_size
    with file.open("rb") as handle:
        raw = handle.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{file} is truncated (no header). Fix: re-download the checkpoint.")
        (header_len,) = struct.unpack("<Q", raw)
        if 8 + header_len > size:
            raise CheckpointError(f"{file} is truncated (header runs past the end). Fix: re-download the checkpoint.")
        header = json.loads(handle.read(header_len))
    header.pop("__metadata__", None)
    data_end = max((entry["data_offsets"][1] for entry in header.values()), default=0)
    if 8 + header_len + data_end > size:
        raise CheckpointError(
            f"{file} is truncated: it declares {8 + header_len + data_end} bytes but has {size}. "
            "Fix: re-download the checkpoint."
        )
    return set(header)


def validate_weights(path: Path) -> None:
    """Raise :class:`CheckpointError` if weight shards are missing, truncated or disagree with the index."""
    index_file = path / INDEX_FILE
    if index_file.is_file():
        weight_map: dict[str, str] = json.loads(index_file.read_text())["weight_map"]
        missing = sorted({shard for shard in weight_map.values() if not (path / shard).is_file()})
        if missing:
            raise CheckpointError(
                f"{path} is missing weight shard(s) {', '.join(missing)} listed in {INDEX_FILE}. "
                "Fix: download the complete checkpoint."
            )
        present: set[str] = set()
        for shard in sorted(set(weight_map.values())):
            present |= _safetensors_tensor_names(path / shard)
        absent = sorted(set(weight_map) - present)
        if absent:
            raise CheckpointError(
                f"{len(absent)} tensor(s) listed in {INDEX_FILE} are not in the shards (first: {absent[0]}). "
                "Fix: re-download the checkpoint."
            )
    elif (path / SINGLE_FILE).is_file():
        _safetensors_tensor_names(path / SINGLE_FILE)
    else:
        raise CheckpointError(
            f"{path} has no {SINGLE_FILE} or {INDEX_FILE}. Fix: download the weights (safetensors) too."
        )


def validate_local_checkpoint(path: Path, text_model_types: set[str]) -> dict:
    """Check a local checkpoint folder is a whole Qwen3.5 checkpoint; return its parsed config."""
    config = load_config(path)
    if not is_qwen35_config(config, text_model_types):
        raise NotQwen35Error(
            f"{path} is a '{config.get('model_type')}' checkpoint, not Qwen3.5 "
            f"(expected model_type in {sorted(text_model_types)}). Fix: use optimum-intel's own "
            "`optimum-cli export openvino` / `main_export` for other models."
        )
    validate_weights(path)
    return config
