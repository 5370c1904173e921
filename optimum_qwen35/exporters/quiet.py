"""Messages the plugin knows to be irrelevant, kept off the screen while a Qwen3.5 export runs.

The libraries under an export log lines that read like problems but say nothing about this
export: transformers regrets the missing CUDA kernels of a forward pass the export never runs and
a ``loss_type`` no config sets; torch, imported by NNCF's extension loader through OpenVINO's
PyTorch frontend, looks for a CUDA toolkit on a CPU-only install; optimum-intel reloads the IR it
just wrote and, in offline mode, cannot tell that the folder holds one; NNCF prints a table per
pass of the compression policy. Each is listed below as one exact message on the logger that
emits it: a filter on that logger drops only that message, from the moment the export starts
until it ends, and another message of the same logger (a warning about the user's own checkpoint
or options) still shows. ``--verbose`` (Python: ``verbose=True``) installs none of this.

transformers' own progress bars ("Loading weights", while the model is built from the mapped
checkpoint) are switched off for the export too; the step display of :mod:`.progress` reports the
step instead. Download bars of ``huggingface_hub`` stay: a download is worth watching.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownMessage:
    """A message ``logger`` emits that the plugin knows to be irrelevant to an export."""

    logger: str
    #: Regular expression matched from the start of the formatted message (``re.match``).
    pattern: str
    #: Why it is irrelevant (for readers of this table).
    why: str


_FAST_PATH = re.escape(
    "The fast path is not available because one of the required library is not installed. "
    "Falling back to torch implementation."
)

#: optimum-intel's ``from_pretrained`` checks whether a folder already holds an IR; in offline mode
#: (``HF_HUB_OFFLINE=1``) it looks for a local folder in the hub cache instead (or fails on a Path),
#: says it could not tell, and keeps the caller's ``export`` — right when it matches the folder
#: (``export=False`` for a folder holding an IR, ``export=True`` for a checkpoint folder).
LOCAL_IR_CHECK = KnownMessage(
    "optimum.intel.openvino.modeling_base",
    re.escape("Could not infer whether the model was already converted or not to the OpenVINO IR, keeping ")
    + r"`export=(False|True)`\.\n"
    + r"(Path\.replace\(\) takes 2 positional arguments but 3 were given|"
    + r"\[Errno 2\] No such file or directory: '.*models--.*refs/main')$",
    "optimum-intel reloads the IR it has just written (to compress it) with export=False, which is right",
)

#: Messages hidden for the whole export (CLI, ``optimum_qwen35.export``, ``from_pretrained(export=True)``).
DURING_EXPORT = (
    *(
        KnownMessage(
            f"transformers.models.{family}.modeling_{family}",
            _FAST_PATH,
            "the CUDA kernels of transformers' forward pass: the export traces the plugin's own modules",
        )
        for family in ("qwen3_5", "qwen3_5_moe")
    ),
    KnownMessage(
        "transformers.modeling_utils",
        re.escape("`loss_type=None` was set in the config but it is unrecognized."),
        "no Qwen3.5 config sets loss_type and no export computes a loss (a value the user set still warns)",
    ),
    KnownMessage(
        "torch.utils.cpp_extension",
        re.escape("No CUDA runtime is found, using CUDA_HOME="),
        "torch.utils.cpp_extension, imported by nncf.torch (OpenVINO's PyTorch frontend imports it), "
        "finds nvcc on a machine without a GPU: nothing is compiled",
    ),
    KnownMessage(
        "transformers.configuration_utils",
        re.escape("`torch_dtype` is deprecated! Use `dtype` instead!") + "$",
        "optimum-intel reads config.torch_dtype itself (the vision-language export)",
    ),
    LOCAL_IR_CHECK,
    KnownMessage(
        "nncf",
        re.escape("Statistics of the bitwidth distribution:"),
        "the compression policy runs NNCF in several passes: each table shows one pass, not the model",
    ),
    KnownMessage(
        "nncf",
        r"\d+ ignored nodes were found by (names|types|patterns) in the NNCFGraph$",
        "the policy's own ignored scopes (docs/compression.md)",
    ),
)

#: optimum-intel's hybrid runtime class passes ``dynamic_shapes=True`` to its base class, which then
#: says the value is ignored: hidden while the plugin loads an IR the caller gave no dynamic_shapes for.
DYNAMIC_SHAPES = KnownMessage(
    "optimum.intel.openvino.modeling_decoder",
    re.escape("`dynamic_shapes` was set to True, but this value will be ignored as only dynamic shapes are supported.")
    + "$",
    "set by optimum-intel's OVModelWithMambaForCausalLM, not by the caller",
)


class _KnownMessages(logging.Filter):
    """Drops records whose message matches an active pattern; one instance per logger."""

    def __init__(self) -> None:
        super().__init__()
        self.active: Counter[str] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(re.match(pattern, message) for pattern in self.active)


_filters: dict[str, _KnownMessages] = {}


@contextlib.contextmanager
def hidden(messages: Iterable[KnownMessage]) -> Iterator[None]:
    """Drop ``messages`` on their loggers while the block runs (nested blocks are counted)."""
    messages = tuple(messages)
    for message in messages:
        if message.logger not in _filters:
            _filters[message.logger] = _KnownMessages()
            logging.getLogger(message.logger).addFilter(_filters[message.logger])
        _filters[message.logger].active[message.pattern] += 1
    try:
        yield
    finally:
        for message in messages:
            known = _filters[message.logger]
            known.active[message.pattern] -= 1
            if known.active[message.pattern] == 0:
                del known.active[message.pattern]
            if not known.active:
                logging.getLogger(message.logger).removeFilter(known)
                del _filters[message.logger]


@contextlib.contextmanager
def transformers_bars_off() -> Iterator[None]:
    """Switch transformers' own tqdm bars off while the block runs, leaving huggingface_hub's on.

    transformers' public ``disable_progress_bar`` also turns off the hub's download bars, so its
    module flag (the same in transformers 5.2 and 5.5) is set and restored instead.
    """
    from transformers.utils import logging as hf_logging

    before = hf_logging._tqdm_active
    hf_logging._tqdm_active = False
    try:
        yield
    finally:
        hf_logging._tqdm_active = before


@contextlib.contextmanager
def quiet_export(verbose: bool) -> Iterator[None]:
    """While an export runs: :data:`DURING_EXPORT` hidden and transformers' bars off, unless ``verbose``."""
    if verbose:
        yield
        return
    with hidden(DURING_EXPORT), transformers_bars_off():
        yield
