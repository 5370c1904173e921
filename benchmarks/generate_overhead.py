"""Decode overhead of ``OVModelForCausalLM.generate()`` against a bare ``InferRequest`` loop.

Both run the same compiled IR (the Qwen3.5-0.8B text shape with random weights, exported by the
plugin). The bare loop feeds one token per step and reads only the last logits; ``generate()``
goes through transformers' generation loop and optimum-intel's stateful runtime (the class the
plugin installs), which keeps every state inside the compiled model. The figure that matters is
the ratio of decode tokens/s (issue #4 asks for ≥ 0.95), measured back to back in one run:

    python benchmarks/generate_overhead.py --work-dir /tmp/q35-bench [--weight-format int4] [--json out.json]

``generate()``'s decode time per token is ``(t(prompt + N tokens) − t(prompt + 1 token)) / (N − 1)``,
so its prefill and set-up cost cancel out; the bare loop is timed over the same N − 1 steps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from step_inputs import step_inputs

sys.path.insert(0, str(Path(__file__).parent))
from int4_full_size import CONFIG_0_8B, build_checkpoint, export  # noqa: E402


def bare_loop_ms(request, prompt_ids: np.ndarray, new_tokens: int) -> float:
    """Mean decode step time of a greedy bare-``InferRequest`` loop (batch 1)."""
    prompt = prompt_ids.shape[1]
    request.reset_state()
    request.infer(step_inputs(prompt_ids, 0))
    token = request.get_tensor("logits").data[:, -1].argmax(-1)[:, None]
    start = time.perf_counter()
    for position in range(prompt, prompt + new_tokens - 1):
        request.infer(step_inputs(token, position))
        token = request.get_tensor("logits").data[:, -1].argmax(-1)[:, None]
    return 1000 * (time.perf_counter() - start) / (new_tokens - 1)


def timed_generate(model, ids, count: int, streamer=None) -> float:
    """Seconds of ``model.generate()`` producing exactly ``count`` greedy tokens after ``ids`` ``[1, T]``."""
    import torch

    start = time.perf_counter()
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=count,
        min_new_tokens=count,
        do_sample=False,
        streamer=streamer,
    )
    assert out.shape[1] == ids.shape[1] + count
    return time.perf_counter() - start


def generate_ms(model, prompt_ids: np.ndarray, new_tokens: int) -> float:
    """Decode time per token of ``model.generate()``, prefill and set-up subtracted."""
    import torch

    ids = torch.from_numpy(prompt_ids)
    return 1000 * (timed_generate(model, ids, new_tokens) - timed_generate(model, ids, 1)) / (new_tokens - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", default="q35-bench")
    parser.add_argument("--weight-format", default="int4", choices=("fp16", "int8", "int4"))
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=65)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each; the median is kept")
    parser.add_argument("--json")
    args = parser.parse_args()

    from optimum.intel import OVModelForCausalLM

    import optimum_qwen35  # noqa: F401  (installs the runtime class)

    work = Path(args.work_dir)
    checkpoint = build_checkpoint(work / "qwen35-0.8b-random")
    os.environ.setdefault("OPTIMUM_QWEN35_OVERWRITE", "1")
    ir = work / f"ir-{args.weight_format}"
    export(checkpoint, ir, args.weight_format)

    model = OVModelForCausalLM.from_pretrained(ir)  # default CPU precision, as users run it
    # A second request on the same compiled model (generate() binds its own tensors to model.request).
    request = model.request.get_compiled_model().create_infer_request()
    prompt_ids = np.random.default_rng(0).integers(0, CONFIG_0_8B["vocab_size"], (1, args.prompt))
    generate_ms(model, prompt_ids, 3)  # warm-up
    bare, gen = [], []
    for _ in range(args.repeats):  # alternate, so drift on a shared machine hits both alike
        bare.append(bare_loop_ms(request, prompt_ids, args.new_tokens))
        gen.append(generate_ms(model, prompt_ids, args.new_tokens))
    bare_ms, gen_ms = float(np.median(bare)), float(np.median(gen))
    ratio = bare_ms / gen_ms
    steps = args.new_tokens - 1
    print(f"{args.weight_format} IR, {args.prompt}-token prompt, {steps} decode steps, median of {args.repeats}")
    print(f"{'runner':<30}{'tokens/s vs bare loop':>24}")
    print(f"{'bare InferRequest loop':<30}{1.0:>24.3f}")
    print(f"{'OVModelForCausalLM.generate':<30}{ratio:>24.3f}")
    if args.json:
        result = {"weight_format": args.weight_format, "prompt": args.prompt, "new_tokens": args.new_tokens}
        result |= {"bare_ms": bare, "generate_ms": gen, "generate_tokens_per_s_vs_bare": ratio}
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
