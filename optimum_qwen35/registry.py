"""Registration with optimum: export configs in ``TasksManager`` and the export hooks.

Runs from ``optimum-cli`` start-up (via the ``optimum.commands.register`` namespace), from
:func:`optimum_qwen35.export`, and in a Python process that imported ``optimum_qwen35`` as soon as
optimum-intel is imported too (:func:`register_when_optimum_is_imported`); always after
optimum-intel registered its own configs, so ours take precedence for the Qwen3.5 text tasks and
the vision-language layout (``image-text-to-text``). Other models and tasks are untouched.
"""

from __future__ import annotations

from collections.abc import Callable

from .post_import import call_after_import

#: Model types exported by the text-LLM path: text and composite (hub) checkpoints, dense and MoE.
TEXT_MODEL_TYPES = frozenset({"qwen3_5_text", "qwen3_5", "qwen3_5_moe_text", "qwen3_5_moe"})

#: Model types with a vision tower: exported as the vision-language layout for ``image-text-to-text``.
VISION_LANGUAGE_MODEL_TYPES = frozenset({"qwen3_5", "qwen3_5_moe"})

#: The packages whose objects :func:`register` changes (their submodules are imported after them):
#: optimum-intel's runtime classes, its exporter (configs, ``main_export``) and ``optimum-cli``'s
#: export command.
OPTIMUM_PACKAGES = ("optimum.intel", "optimum.exporters.openvino", "optimum.commands.export.openvino")

_registered = False
_cancel_pending: Callable[[], None] | None = None


def register_when_optimum_is_imported() -> None:
    """Call :func:`register` right after the first of :data:`OPTIMUM_PACKAGES` is imported (now if one is).

    Registering means importing optimum-intel, torch and transformers; a process that only runs an
    IR with openvino-genai never needs them, so ``import optimum_qwen35`` waits for the caller to
    import optimum-intel (:mod:`.post_import`).
    """
    global _cancel_pending
    _cancel_pending = call_after_import(register, OPTIMUM_PACKAGES, __package__)


def register() -> None:
    """Register the Qwen3.5 export configs and hooks. Safe to call any number of times."""
    global _registered
    if _registered:
        return
    if _cancel_pending is not None:
        _cancel_pending()  # the imports below would otherwise call register() from inside this call
    import optimum.exporters.openvino  # noqa: F401  (registers optimum-intel's configs first)
    import optimum.exporters.openvino.utils as ov_utils
    from optimum.exporters.tasks import TasksManager

    from . import local_folders, runtime
    from .compression import hooks as compression_hooks
    from .exporters import hooks
    from .exporters.config import TASKS, Qwen35TextOpenVINOConfig
    from .exporters.mtp_config import MTP_MODEL_TYPE
    from .exporters.vlm_config import TASK as VLM_TASK
    from .exporters.vlm_config import Qwen35VisionLanguageOpenVINOConfig

    register_config = TasksManager.create_register("openvino", overwrite_existing=True)
    for model_type in sorted(TEXT_MODEL_TYPES):
        register_config(model_type, *TASKS, library_name="transformers")(Qwen35TextOpenVINOConfig)
    for model_type in sorted(VISION_LANGUAGE_MODEL_TYPES):
        register_config(model_type, VLM_TASK, library_name="transformers")(Qwen35VisionLanguageOpenVINOConfig)
    # torch.jit.trace's check re-traces and re-runs the model only to compare two traces of the same
    # code; it costs ~0.5 GB and a third of the tracing time on the 0.8B shape, and the parity tests
    # compare the IR with transformers far more strictly.
    skipped = (*sorted(TEXT_MODEL_TYPES), MTP_MODEL_TYPE)
    ov_utils.SKIP_CHECK_TRACE_MODELS = (*ov_utils.SKIP_CHECK_TRACE_MODELS, *skipped)
    hooks.install(set(TEXT_MODEL_TYPES))
    compression_hooks.install(set(TEXT_MODEL_TYPES))
    runtime.install()
    local_folders.install(set(TEXT_MODEL_TYPES))
    _registered = True
