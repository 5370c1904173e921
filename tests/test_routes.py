"""The plugin's IR marks and compression policy on every route into an export or a compression.

Routes: ``--disable-stateful`` (CLI) and ``stateful=False`` (Python), ``from_pretrained(...,
export=True, quantization_config=...)`` for ``OVModelForCausalLM`` and ``OVModelForVisualCausalLM``,
and compressing an exported folder (``OVQuantizer``, ``quantization_config`` on load), every part
of the vision-language layout. A stateless IR also runs and matches transformers in float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import pytest
import torch
from ov_helpers import (
    F32,
    assert_greedy_matches,
    assert_policy,
    hf_float32,
    hf_logits,
    policy_roles,
    relative_max_error,
    run_optimum_cli,
    weight_precisions,
)
from tiny_models import TEXT_CONFIG

import optimum_qwen35
from optimum_qwen35.exporters.plugin_ir import marked_policy_config
from optimum_qwen35.modeling.state_layout import StateLayout
from optimum_qwen35.runtime import is_plugin_ir

VLM_PARTS = (
    "openvino_language_model.xml",
    "openvino_text_embeddings_model.xml",
    "openvino_vision_embeddings_model.xml",
    "openvino_vision_embeddings_merger_model.xml",
    "openvino_vision_embeddings_pos_model.xml",
)


def _read(folder: Path, xml: str = "openvino_model.xml") -> ov.Model:
    return ov.Core().read_model(Path(folder) / xml)


def _assert_marked(model: ov.Model, text_config: dict) -> None:
    assert is_plugin_ir(model), "every IR of a plugin export carries the plugin's mark"
    assert marked_policy_config(model)["intermediate_size"] == text_config["intermediate_size"]


def _assert_stateless(model: ov.Model) -> None:
    assert not model.get_sinks(), "a --disable-stateful IR has no state variables"
    names = {port.get_any_name() for port in model.inputs}
    assert "cache_params.past.conv.0" in names and "beam_idx" not in names
    states = [port for port in [*model.inputs, *model.outputs] if port.get_any_name().startswith("cache_params.")]
    assert {port.get_element_type() for port in states} == {ov.Type.f32}, "state ports are f32 on every route"


def _dtypes_of(precisions: dict, fragment: str) -> set[str]:
    return {dtype for name, (dtype, _) in precisions.items() if fragment in name}


def run_stateless(compiled: ov.CompiledModel, ids: np.ndarray, chunks: list[int], text_config) -> np.ndarray:
    """Feed ``ids [1, L]`` in ``chunks`` through a stateless IR, passing each step's states to the next."""
    layout = StateLayout.from_text_config(text_config)
    past_names, present_names = layout.state_names("past"), layout.state_names("present")
    states = dict(zip(past_names, (np.zeros(s, np.float32) for _, s in layout.state_shapes(1, 0)), strict=True))
    request, position, logits = compiled.create_infer_request(), 0, []
    for chunk in chunks:
        step = {
            "input_ids": ids[:, position : position + chunk],
            "attention_mask": np.ones((1, position + chunk), dtype=np.int64),
            "position_ids": np.arange(position, position + chunk)[None],
            **states,
        }
        result = request.infer(step)
        logits.append(result["logits"].copy())
        states = {past: result[present].copy() for past, present in zip(past_names, present_names, strict=True)}
        position += chunk
    return np.concatenate(logits, axis=1)


# --- stateless exports -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_stateless_int4(text_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("routes") / "stateless-int4"
    result = run_optimum_cli(
        "export", "openvino", "--model", str(text_checkpoint), "--disable-stateful", "--weight-format", "int4",
        "--disable-convert-tokenizer", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def stateless_export(text_checkpoint, tmp_path_factory) -> Path:
    """``OVModelForCausalLM.from_pretrained(checkpoint, export=True, stateful=False)``, saved."""
    from optimum.intel import OVModelForCausalLM

    out = tmp_path_factory.mktemp("routes") / "stateless"
    OVModelForCausalLM.from_pretrained(text_checkpoint, export=True, stateful=False, compile=False).save_pretrained(out)
    return out


def test_cli_disable_stateful_int4_applies_the_policy(cli_stateless_int4):
    model = _read(cli_stateless_int4)
    _assert_stateless(model)
    _assert_marked(model, TEXT_CONFIG)
    assert_policy(policy_roles(weight_precisions(cli_stateless_int4)))


def test_python_stateless_int8_never_compresses_the_moe_shared_expert_gate(moe_text_checkpoint, tmp_path):
    out = optimum_qwen35.export(
        moe_text_checkpoint, tmp_path / "out", stateful=False, weight_format="int8", convert_tokenizer=False
    )
    _assert_stateless(_read(out))
    precisions = weight_precisions(out)
    assert _dtypes_of(precisions, ".mlp.shared_expert_gate/") == {"f32"}, "compressing it breaks >1 CPU stream"
    assert _dtypes_of(precisions, "GroupConvolution") == {"f32"}
    assert _dtypes_of(precisions, ".mlp.experts/") == {"u8"}


def test_stateless_moe_export_keeps_16bit_experts(moe_text_checkpoint, tmp_path):
    from optimum.intel import OVModelForCausalLM

    model = OVModelForCausalLM.from_pretrained(moe_text_checkpoint, export=True, stateful=False, compile=False)
    model.save_pretrained(tmp_path / "out")
    assert _dtypes_of(weight_precisions(tmp_path / "out"), ".mlp.experts/") == {"bf16"}, "the checkpoint's dtype"


def test_from_pretrained_stateless_export_with_int4_gets_the_policy(text_checkpoint, tmp_path):
    from optimum.intel import OVModelForCausalLM

    model = OVModelForCausalLM.from_pretrained(
        text_checkpoint, export=True, stateful=False, quantization_config={"bits": 4}, compile=False
    )
    model.save_pretrained(tmp_path / "out")
    _assert_stateless(_read(tmp_path / "out"))
    assert_policy(policy_roles(weight_precisions(tmp_path / "out")))


def test_stateless_ir_matches_transformers_chunk_by_chunk(stateless_export, text_checkpoint):
    model = _read(stateless_export)
    _assert_stateless(model)
    _assert_marked(model, TEXT_CONFIG)
    hf = hf_float32(text_checkpoint)
    ids = np.random.default_rng(0).integers(2, TEXT_CONFIG["vocab_size"], (1, 12))
    compiled = ov.Core().compile_model(model, "CPU", F32)
    # Chunked feeding continues from the fed states: the truth is one uncached forward (NOTES.md).
    logits = run_stateless(compiled, ids, [7, 1, 3, 1], hf.config)
    assert relative_max_error(logits, hf_logits(hf, ids)) < 1e-4


def test_ovmodel_runs_a_stateless_ir(stateless_export, text_checkpoint):
    from optimum.intel import OVModelForCausalLM

    model = OVModelForCausalLM.from_pretrained(stateless_export, ov_config=F32)
    assert not model.stateful and model.use_cache
    hf = hf_float32(text_checkpoint)
    ids = torch.from_numpy(np.random.default_rng(1).integers(2, TEXT_CONFIG["vocab_size"], (1, 9)))
    assert relative_max_error(model(ids).logits.numpy(), hf_logits(hf, ids.numpy())) < 1e-4
    tokens = model.generate(ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1] :].tolist()
    assert_greedy_matches(hf, ids[0].tolist(), tokens)


# --- compressing an exported folder --------------------------------------------------------------


def test_ovquantizer_on_an_exported_folder_applies_the_policy(text_export, tmp_path):
    from optimum.intel import OVConfig, OVModelForCausalLM, OVQuantizer, OVWeightQuantizationConfig

    model = OVModelForCausalLM.from_pretrained(text_export, compile=False)
    config = OVWeightQuantizationConfig(bits=4)  # no group size: the policy's (NNCF's 128 divides nothing here)
    OVQuantizer.from_pretrained(model).quantize(ov_config=OVConfig(quantization_config=config), save_directory=tmp_path)
    precisions = weight_precisions(tmp_path)
    assert_policy(policy_roles(precisions))
    assert {shape[-1] for dtype, shape in precisions.values() if dtype == "u4"} == {32}
    _assert_marked(_read(tmp_path), TEXT_CONFIG)


def test_quantization_config_on_load_of_an_exported_folder(text_export, tmp_path):
    from optimum.intel import OVModelForCausalLM, OVWeightQuantizationConfig

    # A config object keeps the values it sets (symmetric, group 16), as CLI flags do; the INT8 set stays.
    config = OVWeightQuantizationConfig(bits=4, sym=True, group_size=16)
    OVModelForCausalLM.from_pretrained(text_export, quantization_config=config).save_pretrained(tmp_path / "obj")
    precisions = weight_precisions(tmp_path / "obj")
    assert_policy(policy_roles(precisions), int4="i4")
    assert {shape[-1] for dtype, shape in precisions.values() if dtype == "i4"} == {16}
    # all_layers keeps NNCF's meaning: no INT8 set.
    config = OVWeightQuantizationConfig(bits=4, group_size=16, all_layers=True)
    OVModelForCausalLM.from_pretrained(text_export, quantization_config=config).save_pretrained(tmp_path / "all")
    assert policy_roles(weight_precisions(tmp_path / "all"))["linear_attn"] == {"u4"}


# --- the vision-language layout ------------------------------------------------------------------


def _assert_vision_language_int4(folder: Path) -> None:
    for part in VLM_PARTS:
        _assert_marked(_read(folder, part), TEXT_CONFIG)
    assert_policy(policy_roles(weight_precisions(folder, VLM_PARTS[0])), embedding=False)
    for part in VLM_PARTS[1:]:  # optimum-intel's INT8 for the embeddings and the vision tower
        assert {dtype for dtype, _ in weight_precisions(folder, part).values()} == {"i8"}, part


def test_visual_from_pretrained_export_with_int4_marks_every_part(composite_checkpoint, tmp_path):
    from optimum.intel import OVModelForVisualCausalLM

    model = OVModelForVisualCausalLM.from_pretrained(
        composite_checkpoint, export=True, quantization_config={"bits": 4}, compile=False
    )
    model.save_pretrained(tmp_path / "out")
    _assert_vision_language_int4(tmp_path / "out")


def test_visual_cli_disable_stateful_int4(composite_checkpoint, tmp_path):
    out = tmp_path / "out"
    result = run_optimum_cli(
        "export", "openvino", "--model", str(composite_checkpoint), "--task", "image-text-to-text",
        "--disable-stateful", "--weight-format", "int4", "--disable-convert-tokenizer", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_stateless(_read(out, VLM_PARTS[0]))
    _assert_vision_language_int4(out)
