"""Weight compression: the Qwen3.5 policy through optimum-cli and Python, flags, presets, errors."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import openvino as ov
import pytest
from ov_helpers import (
    assert_policy,
    compile_ir,
    policy_roles,
    run_chunks,
    run_optimum_cli,
    runtime_layer_types,
    weight_precisions,
)
from tiny_models import MOE_TEXT_CONFIG, TEXT_CONFIG

import optimum_qwen35
from optimum_qwen35.compression.calibration import calibration_texts
from optimum_qwen35.errors import CalibrationDataError, CompressionConfigError


def _qkv_split_ranks(export_dir) -> list[int]:
    """Input ranks of the Gated DeltaNet q/k/v VariadicSplits in the IR (one per linear layer)."""
    config = json.loads((export_dir / "config.json").read_text())
    config = config.get("text_config", config)
    key_dim = config["linear_num_key_heads"] * config["linear_key_head_dim"]
    lengths = [key_dim, key_dim, config["linear_num_value_heads"] * config["linear_value_head_dim"]]
    ranks = []
    for op in ov.Core().read_model(export_dir / "openvino_model.xml").get_ordered_ops():
        if op.get_type_name() == "VariadicSplit":
            split = op.input_value(2).get_node()
            if split.get_type_name() == "Constant" and list(split.get_data()) == lengths:
                ranks.append(op.get_input_partial_shape(0).rank.get_length())
    assert len(ranks) == config["layer_types"].count("linear_attention"), "a q/k/v split per linear layer"
    return ranks


def _assert_runs(export_dir, vocab: int) -> None:
    logits = run_chunks(compile_ir(export_dir), np.arange(1, 9)[None], [5, 1, 1, 1])
    assert logits.shape == (1, 8, vocab) and np.isfinite(logits).all()


def _assert_stream_invariant(export_dir) -> None:
    """Logits with two CPU streams (throughput hint, OVMS) equal those with one.

    OpenVINO 2026.4 computed a compressed MoE IR wrongly with two streams while its shared
    expert gate was compressed (policy.MOE_SHARED_EXPERT_GATE).
    """
    ids = np.random.default_rng(0).integers(1, 100, (1, 64))
    one, two = (run_chunks(compile_ir(export_dir, NUM_STREAMS=n), ids, [64]) for n in (1, 2))
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-4, err_msg="logits depend on NUM_STREAMS")


@pytest.fixture(scope="module")
def cli_int4(text_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("int4") / "out"
    result = run_optimum_cli("export", "openvino", "--model", str(text_checkpoint), "--weight-format", "int4", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    (out.parent / "stderr.txt").write_text(result.stderr)
    return out


def test_cli_int4_step_bar_covers_compression(cli_int4):
    stderr = (cli_int4.parent / "stderr.txt").read_text()
    steps = ["loading weights", "tracing", "saving the IR", "compressing weights", "saving the compressed IR"]
    positions = [stderr.find(f"Qwen3.5 export: {step}") for step in steps]
    assert -1 not in positions and positions == sorted(positions), dict(zip(steps, positions, strict=True))
    # The save's summary line may follow the last step before "done".
    last = r"Qwen3.5 export: saving the compressed IR: step 8/8\n(Qwen3.5 export: wrote [\d.]+ [kMG]B in [\d.]+ s\n)?"
    assert re.search(last + r"Qwen3.5 export: done \[", stderr), stderr[-600:]


def test_cli_int4_applies_the_qwen35_policy(cli_int4):
    assert_policy(policy_roles(weight_precisions(cli_int4)))
    for name, (dtype, shape) in weight_precisions(cli_int4).items():
        if dtype == "u4":  # the policy's group size, 32 (divides hidden_size 64 and intermediate_size 128)
            assert shape[-1] == 32, f"{name}: INT4 group size should be 32, got weight shape {shape}"
        if dtype in ("u4", "u8"):  # only real projection / embedding weights reach NNCF
            assert name.startswith("__module.model.") or "lm_head" in name or name.startswith("aten::to"), name
            # Graph constants such as the rotary inv_freq or one-channel MatMuls never do.
            assert "rotary" not in name and np.prod(shape) >= TEXT_CONFIG["hidden_size"], f"{name}: {shape}"
    assert set(_qkv_split_ranks(cli_int4)) == {4}, "compression must not introduce rank-3 q/k/v splits"
    _assert_runs(cli_int4, TEXT_CONFIG["vocab_size"])


def test_cli_int4_on_a_dense_composite_checkpoint(composite_checkpoint, tmp_path):
    out = tmp_path / "out"
    result = run_optimum_cli(
        "export", "openvino", "--model", str(composite_checkpoint), "--weight-format", "int4", str(out)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert_policy(policy_roles(weight_precisions(out)))
    assert set(_qkv_split_ranks(out)) == {4}
    _assert_runs(out, TEXT_CONFIG["vocab_size"])


def test_cli_int4_on_a_composite_moe_checkpoint(moe_composite_checkpoint, tmp_path):
    out = tmp_path / "out"
    result = run_optimum_cli(
        "export", "openvino", "--model", str(moe_composite_checkpoint), "--weight-format", "int4", str(out)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    precisions = weight_precisions(out)
    assert_policy(policy_roles(precisions))  # down_proj: the shared expert's, as a dense model's
    routers = {dtype for name, (dtype, _) in precisions.items() if ".mlp.gate/" in name}
    assert routers == {"u8"}, "router weights must not be INT4"
    shared_gates = {dtype for name, (dtype, _) in precisions.items() if ".mlp.shared_expert_gate/" in name}
    assert shared_gates == {"f32"}, "the shared expert gate is never compressed (and traced in f32)"
    experts = [(dtype, shape) for name, (dtype, shape) in precisions.items() if ".mlp.experts/" in name]
    assert len(experts) == 3 * MOE_TEXT_CONFIG["num_hidden_layers"]
    # INT4 group-wise on the 3-D expert weights [experts, out, groups, group size]; group size 16:
    # the policy's 32 does not divide moe_intermediate_size 48.
    assert {dtype for dtype, _ in experts} == {"u4"}
    experts_count = MOE_TEXT_CONFIG["num_experts"]
    assert all(len(shape) == 4 and shape[0] == experts_count and shape[-1] == 16 for _, shape in experts)
    assert "GatherMatmul" in runtime_layer_types(compile_ir(out)), "compressed experts must stay fused"
    _assert_runs(out, MOE_TEXT_CONFIG["vocab_size"])
    _assert_stream_invariant(out)


@pytest.mark.parametrize("kind", ["text", "composite", "moe_composite"])
def test_cli_int8_on_text_and_composite_checkpoints(kind, request, tmp_path):
    out = tmp_path / "out"
    checkpoint = request.getfixturevalue(f"{kind}_checkpoint")
    result = run_optimum_cli("export", "openvino", "--model", str(checkpoint), "--weight-format", "int8", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    groups = policy_roles(weight_precisions(out))
    assert groups.pop("conv") == {"f32"}, "the depthwise conv1d stays uncompressed in INT8 too"
    assert all(dtypes == {"u8"} for dtypes in groups.values()), groups
    _assert_runs(out, TEXT_CONFIG["vocab_size"])  # the MoE config shares it
    _assert_stream_invariant(out)


def test_flags_override_the_policy(text_checkpoint, tmp_path):
    out = optimum_qwen35.export(
        text_checkpoint, tmp_path / "a", weight_format="int4", sym=True, group_size=16, convert_tokenizer=False
    )
    precisions = weight_precisions(out)
    assert_policy(policy_roles(precisions), int4="i4")
    assert all(shape[-1] == 16 for dtype, shape in precisions.values() if dtype == "i4")

    out = optimum_qwen35.export(
        text_checkpoint, tmp_path / "b", weight_format="int4", all_layers=True, convert_tokenizer=False
    )
    groups = policy_roles(weight_precisions(out))
    assert groups.pop("conv") == {"f32"}
    assert all(dtypes == {"u4"} for dtypes in groups.values()), f"--all-layers puts every projection in INT4: {groups}"


def test_npu_preset_is_channelwise_symmetric_without_rank3_splits(text_checkpoint, tmp_path):
    out = optimum_qwen35.export(
        text_checkpoint, tmp_path / "npu", weight_format="int4", sym=True, group_size=-1, convert_tokenizer=False
    )
    precisions = weight_precisions(out)
    channelwise = [shape for dtype, shape in precisions.values() if dtype == "i4"]
    assert channelwise and all(len(shape) == 2 for shape in channelwise), "group_size -1 means one scale per row"
    assert_policy(policy_roles(precisions), int4="i4")
    assert set(_qkv_split_ranks(out)) == {4}
    _assert_runs(out, TEXT_CONFIG["vocab_size"])


def test_ratio_and_backup_precision_keep_their_meaning(text_checkpoint, tmp_path):
    # --ratio 0.5: part of the INT4 candidates fall back to the backup precision (INT8 asym by default).
    out = optimum_qwen35.export(
        text_checkpoint, tmp_path / "ratio", weight_format="int4", ratio=0.5, convert_tokenizer=False
    )
    assert policy_roles(weight_precisions(out))["projections"] == {"u4", "u8"}
    # --backup-precision int8_sym: the fallback layers are symmetric INT8 instead.
    out = optimum_qwen35.export(
        text_checkpoint, tmp_path / "backup", weight_format="int4", ratio=0.5, backup_precision="int8_sym",
        convert_tokenizer=False,
    )  # fmt: skip
    assert policy_roles(weight_precisions(out))["projections"] == {"u4", "i8"}


def test_awq_without_data_is_data_free(text_checkpoint, tmp_path):
    # NNCF's data-free AWQ: allowed without --dataset (docs/compression.md), the policy unchanged.
    out = optimum_qwen35.export(
        text_checkpoint, tmp_path / "awq", weight_format="int4", awq=True, convert_tokenizer=False
    )
    assert_policy(policy_roles(weight_precisions(out)))
    _assert_runs(out, TEXT_CONFIG["vocab_size"])


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"group_size": 48}, CompressionConfigError, r"--group-size 48 does not divide.*\(64\).*Fix: use a group size"),
        ({"ratio": 1.5}, CompressionConfigError, r"--ratio 1.5 is outside \[0, 1\]"),
        ({"scale_estimation": True}, CompressionConfigError, r"--scale-estimation needs calibration data.*--dataset"),
        ({"gptq": True}, CompressionConfigError, r"--gptq needs calibration data"),
        ({"dataset": "/no/such/calibration.txt", "awq": True}, CalibrationDataError, "does not exist"),
    ],
)
def test_bad_compression_options_fail_before_any_output(text_checkpoint, tmp_path, options, error, message):
    with pytest.raises(error, match=message):
        optimum_qwen35.export(text_checkpoint, tmp_path / "out", weight_format="int4", **options)
    assert list(tmp_path.iterdir()) == []


def test_empty_dataset_file_and_missing_tokenizer_are_refused(text_checkpoint, reference_checkpoint, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n")
    with pytest.raises(CalibrationDataError, match="holds no text"):
        optimum_qwen35.export(
            reference_checkpoint, tmp_path / "out", weight_format="int4", dataset=str(empty), awq=True
        )
    with pytest.raises(CalibrationDataError, match="has no tokenizer files"):
        optimum_qwen35.export(text_checkpoint, tmp_path / "out", weight_format="int4", dataset="builtin", awq=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]


def test_cli_reports_bad_options_and_writes_nothing(text_checkpoint, tmp_path):
    result = run_optimum_cli(
        "export", "openvino", "--model", str(text_checkpoint), "--weight-format", "int4", "--group-size", "48",
        str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode != 0 and "--group-size 48 does not divide" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_int4_refuses_non_empty_output_then_replaces_it(text_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    args = ("export", "openvino", "--model", str(text_checkpoint), "--weight-format", "int4", str(out))
    refused = run_optimum_cli(*args)
    assert refused.returncode != 0 and "is not empty" in refused.stderr
    assert [p.name for p in out.iterdir()] == ["stale.txt"]
    replaced = run_optimum_cli(*args, env={**os.environ, "OPTIMUM_QWEN35_OVERWRITE": "1"})
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert (out / "openvino_model.xml").is_file() and not (out / "stale.txt").exists()


def _calibration_file(folder) -> os.PathLike:
    """A small Python-like calibration text file (the reference models were trained on Python)."""
    calibration = folder / "calibration.txt"
    calibration.write_text("".join(f"def f{i}(x):\n    return x * {i} + len(str(x))\n\n" for i in range(400)))
    return calibration


@pytest.mark.parametrize(
    "recipe",
    [
        {"awq": True, "scale_estimation": True, "dataset": "file"},
        {"gptq": True, "dataset": "file"},
        {"awq": True, "dataset": "builtin"},
    ],
    ids=["awq-scale-estimation-file", "gptq-file", "awq-builtin"],
)
def test_data_aware_compression_on_the_dense_reference(reference_checkpoint, tmp_path, recipe):
    dataset = str(_calibration_file(tmp_path)) if recipe["dataset"] == "file" else "builtin"
    out = optimum_qwen35.export(
        reference_checkpoint,
        tmp_path / "out",
        weight_format="int4",
        **{**recipe, "dataset": dataset},
        num_samples=8,
        convert_tokenizer=False,
    )
    assert_policy(policy_roles(weight_precisions(out)))
    config = json.loads((out / "config.json").read_text())
    _assert_runs(out, config.get("text_config", config)["vocab_size"])


def test_calibration_texts_are_spread_over_the_file(tmp_path):
    source = tmp_path / "calibration.txt"
    source.write_text("".join(f"line {i:05d} " + "x" * 90 + "\n" for i in range(5000)))
    samples = calibration_texts(source, num_samples=10)
    assert len(samples) == 10 and all(1000 <= len(s) <= 1200 for s in samples)
    firsts = [int(s.split()[1]) for s in samples]
    assert firsts[0] == 0 and firsts[-1] > 4000 and firsts == sorted(firsts)
    builtin = calibration_texts("builtin", num_samples=20)
    assert len(builtin) == 20 and len(set(builtin)) == 20


def test_from_pretrained_bits4_gets_the_policy(text_checkpoint, tmp_path):
    from optimum.intel import OVModelForCausalLM

    model = OVModelForCausalLM.from_pretrained(text_checkpoint, export=True, quantization_config={"bits": 4})
    model.save_pretrained(tmp_path / "out")
    assert_policy(policy_roles(weight_precisions(tmp_path / "out")))


def test_policy_int8_set_names_every_down_proj_and_router_but_not_the_experts():
    from optimum_qwen35.compression import policy

    patterns = policy.int8_patterns_for({"num_experts": 8})
    down = "__module.model.layers.{}.mlp.down_proj/aten::linear/MatMul"
    shared = "__module.model.language_model.layers.{}.mlp.shared_expert.down_proj/aten::linear/MatMul"

    def int8(name: str) -> bool:
        return any(re.match(p, name) for p in patterns)

    assert all(int8(down.format(i)) and int8(shared.format(i)) for i in range(64))
    assert int8("__module.model.layers.5.self_attn.o_proj/aten::linear/MatMul")
    assert int8("__module.model.layers.5.linear_attn.in_proj_qkv/aten::linear/MatMul")
    assert int8("__module.model.layers.5.mlp.gate/aten::linear/MatMul")  # the router
    assert not int8("__module.model.layers.5.mlp.shared_expert_gate/aten::linear/MatMul")
    assert not int8("__module.model.layers.5.mlp.up_proj/aten::linear/MatMul")
    assert not int8("__module.model.layers.5.mlp.experts/aten::matmul/MatMul")  # routed experts: INT4
    # A dense model has no router pattern (NNCF refuses patterns that match nothing).
    assert policy.MOE_ROUTERS not in policy.int8_patterns_for({"intermediate_size": 96})
    # The second pass recognises the policy's patterns, and nothing else.
    assert all(policy.is_int8_pattern(p) for p in patterns)
    assert not policy.is_int8_pattern(r".*\.mlp\.up_proj/.*")
    assert not policy.is_int8_pattern(policy.MOE_SHARED_EXPERT_GATE)


def test_gptq_on_moe_switches_to_symmetric_int4():
    from optimum_qwen35.compression.policy import resolve_weight_config

    moe = dict(MOE_TEXT_CONFIG)
    user = {"gptq": True, "dataset": "builtin", "num_samples": 2}
    assert resolve_weight_config({"bits": 4, "sym": False}, moe, user)["sym"] is True
    # Dense models keep the policy's asymmetric INT4 under GPTQ.
    assert resolve_weight_config({"bits": 4, "sym": False}, dict(TEXT_CONFIG), user)["sym"] is False


def test_data_aware_gptq_on_the_trained_moe_reference(moe_reference_checkpoint, tmp_path):
    calibration = _calibration_file(tmp_path)
    out = optimum_qwen35.export(
        moe_reference_checkpoint,
        tmp_path / "out",
        weight_format="int4",
        dataset=str(calibration),
        gptq=True,
        num_samples=4,
        convert_tokenizer=False,
    )
    precisions = weight_precisions(out)
    assert {dtype for name, (dtype, _) in precisions.items() if ".mlp.experts/" in name} == {"i4"}
    assert policy_roles(precisions)["linear_attn"] == {"u8"}
    _assert_runs(out, json.loads((out / "config.json").read_text())["vocab_size"])


def test_chunked_embedding_compression_equals_nncf_on_the_whole_table(text_export, monkeypatch):
    import nncf
    import openvino as ov

    from optimum_qwen35.compression import embedding

    def _source(output):
        while output.get_node().get_type_name() == "Convert":
            output = output.get_node().input_value(0)
        return output

    def constants(output) -> list[np.ndarray]:
        return [constant.get_data().copy() for constant in embedding._constants(output)]

    mode = nncf.CompressWeightsMode.INT8_ASYM
    model = ov.Core().read_model(text_export / "openvino_model.xml")
    table = embedding.embedding_constant(model)
    vocab, hidden = TEXT_CONFIG["vocab_size"], TEXT_CONFIG["hidden_size"]
    assert list(table.get_output_shape(0)) == [vocab, hidden]
    whole = constants(embedding._compress_chunk(table, slice(0, vocab), mode))  # NNCF on the whole table at once
    monkeypatch.setattr(embedding, "CHUNK_BYTES", 100 * 4 * hidden)  # 100 rows per chunk, the last one short
    assert embedding.compress_vocabulary_tables(model, mode)
    gather = next(  # the embedding lookup: the Gather whose indices are input_ids (through Converts)
        op
        for op in model.get_ordered_ops()
        if op.get_type_name() == "Gather" and "input_ids" in _source(op.input_value(1)).get_names()
    )
    chunked = constants(gather.input_value(0))
    assert [array.dtype for array in chunked] == [np.uint8, np.uint8, np.float16]  # weights, zero point, scale
    for expected, actual in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(actual, expected)
    # The tied lm_head (the MatMul producing logits) reads the same decompressed table.
    lm_head = model.output("logits").get_node().input_value(0).get_node()
    while lm_head.get_type_name() == "Convert":
        lm_head = lm_head.input_value(0).get_node()
    assert lm_head.input_value(1) == gather.input_value(0)
