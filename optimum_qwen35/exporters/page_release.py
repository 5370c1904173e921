"""Keep the pages of memory-mapped weight files out of the export's resident set.

An export reads every weight through a file mapping: the checkpoint's safetensors files (zero-copy
loading, see :mod:`.loading`) while the IR is converted and saved, then the saved IR's ``.bin``,
which optimum-intel maps again to compress it. A page that has been read stays resident in the
process until its mapping is closed, at the end of the export, so peak RSS grows by the whole
checkpoint and then by the whole IR, although each page is a clean copy of a file the kernel could
read again at any moment (and would drop under memory pressure).

While :func:`released_file_pages` is open, a background thread hands those pages back to the kernel
every ``interval`` seconds with ``madvise``:

* read-only mappings (OpenVINO's ``.bin``): ``MADV_DONTNEED`` removes the pages from this process
  only; the data stays in the page cache and the next access maps it again (a minor fault). The
  bytes cannot change: optimum-intel writes the compressed IR to a new file and deletes the old one
  only after releasing the model.
* writable private mappings (safetensors' ``torch`` storages): ``MADV_PAGEOUT`` reclaims clean file
  pages exactly as memory pressure would, and never discards a page the process has modified.

Linux only (``/proc/self/maps``, ``MADV_PAGEOUT`` needs kernel 5.4); elsewhere it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

#: Files whose mappings are released: checkpoint weights and OpenVINO IR weights.
WEIGHT_SUFFIXES = (".safetensors", ".bin")

_MADV_DONTNEED = 4
_MADV_PAGEOUT = 21
_MAPS = Path("/proc/self/maps")


def _weight_mappings() -> list[tuple[int, int, bool]]:
    """``(start, length, writable)`` of this process's mappings of weight files."""
    mappings = []
    for line in _MAPS.read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].endswith(WEIGHT_SUFFIXES):
            start, end = (int(address, 16) for address in fields[0].split("-"))
            mappings.append((start, end - start, "w" in fields[1]))
    return mappings


@functools.cache
def _madvise() -> ctypes._CFuncPtr | None:
    """libc's ``madvise``, or None where there is no ``/proc/self/maps`` to find mappings in."""
    if not sys.platform.startswith("linux") or not _MAPS.is_file():
        return None
    madvise = ctypes.CDLL(None, use_errno=True).madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return madvise


def release_weight_pages() -> bool:
    """Hand the resident pages of every weight-file mapping back to the kernel once.

    Returns ``False`` when this system cannot (not Linux, or ``madvise`` refused), ``True`` otherwise.
    """
    madvise = _madvise()
    if madvise is None:
        return False
    for start, length, writable in _weight_mappings():
        # A mapping may be closed between reading the maps and this call: madvise then fails with
        # ENOMEM for that range, which is harmless.
        if madvise(start, length, _MADV_PAGEOUT if writable else _MADV_DONTNEED) != 0:
            if ctypes.get_errno() == 22:  # EINVAL: the kernel predates MADV_PAGEOUT
                return False
    return True


_running: threading.Thread | None = None


@contextlib.contextmanager
def released_file_pages(interval: float = 0.2) -> Iterator[None]:
    """Release weight-file pages every ``interval`` seconds while the block runs (see module doc).

    A block nested in another (compression inside an export) leaves the work to the outer thread.
    """
    global _running
    if (_running is not None and _running.is_alive()) or not release_weight_pages():
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval) and release_weight_pages():
            pass

    _running = threading.Thread(target=loop, name="qwen35-page-release", daemon=True)
    _running.start()
    try:
        yield
    finally:
        stop.set()
        _running.join()
        _running = None
