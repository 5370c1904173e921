"""The steps of a Qwen3.5 export, shown as they start, with counts and ETAs where they can be observed.

An export spends minutes in a few long calls (loading, ``torch.jit.trace``, OpenVINO conversion,
saving, compression) that report nothing themselves, so the user sees a frozen terminal.
:func:`export_progress` shows which step is running and how long the export has taken:

* on a terminal, one tqdm bar that redraws in place ("Qwen3.5 export: tracing: step 2/6 [00:03]"),
  with the step's counts behind it (", layer 3/8, ETA 00:05");
* otherwise (a log file, a pipe, CI), one line per step, one line per figure the step measured
  ("Qwen3.5 export: traced 8 layers in 3.1 s") and a last line with the total time: a redrawn bar
  would pile its redraws and any other writer's text onto one line.

A count (:func:`counting`, :func:`substeps`) is one loop inside a step; its ETA comes from its own
rate so far (:func:`.save_progress.eta_seconds`), never from the model's size. Counted: the
decoder layers of the trace (the patcher's ``counted_layers``), the plugin's loading loops and
scratch writes, the vocabulary-table chunks of the compression and, unless the export is verbose,
NNCF's loops (their rich bars switched off, their counts folded in; its weight compression as
"weights i/N", weighted by size). The saves are measured by :meth:`_Display.saving`: on a terminal
a helper process draws "GB x/y" (:mod:`.save_progress`; ``openvino.save_model`` holds the GIL).
transformers' loading bar is switched off by :mod:`.quiet`.

optimum-intel's ``convert_model``, ``save_model`` and ``maybe_convert_tokenizers`` (and
``openvino.save_model`` under its other names) are wrapped only while the display is open; the
plugin's own steps call :func:`advance` directly. An INT8/INT4 export compresses after the IR is
saved (optimum-intel's ``_main_quantize``, or its size-based INT8 for models above 1 B
parameters): the compression hook announces ``compress`` and ``save compressed``, which join the
steps when they start.
"""

from __future__ import annotations

import contextlib
import functools
import io
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import openvino as ov
import optimum.exporters.openvino.__main__ as ov_main
import optimum.exporters.openvino.convert as ov_convert
from nncf.common.logging import track_progress
from tqdm.auto import tqdm

from .save_progress import clock, eta_seconds, watched_save
from .termination import end_if_terminated

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


class Count:
    """One counted loop inside a step ("layer 3/8"): its position, and its ETA from its own rate.

    ``sizes`` (one per item) weigh the items for the ETA when they take unequal time (NNCF's
    weights, by element count). ``summary`` ("traced", "layers") makes the count one of the lines
    the non-terminal display prints when its step ends ("traced 8 layers in 3.1 s"; counts of the
    same summary add up); nested counts never are (a loop inside another counts parts of the outer
    one's items). ``every_item``: redraw at every item, for counts of slow items (decoder layers).
    """

    def __init__(
        self,
        description: str,
        total: int | None,
        sizes: list[float] | None = None,
        summary: tuple[str, str] | None = None,
        every_item: bool = False,
    ) -> None:
        self.description, self.total, self.sizes = description, total, sizes
        self.summary, self.every_item = summary, every_item
        self.count, self.done, self.start = 0, 0.0, time.monotonic()

    def advance(self) -> None:
        """One more item done."""
        end_if_terminated()  # a progress point: a SIGTERM whose exit was lost ends the export here
        self.done += self.sizes[self.count] if self.sizes is not None and self.count < len(self.sizes) else 1
        self.count += 1
        if _display is not None:
            _display.update(self)

    def eta(self) -> float | None:
        """Seconds left at this count's rate so far (by ``sizes`` when given); None before the first item."""
        total = sum(self.sizes) if self.sizes is not None else self.total
        return eta_seconds(self.done, total, time.monotonic() - self.start)

    def text(self) -> str:
        """The count as shown: "description i/n, ETA mm:ss" (the ETA once known, until the last item)."""
        text = f"{self.description} {self.count}/{self.total}" if self.total else f"{self.description} {self.count}"
        eta = self.eta()
        return text if eta is None else f"{text}, ETA {clock(eta)}"


class _Display:
    """The step display of one export: a redrawn bar on a terminal, else one line per step (stderr)."""

    def __init__(self) -> None:
        self.step, self.total, self.stage = 0, len(STAGES), ""
        self.start, self.drawn = time.monotonic(), 0.0
        self.counts: list[Count] = []  # open, outermost first
        self.summaries: dict[tuple[str, str], list[float]] = {}  # (verb, unit) -> [items, seconds], this step
        self.bar = None
        if sys.stderr.isatty():
            bar_format = "{desc}step {n_fmt}/{total_fmt} [{elapsed}]{postfix}"  # tqdm ends desc with ": "
            self.bar = tqdm(total=self.total, bar_format=bar_format, desc=f"{PREFIX}: ", file=sys.stderr)

    def advance(self, stage: str) -> None:
        step = _ORDER.index(stage) + 1
        if step <= self.step:  # the vision-language layout converts and saves several models
            return
        self.print_summaries()
        self.stage = stage
        self.step, self.total = step, max(self.total, len(_ORDER) if stage in COMPRESSION_STAGES else step)
        description = f"{PREFIX}: {_DESCRIPTIONS[stage]}"
        if self.bar is None:
            print(f"{description}: step {step}/{self.total}", file=sys.stderr, flush=True)
            return
        self.bar.total, self.bar.n = self.total, step
        self.bar.set_postfix_str(", ".join(count.text() for count in self.counts), refresh=False)
        self.bar.set_description(description)

    def open(self, count: Count) -> None:
        self.counts.append(count)

    def close(self, count: Count) -> None:
        """End ``count``: its figures join the step's summary (outermost counts with a summary only,
        and not a count of nothing: a vision-language part without a vocabulary table)."""
        if count.summary is not None and count.count and self.counts and self.counts[0] is count:
            self.add_summary(count.summary, count.count, time.monotonic() - count.start)
        self.counts.remove(count)
        self.update(None)

    def update(self, count: Count | None) -> None:
        """Show the open counts behind the step, on a terminal.

        Redrawn at most ten times a second (a step may count thousands of tensors), except for a
        count of slow items (``every_item``: a decoder layer) and whenever a count ends."""
        if self.bar is None:
            return
        self.bar.set_postfix_str(", ".join(open_count.text() for open_count in self.counts), refresh=False)
        now = time.monotonic()
        if count is None or count.every_item or now - self.drawn >= 0.1:
            self.bar.refresh()
            self.drawn = now

    def add_summary(self, summary: tuple[str, str], items: float, seconds: float) -> None:
        figures = self.summaries.setdefault(summary, [0, 0.0])
        figures[0] += items
        figures[1] += seconds

    def print_summaries(self) -> None:
        """The non-terminal display's figures of the step that ends: "traced 8 layers in 3.1 s"."""
        if self.bar is None:
            for (verb, unit), (items, seconds) in self.summaries.items():
                if unit == "bytes":
                    amount = _size(items)
                else:  # "1 vocabulary table chunk", "62 weights"
                    amount = f"{items} {unit.removesuffix('s') if items == 1 else unit}"
                print(f"{PREFIX}: {verb} {amount} in {seconds:.1f} s", file=sys.stderr, flush=True)
        self.summaries = {}

    @contextlib.contextmanager
    def saving(self, model: ov.Model, path: Path, compress_to_fp16: bool) -> Iterator[None]:
        """Measure an IR save of the save steps (the step's summary: "wrote 8.4 GB in 30.2 s"), drawn
        on a terminal by :func:`.save_progress.watched_save`. Saves of other steps (the tokenizer's
        small IRs) are not shown."""
        if self.stage not in ("save", "save compressed"):
            yield
            return
        weights, start = path.with_suffix(".bin"), time.monotonic()
        watch = contextlib.nullcontext()
        terminal = _terminal_fd()
        if self.bar is not None and terminal is not None:
            self.bar.refresh()
            line = f"{PREFIX}: {_DESCRIPTIONS[self.stage]}: step {self.step}/{self.total}"
            watch = watched_save(weights, _saved_bytes(model, compress_to_fp16), line, self.start, terminal)
        with watch:
            yield
        if weights.is_file():
            self.add_summary(("wrote", "bytes"), weights.stat().st_size, time.monotonic() - start)
        if self.bar is not None:
            self.bar.refresh()

    def finish(self, completed: bool) -> None:
        if self.bar is None:
            if completed:
                self.print_summaries()
                elapsed = tqdm.format_interval(time.monotonic() - self.start)
                print(f"{PREFIX}: done [{elapsed}]", file=sys.stderr, flush=True)
            return
        if completed:
            self.bar.n = self.bar.total
            self.bar.set_postfix_str("", refresh=False)
            self.bar.set_description(f"{PREFIX}: done")
        self.bar.close()


def _size(size: int) -> str:
    """ "8.4 GB", "25 MB", "340 kB": what a summary says a save wrote."""
    if size >= 1e9:
        return f"{size / 1e9:.1f} GB"
    return f"{size / 1e6:.0f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def _terminal_fd() -> int | None:
    """The file descriptor of ``sys.stderr`` when it is a real one (a helper process can draw on it)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def _saved_bytes(model: ov.Model, compress_to_fp16: bool) -> int:
    """Bytes ``openvino.save_model`` writes to the ``.bin`` of ``model``: its constants, f32 ones halved
    when compressed to f16 (an estimate: the writer also merges identical constants)."""
    total = 0
    for op in model.get_ops():
        if op.get_type_name() == "Constant":
            size = op.get_byte_size()
            total += size // 2 if compress_to_fp16 and op.get_output_element_type(0) == ov.Type.f32 else size
    return total


_display: _Display | None = None


def advance(stage: str) -> None:
    """Mark ``stage`` (one of :data:`STAGES` or :data:`COMPRESSION_STAGES`) as started.

    A no-op when no export display is open, and for a step already reached (the tokenizer step saves
    IRs too, the vision-language layout converts and saves several models). A compression step
    makes the total count the compression steps."""
    end_if_terminated()
    if _display is not None:
        _display.advance(stage)


@contextlib.contextmanager
def counting(
    description: str,
    total: int | None,
    sizes: list[float] | None = None,
    summary: tuple[str, str] | None = None,
    every_item: bool = False,
) -> Iterator[Count]:
    """A :class:`Count` shown inside the current step while the block runs; call its ``advance``
    as each item is done. Outside an export display it counts and shows nothing."""
    count = Count(description, total, sizes, summary, every_item)
    display = _display
    if display is not None:
        display.open(count)
    try:
        yield count
    finally:
        if display is not None and display is _display:
            display.close(count)


def substeps(
    items: Iterable[T],
    description: str,
    total: int | None = None,
    sizes: list[float] | None = None,
    summary: tuple[str, str] | None = None,
) -> Iterator[T]:
    """Yield ``items``, showing "``description`` i/n, ETA mm:ss" inside the current step while they
    are processed (see :func:`counting`); an item counts as done when the next one is asked for.

    ``total`` defaults to ``len(items)`` when ``items`` has one."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with counting(description, total, sizes, summary) as count:
        for item in items:
            yield item
            count.advance()


def _announcing(stage: str, function: Callable) -> Callable:
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        advance(stage)
        return function(*args, **kwargs)

    return wrapper


#: How NNCF's weight compression loop describes itself (" with correction of low-rank adapters" may follow).
_NNCF_COMPRESSION = "Applying Weight Compression"


def _measured_save(function: Callable) -> Callable:
    """``openvino.save_model`` (under any of its names) measured by the display (:meth:`_Display.saving`)."""

    @functools.wraps(function)
    def save_model(model, output_model, *args, **kwargs):
        if _display is None:
            return function(model, output_model, *args, **kwargs)
        compress_to_fp16 = kwargs.get("compress_to_fp16", args[0] if args else True)
        with _display.saving(model, Path(output_model), compress_to_fp16):
            return function(model, output_model, *args, **kwargs)

    return save_model


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
        description, summary = self.description, None
        if description.startswith(_NNCF_COMPRESSION):  # NNCF's main loop: one item per weight, largest first
            description, summary = "weights", ("compressed", "weights")
        sizes = list(self.weights) if self.weights is not None else None
        yield from substeps(original_iter(self), description, int(count) if count else None, sizes, summary)

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
    # optimum-intel's export saves through convert's save_model; its size-based INT8 and its
    # compressed models through __main__'s and the module attribute (``openvino.save_model``).
    saves = [(ov_convert, "save_model"), (ov_main, "save_model"), (ov, "save_model")]
    announced = [(ov_convert, "convert_model", "convert"), (ov_convert, "save_model", "save")]
    announced.append((ov_main, "maybe_convert_tokenizers", "tokenizer"))
    originals = [(module, name, getattr(module, name)) for module, name in saves]
    originals += [(module, name, getattr(module, name)) for module, name, _ in announced if (module, name) not in saves]
    for module, name in saves:
        setattr(module, name, _measured_save(getattr(module, name)))
    for module, name, stage in announced:
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
