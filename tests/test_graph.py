"""Structure of the exported IR: fused GatedDeltaNet, rank-4 q/k/v split, state names and dtypes."""

from __future__ import annotations

import json

import openvino as ov
from ov_helpers import compile_ir, runtime_layer_types
from transformers import AutoConfig

from optimum_qwen35.modeling.state_layout import StateLayout
from optimum_qwen35.runtime import is_plugin_ir


def _read(export_dir):
    return ov.Core().read_model(export_dir / "openvino_model.xml")


def _text_config(export_dir) -> dict:
    config = json.loads((export_dir / "config.json").read_text())
    return config.get("text_config", config)


def test_cpu_runtime_uses_fused_gated_delta_net(composite_export):
    compiled = compile_ir(composite_export)
    types = runtime_layer_types(compiled)
    assert "GatedDeltaNet" in types
    # No unfused recurrence left behind.
    assert "TensorIterator" not in types and "Loop" not in types


def test_qkv_split_is_rank_4(composite_export):
    config = _text_config(composite_export)
    key_dim = config["linear_num_key_heads"] * config["linear_key_head_dim"]
    value_dim = config["linear_num_value_heads"] * config["linear_value_head_dim"]
    qkv_splits = []
    for op in _read(composite_export).get_ordered_ops():
        if op.get_type_name() != "VariadicSplit":
            continue
        lengths = op.input_value(2).get_node()
        if lengths.get_type_name() == "Constant" and list(lengths.get_data()) == [key_dim, key_dim, value_dim]:
            qkv_splits.append(op.get_input_partial_shape(0).rank.get_length())
    assert len(qkv_splits) == config["layer_types"].count("linear_attention")
    assert set(qkv_splits) == {4}


def test_inputs_outputs_and_states(composite_export):
    model = _read(composite_export)
    assert {port.get_any_name() for port in model.inputs} == {"input_ids", "attention_mask", "position_ids", "beam_idx"}
    assert [port.get_any_name() for port in model.outputs] == ["logits"]
    assert model.output("logits").get_element_type() == ov.Type.f32

    layout = StateLayout.from_text_config(AutoConfig.from_pretrained(composite_export).get_text_config())
    variables = {sink.get_variable_id(): sink for sink in model.get_sinks()}
    assert len(variables) == len(layout.state_names("past"))
    for name in layout.state_names("past"):
        matches = [vid for vid in variables if vid.startswith(name) and vid[len(name)].isalpha()]
        assert len(matches) == 1, name
        assert variables[matches[0]].get_input_element_type(0) == ov.Type.f32, name
    assert is_plugin_ir(model)


def test_narrow_gate_projections_are_f32_and_the_rest_stays_16_bit(composite_export):
    # bf16 in_proj_a/in_proj_b crash OpenVINO 2026.4's CPU plugin on AVX2-only CPUs (patcher.py).
    weights = {}
    for op in _read(composite_export).get_ordered_ops():
        name = op.get_friendly_name()
        if op.get_type_name() == "Constant" and name.endswith("weight") and ".linear_attn.in_proj_" in name:
            weights[name.split(".linear_attn.")[1].split(".")[0]] = op.get_element_type()
    assert weights["in_proj_a"] == weights["in_proj_b"] == ov.Type.f32
    assert weights["in_proj_qkv"] == weights["in_proj_z"] == ov.Type.bf16
