"""``optimum-qwen35``: the plugin's own command line (``eval``).

``optimum-qwen35 eval CHECKPOINT --text FILE`` exports the checkpoint in several weight formats
and prints, for each, perplexity over the whole text (consecutive windows), the relative change
against HF float32 with a paired bootstrap 95 % interval, the top-1 agreement with HF float32 and
the IR size. HF float32's scores are cached, so a repeated run costs only the OpenVINO side.
``--device-config`` picks the IR side's compile options: ``f32`` (the weights' effect alone) or
``default`` (the CPU plugin's defaults, what users run).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .compression.calibration import BUILTIN
from .evaluation.perplexity import DEVICE_CONFIGS


def _eval(args: argparse.Namespace) -> int:
    import numpy as np
    from transformers import AutoTokenizer

    from .evaluation.bootstrap import RESAMPLES, SEED, paired_bootstrap
    from .evaluation.cache import cached_score_hf, default_cache_dir
    from .evaluation.perplexity import ir_size_mb, score_ir, select_windows, windows_at
    from .evaluation.variants import VARIANTS, export_variant

    specs = [spec.partition("=") for spec in args.variants.split(",")]
    unknown = [name for name, _, folder in specs if not folder and name not in VARIANTS]
    if unknown:
        raise SystemExit(
            f"Unknown variant(s) {', '.join(unknown)}. Choose from {', '.join(VARIANTS)} or NAME=IR_FOLDER."
        )
    text = Path(args.text).read_text(encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    ids = tokenizer(text, return_tensors="np")["input_ids"][0]
    length = args.window_length
    indices = select_windows(len(ids), length, args.max_windows)
    windows = windows_at(ids, indices, length)
    grid, scored_tokens = len(ids) // length, windows.shape[0] * (length - 1)
    print(
        f"{len(indices)} of {grid} consecutive windows x {length} tokens from {args.text} "
        f"({len(ids)} tokens, {scored_tokens} scored); OpenVINO device config {args.device_config}: "
        f"{DEVICE_CONFIGS[args.device_config] or 'the CPU plugin defaults'}",
        flush=True,
    )

    cache_dir = None if args.no_cache else Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    reference, computed = cached_score_hf(args.checkpoint, ids, indices, length, cache_dir)
    if cache_dir is not None:
        print(f"HF float32: {len(indices) - computed} windows from the cache in {cache_dir}, {computed} scored")
    window_tokens = np.full(len(indices), length - 1)
    exact = {"delta_pct": 0.0, "ci95_low_pct": 0.0, "ci95_high_pct": 0.0}  # HF against itself
    rows = [{"variant": "hf-fp32", "perplexity": reference.perplexity, **exact, "top1": 1.0, "size_mb": None}]
    with tempfile.TemporaryDirectory(prefix="optimum-qwen35-eval-") as scratch:
        work = Path(args.work_dir) if args.work_dir else Path(scratch)
        for name, _, folder in specs:
            if not folder:
                print(f"exporting {name} ...", flush=True)
                try:
                    folder = export_variant(args.checkpoint, name, work / name, args.calibration)
                except Exception as error:  # one failing variant must not cost the others' results
                    print(f"{name} failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
                    rows.append({"variant": name, "error": f"{type(error).__name__}: {error}"})
                    continue
            scores = score_ir(folder, windows, desc=name, device_config=args.device_config)
            difference = paired_bootstrap(scores.window_nll, reference.window_nll, window_tokens)
            rows.append(
                {
                    "variant": name,
                    "perplexity": scores.perplexity,
                    "delta_pct": difference.delta_pct,
                    "ci95_low_pct": difference.ci95_low_pct,
                    "ci95_high_pct": difference.ci95_high_pct,
                    "top1": scores.agreement(reference),
                    "size_mb": ir_size_mb(folder),
                }
            )
    print(f"\nOpenVINO device config: {args.device_config}")
    print(f"{'variant':<18}{'perplexity':>12}  {'vs HF fp32 [95 % interval]':<30}{'top-1 agree':>11}{'IR MB':>9}")
    for row in rows:
        if "error" in row:
            print(f"{row['variant']:<18}{'':12}  export failed (see above)")
            continue
        if row["variant"] == "hf-fp32":
            change, size = "(reference)", f"{'-':>9}"
        else:
            change = f"{row['delta_pct']:+.3f} % [{row['ci95_low_pct']:+.3f}, {row['ci95_high_pct']:+.3f}]"
            size = f"{row['size_mb']:9.2f}"
        print(f"{row['variant']:<18}{row['perplexity']:12.4f}  {change:<30}{row['top1']:11.4f}{size}")
    if args.json:
        result = {"checkpoint": str(args.checkpoint), "text": str(args.text), "tokens": len(ids)}
        result |= {"device_config": args.device_config, "compile_options": DEVICE_CONFIGS[args.device_config]}
        result |= {"window_length": length, "grid_windows": grid, "windows": len(indices)}
        result |= {"scored_tokens": scored_tokens, "bootstrap": {"resamples": RESAMPLES, "seed": SEED}}
        result |= {"results": rows}
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 1 if any("error" in row for row in rows) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optimum-qwen35", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate = commands.add_parser("eval", help="perplexity and top-1 agreement vs HF float32 for several exports")
    evaluate.add_argument("checkpoint", help="Qwen3.5 checkpoint folder (with its tokenizer)")
    evaluate.add_argument("--text", required=True, help="UTF-8 text file to score (held-out data)")
    evaluate.add_argument(
        "--variants",
        default="fp32,fp16,int8,int4,int4-gptq",
        help="comma-separated variant names (see optimum_qwen35.evaluation.variants) or NAME=IR_FOLDER",
    )
    evaluate.add_argument(
        "--device-config",
        choices=list(DEVICE_CONFIGS),
        default="f32",
        help="OpenVINO compile options of the IR side: f32 (f32 compute and KV cache: the weights' effect alone) "
        "or default (the CPU plugin's defaults, what users run: bf16 activations, u8 KV cache and dynamic "
        "quantization on CPUs with AVX-512 BF16/AMX)",
    )
    evaluate.add_argument("--window-length", type=int, default=512, help="tokens per window")
    evaluate.add_argument(
        "--max-windows",
        type=int,
        help="score at most this many of the consecutive windows, evenly spread (default: the whole text)",
    )
    evaluate.add_argument(
        "--calibration", default=BUILTIN, help=f"calibration text for data-aware variants (file or '{BUILTIN}')"
    )
    evaluate.add_argument("--work-dir", help="keep the exported IRs here (default: a temporary folder)")
    evaluate.add_argument("--json", help="also write the results to this JSON file")
    evaluate.add_argument(
        "--cache-dir", help="where HF float32 scores are cached (default: $XDG_CACHE_HOME/optimum-qwen35/eval)"
    )
    evaluate.add_argument("--no-cache", action="store_true", help="score HF float32 again and store nothing")
    evaluate.set_defaults(func=_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``optimum-qwen35`` command."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
