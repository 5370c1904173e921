"""openvino-genai on the tiny random checkpoints: token-exact against transformers float32.

Kinds: tiny text, composite and MoE text checkpoints saved by transformers, and miniatures of the
hub's 27B (dense, untied) and 35B-A3B (MoE) written in the hub's own layout (``hub_models.py``).

The tiny checkpoints carry no tokenizer; the pipelines borrow the reference export's
(``LLMPipeline(path, tokenizer, device)``) and are fed token ids, so every comparison is on
tokens. The pipelines get ``ignore_eos`` (the borrowed tokenizer knows another end-of-sequence id)
and both sides are compared up to and including the tiny model's end-of-sequence token.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino_genai
import pytest
import torch
from ov_helpers import F32, hf_float32

import optimum_qwen35

PROMPTS = [[5, 17, 99, 3, 250], [11, 12, 13, 14, 15, 16, 17, 18], [300, 2, 41]]
NEW_TOKENS = 10


@pytest.fixture(scope="module")
def tokenizer(reference_export):
    return openvino_genai.Tokenizer(str(reference_export))


@pytest.fixture(scope="module")
def moe_text_export(moe_text_checkpoint, tmp_path_factory):
    return optimum_qwen35.export(
        moe_text_checkpoint, tmp_path_factory.mktemp("ov") / "moe_text", convert_tokenizer=False
    )


@pytest.fixture(scope="module", params=["text", "composite", "moe_text", "hub_dense", "hub_moe"])
def case(request, tokenizer):
    """(HF float32 model, stateful pipeline, export folder) for one tiny checkpoint kind."""
    export = request.getfixturevalue(f"{request.param}_export")
    hf = hf_float32(request.getfixturevalue(f"{request.param}_checkpoint"))
    return hf, openvino_genai.LLMPipeline(str(export), tokenizer, "CPU", **F32), export


def _config(**kwargs) -> openvino_genai.GenerationConfig:
    config = openvino_genai.GenerationConfig(max_new_tokens=NEW_TOKENS, do_sample=False, **kwargs)
    config.apply_chat_template = False
    config.ignore_eos = True
    return config


def _left_padded(rows: list[list[int]]) -> openvino_genai.TokenizedInputs:
    width = max(map(len, rows))
    ids = np.array([[0] * (width - len(row)) + row for row in rows], dtype=np.int64)
    mask = np.array([[0] * (width - len(row)) + [1] * len(row) for row in rows], dtype=np.int64)
    return openvino_genai.TokenizedInputs(ov.Tensor(ids), ov.Tensor(mask))


def _hf_generate(hf, prompt: list[int], **kwargs) -> list[list[int]]:
    ids = torch.tensor([prompt])
    out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS, do_sample=False, **kwargs)
    return [_until_eos(hf, row[len(prompt) :]) for row in out.tolist()]


def _until_eos(hf, tokens) -> list[int]:
    """``tokens`` up to and including the first end-of-sequence token (then HF pads or stops)."""
    tokens = list(tokens)
    eos = hf.generation_config.eos_token_id
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


def _genai_tokens(hf, result) -> list[list[int]]:
    return [_until_eos(hf, row) for row in result.tokens]


def test_greedy_and_repeated_calls(case):
    hf, pipe, _ = case
    lengths = []
    for prompt in PROMPTS + PROMPTS[:1]:  # the last call repeats the first prompt after others
        tokens = _genai_tokens(hf, pipe.generate(_left_padded([prompt]), _config()))
        assert tokens == _hf_generate(hf, prompt)
        lengths.append(len(tokens[0]))
    assert max(lengths) == NEW_TOKENS  # not a comparison of empty answers


def test_left_padded_batch_equals_per_row_generation(case):
    hf, pipe, _ = case
    tokens = _genai_tokens(hf, pipe.generate(_left_padded(PROMPTS), _config()))
    assert tokens == [_hf_generate(hf, prompt)[0] for prompt in PROMPTS]


@pytest.mark.parametrize("num_beams,num_return_sequences", [(2, 1), (3, 1), (4, 2)])
def test_beam_search(case, num_beams, num_return_sequences):
    hf, pipe, _ = case
    config = _config(num_beams=num_beams, num_return_sequences=num_return_sequences)
    tokens = _genai_tokens(hf, pipe.generate(_left_padded([PROMPTS[0]]), config))
    assert tokens == _hf_generate(hf, PROMPTS[0], num_beams=num_beams, num_return_sequences=num_return_sequences)


def test_continuous_batching_concurrent_requests(case, tokenizer):
    hf, _, export = case
    cb = openvino_genai.ContinuousBatchingPipeline(
        str(export), tokenizer, openvino_genai.SchedulerConfig(), "CPU", **F32
    )
    inputs = [ov.Tensor(np.array([prompt], dtype=np.int64)) for prompt in PROMPTS]
    results = cb.generate(inputs, [_config()] * len(PROMPTS))  # scheduled together
    assert [_until_eos(hf, result.m_generation_ids[0]) for result in results] == [
        _hf_generate(hf, p)[0] for p in PROMPTS
    ]
