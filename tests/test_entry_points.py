"""The three ways users export and run: optimum-cli, OVModelForCausalLM(export=True), LLMPipeline."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino_genai
import openvino_tokenizers  # noqa: F401  (lets ov.Core read the tokenizer IR)
import pytest
import torch
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
)
from test_parity import CHUNKS, TOLERANCE
from transformers import AutoTokenizer

from optimum_qwen35.runtime import OVQwen35ForCausalLM


def _assert_logits_match_hf(compiled: ov.CompiledModel, checkpoint) -> None:
    """The parity protocol of test_parity.py: batch 2, chunked and at once, against one uncached HF forward."""
    hf = hf_float32(checkpoint)
    ids = np.random.default_rng(0).integers(0, hf.config.vocab_size, (2, sum(CHUNKS)))
    expected = hf_logits(hf, ids)
    assert relative_max_error(run_chunks(compiled, ids, CHUNKS), expected) <= TOLERANCE
    assert relative_max_error(run_chunks(compiled, ids, [ids.shape[1]]), expected) <= TOLERANCE
    assert np.abs(expected).max() > 1.0  # decisive logits, not near-constant ones


@pytest.mark.parametrize("kind", ["text", "composite"])
def test_optimum_cli_without_task_exports_text_llm(kind, request, tmp_path):
    checkpoint = request.getfixturevalue(f"{kind}_checkpoint")
    out = tmp_path / "cli"
    # A plain optimum-cli run: the plugin is picked up through optimum.commands.register.
    result = run_optimum_cli("export", "openvino", "--model", str(checkpoint), str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    # The step lines name each long step and end with the total time (stderr is not a terminal here).
    for step in ("loading weights", "tracing", "converting to OpenVINO", "saving the IR", "done ["):
        assert f"Qwen3.5 export: {step}" in result.stderr, step
    # The tiny checkpoints have no tokenizer: the folder still carries the configs LLMPipeline reads.
    assert not (checkpoint / "tokenizer_config.json").exists()
    for name in ("config.json", "generation_config.json"):
        assert (out / name).is_file(), name
    model = ov.Core().read_model(out / "openvino_model.xml")
    assert "input_ids" in {port.get_any_name() for port in model.inputs}
    _assert_logits_match_hf(compile_ir(out), checkpoint)


@pytest.mark.parametrize("kind", ["text", "composite", "hub_dense", "hub_moe"])
def test_from_pretrained_export_generates_like_hf(kind, request):
    checkpoint = request.getfixturevalue(f"{kind}_checkpoint")
    model = OVModelForCausalLM.from_pretrained(checkpoint, export=True, ov_config=F32)
    # model.model is the IR as exported (logits_to_keep is added only to the clone that is compiled).
    assert "logits_to_keep" not in {port.get_any_name() for port in model.model.inputs}
    _assert_logits_match_hf(ov.Core().compile_model(model.model, "CPU", F32), checkpoint)
    hf = hf_float32(checkpoint)
    prompt = torch.tensor([[5, 17, 99, 3, 250, 42, 7, 300]])
    expected = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False)
    actual = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False)
    assert actual.tolist() == expected.tolist()
    # A second call starts from a clean state.
    again = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False)
    assert again.tolist() == expected.tolist()
    assert isinstance(model, OVQwen35ForCausalLM), f"{kind} checkpoint loaded as {type(model).__name__}"


def test_llm_pipeline_greedy_matches_hf(reference_checkpoint, reference_export):
    for name in ("openvino_tokenizer.xml", "openvino_detokenizer.xml", "config.json", "generation_config.json"):
        assert (reference_export / name).is_file(), name
    tokenizer = AutoTokenizer.from_pretrained(reference_checkpoint)
    hf = hf_float32(reference_checkpoint)
    pipe = openvino_genai.LLMPipeline(str(reference_export), "CPU", **F32)
    # The chat template travels with the export: openvino-genai reads it from the tokenizer IR's
    # rt_info, transformers from chat_template.jinja.
    template = tokenizer.chat_template
    assert template and "<|im_start|>" in template
    assert (reference_export / "chat_template.jinja").read_text() == template
    tokenizer_ir = ov.Core().read_model(reference_export / "openvino_tokenizer.xml")
    assert tokenizer_ir.get_rt_info("chat_template").astype(str) == template
    assert pipe.get_tokenizer().chat_template == template
    config = openvino_genai.GenerationConfig(max_new_tokens=32, do_sample=False)
    config.apply_chat_template = False
    for prompt in ("def fibonacci(n):\n    ", "import os\nimport sys\n\n\nclass "):
        prompt_ids = tokenizer(prompt).input_ids
        result = pipe.generate(openvino_genai.TokenizedInputs(ov.Tensor(np.array([prompt_ids], dtype=np.int64)),
                                                              ov.Tensor(np.ones((1, len(prompt_ids)), np.int64))),
                               config)  # fmt: skip
        tokens = list(result.tokens[0])
        assert len(tokens) == 32
        assert_greedy_matches(hf, prompt_ids, tokens)


def test_ovmodel_loads_cli_output_and_generates_like_hf(reference_checkpoint, reference_export):
    model = OVModelForCausalLM.from_pretrained(reference_export, ov_config=F32)
    assert isinstance(model, OVQwen35ForCausalLM)
    tokenizer = AutoTokenizer.from_pretrained(reference_checkpoint)
    hf = hf_float32(reference_checkpoint)
    prompt_ids = tokenizer("def read_config(path):\n").input_ids
    prompt = torch.tensor([prompt_ids])
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=24, do_sample=False)
    assert_greedy_matches(hf, prompt_ids, out[0, len(prompt_ids) :].tolist())
