"""Load a checkpoint for export without copying its weights.

transformers' ``from_pretrained`` copies every tensor out of the memory-mapped safetensors files
into freshly allocated parameters: while it runs the process holds the weights twice (the copies
and the mapped file pages), and afterwards once as anonymous memory. An export never modifies a
weight: OpenVINO's 16-bit module extensions trace Linear and Embedding layers with placeholders,
and the converter wraps each parameter as a constant that shares its memory. So the parameters
can simply *be* views of the mapped files: ``from_pretrained(None, config=..., state_dict=...)``
keeps any tensor it does not have to convert. Pages are then read from disk only when the
converter or the compressor touches them, and they are clean file pages the kernel may drop.

A tensor stored in another dtype than the one requested (``--weight-format fp16`` of a bf16
checkpoint) is converted chunk by chunk into one scratch safetensors file beside the output, which
is then mapped like the checkpoint: the converted weights are clean file pages too, which
:mod:`.page_release` can hand back, instead of anonymous memory that has to stay resident (1.5 GB,
the whole peak above the checkpoint, on the 0.8B shape).
"""

from __future__ import annotations

import contextlib
import json
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from optimum.exporters.tasks import TasksManager
from safetensors import safe_open

from ..checkpoint import checkpoint_dtype, load_config, safetensors_header, weight_files
from ..errors import CheckpointError
from .config import TASKS
from .progress import substeps

#: safetensors dtype names of the floating-point tensors a checkpoint may hold.
_FLOAT_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}
_DTYPE_NAMES = {dtype: name for name, dtype in _FLOAT_DTYPES.items()}
_HALF = (torch.bfloat16, torch.float16)

#: Bytes read per step when a tensor is converted on load (the size of the one reused buffer).
CHUNK_BYTES = 16 * 2**20

#: Name of the scratch file that holds the converted tensors while the export runs.
CONVERTED_FILE = "converted.safetensors"


def _write_converted(tensors: list[tuple[str, Path, int, dict]], dtype: torch.dtype, destination: Path) -> None:
    """Write ``(name, file, data start, header entry)`` tensors, converted to 16-bit ``dtype``, as one
    safetensors file.

    Stored bytes go through one reused ``CHUNK_BYTES`` buffer and one converted buffer: a temporary
    per tensor would be freed right after and, below glibc's mmap threshold, leave the heap
    fragmented (1.4 GB of resident but unused memory on the 2B shape).
    """
    header, offset = {}, 0
    for name, _, _, entry in tensors:
        size = torch.Size(entry["shape"]).numel() * dtype.itemsize
        header[name] = {"dtype": _DTYPE_NAMES[dtype], "shape": entry["shape"], "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)  # keeps the data 8-byte aligned, as safetensors does
    raw = torch.empty(CHUNK_BYTES, dtype=torch.uint8)
    converted = torch.empty(CHUNK_BYTES // 2, dtype=dtype)
    with destination.open("wb") as out:
        out.write(struct.pack("<Q", len(encoded)) + encoded)
        for _, file, data_start, entry in substeps(tensors, f"converting to {dtype}"):
            stored = _FLOAT_DTYPES[entry["dtype"]]
            remaining = torch.Size(entry["shape"]).numel()
            with file.open("rb") as source:
                source.seek(data_start + entry["data_offsets"][0])
                while remaining:
                    count = min(remaining, CHUNK_BYTES // 2)
                    source.readinto(raw[: 2 * count].numpy())
                    converted[:count].copy_(raw[: 2 * count].view(stored))
                    out.write(converted[:count].view(torch.uint8).numpy())
                    remaining -= count


def memory_mapped_state_dict(folder: Path, scratch: Path, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """``{name: tensor}`` of a checkpoint folder, each tensor a view of a mapped file.

    When ``dtype`` is a 16-bit type, 16-bit tensors stored in the other one are converted into
    ``scratch``/:data:`CONVERTED_FILE` and mapped from there; the file is unlinked once mapped
    (where the OS allows it), so it disappears with the mapping. Other dtype changes are left to
    transformers.
    """
    state: dict[str, torch.Tensor] = {}
    to_convert: list[tuple[str, Path, int, dict]] = []
    for file in substeps(weight_files(folder), "mapping weight files"):
        mapped = safe_open(str(file), framework="pt")
        data_start, header = safetensors_header(file)
        for name, entry in header.items():
            stored = _FLOAT_DTYPES.get(entry["dtype"])
            if dtype in _HALF and stored in _HALF and stored != dtype:
                to_convert.append((name, file, data_start, entry))
            else:
                state[name] = mapped.get_tensor(name)
    if to_convert:
        converted = scratch / CONVERTED_FILE
        _write_converted(to_convert, dtype, converted)
        mapped = safe_open(str(converted), framework="pt")
        state.update((name, mapped.get_tensor(name)) for name, *_ in to_convert)
        with contextlib.suppress(OSError):  # Windows keeps a mapped file; zero_copy_loading removes it
            converted.unlink()
    return state


def load_for_export(folder: Path, dtype: torch.dtype | str | None, scratch: Path) -> torch.nn.Module:
    """The causal-LM model of a local checkpoint, its parameters sharing memory with the files.

    ``scratch`` is an empty folder for weights converted to ``dtype`` (see
    :func:`memory_mapped_state_dict`), ideally on the output's disk: not a RAM-backed ``/tmp``.

    A composite (vision-language) checkpoint loads as its language model, like
    ``AutoModelForCausalLM.from_pretrained`` does; the vision tower is never read.
    """
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, AutoConfig, GenerationConfig

    config = AutoConfig.from_pretrained(folder)
    if dtype in (None, "auto"):
        dtype = checkpoint_dtype(folder, load_config(folder)) or torch.float32
    model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    if model_class.config_class is not type(config):
        config = config.get_text_config()
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    state = memory_mapped_state_dict(folder, scratch, dtype)
    model, info = model_class.from_pretrained(
        None, config=config, state_dict=state, dtype=dtype, output_loading_info=True
    )
    _refuse_missing_weights(folder, info)
    model.config._name_or_path = str(folder)  # what optimum-intel and the saved config refer to
    if (folder / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(folder)
    return model.eval()


def _refuse_missing_weights(folder: Path, info: dict[str, Any]) -> None:
    """Raise :class:`CheckpointError` when the files leave model parameters uninitialised.

    transformers only warns and initialises such parameters at random, which would export a model
    that looks fine and generates garbage. Unexpected tensors (a vision tower, MTP layers) are fine.
    """
    missing = sorted(info.get("missing_keys") or [])
    if not missing:
        return
    import transformers

    unexpected = sorted(info.get("unexpected_keys") or [])
    per_expert = any(".mlp.experts.0." in name for name in unexpected)
    hint = (
        " The experts are stored one tensor per expert, as transformers 5.2 saves them; this "
        f"transformers ({transformers.__version__}) reads only fused experts (the hub's layout)."
        if per_expert
        else ""
    )
    raise CheckpointError(
        f"The weights in {folder} do not cover the model: {len(missing)} parameters are missing "
        f"(first: {', '.join(missing[:3])}) and transformers would initialise them at random.{hint} "
        "Fix: use the complete checkpoint with the transformers release that wrote it, or re-save it "
        "with this one (save_pretrained)."
    )


@contextlib.contextmanager
def zero_copy_loading(model_name_or_path: Any, scratch_parent: Path) -> Iterator[None]:
    """While active, optimum-intel loads this local checkpoint with :func:`load_for_export`.

    Converted weights go to a hidden scratch folder in ``scratch_parent``, removed on exit. Any
    other model, a hub id, a ``subfolder`` or a task other than text generation goes through
    optimum-intel's own loading, as does everything after the context exits.
    """
    folder = Path(str(model_name_or_path))
    original = TasksManager.__dict__["get_model_from_task"]

    def get_model_from_task(task, model_name_or_path, subfolder="", *args, **kwargs):
        ours = (
            Path(str(model_name_or_path)) == folder
            and TasksManager.map_from_synonym(task) in TASKS
            and not subfolder
            and kwargs.get("framework", "pt") == "pt"
            and weight_files(folder)
        )
        if not ours:
            return original.__func__(task, model_name_or_path, subfolder, *args, **kwargs)
        return load_for_export(folder, kwargs.get("torch_dtype"), scratch)

    if not folder.is_dir():
        yield
        return
    with tempfile.TemporaryDirectory(prefix=".qwen35-scratch-", dir=scratch_parent, ignore_cleanup_errors=True) as name:
        scratch = Path(name)
        TasksManager.get_model_from_task = staticmethod(get_model_from_task)
        try:
            yield
        finally:
            TasksManager.get_model_from_task = original
