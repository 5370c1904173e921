"""Hooks into optimum-intel's export entry points, active for Qwen3.5 checkpoints only.

optimum-intel has no plugin API beyond ``TasksManager`` registrations, and these behaviours
need changing for Qwen3.5 while every other model must stay untouched:

* ``infer_task``: a composite Qwen3.5 checkpoint with no ``--task`` exports as
  ``text-generation-with-past`` (what ``LLMPipeline`` loads), not as a vision-language model;
  an explicit ``--task image-text-to-text`` gets the vision-language layout (``vlm_config.py``).
* ``main_export``: environment and checkpoint checks before any heavy work, a staged output
  folder so that a failed export leaves nothing behind, zero-copy loading of local checkpoints
  (``loading.py``), mapped weight pages released as they are read (``page_release.py``), the
  step display (``progress.py``) and, unless ``--verbose``, the known-irrelevant messages of the
  libraries underneath hidden (``quiet.py``). optimum re-exports ``main_export`` (``from
  optimum.exporters.openvino import main_export``, which ``OVModelForCausalLM.from_pretrained(
  export=True)`` calls), so every module-level binding of the original is rebound to the hook.
  It also checks the free disk for a local checkpoint (``disk_space.py``) and holds the
  file-backed scratch space the export writes the tensors it makes to (``scratch.py``).
* ``_save_model`` (every converted part of every export, stateful or not): for the parts of a plugin
  export, the decompression marks of the 16-bit MoE experts and the plugin's marks (``plugin_ir.py``), before
  optimum-intel's own rt_info and the file; the heap pages the part's trace freed go back to the
  kernel (``page_release.py``).
* ``patch_stateful`` (skipped with ``--disable-stateful``): our stateful step for our IRs (dtype
  normalisation first); the MTP head gets optimum-intel's KV-cache step.
* ``add_hidden_states_rt_info``: the per-layer hidden-state locators of our IRs (``hidden_states.py``);
  optimum-intel's name-based search cannot find them in the static decoder's graph.
* ``OVExportCommand.run`` (``optimum-cli export openvino`` and ``optimum_qwen35.export``): the
  whole run writes to one staged output folder. With ``--weight-format int4|int8`` optimum-intel
  exports to a temporary folder, compresses after ``main_export`` returns, then creates the output
  folder and moves the result into it; a failure there must not leave an empty or partial output
  folder either.

Each hook calls the original function for anything that is not a Qwen3.5 export.
Installing is idempotent.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optimum.commands.export.openvino as ov_command
import optimum.exporters.openvino.__main__ as ov_main
import optimum.exporters.openvino.convert as ov_convert
from optimum.exporters.tasks import TasksManager

from ..checkpoint import checkpoint_dtype, qwen35_checkpoint_config, validate_local_checkpoint
from ..errors import ChatTemplateError, CheckpointError
from ..versions import check_environment
from .command import add_arguments, note_verbosity, thinking, verbose
from .config import VLM_TASK
from .disk_space import check_free_space
from .hidden_states import annotate_hidden_states
from .loading import zero_copy_loading
from .mtp_config import MTP_MODEL_TYPE
from .output_dir import current_staging, overwrite_requested, staged_output
from .page_release import release_free_heap, released_file_pages
from .plugin_ir import finish, is_plugin_export
from .processor_files import write_processor_files
from .progress import advance, export_progress
from .quiet import quiet_export
from .scratch import current_scratch, scratch_space
from .stateful import make_hybrid_stateful
from .termination import ended_cleanly_on_sigterm
from .tokenizer import DEFAULT_THINKING, check_thinking_option, checked_preprocessors

logger = logging.getLogger(__name__)

TEXT_TASK = "text-generation-with-past"
_WRAPPED = "__optimum_qwen35_original__"


def loading_dtype(model_name_or_path: Any, config: dict, ov_config: Any) -> str | None:
    """The dtype to load a Qwen3.5 checkpoint in for export: optimum-intel's rule, with the dtype found.

    optimum-intel loads a 16-bit checkpoint in its own dtype (or in the one ``--weight-format
    fp16|fp32`` asks for), but reads the dtype only from the top level of the config: the hub's
    composite configs name it inside ``text_config`` (and some checkpoints only in their safetensors
    headers), so it would load them in float32 and write an all-f32 IR twice the checkpoint's size.
    None leaves the decision to optimum-intel (a float32 checkpoint, or no dtype to be found).
    """
    dtype = checkpoint_dtype(model_name_or_path, config)
    if dtype not in ("bfloat16", "float16"):
        return None
    requested = getattr(ov_config, "dtype", None)
    if requested in ("fp16", "fp32"):
        return "float16" if requested == "fp16" else "float32"
    return dtype


def check_vision_language(model_name_or_path: Any, config: dict | None) -> None:
    """Refuse ``--task image-text-to-text`` for a checkpoint without a vision tower (a text checkpoint)."""
    if config is not None and "vision_config" not in config:
        raise CheckpointError(
            f"--task image-text-to-text needs a vision-language checkpoint (Qwen3_5ForConditionalGeneration, with a "
            f"vision_config), but {model_name_or_path} is a text-only {config.get('model_type')} checkpoint. Fix: drop "
            "--task (the text-LLM layout, for LLMPipeline and OVModelForCausalLM)."
        )


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


def install(model_types: set[str]) -> None:
    """Install the hooks for checkpoints whose model type is in ``model_types``."""

    def is_ours(model_name_or_path: Any, **hub_kwargs) -> bool:
        return qwen35_checkpoint_config(model_name_or_path, model_types, **hub_kwargs) is not None

    def with_loading_dtype(model_name_or_path: Any, config: dict, kwargs: dict, no_bfloat16: bool) -> dict:
        """``kwargs`` of main_export with the checkpoint's dtype to load in, unless the caller chose one.

        ``no_bfloat16`` (the vision-language layout) loads a bf16 checkpoint in float16: the layout's
        parts then carry no bf16 constant, which optimum-intel's VLM export showed crashing
        OpenVINO's CPU plugin on AVX2-only CPUs; bf16 → f16 is exact for every weight in f16's
        normal range (|w| ≥ 6.1e-5), which the parity tests bound.
        """
        loading = dict(kwargs.get("model_loading_kwargs") or {})
        if loading.get("torch_dtype") is None:
            dtype = loading_dtype(model_name_or_path, config, kwargs.get("ov_config"))
            if dtype == "bfloat16" and no_bfloat16:
                dtype = "float16"
            if dtype is not None:
                loading["torch_dtype"] = dtype
        return {**kwargs, "model_loading_kwargs": loading}

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
            config = qwen35_checkpoint_config(model_name_or_path, model_types, **kwargs)
            if config is None:
                return original(model_name_or_path, output, task, *args, **kwargs)
            check_before_export(model_name_or_path)
            vision_language = TasksManager.map_from_synonym(task) == VLM_TASK
            if vision_language:
                check_vision_language(model_name_or_path, config)
            kwargs = with_loading_dtype(model_name_or_path, config, kwargs, no_bfloat16=vision_language)
            if Path(str(model_name_or_path)).is_dir():
                dtype = kwargs["model_loading_kwargs"].get("torch_dtype")
                # optimum-cli's scratch space is beside its output; a compressed export's main_export
                # writes to optimum-intel's temporary folder, not into optimum-cli's staging folder.
                staging, scratch = current_staging(), current_scratch()
                temporary = staging is not None and Path(output).absolute() != staging
                check_free_space(
                    Path(str(model_name_or_path)), Path(output), dtype, vision_language, scratch, temporary
                )
            with (
                staged_output(output, overwrite=overwrite_requested()) as staging,
                quiet_export(verbose()),
                export_progress(verbose()),
                scratch_space(staging.parent),
                zero_copy_loading(model_name_or_path),
                released_file_pages(),
                checked_preprocessors(model_name_or_path),
            ):
                result = original(model_name_or_path, staging, task, *args, **kwargs)
                if TasksManager.map_from_synonym(task) == VLM_TASK:
                    write_processor_files(model_name_or_path, config, staging)
                return result

        return main_export

    def make_patch_stateful(original):
        def patch_stateful(config, ov_model):
            # The MTP head (one KV pair) keeps optimum-intel's step, as GenAI expects.
            if config.model_type != MTP_MODEL_TYPE and (
                config.get_text_config().model_type in model_types or config.model_type in model_types
            ):
                advance("stateful")
                return make_hybrid_stateful(ov_model)
            return original(config, ov_model)

        return patch_stateful

    def make_save_model(original):
        def _save_model(model, path, *args, **kwargs):
            export_config = kwargs.get("config", args[2] if len(args) > 2 else None)
            if is_plugin_export(export_config):
                finish(model, export_config)
                # The part's trace is over: its temporaries are free but still resident in the heap.
                release_free_heap()
            return original(model, path, *args, **kwargs)

        return _save_model

    def make_add_hidden_states_rt_info(original):
        def add_hidden_states_rt_info(source_model, ov_model, config):
            text = getattr(config, "_config", None)
            if getattr(text, "model_type", None) not in model_types:
                return original(source_model, ov_model, config)
            if "text-generation" not in (getattr(config, "task", "") or ""):  # the text embeddings model
                return None
            try:
                annotate_hidden_states(ov_model, source_model, text.hidden_size)
            except ValueError as error:  # an annotation pointing at the wrong value is worse than none
                logger.warning("No hidden-state rt_info for this export: %s", error)

        return add_hidden_states_rt_info

    def make_run(original):
        def run(self):
            args = self.args
            note_verbosity(args)
            hub_kwargs = {"cache_dir": args.cache_dir, "trust_remote_code": args.trust_remote_code}
            default_thinking = thinking(args)
            if not is_ours(args.model, **hub_kwargs):
                if default_thinking is not None:
                    raise ChatTemplateError(
                        f"--thinking is optimum-qwen35's option for Qwen3.5 checkpoints; {args.model} is not one. "
                        "Fix: drop --thinking."
                    )
                return original(self)
            check_before_export(args.model)
            if TasksManager.map_from_synonym(args.task) == VLM_TASK:
                if default_thinking is not None:
                    raise ChatTemplateError(
                        "--thinking is not supported with --task image-text-to-text yet (the template default is "
                        "written for the text-LLM export). Fix: drop --thinking, and pass enable_thinking per request."
                    )
                check_vision_language(args.model, qwen35_checkpoint_config(args.model, model_types, **hub_kwargs))
            check_thinking_option(args.model, default_thinking)
            output = args.output
            token = DEFAULT_THINKING.set(default_thinking)
            with (
                ended_cleanly_on_sigterm(),
                staged_output(output, overwrite=overwrite_requested()) as staging,
                quiet_export(verbose()),
                export_progress(verbose()),
                scratch_space(staging.parent),  # for compression too, which runs after main_export
            ):
                args.output = staging  # main_export and the final move of a compressed export write here
                try:
                    return original(self)
                finally:
                    args.output = output
                    DEFAULT_THINKING.reset(token)

        return run

    def make_parse_args(original):
        def parse_args(parser):
            result = original(parser)
            add_arguments(parser)
            return result

        return parse_args

    wrap(ov_main, "infer_task", make_infer_task)
    wrap(ov_main, "main_export", make_main_export)
    rebind_imports(ov_main, "main_export")
    wrap(ov_convert, "patch_stateful", make_patch_stateful)
    wrap(ov_convert, "_save_model", make_save_model)
    wrap(ov_convert, "add_hidden_states_rt_info", make_add_hidden_states_rt_info)
    wrap(ov_command.OVExportCommand, "run", make_run)
    # parse_args is a staticmethod: wrap the function, then make the class attribute static again.
    if not hasattr(ov_command.OVExportCommand.parse_args, _WRAPPED):
        wrap(ov_command.OVExportCommand, "parse_args", make_parse_args)
        ov_command.OVExportCommand.parse_args = staticmethod(ov_command.OVExportCommand.parse_args)
