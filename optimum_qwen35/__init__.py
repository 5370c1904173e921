"""optimum-qwen35: exact, fast Qwen3.5 → OpenVINO export for optimum-cli, optimum-intel and openvino-genai.

Importing the package registers it with optimum (``optimum-cli`` does this by itself)::

    import optimum_qwen35
    from optimum.intel import OVModelForCausalLM
    model = OVModelForCausalLM.from_pretrained("Qwen/Qwen3.5-0.8B", export=True)
"""

__version__ = "0.1.0"

from .errors import (
    ChatTemplateError,
    CheckpointError,
    DiskFullError,
    NotQwen35Error,
    OutputDirectoryError,
    Qwen35ExportError,
    UnsupportedEnvironmentError,
)
from .export import export
from .registry import register
from .weight_pages import released_weight_pages

register()

__all__ = [
    "ChatTemplateError",
    "CheckpointError",
    "DiskFullError",
    "NotQwen35Error",
    "OutputDirectoryError",
    "Qwen35ExportError",
    "UnsupportedEnvironmentError",
    "export",
    "register",
    "released_weight_pages",
    "__version__",
]
