"""ETAs from a measured rate, and the progress of ``openvino.save_model`` (drawn by a helper process).

:func:`eta_seconds` is the one ETA rule of the export display (:mod:`.progress`): the time left at
the count's own average rate so far, never a guess from the model's size.

Saving an IR writes every weight to its ``.bin`` (gigabytes, minutes for a large model) inside
``openvino.save_model``, which holds Python's GIL until it returns: no thread of the exporting
process can draw meanwhile. So on a terminal, :func:`watched_save` starts this module as a script
in a helper process that watches the ``.bin`` grow and redraws the bar's line twice a second with
"GB x/y, ETA mm:ss" — ``y`` the bytes of the model's constants (f32 ones halved when saved with
``compress_to_fp16``), the rate the one measured in this save since its first bytes. The helper
clears its line and exits when the save returns; the display's bar then redraws. Stdlib only, so
that the helper starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

#: Seconds between two redraws of the helper.
INTERVAL = 0.5


def eta_seconds(done: float, total: float | None, elapsed: float) -> float | None:
    """Seconds until ``done`` reaches ``total`` at the rate measured so far (``done`` in ``elapsed``
    seconds); None before anything is done, without a total, or when nothing is left."""
    if total is None or done <= 0 or elapsed <= 0 or done >= total:
        return None
    return (total - done) * elapsed / done


def clock(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` from an hour on), as tqdm shows its elapsed time."""
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def written_text(written: int, total: int, rate_from: tuple[float, int] | None, now: float) -> str:
    """The save as shown, "GB x/y, ETA mm:ss": ``written`` bytes of ``total`` at ``now``, the rate
    measured from ``rate_from`` (the time and size when the file was first seen growing), if any."""
    text = f"GB {min(written, total) / 1e9:.1f}/{total / 1e9:.1f}"
    eta = None if rate_from is None else eta_seconds(written - rate_from[1], total - rate_from[1], now - rate_from[0])
    return text if eta is None else f"{text}, ETA {clock(eta)}"


@contextlib.contextmanager
def watched_save(weights: Path, total: int, line: str, export_start: float, terminal: int) -> Iterator[None]:
    """Draw the save of ``weights`` (the ``.bin``, ``total`` bytes expected) on the file descriptor
    ``terminal`` while the block runs, behind ``line`` ("Qwen3.5 export: saving the IR: step 5/6")
    and the export's elapsed time (``export_start``, a ``time.monotonic()`` value: the clock is
    system-wide on Linux)."""
    try:
        helper = subprocess.Popen(
            [sys.executable, "-I", __file__, str(weights), str(total), line, repr(export_start)],
            stdin=subprocess.PIPE,
            stderr=terminal,
        )
    except OSError:  # an interpreter this user may not execute again: the bar just waits
        yield
        return
    try:
        yield
    finally:
        helper.stdin.close()
        helper.wait()


def _serve(weights: Path, total: int, line: str, export_start: float) -> None:
    """The helper: redraw until stdin closes, then clear the line."""
    rate_from, drawn = None, 0
    while True:
        try:
            written = weights.stat().st_size
        except FileNotFoundError:  # not created yet
            written = 0
        now = time.monotonic()
        if rate_from is None and written > 0:
            # The writer first walks the whole graph (seconds for a large model) without writing:
            # the rate counts from the first bytes on, so that pause does not stretch the ETA.
            rate_from = (now, written)
        text = f"\r{line} [{clock(now - export_start)}], {written_text(written, total, rate_from, now)}"
        sys.stderr.write(text + " " * max(drawn - len(text), 0))
        sys.stderr.flush()
        drawn = len(text)
        if select.select([sys.stdin], [], [], INTERVAL)[0] and not os.read(sys.stdin.fileno(), 1):
            break
    sys.stderr.write("\r" + " " * drawn + "\r")
    sys.stderr.flush()


if __name__ == "__main__":
    _serve(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
