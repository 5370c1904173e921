"""Errors raised by optimum-qwen35. Each message names the problem and the fix."""


class Qwen35ExportError(Exception):
    """Base class: an export that cannot start or did not finish."""


class NotQwen35Error(Qwen35ExportError, ValueError):
    """The checkpoint is not a Qwen3.5 model."""


class CheckpointError(Qwen35ExportError, ValueError):
    """The checkpoint's config or weight files are missing, truncated or inconsistent."""


class UnsupportedEnvironmentError(Qwen35ExportError, ImportError):
    """An installed package version is outside the tested range."""


class OutputDirectoryError(Qwen35ExportError, FileExistsError):
    """The output directory exists and is not empty."""


class DiskFullError(Qwen35ExportError, OSError):
    """The disk filled up while the export was written (the partial output has been removed), or
    would: the export was refused before it started."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()  # the message alone, without "[Errno 28]"


class CompressionConfigError(Qwen35ExportError, ValueError):
    """Weight-compression options that cannot be applied to this checkpoint."""


class CalibrationDataError(Qwen35ExportError, ValueError):
    """The calibration text for data-aware compression is missing or empty."""


class ChatTemplateError(Qwen35ExportError, ValueError):
    """A chat-template option (``--thinking``) that the checkpoint's template cannot take."""
