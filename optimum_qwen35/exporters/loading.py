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
checkpoint) is read with plain file reads and converted one at a time, so at no point do two
copies of the weights exist.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from optimum.exporters.tasks import TasksManager
from safetensors import safe_open
from tqdm.auto import tqdm

from ..checkpoint import safetensors_header, weight_files
from .config import TASKS

#: safetensors dtype names of the floating-point tensors a checkpoint may hold.
_FLOAT_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}
_HALF = (torch.bfloat16, torch.float16)


#: Bytes read per step when a tensor is converted on load (the size of the one reused buffer).
CHUNK_BYTES = 16 * 2**20


def _read_converted(file: Path, data_start: int, entry: dict, dtype: torch.dtype, buffer: torch.Tensor) -> torch.Tensor:
    """One tensor read with plain file reads and converted to ``dtype``, chunk by chunk.

    The stored bytes go through ``buffer`` (``CHUNK_BYTES`` of uint8, reused for every tensor):
    a temporary copy per tensor would be freed right after and, below glibc's mmap threshold,
    leave the heap fragmented — 1.4 GB of resident but unused memory on the 2B shape.
    """
    stored = _FLOAT_DTYPES[entry["dtype"]]
    out = torch.empty(entry["shape"], dtype=dtype)
    flat = out.reshape(-1)
    step = buffer.numel() // stored.itemsize
    with file.open("rb") as handle:
        handle.seek(data_start + entry["data_offsets"][0])
        for begin in range(0, flat.numel(), step):
            count = min(step, flat.numel() - begin)
            chunk = buffer[: count * stored.itemsize]
            handle.readinto(chunk.numpy())
            flat[begin : begin + count].copy_(chunk.view(stored))
    return out


def memory_mapped_state_dict(folder: Path, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """``{name: tensor}`` of a checkpoint folder, each tensor a view of its mapped file.

    When ``dtype`` is a 16-bit type, 16-bit tensors stored in the other one are read and converted
    here, one at a time, instead of being mapped; other dtype changes are left to transformers.
    """
    state: dict[str, torch.Tensor] = {}
    buffer = torch.empty(CHUNK_BYTES, dtype=torch.uint8)
    files = weight_files(folder)
    for file in tqdm(files, desc="Mapping weights", unit="file", leave=False):
        mapped = safe_open(str(file), framework="pt")
        data_start, header = safetensors_header(file)
        for name, entry in header.items():
            stored = _FLOAT_DTYPES.get(entry["dtype"])
            if dtype in _HALF and stored in _HALF and stored != dtype:
                state[name] = _read_converted(file, data_start, entry, dtype, buffer)
            else:
                state[name] = mapped.get_tensor(name)
    return state


def load_for_export(folder: Path, dtype: torch.dtype | str | None) -> torch.nn.Module:
    """The causal-LM model of a local checkpoint, its parameters sharing memory with the files.

    A composite (vision-language) checkpoint loads as its language model, like
    ``AutoModelForCausalLM.from_pretrained`` does; the vision tower is never read.
    """
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, AutoConfig, GenerationConfig

    config = AutoConfig.from_pretrained(folder)
    if dtype in (None, "auto"):
        dtype = getattr(config, "dtype", None) or torch.float32  # a composite config holds it at the top
    model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    if model_class.config_class is not type(config):
        config = config.get_text_config()
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    state = memory_mapped_state_dict(folder, dtype)
    model = model_class.from_pretrained(None, config=config, state_dict=state, dtype=dtype)
    model.config._name_or_path = str(folder)  # what optimum-intel and the saved config refer to
    if (folder / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(folder)
    return model.eval()


@contextlib.contextmanager
def zero_copy_loading(model_name_or_path: Any) -> Iterator[None]:
    """While active, optimum-intel loads this local checkpoint with :func:`load_for_export`.

    Any other model, a hub id, a ``subfolder`` or a task other than text generation goes through
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
        return load_for_export(folder, kwargs.get("torch_dtype"))

    if not folder.is_dir():
        yield
        return
    TasksManager.get_model_from_task = staticmethod(get_model_from_task)
    try:
        yield
    finally:
        TasksManager.get_model_from_task = original
