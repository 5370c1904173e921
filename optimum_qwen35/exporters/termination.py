"""SIGTERM ends an export the way Ctrl-C does, so that it leaves nothing behind.

Python's default for SIGTERM (``kill``, a service manager stopping a job) is to end the process at
once: no ``finally`` runs, and the staging and scratch folders beside the output and optimum-intel's
temporary IR of a compressed export (gigabytes) stay on the disk. While an export runs, SIGTERM
raises ``SystemExit(143)`` instead, so every block that made a folder removes it on the way out.

A handler's exception can be lost: Python runs handlers between bytecodes, also inside a
``__del__`` or a finalizer, where an exception is printed and dropped. So the signal is remembered,
and the export's progress points (each step and each counted item, :mod:`.progress`) raise it again.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: The signal that asked the running export to end, once one has.
_received: int | None = None


def _terminate(signum: int, frame: object) -> None:
    global _received
    _received = signum
    raise SystemExit(128 + signum)


def end_if_terminated() -> None:
    """Raise ``SystemExit`` if a SIGTERM arrived during the export (again, if its first was lost)."""
    if _received is not None:
        raise SystemExit(128 + _received)


@contextmanager
def ended_cleanly_on_sigterm() -> Iterator[None]:
    """While active, SIGTERM raises ``SystemExit(143)`` (see the module docstring).

    Only in the main thread, where Python runs signal handlers; the signal takes effect once the
    running OpenVINO call returns (a save holds the interpreter until the IR is written).
    """
    global _received
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _received = None
