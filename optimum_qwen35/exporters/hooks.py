"""Hooks into optimum-intel's export entry points, active for Qwen3.5 checkpoints only.

optimum-intel has no plugin API beyond ``TasksManager`` registrations, and four behaviours
need changing for Qwen3.5 while every other model must stay untouched:

* ``infer_task``: a composite Qwen3.5 checkpoint with no ``--task`` exports as
  ``text-generation-with-past`` (what ``LLMPipeline`` loads), not as a vision-language model;
  an explicit ``--task image-text-to-text`` still gets optimum-intel's VLM export.
* ``main_export``: environment and checkpoint checks before any heavy work, a staged output
  folder so that a failed export leaves nothing behind, zero-copy loading of local checkpoints
  (``loading.py``), mapped weight pages released as they are read (``page_release.py``) and a
  progress bar. optimum re-exports ``main_export`` (``from optimum.exporters.openvino import
  main_export``, which ``OVModelForCausalLM.from_pretrained(export=True)`` calls), so every
  module-level binding of the original is rebound to the hook.
* ``patch_stateful``: for our IRs, the MoE weights back to 16-bit (``weight_dtypes.py``), then our
  stateful step (dtype normalisation first).
* ``--task image-text-to-text`` stays optimum-intel's VLM export: its language-model part is
  built from the same ``qwen3_5_text`` text-generation registration the plugin replaces, so that
  export runs with optimum-intel's own configs put back and ``patch_stateful`` left to it.
* ``OVExportCommand.run`` (``optimum-cli export openvino`` and ``optimum_qwen35.export``): the
  whole run writes to one staged output folder. With ``--weight-format int4|int8`` optimum-intel
  exports to a temporary folder, compresses after ``main_export`` returns, then creates the output
  folder and moves the result into it; a failure there must not leave an empty or partial output
  folder either.

Each hook calls the original function for anything that is not a Qwen3.5 text export.
Installing is idempotent.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import optimum.commands.export.openvino as ov_command
import optimum.exporters.openvino.__main__ as ov_main
import optimum.exporters.openvino.convert as ov_convert
from optimum.exporters.tasks import TasksManager

from ..checkpoint import is_qwen35_config, validate_local_checkpoint
from ..versions import check_environment
from .loading import zero_copy_loading
from .output_dir import overwrite_requested, staged_output
from .page_release import released_file_pages
from .progress import advance, export_progress
from .stateful import make_hybrid_stateful
from .weight_dtypes import restore_16bit_moe_weights

TEXT_TASK = "text-generation-with-past"
_WRAPPED = "__optimum_qwen35_original__"

#: True while optimum-intel's own Qwen3.5 export (its VLM) runs: the hooks stand aside.
_UPSTREAM_EXPORT: ContextVar[bool] = ContextVar("optimum_qwen35_upstream_export", default=False)


def snapshot_openvino_configs(model_types: set[str]) -> dict[str, dict[str, Any]]:
    """``{model type: {task: export config constructor}}`` as registered for OpenVINO right now."""
    table = TasksManager._SUPPORTED_MODEL_TYPE
    return {model_type: dict(table.get(model_type, {}).get("openvino", {})) for model_type in model_types}


def in_upstream_export() -> bool:
    """True inside :func:`upstream_export`: optimum-intel's own export is running, hooks stand aside."""
    return _UPSTREAM_EXPORT.get()


@contextlib.contextmanager
def upstream_export(configs: dict[str, dict[str, Any]]) -> Iterator[None]:
    """Run an export with optimum-intel's OpenVINO ``configs`` (a :func:`snapshot_openvino_configs`
    taken before registration) and without the plugin's stateful step; ours are restored on exit."""
    table = TasksManager._SUPPORTED_MODEL_TYPE
    ours = snapshot_openvino_configs(set(configs))
    token = _UPSTREAM_EXPORT.set(True)
    try:
        for model_type, entries in configs.items():
            table.setdefault(model_type, {})["openvino"] = dict(entries)
        yield
    finally:
        for model_type, entries in ours.items():
            table[model_type]["openvino"] = entries
        _UPSTREAM_EXPORT.reset(token)


def checkpoint_config(model_name_or_path: Any, **hub_kwargs) -> dict | None:
    """Parsed ``config.json`` of a local folder or a hub id (from the local cache), else None."""
    path = Path(str(model_name_or_path))
    if path.is_dir():
        config_file = path / "config.json"
        return json.loads(config_file.read_text()) if config_file.is_file() else None
    try:
        from transformers import AutoConfig

        keys = ("revision", "cache_dir", "token", "trust_remote_code", "subfolder")
        return AutoConfig.from_pretrained(
            str(model_name_or_path), **{k: v for k, v in hub_kwargs.items() if k in keys}
        ).to_dict()
    except Exception:  # an unreachable hub or a non-transformers model: not ours to decide
        return None


def qwen35_checkpoint_config(model_name_or_path: Any, model_types: set[str], **hub_kwargs) -> dict | None:
    """``config.json`` of a checkpoint (or exported folder) whose model type is in ``model_types``, else None."""
    config = checkpoint_config(model_name_or_path, **hub_kwargs)
    return config if config is not None and is_qwen35_config(config, model_types) else None


def wrap(module: Any, name: str, make: Callable[[Callable], Callable]) -> None:
    original = getattr(module, name)
    if hasattr(original, _WRAPPED):
        return
    wrapper = functools.wraps(original)(make(original))
    setattr(wrapper, _WRAPPED, original)
    setattr(module, name, wrapper)


def rebind_imports(module: Any, name: str) -> None:
    """Point every imported ``optimum`` module's own binding of ``module.name``'s original (made by
    ``from ... import name`` before :func:`wrap`) at the wrapper. Modules imported later bind the
    wrapper through the package attribute, which is rebound here too."""
    wrapper = getattr(module, name)
    original = getattr(wrapper, _WRAPPED)
    for loaded in list(sys.modules.values()):
        if getattr(loaded, "__name__", "").startswith("optimum.") and getattr(loaded, name, None) is original:
            setattr(loaded, name, wrapper)


def install(model_types: set[str], upstream_configs: dict[str, dict[str, Any]]) -> None:
    """Install the four hooks for checkpoints whose model type is in ``model_types``.

    ``upstream_configs``: optimum-intel's own registrations for those types
    (:func:`snapshot_openvino_configs` before ours), used for its VLM export.
    """

    def is_ours(model_name_or_path: Any, **hub_kwargs) -> bool:
        return qwen35_checkpoint_config(model_name_or_path, model_types, **hub_kwargs) is not None

    def check_before_export(model_name_or_path: Any) -> None:
        """Environment and checkpoint checks: milliseconds, before any folder is created."""
        check_environment()
        if Path(str(model_name_or_path)).is_dir():
            validate_local_checkpoint(Path(str(model_name_or_path)), model_types)

    def make_infer_task(original):
        def infer_task(task, model_name_or_path, *args, **kwargs):
            if TasksManager.map_from_synonym(task) == "auto" and is_ours(model_name_or_path, **kwargs):
                return TEXT_TASK
            return original(task, model_name_or_path, *args, **kwargs)

        return infer_task

    def make_main_export(original):
        def main_export(model_name_or_path, output, task="auto", *args, **kwargs):
            # Inside upstream_export (optimum-cli's VLM run) optimum-intel's own export is running.
            if in_upstream_export() or not is_ours(model_name_or_path, **kwargs):
                return original(model_name_or_path, output, task, *args, **kwargs)
            if TasksManager.map_from_synonym(task) == "image-text-to-text":
                with upstream_export(upstream_configs):
                    return original(model_name_or_path, output, task, *args, **kwargs)
            check_before_export(model_name_or_path)
            with (
                staged_output(output, overwrite=overwrite_requested()) as staging,
                export_progress(),
                zero_copy_loading(model_name_or_path, staging.parent),
                released_file_pages(),
            ):
                return original(model_name_or_path, staging, task, *args, **kwargs)

        return main_export

    def make_patch_stateful(original):
        def patch_stateful(config, ov_model):
            ours = config.get_text_config().model_type in model_types or config.model_type in model_types
            if ours and not in_upstream_export():
                advance("stateful")
                restore_16bit_moe_weights(ov_model)
                return make_hybrid_stateful(ov_model)
            return original(config, ov_model)

        return patch_stateful

    def make_run(original):
        def run(self):
            args = self.args
            hub_kwargs = {"cache_dir": args.cache_dir, "trust_remote_code": args.trust_remote_code}
            if not is_ours(args.model, **hub_kwargs):
                return original(self)
            if TasksManager.map_from_synonym(args.task) == "image-text-to-text":
                with upstream_export(upstream_configs):  # compression included: optimum-intel's own
                    return original(self)
            check_before_export(args.model)
            output = args.output
            with staged_output(output, overwrite=overwrite_requested()) as staging, export_progress():
                args.output = staging  # main_export and the final move of a compressed export write here
                try:
                    return original(self)
                finally:
                    args.output = output

        return run

    wrap(ov_main, "infer_task", make_infer_task)
    wrap(ov_main, "main_export", make_main_export)
    rebind_imports(ov_main, "main_export")
    wrap(ov_convert, "patch_stateful", make_patch_stateful)
    wrap(ov_command.OVExportCommand, "run", make_run)
