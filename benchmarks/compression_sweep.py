"""Which Qwen3.5 weights can take INT4? The compression policy's dimensions, measured on the whole held-out file.

Each row of :data:`ROWS` compresses one uncompressed plugin IR the way the plugin's own
``--weight-format int4`` does (``optimum_qwen35/compression/hooks.py``): the vocabulary table
(embedding, ``lm_head``) INT8 in row chunks (``embedding.py``), then NNCF's INT4 pass with the INT8
set in the ignored scope and ``all_layers`` (the tables are done), then the INT8 pass of
``mixed_precision.py`` for that set — with the row's group size, symmetry, INT8 set and
vocabulary precision instead of the policy's. Every row is scored like ``optimum-qwen35 eval``:
the same consecutive windows (the whole file unless ``--max-windows``), OpenVINO f32 inference
(``--device-config f32,default`` scores each row also with the CPU plugin's defaults, as
``optimum-qwen35 eval --device-config default`` does), the cached HF float32 scores and the
paired bootstrap interval. ``0.8B MB`` is the size the row's IR would have on the Qwen3.5-0.8B
shape, computed from the per-weight precisions (see
:func:`estimated_bytes`; the plugin's ``--weight-format int4`` gives 646 MB there, the policy
before issue #14, row ``down8-g128``, 649 MB).

    python benchmarks/compression_sweep.py CHECKPOINT --text heldout.txt \\
        [--rows attn8-ends8-g32,down8-g128] [--max-windows 24] [--json sweep.json] [--work-dir DIR] \\
        [--device-config f32,default] [--check-policy 8]

``--check-policy N`` also exports ``--weight-format int4`` with the plugin (what
``optimum-qwen35 eval --variants int4`` scores) and compares it with row :data:`DEFAULT_ROW` on N
windows: both must give the same perplexity.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nncf
import numpy as np
import openvino as ov
from optimum.intel.openvino.configuration import OVWeightQuantizationConfig
from transformers import AutoTokenizer

import optimum_qwen35
from optimum_qwen35.compression.embedding import compress_vocabulary_tables, lm_head_constant
from optimum_qwen35.compression.hooks import scoped_to, with_all_layers
from optimum_qwen35.compression.mixed_precision import compress_int8
from optimum_qwen35.compression.policy import (
    ATTENTION_PROJECTIONS,
    LINEAR_ATTENTION_PROJECTIONS,
    MLP_DOWN_PROJECTIONS,
    MOE_ROUTERS,
    with_never_compressed,
)
from optimum_qwen35.evaluation.bootstrap import RESAMPLES, SEED, paired_bootstrap
from optimum_qwen35.evaluation.cache import cached_score_hf, default_cache_dir
from optimum_qwen35.evaluation.perplexity import DEVICE_CONFIGS, ir_size_mb, score_ir, select_windows, windows_at
from optimum_qwen35.evaluation.variants import export_variant
from optimum_qwen35.runtime import lm_head

# Weight groups, as regexes over the IR's weight-op names (``__module.model.layers.3.self_attn.q_proj/...``).
GDN = LINEAR_ATTENTION_PROJECTIONS  # Gated DeltaNet in_proj_qkv/z/a/b, out_proj: INT8 in every row
DOWN = MLP_DOWN_PROJECTIONS  # mlp.down_proj of every layer (MoE: the shared expert's)
ROUTERS = MOE_ROUTERS  # MoE mlp.gate (the shared expert gate is never compressed)
ATTENTION = ATTENTION_PROJECTIONS
SHARED_EXPERT = r".*\.mlp\.shared_expert\.(?:gate|up|down)_proj/.*"
GATE_UP = r".*\.mlp\.(?:shared_expert\.)?(?:gate|up)_proj/.*"
#: down_proj of the first and the last decoder layer only (the default of issue #14 to #21);
#: ``{last}`` is the last layer's index.
DOWN_ENDS = r".*\.layers\.(?:0|{last})\.mlp\.(?:shared_expert\.)?down_proj/.*"
#: down_proj of the layers llama.cpp's Q4_K_M gives more bits (``use_more_bits`` in its
#: llama-quant.cpp: the first and last eighth and every third layer between, half the layers);
#: ``{more_bits}`` is that set of layer indices.
DOWN_MORE_BITS = r".*\.layers\.(?:{more_bits})\.mlp\.(?:shared_expert\.)?down_proj/.*"
#: The INT8 set of the policy before issue #14 (routers only where they exist).
DOWN8 = (GDN, DOWN, ROUTERS)
GROUP_NAMES = {GDN: "gdn", DOWN: "down", ROUTERS: "routers", ATTENTION: "attn", SHARED_EXPERT: "shared"}
GROUP_NAMES[GATE_UP] = "gate/up"
GROUP_NAMES[DOWN_ENDS] = "down@ends"
GROUP_NAMES[DOWN_MORE_BITS] = "down@more-bits"


@dataclass(frozen=True)
class Row:
    """One way to compress: everything INT4 except the ``int8`` groups (INT8 asym per channel)."""

    int8: tuple[str, ...] = DOWN8
    group_size: int = 128
    sym: bool = False
    #: embedding/lm_head: "int8" (per row, as the policy), "int4" (row's INT4), or "lm_head4": the
    #: embedding INT8 and the lm_head untied from it in the IR and given the row's INT4 (issue #21)
    vocabulary: str = "int8"


# fmt: off
ROWS: dict[str, Row] = {
    # The policy before issue #14 (Gated DeltaNet and every down_proj INT8, g128), its group size and symmetry.
    "down8-g128":       Row(),
    "down8-g64":        Row(group_size=64),
    "down8-g32":        Row(group_size=32),
    "down8-g128-sym":   Row(sym=True),
    "down8-g64-sym":    Row(group_size=64, sym=True),
    "down8-g32-sym":    Row(group_size=32, sym=True),
    # Which groups stay INT8 (Gated DeltaNet always does).
    "attn8-g128":        Row(int8=(*DOWN8, ATTENTION)),
    "attn8-g64":         Row(int8=(*DOWN8, ATTENTION), group_size=64),
    "attn8-g32":         Row(int8=(*DOWN8, ATTENTION), group_size=32),
    "down4-g128":        Row(int8=(GDN, ROUTERS)),
    "down4-g64":         Row(int8=(GDN, ROUTERS), group_size=64),
    "down4-g32":         Row(int8=(GDN, ROUTERS), group_size=32),
    "gateup8-g128":      Row(int8=(*DOWN8, GATE_UP)),
    # Attention's INT8 bytes paid for with down_proj's or the vocabulary table's INT4.
    "attn8-down4-g64":   Row(int8=(GDN, ROUTERS, ATTENTION), group_size=64),
    "attn8-down4-g32":   Row(int8=(GDN, ROUTERS, ATTENTION), group_size=32),
    "attn8-ends8-g64":   Row(int8=(GDN, ROUTERS, ATTENTION, DOWN_ENDS), group_size=64),
    "attn8-ends8-g32":   Row(int8=(GDN, ROUTERS, ATTENTION, DOWN_ENDS), group_size=32),
    "attn8-more8-g32":   Row(int8=(GDN, ROUTERS, ATTENTION, DOWN_MORE_BITS), group_size=32),
    "attn8-vocab4-g64":  Row(int8=(*DOWN8, ATTENTION), group_size=64, vocabulary="int4"),
    "attn8-vocab4-g32":  Row(int8=(*DOWN8, ATTENTION), group_size=32, vocabulary="int4"),
    # The vocabulary table (tied embedding/lm_head) in the row's INT4 instead of INT8.
    "vocab4-g128":       Row(vocabulary="int4"),
    "vocab4-g64":        Row(group_size=64, vocabulary="int4"),
    "vocab4-g32":        Row(group_size=32, vocabulary="int4"),
    # The default with its lm_head untied and INT4 (the embedding Gather reads one row per token: INT8 stays).
    "lmhead4-g32":       Row(int8=(GDN, ROUTERS, ATTENTION, DOWN_ENDS), group_size=32, vocabulary="lm_head4"),
    "lmhead4-g128":      Row(int8=(GDN, ROUTERS, ATTENTION, DOWN_ENDS), group_size=128, vocabulary="lm_head4"),
    # MoE only: routers in INT4, or the whole shared expert in INT8 (old default, then the default).
    "routers4-g128":     Row(int8=(GDN, DOWN)),
    "shared8-g128":      Row(int8=(*DOWN8, SHARED_EXPERT)),
    "attn8-ends8-routers4-g32": Row(int8=(GDN, ATTENTION, DOWN_ENDS), group_size=32),
    "attn8-ends8-shared8-g32":  Row(int8=(GDN, ROUTERS, ATTENTION, DOWN_ENDS, SHARED_EXPERT), group_size=32),
    # The default with symmetric INT4.
    "attn8-ends8-g32-sym": Row(int8=(GDN, ROUTERS, ATTENTION, DOWN_ENDS), group_size=32, sym=True),
    # Issue #21, by kernel speed: INT4 takes 0.7-1.0x INT8's time per projection on AMX for half the
    # bytes (fc_formats.py), so more INT8 costs little time. mlp8: the dense MLP INT8 too (MoE: routed experts INT4).
    "mlp8-g32":          Row(int8=(*DOWN8, ATTENTION, GATE_UP), group_size=32),
}
# fmt: on
#: The row ``--weight-format int4`` is (optimum_qwen35/compression/policy.py).
DEFAULT_ROW = "attn8-g32"

#: The Qwen3.5-0.8B text config (a copy of the hub's), for the size column.
SHAPE_0_8B = Path(__file__).parents[1] / "tests" / "data" / "hub-configs" / "Qwen3.5-0.8B" / "config.json"
_WEIGHTED_OPS = {"MatMul", "Gather"}


def more_bits_layers(num_layers: int) -> list[int]:
    """The layers llama.cpp's ``use_more_bits(i, n)`` picks: first and last eighth, every third between."""
    eighth = num_layers // 8
    return [i for i in range(num_layers) if i < eighth or i >= 7 * num_layers // 8 or (i - eighth) % 3 == 2]


def resolved(patterns: tuple[str, ...], num_layers: int) -> list[str]:
    """``patterns`` with ``{last}`` (the last decoder layer's index) and ``{more_bits}`` filled in."""
    more_bits = "|".join(str(i) for i in more_bits_layers(num_layers))
    return [p.replace("{last}", str(num_layers - 1)).replace("{more_bits}", more_bits) for p in patterns]


def compress(fp32_ir: Path, row: Row) -> ov.Model:
    """The plugin IR at ``fp32_ir`` compressed as ``row`` says, the same steps as the plugin's hook."""
    model = ov.Core().read_model(fp32_ir / "openvino_model.xml")
    names = [op.get_friendly_name() for op in model.get_ops() if op.get_type_name() in _WEIGHTED_OPS]
    layers = 1 + max(int(m.group(1)) for n in names if (m := re.search(r"\.layers\.(\d+)\.", n)))
    config = {"bits": 4, "sym": row.sym, "group_size": row.group_size, "ratio": 1.0, "all_layers": None}
    config["ignored_scope"] = {"patterns": resolved(row.int8, layers)}
    # As the plugin's hook: the never-compressed weights added, the patterns this model lacks
    # dropped (NNCF refuses ignored-scope patterns that match nothing; routers exist only in MoE).
    config = scoped_to(model, with_never_compressed(config))
    patterns = [p for p in resolved(row.int8, layers) if p in config["ignored_scope"]["patterns"]]
    if row.vocabulary in ("int8", "lm_head4"):
        head, table = lm_head(model), lm_head_constant(model)
        f32_table = table.get_data().astype(np.float32) if row.vocabulary == "lm_head4" else None
        compress_vocabulary_tables(model, nncf.CompressWeightsMode.INT8_ASYM)
        config = with_all_layers(config)
        if f32_table is not None:  # its own f32 copy: the INT4 pass (all_layers) compresses it
            head.input(1).replace_source_output(ov.opset13.constant(f32_table).output(0))
    else:  # NNCF compresses the tables with the INT4 mode only under all_layers
        config["all_layers"] = True
    arguments = OVWeightQuantizationConfig.from_dict(config).to_nncf_dict()
    arguments.pop("weight_only", None)
    model = nncf.compress_weights(model, dataset=None, **arguments)
    return compress_int8(model, patterns)


# --- The IR size on the 0.8B shape --------------------------------------------------------------


def _layer_types(text_config: dict) -> list[str]:
    interval = text_config.get("full_attention_interval", 4)
    return text_config.get("layer_types") or [
        "full_attention" if (i + 1) % interval == 0 else "linear_attention"
        for i in range(text_config["num_hidden_layers"])
    ]


def weight_matrices(text_config: dict) -> list[tuple[str, int, int]]:
    """``(IR op name, rows, input channels)`` of every weight NNCF compresses, for a dense text config."""
    hidden, types = text_config["hidden_size"], _layer_types(text_config)
    heads, kv_heads, head_dim = (text_config[k] for k in ("num_attention_heads", "num_key_value_heads", "head_dim"))
    k_heads, v_heads = text_config["linear_num_key_heads"], text_config["linear_num_value_heads"]
    k_dim, v_dim = text_config["linear_key_head_dim"], text_config["linear_value_head_dim"]
    gate = 2 if text_config.get("attn_output_gate", True) else 1  # q_proj also gives the output gate
    matrices = [("__module.model.embed_tokens/aten::embedding/Gather", text_config["vocab_size"], hidden)]
    for i, kind in enumerate(types):
        if kind == "linear_attention":
            module = {
                "linear_attn.in_proj_qkv": (2 * k_heads * k_dim + v_heads * v_dim, hidden),
                "linear_attn.in_proj_z": (v_heads * v_dim, hidden),
                "linear_attn.in_proj_a": (v_heads, hidden),
                "linear_attn.in_proj_b": (v_heads, hidden),
                "linear_attn.out_proj": (hidden, v_heads * v_dim),
            }
        else:
            module = {
                "self_attn.q_proj": (gate * heads * head_dim, hidden),
                "self_attn.k_proj": (kv_heads * head_dim, hidden),
                "self_attn.v_proj": (kv_heads * head_dim, hidden),
                "self_attn.o_proj": (hidden, heads * head_dim),
            }
        intermediate = text_config["intermediate_size"]
        module |= {"mlp.gate_proj": (intermediate, hidden), "mlp.up_proj": (intermediate, hidden)}
        module["mlp.down_proj"] = (hidden, intermediate)
        matrices += [
            (f"__module.model.layers.{i}.{name}/aten::linear/MatMul", *shape) for name, shape in module.items()
        ]
    if not text_config.get("tie_word_embeddings", True):
        matrices.append(("lm_head/aten::linear/MatMul", text_config["vocab_size"], hidden))
    return matrices


def other_elements(text_config: dict) -> int:
    """Elements of the float constants no row compresses: depthwise conv1d, norms, ``A_log``, ``dt_bias``."""
    hidden, types = text_config["hidden_size"], _layer_types(text_config)
    layers, linear = len(types), types.count("linear_attention")
    k_heads, v_heads = text_config["linear_num_key_heads"], text_config["linear_num_value_heads"]
    k_dim, v_dim = text_config["linear_key_head_dim"], text_config["linear_value_head_dim"]
    conv = (2 * k_heads * k_dim + v_heads * v_dim) * text_config["linear_conv_kernel_dim"]
    per_linear = conv + v_dim + 2 * v_heads  # conv1d, gated norm, A_log, dt_bias
    per_full = 2 * text_config["head_dim"]  # q_norm, k_norm
    return layers * 2 * hidden + hidden + linear * per_linear + (layers - linear) * per_full


def matrix_bytes(rows: int, channels: int, int4: bool, group_size: int, sym: bool) -> float:
    """Bytes NNCF stores for one weight: INT8 asym per row (u8 weight, u8 zero point, f16 scale),
    or INT4 per group of ``group_size`` input channels (u4/i4 weight, f16 scale, u4 zero point if asym)."""
    if not int4:
        return rows * channels + rows * (1 + 2)
    groups = rows * channels // group_size
    return rows * channels / 2 + groups * 2 + (0 if sym else groups / 2)


def estimated_bytes(row: Row, text_config: dict) -> float:
    """Size of the ``.bin`` of ``row`` applied to a checkpoint of ``text_config`` (dense), without reading weights.

    Counts every weight the way NNCF stores it (:func:`matrix_bytes`), plus the uncompressed float
    constants, which the plugin's compressed IRs keep in f32 even from a bf16 checkpoint. Shape
    constants, rotary frequencies and the like (under 1 kB on the references) are left out: on
    the dense reference the estimate is within 0.01 % of each row's measured ``.bin``.
    """
    total = other_elements(text_config) * 4
    int8 = resolved(row.int8, len(_layer_types(text_config)))
    for name, rows, channels in weight_matrices(text_config):
        vocabulary = "embed_tokens" in name or name.startswith("lm_head")
        if vocabulary and row.vocabulary == "lm_head4":
            int4 = name.startswith("lm_head")
        else:
            int4 = row.vocabulary == "int4" if vocabulary else not any(re.match(p, name) for p in int8)
        total += matrix_bytes(rows, channels, int4, row.group_size, row.sym)
    if row.vocabulary == "lm_head4" and text_config.get("tie_word_embeddings", True):  # the untied copy
        total += matrix_bytes(text_config["vocab_size"], text_config["hidden_size"], True, row.group_size, row.sym)
    return total


def _text_config(path: Path) -> dict:
    """The text config of a checkpoint's ``config.json``, composite or not. A composite config keeps
    ``tie_word_embeddings`` at its top level (false on 9B, 27B, 35B-A3B): copied in, or the size
    estimate would count one vocabulary table instead of two."""
    config = json.loads(path.read_text())
    text = config.get("text_config")
    if text is None:
        return config
    return {"tie_word_embeddings": config.get("tie_word_embeddings", True), **text}


def _int8_label(row: Row, moe: bool) -> str:
    groups = [p for p in row.int8 if moe or p not in (ROUTERS, SHARED_EXPERT)]  # as compress() drops them
    vocabulary = {"int8": "", "int4": ", vocab INT4", "lm_head4": ", lm_head INT4"}[row.vocabulary]
    return "+".join(GROUP_NAMES[p] for p in groups) + vocabulary


def _print_table(rows: list[dict], reference: dict) -> None:
    print(
        f"\n{'row':<16}{'INT8 kept':<24}{'group':>6}{'sym':>4}{'perplexity':>12}  {'vs HF fp32 [95 % interval]':<30}"
        f"{'top-1':>7}{'IR MB':>8}{'0.8B MB':>9}{'<=649':>6}"
    )
    print(f"{'hf-fp32':<16}{'':<24}{'':>6}{'':>4}{reference['perplexity']:12.4f}  (reference)")
    for r in rows:
        change = f"{r['delta_pct']:+.3f} % [{r['ci95_low_pct']:+.3f}, {r['ci95_high_pct']:+.3f}]"
        fits = "yes" if r["size_0_8b_mb"] <= 649.5 else "no"
        sym = "y" if r["sym"] else "n"
        print(
            f"{r['row']:<16}{r['int8_kept']:<24}{r['group_size']:>6}{sym:>4}{r['perplexity']:12.4f}  {change:<30}"
            f"{r['top1']:7.4f}{r['size_mb']:8.2f}{r['size_0_8b_mb']:9.1f}{fits:>6}"
        )
    errors = [abs(r["size_estimate_mb"] / r["size_mb"] - 1) for r in rows if "size_estimate_mb" in r]
    if errors:  # the 0.8B column's formula, applied to this checkpoint's own shape
        print("0.8B MB: estimated from the precisions (dense 0.8B shape); on this checkpoint's shape the same")
        print(f"estimate is within {100 * max(errors):.3f} % of every row's measured IR MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="Qwen3.5 checkpoint folder (with its tokenizer)")
    parser.add_argument("--text", required=True, help="UTF-8 held-out text")
    parser.add_argument(
        "--rows", default=",".join(ROWS), help=f"comma-separated row names (default: all): {', '.join(ROWS)}"
    )
    parser.add_argument(
        "--max-windows", type=int, help="as optimum-qwen35 eval --max-windows (default: the whole file)"
    )
    parser.add_argument("--window-length", type=int, default=512)
    parser.add_argument("--work-dir", help="keep the fp32 IR and each row's IR here (default: a folder in /tmp)")
    parser.add_argument("--cache-dir", help="HF float32 score cache (default: optimum-qwen35 eval's)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument(
        "--device-config",
        default="f32",
        help=f"comma-separated OpenVINO compile options to score each row with: {', '.join(DEVICE_CONFIGS)} "
        "(as optimum-qwen35 eval --device-config)",
    )
    parser.add_argument(
        "--check-policy", type=int, metavar="N", help=f"compare row {DEFAULT_ROW} with the plugin's int4 on N windows"
    )
    args = parser.parse_args()
    names = args.rows.split(",")
    unknown = [name for name in names if name not in ROWS]
    if unknown:
        parser.error(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    device_configs = args.device_config.split(",")
    if any(choice not in DEVICE_CONFIGS for choice in device_configs):
        parser.error(f"--device-config takes {', '.join(DEVICE_CONFIGS)} (comma-separated), got {args.device_config}")

    checkpoint = Path(args.checkpoint)
    work = Path(args.work_dir or f"/tmp/compression-sweep-{checkpoint.name}")
    fp32_ir = work / "fp32"
    if not (fp32_ir / "openvino_model.xml").is_file():
        print(f"exporting the fp32 IR to {fp32_ir} ...", flush=True)
        optimum_qwen35.export(checkpoint, fp32_ir, weight_format="fp32", convert_tokenizer=False, overwrite=True)

    ids = AutoTokenizer.from_pretrained(checkpoint)(Path(args.text).read_text(encoding="utf-8"), return_tensors="np")
    ids = ids["input_ids"][0]
    length = args.window_length
    indices = select_windows(len(ids), length, args.max_windows)
    windows = windows_at(ids, indices, length)
    print(f"{len(indices)} of {len(ids) // length} consecutive windows x {length} tokens from {args.text}", flush=True)
    reference, computed = cached_score_hf(checkpoint, ids, indices, length, Path(args.cache_dir or default_cache_dir()))
    print(f"HF float32 perplexity {reference.perplexity:.4f} ({len(indices) - computed} windows from the cache)")
    window_tokens = np.full(len(indices), length - 1)
    shape_0_8b, text_config = _text_config(SHAPE_0_8B), _text_config(checkpoint / "config.json")

    if args.check_policy:
        few = windows[np.rint(np.linspace(0, len(windows) - 1, args.check_policy)).astype(int)]
        plugin_ir = export_variant(checkpoint, "int4", work / "plugin-int4", "builtin")
        ours = work / DEFAULT_ROW
        _save(compress(fp32_ir, ROWS[DEFAULT_ROW]), fp32_ir, ours)
        plugin, sweep = score_ir(plugin_ir, few, desc="plugin int4"), score_ir(ours, few, desc=DEFAULT_ROW)
        relative, largest = sweep.perplexity / plugin.perplexity - 1, np.abs(sweep.nll - plugin.nll).max()
        print(
            f"check: plugin --weight-format int4 {plugin.perplexity:.6f} ({ir_size_mb(plugin_ir):.3f} MB), "
            f"sweep {DEFAULT_ROW} {sweep.perplexity:.6f} ({ir_size_mb(ours):.3f} MB) on {len(few)} windows: "
            f"relative difference {relative:+.2e}, max |per-token NLL difference| {largest:.1e}",
            flush=True,
        )
        if abs(relative) > 1e-4:
            print("check FAILED: the sweep does not reproduce the plugin's policy", file=sys.stderr)
            return 1

    rows = []
    for name in names:
        row, folder = ROWS[name], work / name
        started = time.perf_counter()
        _save(compress(fp32_ir, row), fp32_ir, folder)
        for device_config in device_configs:
            scores = score_ir(folder, windows, desc=f"{name} {device_config}", device_config=device_config)
            difference = paired_bootstrap(scores.window_nll, reference.window_nll, window_tokens)
            result = {"row": name, "device_config": device_config, **asdict(row)}
            result["int8_kept"] = _int8_label(row, bool(text_config.get("num_experts")))
            result |= {"perplexity": scores.perplexity, **asdict(difference), "top1": scores.agreement(reference)}
            result |= {"size_mb": ir_size_mb(folder), "size_0_8b_mb": estimated_bytes(row, shape_0_8b) / 1e6}
            if not text_config.get("num_experts"):  # the estimate's own check: this checkpoint's shape
                result["size_estimate_mb"] = estimated_bytes(row, text_config) / 1e6
            result["seconds"] = round(time.perf_counter() - started, 1)
            result["window_nll"] = scores.window_nll.tolist()  # [W]: rows can be compared with each other, paired
            rows.append(result)
            print(f"{name} ({device_config}): {result['delta_pct']:+.3f} % after {result['seconds']:.0f} s", flush=True)
            if args.json:  # after every row, so a stopped run keeps what it measured
                _write_json(args, checkpoint, ids, indices, reference, rows)
    for device_config in device_configs:
        print(f"\nOpenVINO device config: {device_config}")
        _print_table([r for r in rows if r["device_config"] == device_config], {"perplexity": reference.perplexity})
    if args.json:
        print(f"wrote {args.json}")
    return 0


def _save(model: ov.Model, fp32_ir: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_bytes((fp32_ir / "config.json").read_bytes())
    ov.save_model(model, folder / "openvino_model.xml", compress_to_fp16=False)


def _write_json(args, checkpoint, ids, indices, reference, rows) -> None:
    result = {"checkpoint": str(checkpoint), "text": str(args.text), "tokens": len(ids)}
    result |= {
        "window_length": args.window_length,
        "windows": len(indices),
        "grid_windows": len(ids) // args.window_length,
    }
    result |= {"bootstrap": {"resamples": RESAMPLES, "seed": SEED}, "hf_fp32_perplexity": reference.perplexity}
    result |= {"hf_fp32_window_nll": reference.window_nll.tolist()}
    result |= {"size_0_8b": f"estimated_bytes() on {SHAPE_0_8B.relative_to(Path(__file__).parents[1])}"}
    Path(args.json).write_text(json.dumps(result | {"results": rows}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
