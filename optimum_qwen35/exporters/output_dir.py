"""Write an export into a staging folder and move it into place only when it is complete."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from ..errors import DiskFullError, OutputDirectoryError

#: Environment variable that lets ``optimum-cli`` replace a non-empty output folder.
OVERWRITE_ENV = "OPTIMUM_QWEN35_OVERWRITE"


#: Below this many free bytes a failed export is reported as a full disk (OpenVINO's writer says
#: only "basic_ios::clear: iostream error").
NEARLY_FULL_BYTES = 100 * 2**20


#: Set by ``optimum_qwen35.export(overwrite=True)`` for the optimum-cli code it runs.
_OVERWRITE_REQUESTED: ContextVar[bool] = ContextVar("optimum_qwen35_overwrite", default=False)

#: The staging folder of the :func:`staged_output` block running in this context, if any.
_STAGING: ContextVar[Path | None] = ContextVar("optimum_qwen35_staging", default=None)


def current_staging() -> Path | None:
    """The staging folder of the :func:`staged_output` block running in this context, if any."""
    return _STAGING.get()


def overwrite_requested() -> bool:
    """True when the running export may replace a non-empty output folder (Python flag or env)."""
    env = os.environ.get(OVERWRITE_ENV, "").strip().lower() in {"1", "true", "yes"}
    return env or _OVERWRITE_REQUESTED.get()


@contextmanager
def allow_overwrite(overwrite: bool) -> Iterator[None]:
    """Within this block, :func:`overwrite_requested` also honours ``overwrite``."""
    token = _OVERWRITE_REQUESTED.set(overwrite)
    try:
        yield
    finally:
        _OVERWRITE_REQUESTED.reset(token)


def check_output(output: str | os.PathLike, overwrite: bool) -> Path:
    """Absolute ``output``; raises :class:`OutputDirectoryError` if it is a file, or a non-empty
    folder that ``overwrite`` does not allow replacing."""
    output = Path(output).absolute()
    if output.exists() and not output.is_dir():
        raise OutputDirectoryError(f"Output path {output} is a file. Fix: choose a folder path for the export.")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise OutputDirectoryError(
            f"Output folder {output} is not empty. Fix: choose a new folder, delete it, or allow replacing it "
            f"(overwrite=True in Python, or {OVERWRITE_ENV}=1 for optimum-cli)."
        )
    return output


@contextmanager
def staged_output(output: str | os.PathLike, overwrite: bool) -> Iterator[Path]:
    """Yield an empty staging folder beside ``output``; on success it replaces ``output``.

    Raises :class:`OutputDirectoryError` up front when ``output`` holds files and ``overwrite``
    is false. On any failure the staging folder is removed and ``output`` is left as it was.

    When ``output`` is the staging folder of an enclosing block (optimum-cli's whole run, whose
    ``main_export`` writes there when nothing is compressed), it is yielded as is: the enclosing
    block moves it into place or removes it. A :class:`DiskFullError` from a nested block passes
    through unchanged.
    """
    if Path(output).absolute() == _STAGING.get():
        yield _STAGING.get()
        return
    output = check_output(output, overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = make_owned_folder(output.parent, f".{output.name}.partial-")
    token = _STAGING.set(staging)
    try:
        with _full_disk_detected_when_writing():
            # mkdtemp makes the folder private (0700), and it becomes the user's export: give it the
            # mode a plain mkdir would (keeping the setgid bit a shared parent folder passes on), so a
            # model folder shared with other users or services stays readable. A file system that
            # refuses chmod keeps its own idea of the mode; that is no reason to fail the export.
            with contextlib.suppress(OSError):
                staging.chmod((stat.S_IMODE(staging.stat().st_mode) & 0o7000) | (0o777 & ~_umask()))
            yield staging
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    except Exception as error:
        if isinstance(error, DiskFullError):  # an inner export's report, about the disk that filled
            raise
        if _disk_full(error, staging):
            # optimum-intel writes an INT8/INT4 export's uncompressed IR to a temporary folder first.
            failed = _failed_write(error)
            temporary = output if failed is None else Path(failed).absolute()
            where = (
                "set TMPDIR to a folder on a disk with space"
                if temporary.is_relative_to(tempfile.gettempdir())
                else "choose an output folder on another disk"
            )
            written = sum(file.stat().st_size for file in staging.rglob("*") if file.is_file())
            raise DiskFullError(
                errno.ENOSPC,
                f"No space left on device while exporting to {output} ({written / 1e9:.1f} GB written, "
                f"{shutil.disk_usage(staging).free / 1e9:.2f} GB free once the partial files were removed). "
                "The partial export has been removed. "
                "Fix: free disk space (a 16-bit IR is about the size of the bf16 checkpoint, and "
                f"--weight-format fp16 of a bf16 checkpoint needs that much again while it runs) or {where}.",
            ) from error
        raise
    finally:
        _STAGING.reset(token)
        shutil.rmtree(staging, ignore_errors=True)


def raise_if_disk_full(error: Exception, path: str | os.PathLike, pending_bytes: int = 0) -> None:
    """Raise ``OSError(ENOSPC)`` naming ``path``, from ``error``, if the write of ``path`` that raised
    ``error`` failed on a full disk: fewer than :data:`NEARLY_FULL_BYTES` + ``pending_bytes`` free
    on its disk. OpenVINO's writer reports a full disk only as "basic_ios::clear: iostream error",
    so this must be judged while the partial file still takes its space. An ``ENOSPC`` error
    already says so and is left as it is."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return
    if shutil.disk_usage(Path(path).absolute().parent).free < NEARLY_FULL_BYTES + pending_bytes:
        raise OSError(errno.ENOSPC, "No space left on device", str(path)) from error


@contextmanager
def _full_disk_detected_when_writing() -> Iterator[None]:
    """While active, a failed IR write on a nearly full disk is raised as ``ENOSPC``.

    OpenVINO's writer reports a full disk only as "basic_ios::clear: iostream error". Whether the
    disk was full must be checked when the write fails: optimum-intel removes its temporary folder,
    and with it the partial IR that filled the disk, before the error reaches :func:`staged_output`
    (which checks again, for writes made by other code).
    """
    import openvino
    import optimum.exporters.openvino.__main__ as ov_main
    import optimum.exporters.openvino.convert as ov_convert

    def checked(save_model):
        @functools.wraps(save_model)
        def save_model_checked(model, output_model, *args, **kwargs):
            try:
                return save_model(model, output_model, *args, **kwargs)
            except RuntimeError as error:
                raise_if_disk_full(error, output_model)
                raise

        return save_model_checked

    # The export saves through convert's binding, the size-based INT8 through __main__'s, the quantizer
    # through the module attribute.
    originals = {module: module.save_model for module in (openvino, ov_convert, ov_main)}
    for module, save_model in originals.items():
        module.save_model = checked(save_model)
    try:
        yield
    finally:
        for module, save_model in originals.items():
            module.save_model = save_model


def make_owned_folder(parent: Path, prefix: str) -> Path:
    """A new empty folder ``<prefix><pid>-<random>`` in ``parent``, after removing the folders with
    that prefix whose process is gone.

    An export killed outright (SIGKILL, out of memory, a power cut) cannot remove its staging and
    scratch folders; the next export with the same output removes them instead. The owning process
    id in the name tells a live export's folders (left alone) from a dead one's.
    """
    for stale in parent.glob(f"{prefix}*"):
        owner = stale.name.removeprefix(prefix).split("-", 1)[0]
        if stale.is_dir() and owner.isdigit() and not _process_exists(int(owner)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): it exists
        return True
    return True


def _umask() -> int:
    """This process's umask; read from /proc where it can be, since ``os.umask`` can only be read by
    setting it (for a moment, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _failed_write(error: BaseException) -> str | None:
    """The file whose write failed for lack of space, if ``error`` (or one it came from) names it."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC and cause.filename:
            return str(cause.filename)
        cause = cause.__cause__ or cause.__context__
    return None


def _disk_full(error: BaseException, folder: Path) -> bool:
    """Whether ``error`` (or one it was raised from) is a full disk, or ``folder``'s disk is nearly full."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return True
        if isinstance(cause, shutil.Error) and f"[Errno {errno.ENOSPC}]" in str(cause):
            return True  # shutil.move across file systems reports the failed copies as text
        cause = cause.__cause__ or cause.__context__
    return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
