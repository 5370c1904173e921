"""Registration with optimum: export configs in ``TasksManager`` and the export hooks.

Runs on ``import optimum_qwen35`` and from ``optimum-cli`` start-up (via the
``optimum.commands.register`` namespace), after optimum-intel registered its own configs, so
ours take precedence for the Qwen3.5 text tasks. Other models and tasks are untouched.
"""

from __future__ import annotations

#: Model types exported by the text-LLM path: text and composite (hub) checkpoints, dense and MoE.
TEXT_MODEL_TYPES = frozenset({"qwen3_5_text", "qwen3_5", "qwen3_5_moe_text", "qwen3_5_moe"})

_registered = False

#: optimum-intel's own OpenVINO export configs for :data:`TEXT_MODEL_TYPES`, kept by
#: :func:`register` before ours replace them (its VLM export needs them back).
UPSTREAM_CONFIGS: dict[str, dict] = {}


def register() -> None:
    """Register the Qwen3.5 export configs and hooks. Safe to call any number of times."""
    global _registered
    if _registered:
        return
    import optimum.exporters.openvino  # noqa: F401  (registers optimum-intel's configs first)
    import optimum.exporters.openvino.utils as ov_utils
    from optimum.exporters.tasks import TasksManager

    from . import runtime
    from .compression import hooks as compression_hooks
    from .exporters import hooks
    from .exporters.config import TASKS, Qwen35TextOpenVINOConfig

    if not UPSTREAM_CONFIGS:  # a second pass must not take ours for optimum-intel's
        UPSTREAM_CONFIGS.update(hooks.snapshot_openvino_configs(set(TEXT_MODEL_TYPES)))
    register_config = TasksManager.create_register("openvino", overwrite_existing=True)
    for model_type in sorted(TEXT_MODEL_TYPES):
        register_config(model_type, *TASKS, library_name="transformers")(Qwen35TextOpenVINOConfig)
    # torch.jit.trace's check re-traces and re-runs the model only to compare two traces of the same
    # code; it costs ~0.5 GB and a third of the tracing time on the 0.8B shape, and the parity tests
    # compare the IR with transformers far more strictly.
    ov_utils.SKIP_CHECK_TRACE_MODELS = (*ov_utils.SKIP_CHECK_TRACE_MODELS, *sorted(TEXT_MODEL_TYPES))
    hooks.install(set(TEXT_MODEL_TYPES), UPSTREAM_CONFIGS)
    compression_hooks.install(set(TEXT_MODEL_TYPES))
    runtime.install()
    _registered = True
