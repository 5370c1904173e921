"""Property: how a sequence is split into prefill/decode chunks never changes its logits."""

from __future__ import annotations

import numpy as np
from ov_helpers import compile_ir, relative_max_error, run_chunks
from tiny_models import TEXT_CONFIG


def _random_chunks(rng: np.random.Generator, length: int) -> list[int]:
    """A random split of ``length`` tokens: a prefill of any size, then decode steps and chunks."""
    chunks, left = [], length
    while left:
        size = int(rng.choice([1, 1, 1, rng.integers(1, left + 1)]))
        chunks.append(min(size, left))
        left -= chunks[-1]
    return chunks


def test_random_chunkings_give_the_logits_of_a_single_pass(text_export):
    compiled = compile_ir(text_export)
    request = compiled.create_infer_request()  # reused: every run starts with reset_state()
    rng = np.random.default_rng(1234)
    for case in range(12):
        length = int(rng.integers(2, 40))
        batch = int(rng.integers(1, 3))
        ids = rng.integers(0, TEXT_CONFIG["vocab_size"], (batch, length))
        whole = run_chunks(compiled, ids, [length], request)
        chunks = _random_chunks(rng, length)
        split = run_chunks(compiled, ids, chunks, request)
        error = relative_max_error(split, whole)
        assert error <= 1e-4, f"case {case}: chunks {chunks} of {length} tokens differ by {error:.2e}"
        again = run_chunks(compiled, ids, [length], request)  # after a reset the state is clean
        assert relative_max_error(again, whole) <= 1e-6, f"case {case}: reset did not clear the state"
