"""Which Qwen3.5 weights are sensitive to INT4? Perplexity of policy variants on one IR.

Compresses an uncompressed plugin IR (exported with ``--weight-format fp32``) several ways with
NNCF directly — INT4 everywhere except the projections named in each row, which get INT8 — and
prints perplexity vs HF float32 over the same windows as ``optimum-qwen35 eval``. Used to choose
the default policy in ``optimum_qwen35/compression/policy.py`` (see docs/compression.md).

    python benchmarks/compression_sweep.py CHECKPOINT FP32_IR_DIR --text heldout.txt [--max-windows 24]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import nncf
import openvino as ov
from transformers import AutoTokenizer

from optimum_qwen35.compression.mixed_precision import compress_int8
from optimum_qwen35.compression.policy import LINEAR_ATTENTION_PROJECTIONS
from optimum_qwen35.evaluation.perplexity import ir_size_mb, score_hf, score_ir, select_windows, windows_at

#: row name → extra INT8 patterns (on top of nothing); INT4 asym elsewhere.
ROWS = {
    "all INT4 (NNCF default)": [],
    "linear_attn INT8 (policy)": [LINEAR_ATTENTION_PROJECTIONS],
    "+ self_attn INT8": [LINEAR_ATTENTION_PROJECTIONS, r".*\.self_attn\..*"],
    "+ mlp.down_proj INT8": [LINEAR_ATTENTION_PROJECTIONS, r".*\.mlp\.down_proj/.*"],
    "+ mlp.gate/up INT8": [LINEAR_ATTENTION_PROJECTIONS, r".*\.mlp\.(?:gate|up)_proj/.*"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("ir_dir", help="uncompressed IR of the checkpoint (optimum-cli --weight-format fp32)")
    parser.add_argument("--text", required=True)
    parser.add_argument("--max-windows", type=int, default=24, help="as optimum-qwen35 eval --max-windows")
    parser.add_argument("--group-sizes", default="64,128")
    args = parser.parse_args()

    ids = AutoTokenizer.from_pretrained(args.checkpoint)(Path(args.text).read_text(), return_tensors="np")
    ids = ids["input_ids"][0]
    windows = windows_at(ids, select_windows(len(ids), 512, args.max_windows), 512)
    reference = score_hf(args.checkpoint, windows)
    print(f"HF fp32 perplexity {reference.perplexity:.4f} over {len(windows)} x 512 tokens")
    print(f"{'INT8 kept for':<30}{'group':>6}{'sym':>5}{'ppl':>10}{'vs HF':>9}{'top-1':>8}{'MB':>7}")
    for group_size in map(int, args.group_sizes.split(",")):
        for sym in (False, True):
            for row, patterns in ROWS.items():
                model = ov.Core().read_model(Path(args.ir_dir) / "openvino_model.xml")
                mode = nncf.CompressWeightsMode.INT4_SYM if sym else nncf.CompressWeightsMode.INT4_ASYM
                scope = nncf.IgnoredScope(patterns=patterns, types=["GroupConvolution"], validate=False)
                model = nncf.compress_weights(model, mode=mode, group_size=group_size, ignored_scope=scope)
                compress_int8(model, patterns)
                with tempfile.TemporaryDirectory() as folder:
                    shutil.copy(Path(args.ir_dir) / "config.json", folder)
                    ov.save_model(model, Path(folder) / "openvino_model.xml", compress_to_fp16=False)
                    scores, size = score_ir(folder, windows), ir_size_mb(folder)
                delta = 100 * (scores.perplexity / reference.perplexity - 1)
                print(
                    f"{row:<30}{group_size:>6}{'y' if sym else 'n':>5}{scores.perplexity:10.4f}{delta:+8.2f}%"
                    f"{scores.agreement(reference):8.4f}{size:7.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
