"""The steps of a Qwen3.5 export, shown as they start.

An export spends minutes in a few long calls (loading, ``torch.jit.trace``, OpenVINO conversion,
saving, compression) that report nothing themselves, so the user sees a frozen terminal.
:func:`export_progress` shows which step is running and how long the export has taken:

* on a terminal, one tqdm bar that redraws in place ("Qwen3.5 export: tracing: step 2/6 [00:03]"),
  with the step's own count behind it when it has one (", Mapping weights 1/2");
* otherwise (a log file, a pipe, CI), one line per step and a last line with the total time: a
  redrawn bar would pile its redraws and any other writer's text onto one line.

Counted loops inside a step report through the same display instead of drawing bars of their
own: the plugin's loading loops (:func:`substeps`) and, unless the export is verbose, NNCF's
compression bars (their display is switched off and their count folded in). transformers' loading
bar is switched off by :mod:`.quiet`.

optimum-intel's ``convert_model``, ``save_model`` and ``maybe_convert_tokenizers`` are wrapped only
while the display is open; the plugin's own steps call :func:`advance` directly. An INT8/INT4
export compresses after the IR is saved (optimum-intel's ``_main_quantize``, or its size-based
INT8 for models above 1 B parameters): the compression hook announces ``compress`` and
``save compressed``, which join the steps when they start.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import optimum.exporters.openvino.__main__ as ov_main
import optimum.exporters.openvino.convert as ov_convert
from nncf.common.logging import track_progress
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
PREFIX = "Qwen3.5 export"

T = TypeVar("T")


class _Display:
    """The step display of one export: a redrawn bar on a terminal, else one line per step (stderr)."""

    def __init__(self) -> None:
        self.step, self.total = 0, len(STAGES)
        self.start, self.drawn = time.monotonic(), 0.0
        self.bar = None
        if sys.stderr.isatty():
            bar_format = "{desc}step {n_fmt}/{total_fmt} [{elapsed}]{postfix}"  # tqdm ends desc with ": "
            self.bar = tqdm(total=self.total, bar_format=bar_format, desc=f"{PREFIX}: ", file=sys.stderr)

    def advance(self, stage: str) -> None:
        step = _ORDER.index(stage) + 1
        if step <= self.step:  # the vision-language layout converts and saves several models
            return
        self.step, self.total = step, max(self.total, len(_ORDER) if stage in COMPRESSION_STAGES else step)
        description = f"{PREFIX}: {_DESCRIPTIONS[stage]}"
        if self.bar is None:
            print(f"{description}: step {step}/{self.total}", file=sys.stderr, flush=True)
            return
        self.bar.total, self.bar.n = self.total, step
        self.bar.set_postfix_str("", refresh=False)
        self.bar.set_description(description)

    def detail(self, text: str) -> None:
        """Show ``text`` (a count inside the current step) behind the step, on a terminal.

        Redrawn at most ten times a second: a step may count thousands of tensors."""
        if self.bar is None:
            return
        self.bar.set_postfix_str(text, refresh=False)
        now = time.monotonic()
        if not text or now - self.drawn >= 0.1:
            self.bar.refresh()
            self.drawn = now

    def finish(self, completed: bool) -> None:
        if self.bar is None:
            if completed:
                elapsed = tqdm.format_interval(time.monotonic() - self.start)
                print(f"{PREFIX}: done [{elapsed}]", file=sys.stderr, flush=True)
            return
        if completed:
            self.bar.n = self.bar.total
            self.bar.set_postfix_str("", refresh=False)
            self.bar.set_description(f"{PREFIX}: done")
        self.bar.close()


_display: _Display | None = None


def advance(stage: str) -> None:
    """Mark ``stage`` (one of :data:`STAGES` or :data:`COMPRESSION_STAGES`) as started.

    A no-op when no export display is open, and for a step already reached (the tokenizer step saves
    IRs too, the vision-language layout converts and saves several models). A compression step
    makes the total count the compression steps."""
    if _display is not None:
        _display.advance(stage)


def substeps(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Yield ``items``, showing "``description`` i/n" inside the current step while they are processed.

    ``total`` defaults to ``len(items)`` when ``items`` has one."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    for count, item in enumerate(items, 1):
        if _display is not None:
            _display.detail(f"{description} {count}/{total}" if total else f"{description} {count}")
        yield item
    if _display is not None:
        _display.detail("")


def _announcing(stage: str, function: Callable) -> Callable:
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        advance(stage)
        return function(*args, **kwargs)

    return wrapper


def _folded_nncf_bars() -> list[tuple[object, str, Callable]]:
    """Switch NNCF's rich bars off and report their loops through :func:`substeps`; returns what to restore."""
    track = track_progress.track
    original_init, original_iter = track.__init__, track.__iter__

    @functools.wraps(original_init)
    def __init__(self, *args, **kwargs):
        original_init(self, *args, **{**kwargs, "disable": True})

    @functools.wraps(original_iter)
    def __iter__(self):
        count = len(self.weights) if self.weights is not None else self.total
        yield from substeps(original_iter(self), self.description, int(count) if count else None)

    track.__init__, track.__iter__ = __init__, __iter__
    return [(track, "__init__", original_init), (track, "__iter__", original_iter)]


@contextlib.contextmanager
def export_progress(verbose: bool = False) -> Iterator[None]:
    """Show the export's steps while the block runs; restores every wrapped function on exit.

    Inside an open display (optimum-cli's whole run holds one, its ``main_export`` asks again) the
    block just runs: one display per export. ``verbose`` leaves NNCF's own bars drawn."""
    global _display
    if _display is not None:
        yield
        return
    wrapped = [(ov_convert, "convert_model", "convert"), (ov_convert, "save_model", "save")]
    wrapped.append((ov_main, "maybe_convert_tokenizers", "tokenizer"))
    originals = [(module, name, getattr(module, name)) for module, name, _ in wrapped]
    for module, name, stage in wrapped:
        setattr(module, name, _announcing(stage, getattr(module, name)))
    if not verbose:
        originals += _folded_nncf_bars()
    _display = _Display()
    completed = False
    try:
        advance("load")
        yield
        completed = True
    finally:
        _display.finish(completed)
        _display = None
        for owner, name, original in originals:
            setattr(owner, name, original)
