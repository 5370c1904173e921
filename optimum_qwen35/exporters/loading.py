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
checkpoint) is converted chunk by chunk into the export's file-backed scratch space beside the
output (:mod:`.scratch`), which is then mapped like the checkpoint: the converted weights are clean
file pages too, which :mod:`.page_release` can hand back, instead of anonymous memory that has to
stay resident (1.5 GB, the whole peak above the checkpoint, on the 0.8B shape).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from optimum.exporters.tasks import TasksManager
from safetensors import safe_open

from ..checkpoint import checkpoint_dtype, load_config, safetensors_header, weight_files
from ..errors import CheckpointError
from .config import TASKS, VLM_TASK
from .progress import substeps
from .scratch import write_tensors

#: safetensors dtype names of the floating-point tensors a checkpoint may hold.
_FLOAT_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}
_HALF = (torch.bfloat16, torch.float16)
#: Tensors of a composite checkpoint the text export never reads: the vision tower and the MTP head.
NOT_IN_TEXT_LAYOUT = ("model.visual.", "model.language_model.visual.", "mtp.")


def memory_mapped_state_dict(
    folder: Path, dtype: torch.dtype | None = None, skip: tuple[str, ...] = ()
) -> dict[str, torch.Tensor]:
    """``{name: tensor}`` of a checkpoint folder, each tensor a view of a mapped file; tensors named
    ``skip*`` (parts the export leaves out) are not included.

    When ``dtype`` is a 16-bit type, 16-bit tensors stored in the other one are converted into the
    export's scratch space (:func:`.scratch.write_tensors`) and mapped from there. Other dtype
    changes are left to transformers.
    """
    state: dict[str, torch.Tensor] = {}
    to_convert = []
    for file in substeps(weight_files(folder), "mapping weight files"):
        mapped = safe_open(str(file), framework="pt")
        for name, entry in safetensors_header(file)[1].items():
            if skip and name.startswith(skip):
                continue
            state[name] = mapped.get_tensor(name)
            stored = _FLOAT_DTYPES.get(entry["dtype"])
            if dtype in _HALF and stored in _HALF and stored != dtype:
                to_convert.append(name)
    if to_convert:
        state |= write_tensors({name: state[name] for name in to_convert}, dtype)
    return state


def load_for_export(folder: Path, dtype: torch.dtype | str | None, vision_language: bool = False) -> torch.nn.Module:
    """The model of a local checkpoint, its parameters sharing memory with the files.

    Weights converted to ``dtype`` go to the active scratch space (see
    :func:`memory_mapped_state_dict`), which should be on the output's disk: not a RAM-backed ``/tmp``.

    A composite (vision-language) checkpoint loads as its language model, like
    ``AutoModelForCausalLM.from_pretrained`` does; the vision tower and the MTP head are never read.
    With ``vision_language`` it loads whole (``AutoModelForImageTextToText``'s class); the MTP
    head's tensors are read later, by the MTP export (``mtp_config.load_mtp_head``).
    """
    from transformers import (
        MODEL_FOR_CAUSAL_LM_MAPPING,
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING,
        AutoConfig,
        GenerationConfig,
    )

    config = AutoConfig.from_pretrained(folder)
    if dtype in (None, "auto"):
        dtype = checkpoint_dtype(folder, load_config(folder)) or torch.float32
    mapping = MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING if vision_language else MODEL_FOR_CAUSAL_LM_MAPPING
    model_class = mapping[type(config)]
    if model_class.config_class is not type(config):
        config = config.get_text_config()
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    state = memory_mapped_state_dict(folder, dtype, skip=("mtp.",) if vision_language else NOT_IN_TEXT_LAYOUT)
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
def zero_copy_loading(model_name_or_path: Any) -> Iterator[None]:
    """While active, optimum-intel loads this local checkpoint with :func:`load_for_export`.

    Converted weights go to the export's scratch space (:func:`.scratch.scratch_space`, which must
    be active). Any other model, a hub id, a ``subfolder`` or a task other than text generation and
    ``image-text-to-text`` goes through optimum-intel's own loading, as does everything after the
    context exits.
    """
    folder = Path(str(model_name_or_path))
    original = TasksManager.__dict__["get_model_from_task"]

    def get_model_from_task(task, model_name_or_path, subfolder="", *args, **kwargs):
        task = TasksManager.map_from_synonym(task)
        ours = (
            Path(str(model_name_or_path)) == folder
            and task in (*TASKS, VLM_TASK)
            and not subfolder
            and kwargs.get("framework", "pt") == "pt"
            and weight_files(folder)
        )
        if not ours:
            return original.__func__(task, model_name_or_path, subfolder, *args, **kwargs)
        return load_for_export(folder, kwargs.get("torch_dtype"), vision_language=task == VLM_TASK)

    if not folder.is_dir():
        yield
        return
    TasksManager.get_model_from_task = staticmethod(get_model_from_task)
    try:
        yield
    finally:
        TasksManager.get_model_from_task = original
