"""Helpers shared by tests: run an exported IR step by step, HF references, tie-aware comparison."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import openvino as ov
import torch
from transformers import AutoModelForCausalLM

from optimum_qwen35.evaluation.perplexity import F32_CONFIG

#: Exact-precision CPU settings (the CPU plugin defaults to bf16 on this hardware).
F32 = F32_CONFIG


def compile_ir(export_dir: Path, device: str = "CPU", **config) -> ov.CompiledModel:
    """The IR compiled for f32 inference, with any further compile options (``NUM_STREAMS=2``)."""
    return ov.Core().compile_model(Path(export_dir) / "openvino_model.xml", device, F32 | config)


def runtime_layer_types(compiled: ov.CompiledModel) -> set[str]:
    return {op.get_rt_info()["layerType"].astype(str) for op in compiled.get_runtime_model().get_ops()}


def run_optimum_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``optimum-cli <args>`` in a fresh interpreter, as a user would (plugin found via its register module)."""
    return subprocess.run(
        [sys.executable, "-m", "optimum.commands.optimum_cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"} if env is None else env,
    )


def run_chunks(
    compiled: ov.CompiledModel, ids: np.ndarray, chunks: list[int], request: ov.InferRequest | None = None
) -> np.ndarray:
    """Feed ``ids [B, L]`` in ``chunks`` through ``request`` (a new one by default) after a state reset.

    Returns logits ``[B, L, V]``.
    """
    request = request or compiled.create_infer_request()
    request.reset_state()
    batch = ids.shape[0]
    position, logits = 0, []
    for chunk in chunks:
        step = {
            "input_ids": ids[:, position : position + chunk],
            "attention_mask": np.ones((batch, position + chunk), dtype=np.int64),
            "position_ids": np.tile(np.arange(position, position + chunk), (batch, 1)),
            "beam_idx": np.arange(batch, dtype=np.int32),
        }
        logits.append(request.infer(step)["logits"].copy())
        position += chunk
    assert position == ids.shape[1]
    return np.concatenate(logits, axis=1)


def hf_float32(checkpoint: Path) -> torch.nn.Module:
    """The Hugging Face reference: the text model in float32 (composite checkpoints load their LM)."""
    return AutoModelForCausalLM.from_pretrained(checkpoint).float().eval()


def hf_logits(model: torch.nn.Module, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(ids)).logits.numpy()


def relative_max_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def assert_greedy_matches(hf_model: torch.nn.Module, prompt_ids: list[int], tokens: list[int], tie: float = 0.05):
    """Tie-aware greedy check: ``tokens`` must be HF's greedy continuation of ``prompt_ids``.

    A token that differs from HF's argmax is accepted only when its HF log-probability is within
    ``tie`` of the best one (a near tie); the sequences are compared up to that point.
    """
    assert tokens, "no tokens generated"
    context = list(prompt_ids)
    with torch.no_grad():
        for position, token in enumerate(tokens):
            logprobs = torch.log_softmax(hf_model(torch.tensor([context])).logits[0, -1].float(), dim=-1)
            best = int(logprobs.argmax())
            if token != best:
                gap = float(logprobs[best] - logprobs[token])
                assert gap <= tie, f"token {position}: got {token}, HF greedy {best} (log-prob gap {gap:.3f} > {tie})"
                return
            context.append(token)


def weight_precisions(export_dir: Path, xml: str = "openvino_model.xml") -> dict[str, tuple[str, list[int]]]:
    """``{op name: (weight constant dtype, shape)}`` for every MatMul/Gather/(Group)Convolution whose
    weight input is a constant (seen through Convert/Subtract/Multiply/Reshape decompression)."""
    model = ov.Core().read_model(Path(export_dir) / xml)
    result = {}
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in ("MatMul", "Gather", "Convolution", "GroupConvolution"):
            continue
        node = op.input_value(0 if kind == "Gather" else 1).get_node()
        while node.get_type_name() in ("Convert", "Subtract", "Multiply", "Reshape"):
            node = node.input_value(0).get_node()
        if node.get_type_name() == "Constant" and len(node.get_output_shape(0)) >= 2:
            result[op.get_friendly_name()] = (node.get_output_element_type(0).get_type_name(), list(node.shape))
    return result


def policy_roles(precisions: dict) -> dict[str, set[str]]:
    """Weight dtypes grouped by policy role: Gated DeltaNet projections, full attention projections,
    ``mlp.down_proj`` (dense, or an MoE model's shared expert), the other MLP projections, embedding, conv."""
    groups: dict[str, set[str]] = {
        k: set() for k in ("linear_attn", "attention", "down_proj", "projections", "embedding", "conv")
    }
    for name, (dtype, _) in precisions.items():
        if ".linear_attn." in name:
            groups["linear_attn"].add(dtype)
        elif ".self_attn." in name:
            groups["attention"].add(dtype)
        elif re.search(r"\.mlp\.(shared_expert\.)?down_proj/", name):
            groups["down_proj"].add(dtype)
        elif "embed_tokens" in name:
            groups["embedding"].add(dtype)
        elif "GroupConvolution" in name:
            groups["conv"].add(dtype)
        elif "_proj" in name:
            groups["projections"].add(dtype)
    return groups


def assert_policy(groups: dict[str, set[str]], int4: str = "u4", embedding: bool = True) -> None:
    """The default policy's precision per role (docs/compression.md), INT4 as ``int4`` (u4 asym, i4 sym).

    ``embedding=False`` for an IR without the embedding table (the vision-language layout's language model).
    """
    assert groups["linear_attn"] == {"u8"}, "Gated DeltaNet projections must be INT8 under the default policy"
    assert groups["attention"] == {"u8"}, "full attention projections are INT8"
    assert groups["down_proj"] == {"u8"}, "mlp.down_proj (MoE: the shared expert's) is INT8 in every layer"
    assert groups["projections"] == {int4}, "the other MLP projections are INT4"
    assert groups["embedding"] == ({"u8"} if embedding else set()), "the embedding is INT8 (in the IR that has it)"
    assert groups["conv"] == {"f32"}, "the depthwise conv1d must stay uncompressed"
