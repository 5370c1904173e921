"""One progress bar over the steps of a Qwen3.5 export.

An export spends minutes in a few long calls (loading, ``torch.jit.trace``, OpenVINO conversion,
saving, compression) that report nothing themselves, so the user sees a frozen terminal.
:func:`export_progress` shows which step is running and how long the export has taken;
transformers' loading bar and NNCF's compression bar report inside their own steps. optimum-intel's
``convert_model``, ``save_model`` and ``maybe_convert_tokenizers`` are wrapped only while the bar is
open; the plugin's own steps call :func:`advance` directly. An INT8/INT4 export compresses after
the IR is saved (optimum-intel's ``_main_quantize``, or its size-based INT8 for models above 1 B
parameters): the compression hook announces ``compress`` and ``save compressed``, which join the
bar's steps when they start.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import optimum.exporters.openvino.__main__ as ov_main
import optimum.exporters.openvino.convert as ov_convert
from tqdm.auto import tqdm

STAGES = ("load", "trace", "convert", "stateful", "save", "tokenizer")
#: Steps of an export that compresses weights, after :data:`STAGES`.
COMPRESSION_STAGES = ("compress", "save compressed")
_DESCRIPTIONS = {
    "load": "loading weights",
    "trace": "tracing",
    "convert": "converting to OpenVINO",
    "stateful": "making the model stateful",
    "save": "saving the IR",
    "tokenizer": "converting the tokenizer",
    "compress": "compressing weights",
    "save compressed": "saving the compressed IR",
}
_ORDER = STAGES + COMPRESSION_STAGES

_bar: tqdm | None = None


def advance(stage: str) -> None:
    """Mark ``stage`` (one of :data:`STAGES` or :data:`COMPRESSION_STAGES`) as started.

    A no-op when no export bar is open, and for a step before the current one (the tokenizer step
    saves IRs too). A compression step adds itself to the bar's total."""
    step = _ORDER.index(stage) + 1
    if _bar is None or step < _bar.n:
        return
    _bar.total = max(_bar.total, step)
    _bar.n = step
    _bar.set_description(f"Qwen3.5 export: {_DESCRIPTIONS[stage]}")


def _announcing(stage: str, function: Callable) -> Callable:
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        advance(stage)
        return function(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def export_progress() -> Iterator[None]:
    """Show the export's step bar while the block runs; restores every wrapped function on exit.

    Inside an open bar (optimum-cli's whole run holds one, its ``main_export`` asks again) the
    block just runs: one bar per export."""
    global _bar
    if _bar is not None:
        yield
        return
    wrapped = [(ov_convert, "convert_model", "convert"), (ov_convert, "save_model", "save")]
    wrapped.append((ov_main, "maybe_convert_tokenizers", "tokenizer"))
    originals = [(module, name, getattr(module, name)) for module, name, _ in wrapped]
    for module, name, stage in wrapped:
        setattr(module, name, _announcing(stage, getattr(module, name)))
    _bar = tqdm(total=len(STAGES), bar_format="{desc}step {n_fmt}/{total_fmt} [{elapsed}]")
    advance("load")
    try:
        yield
        _bar.n = _bar.total
        _bar.set_description("Qwen3.5 export: done")
    finally:
        _bar.close()
        _bar = None
        for module, name, original in originals:
            setattr(module, name, original)
