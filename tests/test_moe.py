"""Qwen3.5-MoE: exact export through every entry point, with OpenVINO's fused expert MatMuls."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino_genai
import pytest
import torch
from optimum.exporters.openvino import main_export
from optimum.exporters.tasks import TasksManager
from optimum.intel import OVModelForCausalLM
from ov_helpers import (
    F32,
    assert_greedy_matches,
    compile_ir,
    hf_float32,
    hf_logits,
    relative_max_error,
    run_chunks,
    run_optimum_cli,
    weight_precisions,
)
from tiny_models import MOE_TEXT_CONFIG
from transformers import AutoTokenizer

import optimum_qwen35
from optimum_qwen35.exporters.config import Qwen35TextOpenVINOConfig
from optimum_qwen35.runtime import OVQwen35ForCausalLM

# A 32-token prefill, 5 decode steps, then a 6-token chunk (chat turn 2).
CHUNKS = [32, 1, 1, 1, 1, 1, 6]


@pytest.fixture(scope="module")
def moe_cli_export(moe_composite_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("moe") / "cli"
    # A plain optimum-cli run on a composite MoE checkpoint, no --task: a text LLM comes out.
    result = run_optimum_cli("export", "openvino", "--model", str(moe_composite_checkpoint), str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def moe_text_export(moe_text_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("moe") / "text"
    main_export(str(moe_text_checkpoint), out, convert_tokenizer=False)
    return out


def _moe_weight_types(export_dir) -> dict[str, list[str]]:
    """The weight constant types of the experts' MatMuls and of the routers, one entry per MatMul."""
    types = {"experts": [], "router": []}
    for name, (dtype, _) in weight_precisions(export_dir).items():
        kind = "experts" if ".mlp.experts/" in name else "router" if ".mlp.gate/" in name else None
        if kind:
            types[kind].append(dtype)
    return types


def _gather_matmuls(compiled: ov.CompiledModel) -> list[str]:
    kinds = [op.get_rt_info()["layerType"].astype(str) for op in compiled.get_runtime_model().get_ops()]
    assert "Tile" not in kinds, "the dense all-experts form was not fused"
    return [kind for kind in kinds if kind == "GatherMatmul"]


def _assert_parity(checkpoint, compiled: ov.CompiledModel, seed: int) -> np.ndarray:
    hf = hf_float32(checkpoint)
    ids = np.random.default_rng(seed).integers(0, hf.config.vocab_size, (2, sum(CHUNKS)))
    expected = hf_logits(hf, ids)  # one uncached forward: the truth for chunked feeding
    assert relative_max_error(run_chunks(compiled, ids, CHUNKS), expected) <= 1e-4
    assert relative_max_error(run_chunks(compiled, ids, [ids.shape[1]]), expected) <= 1e-4
    assert np.abs(expected).max() > 1.0  # decisive logits
    return expected


@pytest.mark.parametrize("model_type", ["qwen3_5_moe_text", "qwen3_5_moe"])
def test_moe_text_tasks_use_the_plugin(model_type):
    for task in ("text-generation", "text-generation-with-past"):
        constructor = TasksManager.get_exporter_config_constructor(
            "openvino", model_type=model_type, task=task, library_name="transformers"
        )
        assert getattr(constructor, "func", constructor) is Qwen35TextOpenVINOConfig, task


@pytest.mark.parametrize(
    ("kind", "entry_point"),
    # text main_export: moe_text_export, below; composite CLI: moe_cli_export, below
    [("composite", "main_export"), ("text", "optimum-cli")],
)
def test_moe_export_matches_hf(kind, entry_point, request, tmp_path):
    checkpoint = request.getfixturevalue(f"moe_{kind}_checkpoint")
    if entry_point == "optimum-cli":  # a plain run, no --task: a text LLM comes out
        result = run_optimum_cli("export", "openvino", "--model", str(checkpoint), str(tmp_path / "ov"))
        assert result.returncode == 0, result.stderr[-3000:]
    else:
        main_export(str(checkpoint), tmp_path / "ov", convert_tokenizer=False)
    _assert_parity(checkpoint, compile_ir(tmp_path / "ov"), seed=0)


def test_composite_moe_cli_export_matches_hf(moe_composite_checkpoint, moe_cli_export):
    model = ov.Core().read_model(moe_cli_export / "openvino_model.xml")
    assert {port.get_any_name() for port in model.inputs} == {"input_ids", "attention_mask", "position_ids", "beam_idx"}
    _assert_parity(moe_composite_checkpoint, compile_ir(moe_cli_export), seed=1)


def test_cpu_fuses_experts_into_gather_matmul(moe_cli_export):
    runtime = compile_ir(moe_cli_export).get_runtime_model()
    kinds = [op.get_rt_info()["layerType"].astype(str) for op in runtime.get_ops()]
    # gate, up and down of every MoE layer run as GatherMatmul: only routed experts are computed.
    assert kinds.count("GatherMatmul") == 3 * MOE_TEXT_CONFIG["num_hidden_layers"]
    assert "Tile" not in kinds, "the dense all-experts form was not fused"
    assert "GatedDeltaNet" in kinds
    # The routing ScatterElementsUpdate is absorbed too: no Scatter runs (docs/performance.md, EliminateScatterUpdate).
    assert not [kind for kind in kinds if "Scatter" in kind]


@pytest.mark.parametrize("kind", ["text", "composite"])
def test_bf16_checkpoint_keeps_bf16_moe_weights(kind, request):
    # The 3-D expert weights reach the graph as the checkpoint's bf16 constants (half the IR of the
    # f32 copies OpenVINO's 16-bit tracing helper would make), not a value changed. The router stays f32:
    # in bf16 it crashes the CPU plugin on AVX2-only CPUs (weight_dtypes.py).
    checkpoint = request.getfixturevalue(f"moe_{kind}_checkpoint")
    export = request.getfixturevalue("moe_text_export" if kind == "text" else "moe_cli_export")
    layers = MOE_TEXT_CONFIG["num_hidden_layers"]
    assert _moe_weight_types(export) == {"experts": ["bf16"] * 3 * layers, "router": ["f32"] * layers}
    compiled = compile_ir(export)
    assert len(_gather_matmuls(compiled)) == 3 * layers
    _assert_parity(checkpoint, compiled, seed=4)


@pytest.mark.parametrize(("weight_format", "dtype"), [("fp16", "f16"), ("fp32", "f32")])
def test_weight_format_sets_the_moe_weight_type(moe_text_checkpoint, weight_format, dtype, tmp_path):
    out = optimum_qwen35.export(
        moe_text_checkpoint, tmp_path / "ov", weight_format=weight_format, convert_tokenizer=False
    )
    layers = MOE_TEXT_CONFIG["num_hidden_layers"]
    # fp16: optimum-intel's save_model(compress_to_fp16) makes every other f32 weight f16 as well.
    assert _moe_weight_types(out) == {"experts": [dtype] * 3 * layers, "router": [dtype] * layers}
    assert len(_gather_matmuls(compile_ir(out))) == 3 * layers


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_export_restores_the_transformers_experts(moe_text_checkpoint, dtype):
    from transformers import AutoModelForCausalLM

    from optimum_qwen35.exporters.patcher import Qwen35TextPatcher
    from optimum_qwen35.modeling.sparse_moe import WEIGHTS_ATTRIBUTE

    model = AutoModelForCausalLM.from_pretrained(moe_text_checkpoint, dtype=dtype)
    experts = model.model.layers[0].mlp.experts
    gate_up, down = experts.gate_up_proj, experts.down_proj
    with Qwen35TextPatcher(None, model):
        assert "forward" in experts.__dict__
        # 16-bit experts are held out of the parameters, so OpenVINO's tracing helper cannot
        # replace them by f32 copies; the held gate/up halves are the fused tensor's exact values.
        held = dtype == torch.bfloat16
        assert hasattr(experts, WEIGHTS_ATTRIBUTE) == held
        assert ("gate_up_proj" in experts._parameters) != held
        if held:
            gate, up, held_down = (w.stored for w in getattr(experts, WEIGHTS_ATTRIBUTE).children())
            assert torch.equal(torch.cat([gate, up], dim=1), gate_up) and held_down.data_ptr() == down.data_ptr()
    assert "forward" not in experts.__dict__ and not hasattr(experts, WEIGHTS_ATTRIBUTE)
    assert experts.gate_up_proj is gate_up and experts.down_proj is down


@pytest.mark.parametrize("kind", ["text", "composite"])
def test_from_pretrained_export_and_beam_search_match_hf(kind, request):
    checkpoint = request.getfixturevalue(f"moe_{kind}_checkpoint")
    model = OVModelForCausalLM.from_pretrained(checkpoint, export=True, ov_config=F32)
    _assert_parity(checkpoint, ov.Core().compile_model(model.model, "CPU", F32), seed=3)
    hf = hf_float32(checkpoint)
    prompt = torch.tensor([[5, 17, 99, 3, 250, 42, 7, 300]])
    for kwargs in ({"num_beams": 1}, {"num_beams": 3, "num_return_sequences": 2}):
        kwargs.update(attention_mask=torch.ones_like(prompt), max_new_tokens=10, do_sample=False)
        assert model.generate(prompt, **kwargs).tolist() == hf.generate(prompt, **kwargs).tolist()
    assert isinstance(model, OVQwen35ForCausalLM), f"{kind} checkpoint loaded as {type(model).__name__}"


def test_trained_moe_reference_with_llm_pipeline(moe_reference_checkpoint, tmp_path):
    out = optimum_qwen35.export(moe_reference_checkpoint, tmp_path / "ov")
    assert set(_moe_weight_types(out)["experts"]) == {"bf16"}  # and the trained model runs with them
    hf = _assert_parity(moe_reference_checkpoint, compile_ir(out), seed=2)
    assert hf.shape[-1] == 4096
    tokenizer = AutoTokenizer.from_pretrained(moe_reference_checkpoint)
    hf_model = hf_float32(moe_reference_checkpoint)
    pipe = openvino_genai.LLMPipeline(str(out), "CPU", **F32)
    config = openvino_genai.GenerationConfig(max_new_tokens=32, do_sample=False)
    config.apply_chat_template = False
    config.ignore_eos = True
    prompt_ids = tokenizer("def parse_args(argv):\n    ").input_ids
    inputs = openvino_genai.TokenizedInputs(
        ov.Tensor(np.array([prompt_ids], dtype=np.int64)), ov.Tensor(np.ones((1, len(prompt_ids)), np.int64))
    )
    tokens = list(pipe.generate(inputs, config).tokens[0])
    assert len(tokens) == 32
    assert_greedy_matches(hf_model, prompt_ids, tokens)

    # Continuous batching (paged attention, fused experts) gives the stateful pipeline's tokens.
    paged = openvino_genai.LLMPipeline(str(out), "CPU", scheduler_config=openvino_genai.SchedulerConfig(), **F32)
    prompts = ["def parse_args(argv):\n    ", "class Config:\n    def __init__(self"]
    config.max_new_tokens = 16
    expected = [str(pipe.generate(prompt, config)) for prompt in prompts]
    assert list(paged.generate(prompts, config).texts) == expected
