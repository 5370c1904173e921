"""What the plugin adds to ``optimum-cli export openvino``: its options and its error output.

* Options, in their own argument group: ``--thinking on|off`` (the exported chat template's default
  reasoning mode, see :mod:`.tokenizer`) and ``--verbose`` (tracebacks for the plugin's errors, and
  every message and progress bar of the libraries underneath, see :mod:`.quiet` and :mod:`.progress`).
* Errors: a user error the plugin raises (:class:`~optimum_qwen35.errors.Qwen35ExportError`: a
  non-empty output folder, a broken checkpoint, a bad option, a full disk …) reaches the user as
  one line, ``optimum-cli: error: <what is wrong and the fix>``, exit status 1, without the Python
  traceback, which says nothing to someone who typed a command. ``--verbose`` or
  ``OPTIMUM_QWEN35_TRACEBACK=1`` shows it. Any other exception keeps Python's own report.
  Installed only in ``optimum-cli`` processes (by the ``optimum.commands.register`` module): a
  Python caller gets the exception.
"""

from __future__ import annotations

import os
import sys
from argparse import ArgumentParser, Namespace
from types import TracebackType

from ..errors import Qwen35ExportError

TRACEBACK_ENV = "OPTIMUM_QWEN35_TRACEBACK"
_THINKING = {"on": True, "off": False}

#: Set from ``--verbose`` when the export command runs.
_verbose = False


def add_arguments(parser: ArgumentParser) -> None:
    """Add the plugin's argument group to ``optimum-cli export openvino``'s parser."""
    group = parser.add_argument_group("Qwen3.5 (optimum-qwen35)")
    group.add_argument(
        "--thinking",
        choices=sorted(_THINKING),
        default=None,
        help="Default reasoning mode of the exported chat template when a request does not set "
        "enable_thinking (openvino-genai generate(str), OVMS). Default: the checkpoint's own.",
    )
    group.add_argument(
        "--verbose",
        action="store_true",
        help="Show Python tracebacks for optimum-qwen35's errors, and every message and progress bar of the "
        "libraries underneath (by default the export hides those it knows to be irrelevant).",
    )


def thinking(args: Namespace) -> bool | None:
    """``--thinking`` as True/False, or None when not given."""
    return _THINKING.get(getattr(args, "thinking", None))


def note_verbosity(args: Namespace) -> None:
    """Remember ``--verbose`` for :func:`report_error` and :func:`verbose`."""
    global _verbose
    _verbose = bool(getattr(args, "verbose", False))


def verbose() -> bool:
    """Whether the last ``optimum-cli export openvino`` / ``optimum_qwen35.export`` run asked for ``--verbose``."""
    return _verbose


def _plugin_error(error: BaseException | None) -> Qwen35ExportError | None:
    """The first :class:`Qwen35ExportError` in ``error``'s cause/context chain."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, Qwen35ExportError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def report_error(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    """``sys.excepthook``: one line for the plugin's errors, Python's report for everything else."""
    ours = _plugin_error(error)
    if ours is None or _verbose or os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        sys.__excepthook__(kind, error, trace)
        return
    message = " ".join(str(ours).split())
    print(f"optimum-cli: error: {message}", file=sys.stderr)


def install_error_report() -> None:
    """Make uncaught plugin errors print as one line (call only in an ``optimum-cli`` process)."""
    sys.excepthook = report_error
