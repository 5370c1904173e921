"""File-backed scratch space for the tensors an export makes.

An export never needs a tensor it makes (a dtype conversion on load, the gate and up halves of the
fused MoE experts) to live in anonymous memory: each one is written once and then only read — by
the OpenVINO converter, which wraps it as a constant sharing its memory, and by the IR writer. So
each is written to a safetensors file in a hidden folder beside the output, as it is made, and
mapped back: its pages are clean file pages that the kernel may drop and that
:mod:`.page_release` hands back, like the checkpoint's own. This is the one place that writes such
tensors; loading (:mod:`.loading`), the expert weights (:mod:`.weight_dtypes`) and compression
(the constants NNCF makes, :func:`spilled_constant`) use it.

Two lifetimes: a torch tensor from :func:`write_tensors` is mapped by safetensors, which the
constant OpenVINO builds on it does not keep alive, so those mappings live as long as the scratch
space (an export's whole run, its save included). A constant from :func:`spilled_constant` owns
its mapping (OpenVINO's own reader maps the file), so it lives exactly as long as the model that
holds it — which is what lets ``from_pretrained(..., quantization_config=...)`` hand the user a
compressed model whose constants are file-backed after its scratch space is gone.

The tensors are streamed through one reused buffer of :data:`CHUNK_BYTES`, whatever their strides:
a temporary per tensor would be freed right after and, below glibc's mmap threshold, leave the
heap fragmented (1.4 GB of resident but unused memory on the 2B shape).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import openvino as ov
import openvino.opset14 as ops
import torch
from safetensors import safe_open

from .output_dir import make_owned_folder, raise_if_disk_full
from .progress import substeps

#: safetensors' names of the dtypes scratch tensors may have.
DTYPE_NAMES = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32"}

#: Bytes copied per step (the size of the one reused buffer).
CHUNK_BYTES = 16 * 2**20
#: OpenVINO constants smaller than this stay in memory (scales, zero points: a page each would waste more).
SPILL_MIN_BYTES = 2**20

#: Name prefix of scratch folders (an export killed outright leaves one; the next export removes it).
SCRATCH_PREFIX = ".qwen35-scratch-"

_folder: contextvars.ContextVar[Path | None] = contextvars.ContextVar("qwen35_scratch_folder", default=None)
#: What the active scratch space has mapped: an OpenVINO constant that shares a mapping does not keep
#: it alive, so every mapping lives as long as the scratch space (the whole export, its save included).
_mapped: contextvars.ContextVar[list | None] = contextvars.ContextVar("qwen35_scratch_mapped", default=None)
_counter = itertools.count()


@contextlib.contextmanager
def scratch_space(parent: Path) -> Iterator[Path]:
    """While active, :func:`write_tensors` and :func:`spilled_constant` write into a hidden folder in
    ``parent``; on exit their mappings are dropped and the folder removed.

    ``parent`` should be the output's own disk, not a RAM-backed ``/tmp``. Nested blocks reuse the
    outer folder. Whatever was built on the mappings (an OpenVINO model) must be saved by then.
    """
    if _folder.get() is not None:
        yield _folder.get()
        return
    folder = make_owned_folder(parent, SCRATCH_PREFIX)
    token, mapped = _folder.set(folder), _mapped.set([])
    try:
        yield folder
    finally:
        _folder.reset(token)
        _mapped.reset(mapped)
        shutil.rmtree(folder, ignore_errors=True)


def scratch_parent(folder: str | os.PathLike | None) -> Path:
    """Where the scratch space of a compression that reads or writes ``folder`` goes: beside
    ``folder`` (on the disk that holds the model, as an export's goes beside its output), or the
    system's temporary folder when there is no folder or its parent is not writable (a read-only
    model folder's parent, a vanished temporary folder)."""
    if folder is not None:
        parent = Path(folder).absolute().parent
        if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
            return parent
    return Path(tempfile.gettempdir())


def current_scratch() -> Path | None:
    """The active scratch folder, or None outside :func:`scratch_space`."""
    return _folder.get()


def _pieces(tensor: torch.Tensor, elements: int) -> Iterator[torch.Tensor]:
    """Slices along the leading dimensions, in memory order of a contiguous copy, each at most
    ``elements`` long unless a single innermost row is longer."""
    if tensor.numel() <= elements or tensor.dim() <= 1:
        yield tensor
        return
    for part in tensor:
        yield from _pieces(part, elements)


def _parts(value: torch.Tensor | Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[int]]:
    """The tensors a value is made of, in order, and the value's shape (a sequence is stacked)."""
    if isinstance(value, torch.Tensor):
        return [value], list(value.shape)
    return list(value), [len(value), *value[0].shape]


def write_tensors(
    tensors: Mapping[str, torch.Tensor | Sequence[torch.Tensor]], dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Write ``tensors`` (any strides; converted to ``dtype`` when given; a sequence of equal
    tensors is written stacked along a new first axis) to one scratch safetensors file and return
    ``{name: tensor}`` mapped from it, each contiguous.

    The file is unlinked once mapped (where the OS allows it), so it disappears with the mapping.
    Outside :func:`scratch_space` the tensors become contiguous copies in memory instead.
    """
    folder = current_scratch()
    if folder is None:
        stacked = {
            name: value if isinstance(value, torch.Tensor) else torch.stack(list(value))
            for name, value in tensors.items()
        }
        return {name: tensor.to(dtype or tensor.dtype).contiguous() for name, tensor in stacked.items()}
    header, offset, sizes = {}, 0, []
    for name, value in tensors.items():
        parts, shape = _parts(value)
        target = dtype or parts[0].dtype
        size = sum(part.numel() for part in parts) * target.itemsize
        entry = {"dtype": DTYPE_NAMES[target], "shape": shape, "data_offsets": [offset, offset + size]}
        header[name] = entry
        offset += size
        sizes.append(size)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)  # keeps the data 8-byte aligned, as safetensors does
    destination = folder / f"{next(_counter)}.safetensors"
    buffer = torch.empty(CHUNK_BYTES, dtype=torch.uint8)
    with destination.open("wb") as out:
        out.write(struct.pack("<Q", len(encoded)) + encoded)
        # The ETA weighs each tensor by its bytes: an embedding table takes far longer than a norm.
        for value in substeps(list(tensors.values()), "writing the scratch file", sizes=sizes):
            parts, _ = _parts(value)
            target = dtype or parts[0].dtype
            staged = buffer.view(target)
            for piece in (piece for part in parts for piece in _pieces(part, staged.numel())):
                count = piece.numel()
                chunk = staged[:count] if count <= staged.numel() else torch.empty(count, dtype=target)
                chunk.view(piece.shape).copy_(piece)
                out.write(chunk.view(torch.uint8).numpy())
    mapped = safe_open(str(destination), framework="pt")
    result = {name: mapped.get_tensor(name) for name in tensors}
    _mapped.get().append(result)
    with contextlib.suppress(OSError):  # Windows keeps a mapped file; the folder goes at the end
        destination.unlink()
    return result


@functools.cache
def _reader() -> ov.Core:
    """The OpenVINO core that maps spilled constants (creating one per constant would cost more than the read)."""
    return ov.Core()


def spilled_constant(constant: ov.Node) -> ov.Node:
    """An OpenVINO ``Constant`` with ``constant``'s type, shape, name and bytes, its data mapped from a
    scratch file; ``constant`` itself outside :func:`scratch_space` or when it is small.

    The constant is written as a one-constant IR and read back by OpenVINO with its weights mapped
    (``ENABLE_MMAP``, a read-only shared mapping): the mapping then belongs to the new constant
    itself, not to a Python object beside it, so the constant stays valid in any model, compiled
    model or clone that holds it, after the scratch space has ended (the files are unlinked once
    mapped). A ``numpy.memmap`` wrapped with ``shared_memory=True`` would not be kept alive by the
    constant, and a model outliving it would read unmapped memory.
    """
    folder = current_scratch()
    if folder is None or constant.data.nbytes < SPILL_MIN_BYTES:
        return constant
    destination = folder / f"{next(_counter)}.xml"
    try:
        ov.save_model(ov.Model([ops.result(constant)], []), destination, compress_to_fp16=False)
    except (OSError, RuntimeError) as error:
        # Judged here, not only by the export's own check (output_dir), so that every route into a
        # compression reports a full disk, the Python ones included.
        raise_if_disk_full(error, destination.with_suffix(".bin"), constant.data.nbytes)
        raise
    spilled = next(
        op
        for op in _reader().read_model(destination, config={"ENABLE_MMAP": True}).get_ordered_ops()
        if op.get_type_name() == "Constant"
    )
    for file in (destination, destination.with_suffix(".bin")):
        with contextlib.suppress(OSError):  # Windows keeps a mapped file; the folder goes at the end
            file.unlink()
    return spilled
