"""INT4 on the full-size Qwen3.5-0.8B shape: does it export, how big is it, how fast does it decode?

Builds a random-weight checkpoint of the 0.8B text shape (bf16, like the hub's), exports it with
``optimum-cli export openvino`` as fp16 and as int4 (the plugin's default policy), and measures
each export's wall time and peak RSS, the IR size, and decode time per token with a bare
``InferRequest`` loop (default CPU precision). Speeds are reported relative to the fp16 IR
measured in the same run, because absolute times on a shared machine are noise.

    python benchmarks/int4_full_size.py --work-dir /tmp/q35-bench [--json out.json]
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

#: Qwen3.5-0.8B text shape (../shared/NOTES.md; the hub model card's text config).
CONFIG_0_8B = {
    "vocab_size": 248320,
    "hidden_size": 1024,
    "intermediate_size": 3584,
    "num_hidden_layers": 24,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 16,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "linear_conv_kernel_dim": 4,
    "full_attention_interval": 4,
    "tie_word_embeddings": True,
}


def build_checkpoint(path: Path) -> Path:
    """A random bf16 checkpoint of the 0.8B shape at ``path``, built in a spawned interpreter so
    that this process stays small (see ``export_memory.run_apart``)."""
    from export_memory import build_checkpoint as build_random
    from export_memory import run_apart

    if not (path / "config.json").is_file():
        run_apart(build_random, "0.8B", path)
    return path


def export(checkpoint: Path, output: Path, weight_format: str) -> dict:
    """Run optimum-cli in a child process (``export_memory.run_export``: RSS sampled from ``/proc``
    and that child's own ``ru_maxrss``); wall time and peak RSS in GB."""
    from export_memory import run_export

    if (output / "openvino_model.xml").is_file():
        return {"export_s": None, "export_peak_rss_gb": None}
    result = run_export(sys.executable, None, checkpoint.absolute(), output.absolute(), weight_format, None, keep=True)
    if not result["ok"]:
        raise RuntimeError(f"the {weight_format} export failed, see {result['log']}")
    return {"export_s": result["seconds"], "export_peak_rss_gb": result["peak_rss"] / 1e9}


def decode_ms_per_token(ir: Path, prompt: int, steps: int) -> float:
    """Median decode step time after a ``prompt``-token prefill (bare InferRequest, batch 1)."""
    import openvino as ov

    request = ov.Core().compile_model(ir / "openvino_model.xml", "CPU").create_infer_request()
    request.reset_state()
    ids = np.random.default_rng(0).integers(0, CONFIG_0_8B["vocab_size"], (1, prompt))
    request.infer(step_inputs(ids, 0))
    times = []
    for step in range(steps):
        position = prompt + step
        token = request.get_tensor("logits").data[:, -1].argmax(-1)[:, None]
        feed = step_inputs(token, position)
        start = time.perf_counter()
        request.infer(feed)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", default="q35-bench")
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--json")
    args = parser.parse_args()
    work = Path(args.work_dir)
    checkpoint = build_checkpoint(work / "qwen35-0.8b-random")
    os.environ.setdefault("OPTIMUM_QWEN35_OVERWRITE", "1")
    rows = {}
    for weight_format in ("fp16", "int4"):
        ir = work / f"ir-{weight_format}"
        rows[weight_format] = export(checkpoint, ir, weight_format)
        rows[weight_format]["size_mb"] = (ir / "openvino_model.bin").stat().st_size / 1e6
    for weight_format in ("fp16", "int4"):  # measured back to back, after both exports
        rows[weight_format]["decode_ms"] = decode_ms_per_token(work / f"ir-{weight_format}", args.prompt, args.steps)
    base = rows["fp16"]
    print(f"{'format':<8}{'export s':>10}{'peak RSS GB':>13}{'IR MB':>9}{'size vs fp16':>14}{'decode vs fp16':>16}")
    for name, row in rows.items():
        export_s = f"{row['export_s']:10.1f}" if row["export_s"] else f"{'cached':>10}"
        rss = f"{row['export_peak_rss_gb']:13.2f}" if row["export_peak_rss_gb"] else f"{'-':>13}"
        print(
            f"{name:<8}{export_s}{rss}{row['size_mb']:9.0f}{row['size_mb'] / base['size_mb']:14.2f}"
            f"{row['decode_ms'] / base['decode_ms']:16.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
