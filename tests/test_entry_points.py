"""The three ways users export and run: optimum-cli, OVModelForCausalLM(export=True), LLMPipeline."""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino_genai
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
from transformers import AutoTokenizer

from optimum_qwen35.runtime import OVQwen35ForCausalLM


def test_optimum_cli_without_task_exports_composite_as_text_llm(composite_checkpoint, tmp_path):
    out = tmp_path / "cli"
    # A plain optimum-cli run: the plugin is picked up through optimum.commands.register.
    result = run_optimum_cli("export", "openvino", "--model", str(composite_checkpoint), str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    # The step bar names each long step and ends at the last one.
    for step in ("loading weights", "tracing", "converting to OpenVINO", "saving the IR", "done: step 6/6"):
        assert f"Qwen3.5 export: {step}" in result.stderr, step
    model = ov.Core().read_model(out / "openvino_model.xml")
    assert "input_ids" in {port.get_any_name() for port in model.inputs}
    hf = hf_float32(composite_checkpoint)
    ids = np.random.default_rng(3).integers(0, hf.config.vocab_size, (1, 33))
    logits = run_chunks(compile_ir(out), ids, [32, 1])
    assert relative_max_error(logits, hf_logits(hf, ids)) <= 1e-4


def test_from_pretrained_export_generates_like_hf(text_checkpoint):
    model = OVModelForCausalLM.from_pretrained(text_checkpoint, export=True, ov_config=F32)
    assert isinstance(model, OVQwen35ForCausalLM)
    hf = hf_float32(text_checkpoint)
    prompt = torch.tensor([[5, 17, 99, 3, 250, 42, 7, 300]])
    expected = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False)
    actual = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False)
    assert actual.tolist() == expected.tolist()
    # A second call starts from a clean state.
    again = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False)
    assert again.tolist() == expected.tolist()


def test_llm_pipeline_greedy_matches_hf(reference_checkpoint, reference_export):
    for name in ("openvino_tokenizer.xml", "openvino_detokenizer.xml", "config.json", "generation_config.json"):
        assert (reference_export / name).is_file(), name
    tokenizer = AutoTokenizer.from_pretrained(reference_checkpoint)
    hf = hf_float32(reference_checkpoint)
    pipe = openvino_genai.LLMPipeline(str(reference_export), "CPU", **F32)
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
