"""The export variants the eval tool compares, each one a set of ``optimum-cli`` flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..export import export

#: name → ``optimum_qwen35.export`` keyword arguments (``weight_format`` and compression flags).
#: ``{calibration}`` is replaced by the eval tool's ``--calibration`` source.
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {"weight_format": "fp32"},
    "fp16": {"weight_format": "fp16"},
    "int8": {"weight_format": "int8"},
    "int4": {"weight_format": "int4"},
    "int4-sym": {"weight_format": "int4", "sym": True},
    "int4-g32": {"weight_format": "int4", "group_size": 32},
    "int4-g64": {"weight_format": "int4", "group_size": 64},
    "int4-g128": {"weight_format": "int4", "group_size": 128},
    "int4-all-layers": {"weight_format": "int4", "all_layers": True},
    "int4-awq": {"weight_format": "int4", "awq": True, "dataset": "{calibration}"},
    "int4-gptq": {"weight_format": "int4", "gptq": True, "dataset": "{calibration}"},
    "int4-awq-se": {"weight_format": "int4", "awq": True, "scale_estimation": True, "dataset": "{calibration}"},
    "int4-npu": {"weight_format": "int4", "sym": True, "group_size": -1},
}
# The recommended data-aware recipe: GPTQ, the most accurate INT4 on both references over the whole
# held-out file (docs/compression.md).
VARIANTS["int4-data-aware"] = VARIANTS["int4-gptq"]


def export_variant(checkpoint: str | Path, name: str, output: Path, calibration: str) -> Path:
    """Export ``checkpoint`` as variant ``name`` into ``output`` (replaced if present)."""
    if name not in VARIANTS:
        raise ValueError(f"Unknown variant {name!r}. Fix: choose from {', '.join(VARIANTS)}, or pass NAME=IR_FOLDER.")
    options = {k: (calibration if v == "{calibration}" else v) for k, v in VARIANTS[name].items()}
    return export(checkpoint, output, overwrite=True, convert_tokenizer=False, **options)
