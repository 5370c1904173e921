"""Check, before loading, that the output's disk can hold what an export writes.

A 35B-A3B export writes tens of gigabytes over many minutes; finding out at the end that the disk is
full wastes all of it. What is written is known from the safetensors headers alone: the IR (every
tensor the layout keeps, in the dtype it is loaded in; the float32 ones stay float32) and the
export's scratch files (:mod:`.scratch`: tensors converted to another 16-bit type, and the gate and
up halves of the fused MoE experts, which are held in 16 bits). Both live on the disk of the folder
``main_export`` writes to — for ``--weight-format int4|int8`` through ``optimum-cli`` that is a
temporary folder, since optimum-intel saves the uncompressed IR there before compressing it.
"""

from __future__ import annotations

import errno
import math
import shutil
from pathlib import Path

from ..checkpoint import safetensors_header, weight_files
from ..errors import DiskFullError
from .loading import NOT_IN_TEXT_LAYOUT
from .output_dir import NEARLY_FULL_BYTES

_ITEMSIZE = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8, "I64": 8, "I32": 4, "U8": 1, "I8": 1, "BOOL": 1}
_LOADED = {"bfloat16": ("BF16", 2), "float16": ("F16", 2), "float32": ("F32", 4)}
#: Headroom over the estimate: the XML, the tokenizer and what the estimate does not model.
MARGIN = 0.05


def export_bytes(folder: Path, dtype: str | None, vision_language: bool) -> tuple[int, int]:
    """``(IR bytes, scratch bytes)`` an export of the local checkpoint ``folder`` loaded in ``dtype``
    writes at its peak, with :data:`MARGIN` headroom."""
    target = _LOADED.get(str(dtype).removeprefix("torch."))
    ir = scratch = 0
    for file in weight_files(folder):
        for name, entry in safetensors_header(file)[1].items():
            if not vision_language and name.startswith(NOT_IN_TEXT_LAYOUT):
                continue
            numel = math.prod(entry["shape"])
            stored = _ITEMSIZE.get(entry["dtype"], 4)
            half = stored == 2 and target is not None and target[1] == 2
            ir += numel * (target[1] if target and stored == 2 else stored)
            if half and entry["dtype"] != target[0]:
                scratch += numel * 2  # converted on load
            fused_gate_up = name.endswith("mlp.experts.gate_up_proj")
            per_expert = ".mlp.experts." in name and name.endswith("_proj.weight")  # the MTP head's
            if half and (fused_gate_up or per_expert):
                scratch += numel * 2  # held gate/up halves; the MTP head's experts fused first
    return int(ir * (1 + MARGIN)), int(scratch * (1 + MARGIN))


def check_free_space(
    folder: Path,
    output: Path,
    dtype: str | None,
    vision_language: bool,
    scratch_parent: Path | None = None,
    temporary: bool = False,
) -> None:
    """Raise :class:`DiskFullError` when the disk of ``output`` (the IR) or of ``scratch_parent``
    (the scratch files; ``output``'s parent when None) has less free space than the export needs.

    ``temporary``: ``output`` is optimum-intel's temporary folder for the uncompressed IR.
    """
    ir, scratch = export_bytes(folder, dtype, vision_language)
    needs: dict[int, tuple[Path, int, bool]] = {}
    for where, size, is_temporary in ((output, ir, temporary), (scratch_parent or output.parent, scratch, False)):
        existing = next(parent for parent in (where, *where.parents) if parent.exists())
        device = existing.stat().st_dev
        _, total, tmp = needs.get(device, (existing, 0, False))
        needs[device] = (existing, total + size, tmp or is_temporary)
    for existing, needed, is_temporary in needs.values():
        free = shutil.disk_usage(existing).free
        if free - NEARLY_FULL_BYTES >= needed:
            continue
        where = (
            "set TMPDIR to a folder on a disk with space (optimum-intel writes the uncompressed IR there before "
            "compressing it)"
            if is_temporary
            else "choose an output folder on a disk with space"
        )
        raise DiskFullError(
            errno.ENOSPC,
            f"Exporting {folder} needs about {needed / 1e9:.1f} GB on the disk of {existing} (the IR and the "
            f"export's scratch files), but {free / 1e9:.1f} GB are free. Nothing was written. Fix: free "
            f"{(needed + NEARLY_FULL_BYTES - free) / 1e9:.1f} GB or {where}.",
        )
