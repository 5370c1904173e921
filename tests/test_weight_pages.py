"""The IR's mapped weight file leaves the resident set after the first inference, and no result changes."""

from __future__ import annotations

import sys

import numpy as np
import openvino as ov
import openvino_genai
import pytest
import torch
from optimum.intel import OVModelForCausalLM
from ov_helpers import compile_ir, run_chunks
from tiny_models import TEXT_CONFIG

import optimum_qwen35
from optimum_qwen35 import runtime
from optimum_qwen35.weight_pages import resident_bytes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page release is Linux-only")

IDS = np.array([[5, 17, 3, 99, 42, 7, 250, 1]])


def test_released_weight_pages_hands_back_what_the_first_inference_read(text_export):
    weights = text_export / "openvino_model.bin"
    kept = compile_ir(text_export)
    expected = run_chunks(kept, IDS, [IDS.shape[1]])
    # Without it the plugin's first inference leaves the file's pages resident (why it exists).
    assert resident_bytes(weights) > 0
    released = compile_ir(text_export)
    with optimum_qwen35.released_weight_pages():
        first = run_chunks(released, IDS, [IDS.shape[1]])
    assert resident_bytes(weights) == 0
    again = run_chunks(released, IDS, [3, 5])  # pages it still reads are mapped again
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_allclose(again, expected, rtol=0, atol=1e-5)


def test_runtime_class_releases_weight_pages_at_its_first_inference_only(text_export, monkeypatch):
    entered = []
    original = runtime.released_weight_pages
    monkeypatch.setattr(runtime, "released_weight_pages", lambda: entered.append(1) or original())
    weights = text_export / "openvino_model.bin"
    model = OVModelForCausalLM.from_pretrained(text_export)
    ids = torch.from_numpy(IDS)
    first = model(ids).logits
    assert resident_bytes(weights) == 0
    assert len(entered) == 1
    # Later inferences (decode steps) keep what they map again: releasing every step would
    # fault the pages the kernels read in place back in at each token.
    second = model(ids).logits
    model.generate(ids, max_new_tokens=4, do_sample=False)
    assert len(entered) == 1
    torch.testing.assert_close(second, first, rtol=0, atol=0)
    model.request = None  # compiled again on next use, e.g. after reshape() or to(): a new first inference
    torch.testing.assert_close(model(ids).logits, first, rtol=0, atol=0)
    assert len(entered) == 2


def test_llm_pipeline_first_generate_inside_released_weight_pages(text_export):
    pipe = openvino_genai.LLMPipeline(str(text_export), "CPU", INFERENCE_PRECISION_HINT="f32")
    config = pipe.get_generation_config()
    config.max_new_tokens = 6
    config.ignore_eos = True
    config.set_eos_token_id(TEXT_CONFIG["vocab_size"] - 1)
    prompt = ov.Tensor(IDS.astype(np.int64))
    with optimum_qwen35.released_weight_pages():
        first = pipe.generate(prompt, config).tokens
    assert resident_bytes(text_export / "openvino_model.bin") == 0
    assert pipe.generate(prompt, config).tokens == first
