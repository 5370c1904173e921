"""The Qwen3.5 weight-compression policy: what each weight becomes under ``--weight-format``.

Chosen on the Pareto front of accuracy, size and decode time, measured on the whole held-out file
of both trained references with ``benchmarks/compression_sweep.py`` (accuracy, IR size on the
0.8B shape) and ``benchmarks/int4_policy_decode.py`` (decode time); numbers in
``docs/compression.md``. Under ``--weight-format int4``:

* INT8 (asymmetric, per output channel), compressed by a second NNCF pass (:mod:`.mixed_precision`):

  * the Gated DeltaNet projections (``linear_attn.in_proj_*``, ``linear_attn.out_proj``): the most
    sensitive weights; INT4 there turns large checkpoints into garbage (openvino.genai#4467,
    nncf#4217);
  * full attention ``self_attn.q/k/v/o_proj``: a quarter of the layers, and the cheapest accuracy
    per byte after the group size;
  * ``mlp.down_proj`` (MoE: the shared expert's; the routed experts stay INT4) of every decoder
    layer: with it in INT4 except in the first and last layer, the policy's upper bound under an
    AMX CPU's default bf16 inference was +0.602 %, over the +0.60 % target; every layer's
    ``down_proj`` INT8 is the cheapest of the measured ways back under it per byte, and a rule
    that does not depend on which layers of a small reference happen to be sensitive;
  * the MoE router ``mlp.gate``.

* Embeddings and ``lm_head``: NNCF's backup precision (INT8 asymmetric per row), NNCF's own rule
  for the first and last layer when ``--all-layers`` is not given.
* Everything else (MLP ``gate/up_proj``, the MoE routed experts and the shared expert's
  ``gate/up_proj``): INT4 asymmetric in groups of 32 input channels (the first of
  :data:`INT4_GROUP_SIZES` dividing every INT4 weight's input channels; 32 on every public shape).
* Never compressed, whatever the weight format: the depthwise conv1d (an op type NNCF would
  otherwise give INT8) and the MoE shared expert's one-row gate (:data:`NEVER_COMPRESSED_PATTERNS`);
  ``A_log``, ``dt_bias``, norms and the rotary frequencies are not weight MatMuls/Gathers in our graph.

Every choice yields to the user's flags: ``--group-size``, ``--sym``, ``--ratio``,
``--backup-precision`` replace the corresponding value, and ``--all-layers`` drops the INT8
exceptions (every projection INT4, as NNCF would do).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from ..errors import CompressionConfigError
from .calibration import BUILTIN, calibration_texts, is_text_source

logger = logging.getLogger(__name__)

#: Node names of the Gated DeltaNet projections in the plugin's IR
#: (``__module.model.layers.<i>.linear_attn.<name>/ov_ext::linear/MatMul``).
LINEAR_ATTENTION_PROJECTIONS = r".*\.linear_attn\.(?:in_proj_qkv|in_proj_z|in_proj_a|in_proj_b|out_proj)/.*"

#: Op types whose weights stay as exported: the Gated DeltaNet depthwise conv1d (NNCF would
#: otherwise give it INT8 backup precision; it is tiny and feeds the recurrence directly).
NEVER_COMPRESSED_TYPES = ("GroupConvolution",)

#: Full attention projections (``self_attn.q_proj`` also carries the output gate).
ATTENTION_PROJECTIONS = r".*\.self_attn\.(?:q_proj|k_proj|v_proj|o_proj)/.*"

#: MLP output projections: a dense model's ``mlp.down_proj``, or an MoE model's shared expert
#: ``mlp.shared_expert.down_proj`` (the routed experts are one fused ``mlp.experts`` weight and stay INT4).
MLP_DOWN_PROJECTIONS = r".*\.mlp\.(?:shared_expert\.)?down_proj/.*"

#: The MoE router ``mlp.gate``: small, and a routing decision flipped by INT4 noise changes which
#: experts run at all.
MOE_ROUTERS = r".*\.mlp\.gate/.*"

#: The MoE shared expert's sigmoid gate ``mlp.shared_expert_gate`` (weight ``[1, hidden]``). With
#: that one-row weight compressed (INT8 or INT4 alike), OpenVINO 2026.4's CPU plugin computes the
#: whole model wrongly once it is compiled with more than one stream (throughput hint, OVMS): on the
#: trained MoE reference the logits move by up to 10 with ``NUM_STREAMS=2`` and are bit-identical
#: with 1, and perplexity reads +10 % instead of +0.7 % (docs/compression.md). With that weight
#: alone uncompressed the IR is stream-invariant. It holds ``hidden`` values per layer (2048 on
#: 35B-A3B): nothing to save.
MOE_SHARED_EXPERT_GATE = r".*\.mlp\.shared_expert_gate/.*"

#: Weights no compression pass touches, by node name (NNCF ignored-scope patterns).
NEVER_COMPRESSED_PATTERNS = (MOE_SHARED_EXPERT_GATE,)

#: The INT8 set of every model (MoE models add :data:`MOE_ROUTERS`).
_INT8_PATTERNS = (LINEAR_ATTENTION_PROJECTIONS, ATTENTION_PROJECTIONS, MLP_DOWN_PROJECTIONS)


def is_int8_pattern(pattern: str) -> bool:
    """True for a pattern of the policy's INT8 set (what the second pass compresses)."""
    return pattern in _INT8_PATTERNS or pattern == MOE_ROUTERS


def int8_patterns_for(text_config: dict[str, Any]) -> list[str]:
    """The INT8 patterns that apply to this model (NNCF refuses ignored-scope patterns that match nothing)."""
    return [*_INT8_PATTERNS, MOE_ROUTERS] if text_config.get("num_experts") else list(_INT8_PATTERNS)


#: The text-config values the policy is derived from: experts and the input channels of every
#: weight kind (:func:`int8_patterns_for`, :func:`int4_input_channels`).
POLICY_CONFIG_KEYS = (
    "num_experts",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "head_dim",
    "linear_num_value_heads",
    "linear_value_head_dim",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
)

#: Preferred INT4 group sizes, best first (see docs/compression.md for the measurement).
INT4_GROUP_SIZES = (32, 16)
INT4_SYMMETRIC = False

#: NNCF algorithms that need calibration data (AWQ alone can run data-free).
DATA_AWARE_FLAGS = ("scale_estimation", "gptq", "lora_correction")


def default_int4_config(text_config: dict[str, Any]) -> dict[str, Any]:
    """optimum-intel weight-quantization config for ``--weight-format int4`` with no other flag."""
    return {
        "bits": 4,
        "sym": INT4_SYMMETRIC,
        "group_size": policy_group_size(text_config, all_layers=False),
        "ratio": 1.0,
        "all_layers": None,
        "ignored_scope": {"patterns": int8_patterns_for(text_config)},
    }


def int4_input_channels(text_config: dict[str, Any]) -> dict[str, int]:
    """Input-channel count of every kind of INT4-eligible weight MatMul, by projection name.

    A group size must divide each of these (NNCF groups along the input channels).
    """
    channels = {
        "q/k/v, gate/up, linear_attn.in_proj_*": text_config.get("hidden_size"),
        "mlp.down_proj": text_config.get("intermediate_size"),
        "self_attn.o_proj": text_config.get("num_attention_heads", 0) * text_config.get("head_dim", 0),
        "linear_attn.out_proj": text_config.get("linear_num_value_heads", 0)
        * text_config.get("linear_value_head_dim", 0),
        "experts.down_proj": text_config.get("moe_intermediate_size"),
        "shared_expert.down_proj": text_config.get("shared_expert_intermediate_size"),
    }
    return {name: int(size) for name, size in channels.items() if size}


def _int4_channels(text_config: dict[str, Any], all_layers: bool) -> dict[str, int]:
    channels = int4_input_channels(text_config)
    if not all_layers:  # INT8 (per-channel) under the policy: no group size applies
        channels.pop("linear_attn.out_proj", None)
        channels.pop("self_attn.o_proj", None)
    return channels


def policy_group_size(text_config: dict[str, Any], all_layers: bool) -> int:
    """The first of :data:`INT4_GROUP_SIZES` dividing every INT4 weight's input channels (-1 if none)."""
    channels = _int4_channels(text_config, all_layers).values()
    return next((g for g in INT4_GROUP_SIZES if all(size % g == 0 for size in channels)), -1)


def _check_group_size(group_size: int, text_config: dict[str, Any], all_layers: bool) -> None:
    if group_size in (None, -1):
        return
    channels = _int4_channels(text_config, all_layers)
    bad = {name: size for name, size in channels.items() if size % group_size}
    if bad:
        divisors = sorted(g for g in (16, 32, 64, 128, 256) if all(size % g == 0 for size in channels.values()))
        layers = ", ".join(f"{name} ({size})" for name, size in bad.items())
        raise CompressionConfigError(
            f"--group-size {group_size} does not divide the input channels of {layers}. "
            f"Fix: use a group size that divides them all ({', '.join(map(str, divisors)) or 'none of 16…256'}), "
            "-1 for per-channel, or --group-size-fallback adjust|ignore."
        )


def resolve_weight_config(config: dict[str, Any], text_config: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """Merge the policy into an optimum-intel weight config built from the user's flags.

    Args:
        config: the dict optimum-intel built (``prepare_wc_config``); modified copy returned.
        text_config: the checkpoint's text config (``config.json`` or its ``text_config``).
        user: the flags the user actually gave (``None`` for absent ones): ``group_size``,
            ``ratio``, ``all_layers``, ``dataset``, ``num_samples``, ``group_size_fallback``,
            ``awq`` and the :data:`DATA_AWARE_FLAGS`.

    Raises:
        CompressionConfigError: ratio outside [0, 1], a group size that does not divide the
            channels, or a data-aware algorithm without calibration data.
        CalibrationDataError: the ``--dataset`` file is missing or empty.
    """
    config = dict(config)
    ratio = user.get("ratio")
    if ratio is not None and not 0.0 <= float(ratio) <= 1.0:
        raise CompressionConfigError(
            f"--ratio {ratio} is outside [0, 1]. Fix: give the fraction of layers to put in INT4, e.g. --ratio 0.8."
        )
    data_aware = [flag for flag in DATA_AWARE_FLAGS if user.get(flag)]
    if data_aware and user.get("dataset") is None:
        raise CompressionConfigError(
            f"--{data_aware[0].replace('_', '-')} needs calibration data. Fix: add --dataset path/to/text.txt "
            f"(any UTF-8 text like the model's inputs) or --dataset {BUILTIN} (built-in offline corpus)."
        )
    dataset = user.get("dataset")
    if dataset is not None and is_text_source(dataset):
        config["dataset"] = calibration_texts(dataset, user.get("num_samples"))
    if config.get("bits") != 4:
        return config
    if user.get("gptq") and text_config.get("num_experts") and not config.get("sym"):
        # NNCF 3.4's GPTQ fails on asymmetric 3-D (expert) weights; symmetric works.
        logger.warning("--gptq on an MoE checkpoint: using symmetric INT4 (NNCF's GPTQ needs it for expert weights).")
        config["sym"] = True
    all_layers = bool(user.get("all_layers"))
    if user.get("group_size") is None:
        config["group_size"] = policy_group_size(text_config, all_layers)
    if user.get("group_size_fallback") is None:
        _check_group_size(config["group_size"], text_config, all_layers)
    if not all_layers:
        scope = dict(config.get("ignored_scope") or {})
        scope["patterns"] = [*scope.get("patterns", []), *int8_patterns_for(text_config)]
        config["ignored_scope"] = scope
    return config


def with_policy(config: Any, text_config: dict[str, Any]) -> Any:
    """A copy of an INT4 weight config (dict or optimum-intel config object) with the policy's INT8 set
    in its ignored scope and, when it names no group size, the policy's group size.

    What ``--weight-format int4`` gets from :func:`resolve_weight_config`, for configs that did not
    come through the CLI or ``quantization_config={"bits": 4}`` (``OVQuantizer`` with an
    ``OVWeightQuantizationConfig(bits=4, ...)``): the values the config sets are kept, as the CLI's
    flags are, and ``all_layers`` drops the INT8 set. Other configs are returned unchanged;
    patterns already present are not repeated.
    """
    if config_value(config, "bits") != 4 or config_value(config, "all_layers"):
        return config
    scope = dict(config_value(config, "ignored_scope") or {})
    present = list(scope.get("patterns") or [])
    scope["patterns"] = present + [p for p in int8_patterns_for(text_config) if p not in present]
    changes = {"ignored_scope": scope}
    if config_value(config, "group_size") is None:
        changes["group_size"] = policy_group_size(text_config, all_layers=False)
    if isinstance(config, dict):
        return config | changes
    config = copy.deepcopy(config)
    for name, value in changes.items():
        setattr(config, name, value)
    return config


def with_never_compressed(config: Any) -> Any:
    """A copy of a weight config (dict or optimum-intel config object) whose ignored scope also holds
    :data:`NEVER_COMPRESSED_TYPES` and :data:`NEVER_COMPRESSED_PATTERNS`.

    Applied to every compression of a plugin IR (``--weight-format int4|int8``, Python
    ``quantization_config``, each part of the vision-language layout), whatever built the config.
    """
    scope = dict(config_value(config, "ignored_scope") or {})
    for key, extra in (("types", NEVER_COMPRESSED_TYPES), ("patterns", NEVER_COMPRESSED_PATTERNS)):
        present = list(scope.get(key) or [])
        scope[key] = present + [item for item in extra if item not in present]
    if isinstance(config, dict):
        return config | {"ignored_scope": scope}
    config = copy.deepcopy(config)
    config.ignored_scope = scope
    return config


def data_free(config: Any) -> Any:
    """A copy of an optimum-intel weight config without calibration data or the algorithms that need it
    (AWQ stays: NNCF runs it data-free)."""
    config = copy.deepcopy(config)
    for name in ("dataset", *DATA_AWARE_FLAGS):
        if isinstance(config, dict):
            config.pop(name, None)
        elif hasattr(config, name):
            setattr(config, name, None if name == "dataset" else False)
    return config


def config_value(config: Any, name: str) -> Any:
    """``name`` of a weight config given as a dict or as an optimum-intel config object (None if absent)."""
    return config.get(name) if isinstance(config, dict) else getattr(config, name, None)


def int8_patterns(config: Any) -> list[str]:
    """The policy patterns in a weight config's ignored scope: weights to put in INT8 afterwards."""
    scope = config_value(config, "ignored_scope")
    if scope is None:
        return []
    return [p for p in config_value(scope, "patterns") or [] if is_int8_pattern(p)]
