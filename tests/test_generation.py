"""OVModelForCausalLM generation modes on the plugin's IR, against transformers float32.

Token-exact on the tiny random checkpoint; on the trained reference, exact for beam search and
tie-aware for greedy answers (a differing token must be a near tie in transformers).
"""

from __future__ import annotations

import functools

import pytest
import torch
from optimum.intel import OVModelForCausalLM
from ov_helpers import F32, assert_greedy_matches, hf_float32
from transformers import AutoTokenizer

PROMPT = torch.tensor([[5, 17, 99, 3, 250, 42, 7, 300]])


@pytest.fixture(scope="module")
def models(text_checkpoint, text_export):
    return OVModelForCausalLM.from_pretrained(text_export, ov_config=F32), hf_float32(text_checkpoint)


@pytest.mark.parametrize("num_beams,num_return_sequences", [(2, 1), (3, 1), (4, 2)])
def test_beam_search_reorders_every_state(models, num_beams, num_return_sequences):
    ov_model, hf = models
    kwargs = dict(
        attention_mask=torch.ones_like(PROMPT),
        max_new_tokens=10,
        do_sample=False,
        num_beams=num_beams,
        num_return_sequences=num_return_sequences,
    )
    assert ov_model.generate(PROMPT, **kwargs).tolist() == hf.generate(PROMPT, **kwargs).tolist()


def test_left_padded_batch_equals_per_row_generation(models):
    ov_model, hf = models
    ids = torch.tensor([[0, 0, 0, 5, 17, 99, 3, 250], [11, 12, 13, 14, 15, 16, 17, 18]])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1], [1] * 8])
    batched = ov_model.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False)
    assert batched.tolist() == hf.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False).tolist()
    for row in range(2):
        real = mask[row].bool()
        alone = ov_model.generate(ids[row : row + 1, real], max_new_tokens=10, do_sample=False)
        assert alone[0, real.sum() :].tolist() == batched[row, 8:].tolist()


def test_seeded_sampling_is_repeatable(models):
    ov_model, _ = models
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(ov_model.generate(PROMPT, max_new_tokens=12, do_sample=True, top_k=20).tolist())
    assert runs[0] == runs[1]


def test_generate_computes_prompt_logits_for_the_last_position_only(models, monkeypatch):
    ov_model, hf = models
    shapes = []
    forward = type(ov_model).forward

    @functools.wraps(forward)  # generate() reads the signature (logits_to_keep among it)
    def recording_forward(self, *args, **kwargs):
        outputs = forward(self, *args, **kwargs)
        shapes.append(tuple(outputs.logits.shape))
        return outputs

    monkeypatch.setattr(type(ov_model), "forward", recording_forward)
    kwargs = dict(attention_mask=torch.ones_like(PROMPT), max_new_tokens=4, do_sample=False)
    assert ov_model.generate(PROMPT, **kwargs).tolist() == hf.generate(PROMPT, **kwargs).tolist()
    vocab = hf.config.vocab_size
    assert shapes == [(1, 1, vocab)] * 4  # the 8-token prefill included


def test_forward_keeps_every_position_unless_asked(models):
    ov_model, hf = models
    mask = torch.ones_like(PROMPT)
    full = ov_model(PROMPT, attention_mask=mask).logits
    assert full.shape == (1, PROMPT.shape[1], hf.config.vocab_size)
    expected = hf(PROMPT, attention_mask=mask).logits
    assert torch.allclose(full, expected, rtol=0, atol=1e-4 * expected.abs().max().item())
    last_two = ov_model(PROMPT, attention_mask=mask, logits_to_keep=2).logits
    assert torch.allclose(last_two, full[:, -2:], rtol=0, atol=1e-5 * full.abs().max().item())


def test_save_pretrained_writes_the_ir_as_exported(models, tmp_path):
    import openvino as ov

    ov_model, _ = models
    ov_model.save_pretrained(tmp_path)
    inputs = {port.get_any_name() for port in ov.Core().read_model(tmp_path / "openvino_model.xml").inputs}
    assert inputs == {"input_ids", "attention_mask", "position_ids", "beam_idx"}


@pytest.fixture(scope="module")
def reference(reference_checkpoint, reference_export):
    return (
        OVModelForCausalLM.from_pretrained(reference_export, ov_config=F32),
        hf_float32(reference_checkpoint),
        AutoTokenizer.from_pretrained(reference_checkpoint),
    )


def test_reference_beam_search_matches_transformers(reference):
    ov_model, hf, tokenizer = reference
    prompt = torch.tensor([tokenizer("def fibonacci(n):\n    ").input_ids])
    kwargs = dict(
        attention_mask=torch.ones_like(prompt), max_new_tokens=16, do_sample=False, num_beams=3, num_return_sequences=2
    )
    assert ov_model.generate(prompt, **kwargs).tolist() == hf.generate(prompt, **kwargs).tolist()


def test_reference_left_padded_batch_and_repeated_calls(reference):
    ov_model, hf, tokenizer = reference
    rows = [tokenizer(text).input_ids for text in ("def fibonacci(n):\n    ", "import os\nimport sys\n\n\nclass ")]
    width = max(map(len, rows))
    ids = torch.tensor([[tokenizer.pad_token_id or 0] * (width - len(row)) + row for row in rows])
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
    assert mask.min() == 0  # the prompts differ in length: one row is padded
    batched = ov_model.generate(ids, attention_mask=mask, max_new_tokens=16, do_sample=False)
    for row, tokens in zip(rows, batched[:, width:].tolist(), strict=True):
        assert_greedy_matches(hf, row, tokens)
    # Calls after a batch, one row each, twice: transformers' tokens from a clean state every time.
    for row in rows:
        first, again = (
            ov_model.generate(torch.tensor([row]), max_new_tokens=16, do_sample=False)[0, len(row) :].tolist()
            for _ in range(2)
        )
        assert first == again
        assert_greedy_matches(hf, row, first)
