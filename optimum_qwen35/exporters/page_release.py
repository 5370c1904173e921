"""Keep the pages of memory-mapped weight files out of the export's resident set.

An export reads every weight through a file mapping: the checkpoint's safetensors files (zero-copy
loading, see :mod:`.loading`) while the IR is converted and saved, then the saved IR's ``.bin``,
which optimum-intel maps again to compress it. A page that has been read stays resident in the
process until its mapping is closed, at the end of the export, so peak RSS grows by the whole
checkpoint and then by the whole IR, although each page is a clean copy of a file the kernel could
read again at any moment (and would drop under memory pressure).

While :func:`released_file_pages` is open, those pages are handed back to the kernel every
``interval`` seconds:

* read-only mappings (OpenVINO's ``.bin``): a background thread calls ``madvise(MADV_DONTNEED)``,
  which removes the pages from this process only; the data stays in the page cache and the next
  access maps it again (a minor fault). The bytes cannot change: optimum-intel writes the
  compressed IR to a new file and deletes the old one only after releasing the model.
* writable private mappings (safetensors' ``torch`` storages): ``MADV_PAGEOUT`` reclaims clean file
  pages exactly as memory pressure would, and never discards a page the process has modified.
  A small helper *process* applies it with ``process_madvise``, because the reads that matter
  most happen inside ``openvino.save_model``, which holds Python's GIL until the whole IR is
  written: a thread of this process could not run meanwhile, and the checkpoint would become
  resident in full (the 0.8B export's peak). Where the helper cannot work (kernel before 5.10, no
  ``CAP_SYS_NICE``), the thread applies ``MADV_PAGEOUT`` itself, between GIL-holding calls.

Freed C-heap pages are the other kind of page an export holds for nothing: tracing a part of the
model frees its temporaries into glibc's heap, which keeps them resident and hands them back only
when the top of the heap is free. The vision tower of ``--task image-text-to-text`` (27 blocks on
the hub's 35B-A3B) left 2.6 GB so for the rest of the export (anonymous memory 2.96 GB after its
conversion, 0.39 GB once trimmed). :func:`release_free_heap` returns them (``malloc_trim``) once a
part is converted, so that the next parts and the compression do not run on top of them.

Linux only (``/proc/<pid>/maps``, ``MADV_PAGEOUT`` needs kernel 5.4); elsewhere it does nothing.
Run as a script (``python page_release.py PID INTERVAL``) this module is that helper.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

#: Files whose mappings are released: checkpoint weights and OpenVINO IR weights.
WEIGHT_SUFFIXES = (".safetensors", ".bin")

_MADV_DONTNEED = 4
_MADV_PAGEOUT = 21
_SYS_PROCESS_MADVISE = 440  # the same number on x86-64, arm64 and every asm-generic architecture
_PROCESS_MADVISE_BYTES = 2**30
_ENOMEM, _EINVAL = 12, 22
_HELPER_READY = "ready"


def _weight_mappings(pid: int | str = "self") -> list[tuple[int, int, bool]]:
    """``(start, length, writable)`` of a process's mappings of weight files."""
    mappings = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        # Converted weights are mapped from a scratch file unlinked right away (see loading.py).
        if len(fields) == 6 and fields[5].removesuffix(" (deleted)").endswith(WEIGHT_SUFFIXES):
            start, end = (int(address, 16) for address in fields[0].split("-"))
            mappings.append((start, end - start, "w" in fields[1]))
    return mappings


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, or None where there is no ``/proc/self/maps`` to find mappings in."""
    if not sys.platform.startswith("linux") or not Path("/proc/self/maps").is_file():
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.syscall.restype = ctypes.c_long
    return libc


def release_weight_pages(writable: bool = True) -> bool:
    """Hand the resident pages of this process's weight-file mappings back to the kernel once.

    ``writable=False`` leaves the private writable mappings to the helper process. Returns
    ``False`` when this system cannot (not Linux, or ``madvise`` refused), ``True`` otherwise.
    """
    libc = _libc()
    if libc is None:
        return False
    for start, length, is_writable in _weight_mappings():
        if is_writable and not writable:
            continue
        # A mapping may be closed between reading the maps and this call: madvise then fails with
        # ENOMEM for that range, which is harmless.
        if libc.madvise(start, length, _MADV_PAGEOUT if is_writable else _MADV_DONTNEED) != 0:
            if ctypes.get_errno() == _EINVAL:  # the kernel predates MADV_PAGEOUT
                return False
    return True


def release_free_heap() -> bool:
    """Return the free pages of the C heap to the kernel once (glibc's ``malloc_trim(0)``, which also
    releases whole free pages below the top of the heap). ``False`` where there is no glibc."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is None:  # not Linux, or a C library without it (musl)
        return False
    trim(0)
    return True


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


def page_out_writable_mappings(pid: int, pidfd: int) -> bool:
    """``process_madvise(MADV_PAGEOUT)`` on another process's writable weight-file mappings, once.

    Returns ``False`` when the kernel or the caller's privileges do not allow it (``EPERM``
    without ``CAP_SYS_NICE``, ``ENOSYS`` before Linux 5.10), even if there is nothing to page out.
    """
    libc = _libc()
    if libc is None:
        return False
    # The empty range first: the kernel checks permission and advice before it looks at ranges.
    # Then pieces of at most _PROCESS_MADVISE_BYTES: one call advises at most ~2 GiB (MAX_RW_COUNT)
    # and silently leaves the rest of a longer range (most of a 4B checkpoint's 8 GB file).
    ranges = [(0, 0)] + [
        (piece, min(_PROCESS_MADVISE_BYTES, start + length - piece))
        for start, length, writable in _weight_mappings(pid)
        if writable
        for piece in range(start, start + length, _PROCESS_MADVISE_BYTES)
    ]
    # syscall() is variadic and reads every argument as a long.
    number, fd, count, advice, flags = map(ctypes.c_long, (_SYS_PROCESS_MADVISE, pidfd, 1, _MADV_PAGEOUT, 0))
    for start, length in ranges:
        vector = _IoVec(start, length)
        if libc.syscall(number, fd, ctypes.byref(vector), count, advice, flags) < 0:
            if ctypes.get_errno() != _ENOMEM:  # ENOMEM: the range was unmapped meanwhile
                return False
    return True


def _serve(pid: int, interval: float) -> None:
    """The helper process: page out ``pid``'s writable weight mappings until stdin closes.

    Prints :data:`_HELPER_READY` once the first round succeeded; exits at once if it failed.
    """
    try:
        pidfd = os.pidfd_open(pid)
        if not page_out_writable_mappings(pid, pidfd):
            return
        print(_HELPER_READY, flush=True)
        # stdin reaches EOF when the parent closes it, or dies.
        while not select.select([sys.stdin], [], [], interval)[0]:
            page_out_writable_mappings(pid, pidfd)
    except OSError:  # the parent is gone (its /proc entry with it)
        return


def _start_helper(interval: float) -> subprocess.Popen | None:
    """The helper process paging out this process's writable mappings, or None if it cannot."""
    if not hasattr(os, "pidfd_open") or _libc() is None:
        return None
    try:
        helper = subprocess.Popen(
            [sys.executable, "-I", __file__, str(os.getpid()), str(interval)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    except OSError:  # e.g. an interpreter this user may not execute again
        return None
    if helper.stdout.readline().strip() == _HELPER_READY:
        return helper
    _stop_helper(helper)
    return None


def _stop_helper(helper: subprocess.Popen) -> None:
    helper.stdin.close()
    helper.wait()
    helper.stdout.close()


_running: threading.Thread | None = None


@contextlib.contextmanager
def released_file_pages(interval: float = 0.2, read_only: bool = False) -> Iterator[None]:
    """Release weight-file pages every ``interval`` seconds while the block runs (see module doc).

    ``read_only`` (a model that runs, :mod:`..weight_pages`): only read-only mappings, no helper
    process, and once more when the block ends. A block nested in another (compression inside an
    export) leaves the work to the outer one.
    """
    global _running
    if (_running is not None and _running.is_alive()) or not release_weight_pages(writable=not read_only):
        yield
        return
    helper = None if read_only else _start_helper(interval)
    writable = not read_only and helper is None
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval) and release_weight_pages(writable=writable):
            pass

    _running = threading.Thread(target=loop, name="qwen35-page-release", daemon=True)
    _running.start()
    try:
        yield
    finally:
        stop.set()
        _running.join()
        _running = None
        if helper is not None:
            _stop_helper(helper)
        if read_only:
            release_weight_pages(writable=False)


if __name__ == "__main__":
    _serve(int(sys.argv[1]), float(sys.argv[2]))
