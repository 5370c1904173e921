"""Plug the Qwen3.5 compression policy into optimum-intel's CLI and Python entry points.

These functions are wrapped; each behaves exactly as before for any model that is not Qwen3.5:

* ``optimum.commands.export.openvino.prepare_wc_config`` (``optimum-cli export openvino`` with
  ``--weight-format int4|int8`` and flags): validates the flags, turns ``--dataset FILE`` into
  calibration text and merges the policy, *before* exporting.
* ``get_default_quantization_config`` (``--weight-format int4`` alone, and
  ``from_pretrained(..., quantization_config={"bits": 4})``): returns the policy's config.
* ``optimum.intel.openvino.quantization._weight_only_quantization`` (every weight compression of
  every route: CLI, ``from_pretrained(..., quantization_config=...)`` with or without export,
  ``OVQuantizer``, each part of the vision-language layout): on a plugin IR (marked by
  :mod:`..exporters.plugin_ir`), completes an INT4 config with the policy from the text-config
  values the IR carries (:func:`.policy.with_policy`) and adds the never-compressed weights,
  compresses the vocabulary tables (embedding, untied ``lm_head``) in row chunks first
  (:mod:`.embedding`), and after NNCF's INT4 pass runs the INT8 pass for the weights the policy
  keeps in INT8; pages of the IR's mapped ``.bin`` are released as they are read
  (:mod:`..exporters.page_release`).
* ``OVQuantizer._quantize_ovbasemodel`` (every compression of a loaded model: ``from_pretrained(...,
  quantization_config=...)`` with or without export, ``OVQuantizer``, optimum-cli's compression
  step): for a model with a plugin IR, a scratch space the compressed constants go to as they are
  made (:func:`in_scratch_space`), as an export has.

The output folder needs no hook here: the export hooks stage optimum-cli's whole run.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openvino as ov
import optimum.commands.export.openvino as ov_command
import optimum.intel.openvino.configuration as ov_configuration
import optimum.intel.openvino.modeling_base as ov_modeling_base
import optimum.intel.openvino.quantization as ov_quantization

from ..checkpoint import qwen35_checkpoint_config
from ..errors import CalibrationDataError, DiskFullError
from ..exporters.hooks import wrap
from ..exporters.output_dir import current_staging
from ..exporters.page_release import released_file_pages
from ..exporters.plugin_ir import marked_policy_config
from ..exporters.progress import advance
from ..exporters.scratch import scratch_parent, scratch_space, spilled_constant
from ..runtime import is_plugin_ir
from . import policy
from .calibration import vision_language_calibration
from .embedding import compress_vocabulary_tables, embedding_mode
from .mixed_precision import compress_int8

#: ``prepare_wc_config`` reads these from the CLI namespace; ``None`` means "not given".
_USER_FLAGS = (
    "group_size",
    "ratio",
    "all_layers",
    "dataset",
    "num_samples",
    "group_size_fallback",
    "awq",
    *policy.DATA_AWARE_FLAGS,
)


def text_config_of(model_name_or_path: Any, model_types: set[str]) -> dict[str, Any] | None:
    """The text config of a Qwen3.5 checkpoint or exported folder, ``None`` for anything else."""
    config = qwen35_checkpoint_config(model_name_or_path, model_types)
    return None if config is None else config.get("text_config") or config


#: Files any transformers tokenizer is loaded from; a local checkpoint needs one to calibrate.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def check_tokenizer(model_name_or_path: Any) -> None:
    """Raise :class:`CalibrationDataError` if a local checkpoint has no tokenizer to encode calibration text."""
    path = Path(str(model_name_or_path))
    if path.is_dir() and not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise CalibrationDataError(
            f"Data-aware compression (--dataset) tokenizes calibration text, but {path} has no tokenizer files "
            f"({', '.join(_TOKENIZER_FILES)}). Fix: copy the tokenizer into the checkpoint folder, or drop --dataset "
            "and the data-aware flags."
        )


def with_all_layers(config: Any) -> Any:
    """A copy of an INT4 weight config with ``all_layers`` set: NNCF must not pick new "first and last"
    layers for its backup precision once the vocabulary tables it would have picked are compressed."""
    if isinstance(config, dict):
        return config | {"all_layers": True}
    config = copy.deepcopy(config)
    config.all_layers = True
    return config


def scoped_to(model: Any, config: Any) -> Any:
    """A copy of ``config`` whose ignored scope keeps only the patterns and op types ``model`` has.

    NNCF refuses an ignored scope that matches nothing, and the policy's scope names every Qwen3.5
    weight group: the vision-language layout's MTP head has no Gated DeltaNet projection and no
    depthwise convolution, yet takes the same config as the language model.
    """
    scope = policy.config_value(config, "ignored_scope")
    if not scope:
        return config
    names = [op.get_friendly_name() for op in model.get_ops()]
    types = {op.get_type_name() for op in model.get_ops()}
    kept = dict(scope)
    kept["patterns"] = [p for p in scope.get("patterns") or [] if any(re.match(p, name) for name in names)]
    kept["types"] = [t for t in scope.get("types") or [] if t in types]
    if kept == scope:
        return config
    if isinstance(config, dict):
        return config | {"ignored_scope": kept}
    config = copy.deepcopy(config)
    config.ignored_scope = kept
    return config


@contextlib.contextmanager
def compressed_constants_in_scratch() -> Iterator[None]:
    """While active, the constants NNCF's OpenVINO backend makes (compressed weights, scales, zero
    points; data-free and data-aware alike) are moved to a file-backed scratch space as they are
    made (:func:`..exporters.scratch.spilled_constant`), instead of staying in anonymous memory until
    the compressed IR is saved.

    The scratch space is the export's on ``optimum-cli`` and ``optimum_qwen35.export`` (their whole
    run holds one beside the output); on the Python routes that compress a loaded model
    (``from_pretrained(..., quantization_config=...)`` with or without ``export=True``,
    ``OVQuantizer``) the compression holds one (:func:`in_scratch_space`). Either way the compressed
    model's constants own their mappings, so the model the user gets keeps them file-backed.
    """
    import nncf.quantization.algorithms.weight_compression.openvino_backend as backend

    original = backend.create_ov_const_from_tensor

    def create_ov_const_from_tensor(x, dtype, name=None):
        return spilled_constant(original(x, dtype, name))

    backend.create_ov_const_from_tensor = create_ov_const_from_tensor
    try:
        yield
    finally:
        backend.create_ov_const_from_tensor = original


@contextlib.contextmanager
def in_scratch_space(model: Any, save_directory: Any) -> Iterator[None]:
    """A scratch space for compressing ``model`` (an optimum-intel ``OVBaseModel``) when one of its
    parts is a plugin IR: beside ``save_directory`` when the result is saved, else beside the folder
    the model was read from (for ``export=True``, optimum-intel's temporary export folder).

    The compressed model lives on in the user's hands (``from_pretrained`` returns it, ``OVQuantizer``
    compresses in place), so its constants must outlive this block: they do, because each spilled
    constant owns its mapping (:func:`..exporters.scratch.spilled_constant`) and its file is unlinked
    once mapped; the disk space is freed when the model is. Nested in an export's scratch space
    (``optimum-cli``'s compression step) the export's is used. Models of other types get none.
    """
    parts = [part for part in model.ov_models.values() if isinstance(part, ov.Model)]
    if not any(is_plugin_ir(part) for part in parts):
        yield
        return
    folder = save_directory if save_directory is not None else model.model_save_dir
    if folder is not None and not isinstance(folder, str | os.PathLike):  # optimum-intel's TemporaryDirectory
        folder = folder.name
    parent = scratch_parent(folder)
    try:
        with scratch_space(parent):
            yield
    except OSError as error:
        # Inside optimum-cli's run the export's own handler reports the full disk (and removes the
        # partial output); a Python route has no such handler, so the report is made here.
        if error.errno != errno.ENOSPC or isinstance(error, DiskFullError) or current_staging() is not None:
            raise
        raise DiskFullError(
            errno.ENOSPC,
            f"No space left on device for the compressed weights' scratch files in {parent} "
            f"({shutil.disk_usage(parent).free / 1e9:.2f} GB free once they were removed). The compressed "
            "model keeps its weights there, as file pages, while it lives. Fix: free disk space there (about "
            "the compressed model's size is needed), or read the model from (or save it to) a folder on "
            "another disk.",
        ) from error


def install(model_types: set[str]) -> None:
    """Install the three wrappers for checkpoints whose model type is in ``model_types``."""

    def make_prepare_wc_config(original):
        def prepare_wc_config(args, default_configs):
            config = original(args, default_configs)
            text_config = text_config_of(args.model, model_types)
            if text_config is None:
                return config
            user = {flag: getattr(args, flag, None) for flag in _USER_FLAGS}
            config = policy.resolve_weight_config(config, text_config, user)  # reads --dataset first
            if user["dataset"] is not None:
                check_tokenizer(args.model)
            return config

        return prepare_wc_config

    def make_get_default_quantization_config(original):
        def get_default_quantization_config(model_id_or_path, weight_format=None, quant_mode=None):
            ours = weight_format == "int4"
            text_config = text_config_of(model_id_or_path, model_types) if ours else None
            if text_config is not None:
                return policy.default_int4_config(text_config)
            return original(model_id_or_path, weight_format, quant_mode)

        return get_default_quantization_config

    def make_build_from_quantization_config(original):
        def build_from_quantization_config(self, config):
            texts = policy.config_value(config, "dataset")
            language = getattr(self.model, "language_model", None)
            ours = isinstance(texts, list) and language is not None and is_plugin_ir(language.model)
            if not ours:  # optimum-intel's own datasets (for this layout: images from the hub)
                return original(self, config)
            return vision_language_calibration(self.model, texts, policy.config_value(config, "tokenizer"))

        return build_from_quantization_config

    def make_weight_only_quantization(original):
        def _weight_only_quantization(model, quantization_config, *args, **kwargs):
            if not is_plugin_ir(model):
                return original(model, quantization_config, *args, **kwargs)
            data = args[0] if args else kwargs.get("calibration_dataset")
            if policy.config_value(quantization_config, "dataset") is not None and data is None:
                # A part without calibration data (the vision-language layout's MTP head, whose
                # inputs are the language model's hidden states): the data-free policy.
                quantization_config = policy.data_free(quantization_config)
            advance("compress")
            # The IR's weights are read through its file mapping: keep read pages out of RSS; the
            # compressed ones go to the export's scratch space as they are made.
            with released_file_pages(), compressed_constants_in_scratch():
                mode = embedding_mode(quantization_config)
                # Before NNCF, which would hold each whole vocabulary table in f32 several times.
                tables_compressed = mode is not None and compress_vocabulary_tables(model, mode)
                text_config = marked_policy_config(model)
                if text_config is not None:
                    quantization_config = policy.with_policy(quantization_config, text_config)
                quantization_config = scoped_to(model, policy.with_never_compressed(quantization_config))
                if tables_compressed and policy.config_value(quantization_config, "bits") == 4:
                    quantization_config = with_all_layers(quantization_config)
                compressed = original(model, quantization_config, *args, **kwargs)
                compress_int8(compressed, policy.int8_patterns(quantization_config))
            advance("save compressed")  # what optimum-intel does next
            return compressed

        return _weight_only_quantization

    def make_quantize_ovbasemodel(original):
        def _quantize_ovbasemodel(self, ov_config, save_directory=None, *args, **kwargs):
            with in_scratch_space(self.model, save_directory):
                return original(self, ov_config, save_directory, *args, **kwargs)

        return _quantize_ovbasemodel

    wrap(ov_command, "prepare_wc_config", make_prepare_wc_config)
    wrap(ov_configuration, "get_default_quantization_config", make_get_default_quantization_config)
    wrap(ov_modeling_base, "get_default_quantization_config", make_get_default_quantization_config)
    wrap(ov_quantization, "_weight_only_quantization", make_weight_only_quantization)
    wrap(ov_quantization.OVQuantizer, "_quantize_ovbasemodel", make_quantize_ovbasemodel)
    wrap(
        ov_quantization.OVCalibrationDatasetBuilder,
        "build_from_quantization_config",
        make_build_from_quantization_config,
    )
