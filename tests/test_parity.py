"""Logit parity of exported IRs against Hugging Face float32, at once and in chunks."""

from __future__ import annotations

import numpy as np
import pytest
from ov_helpers import compile_ir, hf_float32, hf_logits, relative_max_error, run_chunks

TOLERANCE = 1e-4
# A 32-token prefill, then 6 single-token decode steps, then a 7-token chunk (chat turn 2).
CHUNKS = [32, 1, 1, 1, 1, 1, 1, 7]


@pytest.mark.parametrize("kind", ["text", "composite"])
def test_prefill_decode_and_chunked_logits_match_hf(kind, request):
    checkpoint = request.getfixturevalue(f"{kind}_checkpoint")
    compiled = compile_ir(request.getfixturevalue(f"{kind}_export"))
    hf = hf_float32(checkpoint)
    ids = np.random.default_rng(0).integers(0, hf.config.vocab_size, (2, sum(CHUNKS)))
    # The truth for chunked feeding is one uncached forward over the whole sequence.
    expected = hf_logits(hf, ids)

    stepped = run_chunks(compiled, ids, CHUNKS)
    assert relative_max_error(stepped, expected) <= TOLERANCE

    at_once = run_chunks(compiled, ids, [ids.shape[1]])
    assert relative_max_error(at_once, expected) <= TOLERANCE
    # Decisive logits: the comparison above is not satisfied by near-constant outputs.
    assert np.abs(expected).max() > 1.0


def test_state_resets_between_sequences(text_export, text_checkpoint):
    compiled = compile_ir(text_export)
    hf = hf_float32(text_checkpoint)
    rng = np.random.default_rng(1)
    first, second = (rng.integers(0, hf.config.vocab_size, (1, 12)) for _ in range(2))
    # One request for both sequences: the second must not see the first's state.
    request = compiled.create_infer_request()
    run_chunks(compiled, first, [12], request)
    assert relative_max_error(run_chunks(compiled, second, [12], request), hf_logits(hf, second)) <= TOLERANCE
