"""Package versions optimum-qwen35 is tested with, and a check that names the fix."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from packaging.version import Version

from .errors import UnsupportedEnvironmentError

#: ``package -> (lowest tested, first untested)``; keep in step with ``pyproject.toml``.
SUPPORTED: dict[str, tuple[str, str]] = {
    "transformers": ("5.2.0", "5.6"),
    "openvino": ("2026.4.0", "2026.5"),
    "optimum-intel": ("2.2.0", "2.3"),
}


def check_environment() -> None:
    """Raise :class:`UnsupportedEnvironmentError` when a required package is missing or out of range."""
    for package, (low, high) in SUPPORTED.items():
        requirement = f"'{package}>={low},<{high}'"
        try:
            installed = Version(version(package))
        except PackageNotFoundError:
            raise UnsupportedEnvironmentError(
                f"{package} is not installed, but optimum-qwen35 needs it. Fix: pip install {requirement}"
            ) from None
        if not Version(low) <= installed < Version(high):
            raise UnsupportedEnvironmentError(
                f"{package} {installed} is not supported by optimum-qwen35 (tested: >={low},<{high}). "
                f"Fix: pip install {requirement}"
            )
