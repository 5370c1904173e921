"""``optimum_qwen35.export``: the plugin's own Python entry point.

It runs exactly what ``optimum-cli export openvino`` runs, with the same flags, so a Python
export and a CLI export of the same checkpoint give the same folder.
"""

from __future__ import annotations

import os
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from .checkpoint import qwen35_checkpoint_config, validate_local_checkpoint
from .errors import CompressionConfigError, NotQwen35Error
from .exporters.output_dir import allow_overwrite, check_output
from .registry import TEXT_MODEL_TYPES, register
from .versions import check_environment

WEIGHT_FORMATS = ("fp32", "fp16", "int8", "int4")
#: ``task`` values: the text LLM (default) and the vision-language layout.
TASKS = ("text-generation-with-past", "image-text-to-text")


def _cli_args(
    model: str,
    output: Path,
    task: str,
    weight_format: str | None,
    convert_tokenizer: bool,
    stateful: bool,
    thinking: bool | None,
    verbose: bool,
    flags: dict[str, Any],
):
    from optimum.commands.export.openvino import OVExportCommand

    argv = ["--model", model, str(output), "--task", task]
    if thinking is not None:
        argv += ["--thinking", "on" if thinking else "off"]
    if weight_format is not None:
        argv += ["--weight-format", weight_format]
    if not convert_tokenizer:
        argv.append("--disable-convert-tokenizer")
    if verbose:
        argv.append("--verbose")
    if not stateful:
        argv.append("--disable-stateful")
    for name, value in flags.items():
        if value is None or value is False:
            continue
        argv.append("--" + name.replace("_", "-"))
        if value is not True:
            argv.append(str(value))
    parser = ArgumentParser(prog="optimum_qwen35.export", exit_on_error=False)
    OVExportCommand.parse_args(parser)  # optimum-intel's flags and the plugin's (--thinking)
    try:
        return parser, parser.parse_args(argv)
    except SystemExit:
        raise CompressionConfigError(f"Invalid export option in {flags}. Fix: use optimum-cli flag names.") from None


def export(
    model: str | os.PathLike,
    output: str | os.PathLike,
    *,
    task: str = "text-generation-with-past",
    weight_format: str | None = None,
    overwrite: bool = False,
    convert_tokenizer: bool = True,
    stateful: bool = True,
    thinking: bool | None = None,
    verbose: bool = False,
    **compression: Any,
) -> Path:
    """Export a Qwen3.5 checkpoint (text or composite, local folder or hub id) to OpenVINO.

    With the default ``task``, an OpenVINO text LLM (``LLMPipeline``, ``OVModelForCausalLM``): the
    output folder holds ``openvino_model.xml/.bin`` (stateful; inputs ``input_ids [B, T]``,
    ``attention_mask [B, P+T]``, ``position_ids [B, T]``, ``beam_idx [B]``; output
    ``logits [B, T, vocab]``), ``config.json``, ``generation_config.json`` and, when the
    checkpoint has a tokenizer, ``openvino_tokenizer.xml``/``openvino_detokenizer.xml``.

    With ``task="image-text-to-text"`` (a composite checkpoint), the vision-language layout
    (``VLMPipeline``, OVMS's VLM servable, MTP speculative decoding, ``OVModelForVisualCausalLM``):
    ``openvino_language_model.xml``, ``openvino_text_embeddings_model.xml``, the three vision
    models and, when the checkpoint has an MTP head, ``openvino_mtp_model.xml`` (see
    ``docs/vision-language.md``).

    Args:
        model: checkpoint folder or hub id.
        task: ``"text-generation-with-past"`` or ``"image-text-to-text"``.
        output: folder to create. Must be absent or empty unless ``overwrite=True``.
        weight_format: ``None`` (weights as in the checkpoint), ``"fp32"``, ``"fp16"``, ``"int8"``
            or ``"int4"`` (the Qwen3.5 policy of ``docs/compression.md`` unless flags override it).
        overwrite: replace a non-empty ``output``.
        convert_tokenizer: also write the openvino-tokenizers IRs.
        stateful: ``False`` exports states as ``cache_params.past.*`` inputs and
            ``cache_params.present.*`` outputs (``optimum-cli --disable-stateful``) instead of hiding
            them inside the model; ``LLMPipeline`` needs the stateful IR.
        thinking: default reasoning mode of the exported chat template for requests that do not set
            ``enable_thinking`` (``optimum-cli --thinking on|off``); None keeps the checkpoint's.
        verbose: show every message and progress bar of the libraries underneath (``optimum-cli
            --verbose``); by default those the plugin knows to be irrelevant are hidden while the
            export runs, and the export's steps are shown one line each (a redrawn bar on a terminal).
        **compression: ``optimum-cli export openvino`` compression flags, with underscores:
            ``group_size=128``, ``sym=True``, ``ratio=0.8``, ``all_layers=True``, ``awq=True``,
            ``scale_estimation=True``, ``gptq=True``, ``dataset="calib.txt"`` (or ``"builtin"``),
            ``num_samples=64``, ``backup_precision="int8_sym"``, ``group_size_fallback="adjust"``.

    Raises:
        NotQwen35Error, CheckpointError, UnsupportedEnvironmentError, OutputDirectoryError,
        DiskFullError, CompressionConfigError, CalibrationDataError, ChatTemplateError.
    """
    register()
    check_environment()
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not one of {TASKS}. Fix: pass one of them (or leave the default).")
    if weight_format is not None and weight_format not in WEIGHT_FORMATS:
        raise CompressionConfigError(f"weight_format={weight_format!r} is not one of {WEIGHT_FORMATS}.")
    if compression and weight_format not in ("int4", "int8"):
        raise CompressionConfigError(
            f"Compression options {sorted(compression)} need weight_format='int4' or 'int8'. Fix: add weight_format."
        )
    path = Path(str(model))
    if path.is_dir():
        validate_local_checkpoint(path, set(TEXT_MODEL_TYPES))
    else:
        if qwen35_checkpoint_config(model, set(TEXT_MODEL_TYPES)) is None:
            raise NotQwen35Error(
                f"{model} is not a Qwen3.5 checkpoint (or its config cannot be read). "
                "Fix: pass a Qwen3.5 checkpoint folder or hub id."
            )
    output = check_output(output, overwrite)
    parser, args = _cli_args(
        str(model), output, task, weight_format, convert_tokenizer, stateful, thinking, verbose, compression
    )

    from optimum.commands.export.openvino import OVExportCommand

    with allow_overwrite(overwrite):
        OVExportCommand(None, args=args, from_defaults_factory=True, parser=parser).run()
    return output
