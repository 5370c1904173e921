"""Time to first token of ``OVModelForCausalLM.generate()`` with and without ``logits_to_keep``.

``generate()`` on the plugin's runtime passes ``logits_to_keep=1``, so the prompt's prefill runs
the ``lm_head`` for its last position only; passing ``logits_to_keep=0`` restores the old
behaviour (logits for every prompt position). Both run on the same compiled model, alternating,
so the ratio is measured under the same machine load.

    python benchmarks/prefill_logits.py IR_DIR --prompts 128,1024 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def time_first_token(model, ids: torch.Tensor, keep: int) -> float:
    start = time.perf_counter()
    model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=1, do_sample=False, logits_to_keep=keep)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ir", help="folder exported by the plugin")
    parser.add_argument("--prompts", default="128,1024", help="comma-separated prompt lengths")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from optimum.intel import OVModelForCausalLM

    import optimum_qwen35  # noqa: F401  (the plugin's runtime class)

    model = OVModelForCausalLM.from_pretrained(args.ir)
    vocab = model.config.vocab_size
    print(f"{'prompt':>7}{'all positions s':>17}{'last position s':>17}{'speed-up':>10}")
    for length in map(int, args.prompts.split(",")):
        ids = torch.from_numpy(np.random.default_rng(length).integers(0, vocab, (1, length)))
        time_first_token(model, ids, 1)  # warm-up
        runs = {0: [], 1: []}
        for _ in range(args.repeats):
            for keep in (0, 1):
                runs[keep].append(time_first_token(model, ids, keep))
        full, last = statistics.median(runs[0]), statistics.median(runs[1])
        print(f"{length:>7}{full:>17.2f}{last:>17.2f}{full / last:>9.2f}x", flush=True)


if __name__ == "__main__":
    main()
