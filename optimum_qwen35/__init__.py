"""optimum-qwen35: exact, fast Qwen3.5 → OpenVINO export for optimum-cli, optimum-intel and openvino-genai.

Importing the package registers it with optimum (``optimum-cli`` does this by itself)::

    import optimum_qwen35
    from optimum.intel import OVModelForCausalLM
    model = OVModelForCausalLM.from_pretrained("Qwen/Qwen3.5-0.8B", export=True)

Registration happens when optimum-intel is imported (at once if it already is), not when this
package is: importing optimum-intel loads torch and transformers (0.42 GB), which a process that
runs an IR with openvino-genai and only wants :func:`released_weight_pages` should not pay for. So
nothing imported here may import optimum, transformers or torch at module level.
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
from .registry import register, register_when_optimum_is_imported
from .weight_pages import released_weight_pages

register_when_optimum_is_imported()

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
