"""Decode speed and IR size of INT4 policy candidates on a full-width Qwen3.5 shape.

The accuracy of each candidate comes from ``compression_sweep.py`` on the trained references;
speed does not depend on weight values, so it is measured here on random weights of a real
shape: ``--shape`` (default the 0.8B text shape at its full depth), optionally with the depth cut
to ``--layers`` at full width (``export_memory.checkpoint_for``: the hub's layout, required for the
hub shapes 27B and 35B-A3B; the export takes the text model out of the composite checkpoint, as
``optimum-cli`` does for any composite Qwen3.5 with no ``--task``). The random bf16 checkpoint is
exported once as fp16 (the uncompressed IR), then every candidate row of
``compression_sweep.ROWS`` compresses it with the plugin's own steps (``compression_sweep.compress``);
the checkpoint is only built while the fp16 IR is missing and the fp16 IR only while a row's IR
is, so each can be deleted once what is built from it exists. Decode time per token (batch 1,
after a 128-token prefill, default CPU precision) is measured in interleaved rounds — every
candidate once per round — and reported as the median over rounds relative to ``--baseline``
(default ``down8-g128``, the plugin's int4 default before issue #14), because absolute times on
a shared machine are noise.

On a depth cut the vocabulary tables (embedding and, when untied, lm_head) are a far larger share
of the time than at the real depth: run two depths and take the difference per layer.

    python benchmarks/int4_policy_decode.py --work-dir /tmp/q35-bench \\
        [--rows down8-g128,attn8-ends8-g32] [--baseline attn8-ends8-g32] [--rounds 5] [--json out.json]
    python benchmarks/int4_policy_decode.py --work-dir /tmp/q35-bench --shape 27B --layers 2 --rounds 0
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
from export_memory import SHAPES, checkpoint_for  # noqa: E402
from hub_layout import HUB_SHAPES, hub_config  # noqa: E402
from int4_full_size import build_checkpoint, decode_ms_per_token, export  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", default="q35-bench")
    parser.add_argument("--rows", default="down8-g128,down8-g64,down8-g32,attn8-down4-g32,attn8-ends8-g32")
    parser.add_argument("--baseline", default="down8-g128", help="the row the decode times are relative to")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--shape", default="0.8B", choices=[*SHAPES, *HUB_SHAPES])
    parser.add_argument("--layers", type=int, help="cut the depth to this many layers (full width; hub layout)")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.shape in HUB_SHAPES and args.layers is None:
        parser.error(f"--shape {args.shape} needs --layers (its full depth does not fit this benchmark)")
    depth = hub_config(args.shape)["text_config"]["num_hidden_layers"]
    if args.layers is not None and not 1 <= args.layers <= depth:
        parser.error(f"--layers: Qwen3.5-{args.shape} has 1 to {depth} decoder layers")
    names = args.rows.split(",")
    baseline = args.baseline
    if baseline not in names:
        names.insert(0, baseline)
    work = Path(args.work_dir)
    default_shape = args.shape == "0.8B" and args.layers is None
    # The 0.8B text shape keeps its original folders; every other shape and depth gets its own.
    irs = work if default_shape else work / f"{args.shape}-L{args.layers or 'full'}"
    folders = {name: irs / f"row-{name}" for name in names}
    missing = [name for name in names if not (folders[name] / "openvino_model.xml").is_file()]
    fp16 = irs / "ir-fp16"
    if missing and not (fp16 / "openvino_model.xml").is_file():
        if default_shape:
            checkpoint = build_checkpoint(work / "qwen35-0.8b-random")
        else:
            checkpoint = checkpoint_for(args.shape, args.layers, work)
        os.environ.setdefault("OPTIMUM_QWEN35_OVERWRITE", "1")
        irs.mkdir(parents=True, exist_ok=True)  # the export's log is written beside its folder
        export(checkpoint, fp16, "fp16")
    for name in missing:
        _save(compress(fp16, ROWS[name]), fp16, folders[name])
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
