"""Decode speed and IR size of INT4 policy candidates on the full-size Qwen3.5-0.8B shape.

The accuracy of each candidate comes from ``compression_sweep.py`` on the trained references;
speed does not depend on weight values, so it is measured here on random weights of the real
0.8B shape. The random bf16 checkpoint is exported once as fp16 (the uncompressed IR), then
every candidate row of ``compression_sweep.ROWS`` compresses it with the plugin's own steps
(``compression_sweep.compress``). Decode time per token (batch 1, after a 128-token prefill,
default CPU precision) is measured in interleaved rounds — every candidate once per round — and
reported as the median over rounds relative to ``--baseline`` (default ``down8-g128``, the
plugin's int4 default before issue #14), because absolute times on a shared machine are noise.

    python benchmarks/int4_policy_decode.py --work-dir /tmp/q35-bench \\
        [--rows down8-g128,attn8-ends8-g32] [--baseline attn8-ends8-g32] [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from compression_sweep import ROWS, _save, compress  # noqa: E402
from int4_full_size import build_checkpoint, decode_ms_per_token, export  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", default="q35-bench")
    parser.add_argument("--rows", default="down8-g128,down8-g64,down8-g32,attn8-down4-g32,attn8-ends8-g32")
    parser.add_argument("--baseline", default="down8-g128", help="the row the decode times are relative to")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--json")
    args = parser.parse_args()
    names = args.rows.split(",")
    baseline = args.baseline
    if baseline not in names:
        names.insert(0, baseline)
    work = Path(args.work_dir)
    checkpoint = build_checkpoint(work / "qwen35-0.8b-random")
    os.environ.setdefault("OPTIMUM_QWEN35_OVERWRITE", "1")
    fp16 = work / "ir-fp16"
    export(checkpoint, fp16, "fp16")
    folders = {}
    for name in names:
        folder = work / f"row-{name}"
        if not (folder / "openvino_model.xml").is_file():
            _save(compress(fp16, ROWS[name]), fp16, folder)
        folders[name] = folder
    if args.rounds == 0:  # only build the IRs (time them later, on an idle machine)
        return
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            times[name].append(decode_ms_per_token(folders[name], args.prompt, args.steps))
    base, fastest = float(np.median(times[baseline])), min(times[baseline])
    rows = {}
    # The fastest round too: on a loaded machine other processes only ever add time.
    print(f"{'row':<20}{'IR MB':>8}{'decode vs ' + baseline:>30}{'spread (min-max)':>20}{'fastest vs fastest':>20}")
    for name in names:
        ratios = np.array(times[name]) / base
        size = (folders[name] / "openvino_model.bin").stat().st_size / 1e6
        rows[name] = {"size_mb": size, "decode_ms": times[name], "decode_ratio": float(np.median(ratios))}
        rows[name]["fastest_ratio"] = min(times[name]) / fastest
        spread = f"{ratios.min():.3f}-{ratios.max():.3f}"
        print(f"{name:<20}{size:8.1f}{np.median(ratios):30.3f}{spread:>20}{rows[name]['fastest_ratio']:20.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
