"""One progress bar over the steps of a Qwen3.5 export.

An export spends minutes in a few long calls (loading, ``torch.jit.trace``, OpenVINO conversion,
saving) that report nothing themselves, so the user sees a frozen terminal. :func:`export_progress`
shows which step is running and how long the export has taken; transformers' loading bar and
NNCF's compression bar report inside their own steps. optimum-intel's ``convert_model``,
``save_model`` and ``maybe_convert_tokenizers`` are wrapped only while the bar is open; the plugin's
own steps call :func:`advance` directly.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import optimum.exporters.openvino.__main__ as ov_main
import optimum.exporters.openvino.convert as ov_convert
from tqdm.auto import tqdm

STAGES = ("load", "trace", "convert", "stateful", "save", "tokenizer")
_DESCRIPTIONS = {
    "load": "loading weights",
    "trace": "tracing",
    "convert": "converting to OpenVINO",
    "stateful": "making the model stateful",
    "save": "saving the IR",
    "tokenizer": "converting the tokenizer",
}

_bar: tqdm | None = None


def advance(stage: str) -> None:
    """Mark ``stage`` (one of :data:`STAGES`) as started; a no-op when no export bar is open."""
    if _bar is None or STAGES.index(stage) + 1 < _bar.n:  # the tokenizer step saves IRs too
        return
    _bar.n = STAGES.index(stage) + 1
    _bar.set_description(f"Qwen3.5 export: {_DESCRIPTIONS[stage]}")


def _announcing(stage: str, function: Callable) -> Callable:
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        advance(stage)
        return function(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def export_progress() -> Iterator[None]:
    """Show the export's step bar while the block runs; restores every wrapped function on exit."""
    global _bar
    wrapped = [(ov_convert, "convert_model", "convert"), (ov_convert, "save_model", "save")]
    wrapped.append((ov_main, "maybe_convert_tokenizers", "tokenizer"))
    originals = [(module, name, getattr(module, name)) for module, name, _ in wrapped]
    for module, name, stage in wrapped:
        setattr(module, name, _announcing(stage, getattr(module, name)))
    _bar = tqdm(total=len(STAGES), bar_format="{desc}step {n_fmt}/{total_fmt} [{elapsed}]")
    advance("load")
    try:
        yield
        _bar.n = len(STAGES)
        _bar.set_description("Qwen3.5 export: done")
    finally:
        _bar.close()
        _bar = None
        for module, name, original in originals:
            setattr(module, name, original)
