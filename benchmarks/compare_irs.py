"""Prefill and decode time of several exported IRs of one model, measured back to back.

For each prompt length, every IR gets a fresh ``InferRequest`` (default CPU precision, batch 1):
one prefill of random tokens, then decode steps that feed a fixed token, timed
with a median. IRs alternate within each repeat so that drift on a shared machine hits them all
alike; compare the rows of one run, not absolute times across runs:

    python benchmarks/compare_irs.py before=/tmp/old/ir-int4 after=/tmp/new/ir-int4 --prompts 128,2048
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from step_inputs import step_inputs


def measure(ir: Path, prompt: int, steps: int) -> tuple[float, float]:
    """``(prefill seconds, median decode ms/token)`` for ``prompt`` tokens then ``steps`` steps."""
    import openvino as ov

    request = ov.Core().compile_model(ir / "openvino_model.xml", "CPU").create_infer_request()
    vocab = json.loads((ir / "config.json").read_text()).get("vocab_size", 1000)
    ids = np.random.default_rng(0).integers(0, vocab, (1, prompt))
    request.reset_state()
    start = time.perf_counter()
    request.infer(step_inputs(ids, 0))
    prefill = time.perf_counter() - start
    times = []
    for position in range(prompt, prompt + steps):
        feed = step_inputs(np.array([[5]]), position)
        start = time.perf_counter()
        request.infer(feed)
        times.append(time.perf_counter() - start)
    return prefill, 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("irs", nargs="+", help="NAME=IR_FOLDER")
    parser.add_argument("--prompts", default="128,2048")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    irs = {name: Path(folder) for name, _, folder in (spec.partition("=") for spec in args.irs)}
    rows = []
    for prompt in map(int, args.prompts.split(",")):
        for repeat in range(args.repeats):
            for name, folder in irs.items():
                prefill, decode = measure(folder, prompt, args.steps)
                rows.append({"ir": name, "prompt": prompt, "repeat": repeat, "prefill_s": prefill, "decode_ms": decode})
                line = f"{name:<12} prompt {prompt:>5}  prefill {prefill:7.2f} s  decode {decode:7.1f} ms/token"
                print(line, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
