"""Decode rate of one OpenVINO CPU ``FullyConnected`` per weight format NNCF can write, per projection.

For each projection shape of a Qwen3.5 text config (by default the 0.8B one: Gated DeltaNet
``in_proj_qkv/z/a/b`` and ``out_proj``, attention ``q/k/v/o_proj``, MLP ``gate/up/down_proj`` and
the vocabulary table read by ``lm_head``) this builds ``x [1, M, K] @ W [N, K]ᵀ`` with random
weights, compresses ``W`` per format with ``nncf.compress_weights``, compiles it with the CPU
plugin's defaults (``PERFORMANCE_HINT=LATENCY``: what a decode step runs) and times every format
in interleaved rounds, so that machine noise hits every format alike. It reports ms per projection,
GB/s of the format's weight bytes (weights, scales, zero points as NNCF stores them) and the time
relative to ``int8_asym`` (the policy's INT8) measured in the same group of rounds (each the
fastest of its rounds).

Each format's kernel path is read from the compiled model's runtime graph and printed, so that a
format without a real kernel is reported, not dropped: ``kernel`` (the FullyConnected reads the
compressed constant itself), ``decompress/call`` (Convert/Gather/Multiply nodes decompress the
weight on every inference, then a dense bf16/f32 FullyConnected), ``dense`` (a dense constant:
f16, or a format the plugin decompressed at compile time, so dense bytes are read and held), or
``NNCF refuses`` / ``compile fails`` with the message.

    python benchmarks/fc_formats.py --lock /work/bench.lock                 # every format, every 0.8B projection
    python benchmarks/fc_formats.py --projections mlp.down_proj,lm_head --formats int8_asym,int4_sym_g128
    python benchmarks/fc_formats.py --tokens 1024 --projections mlp.gate/up_proj   # prefill (GFLOP/s)

``--lock FILE`` holds ``flock(FILE)`` only while timing (compressing the 248320-row vocabulary
table takes NNCF ~10 s per format; other timing runs need not wait for that).
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nncf
import numpy as np
import openvino as ov
import openvino.opset13 as ops
from openvino._offline_transformations import compress_model_transformation

CONFIG_0_8B = Path(__file__).parents[1] / "tests" / "data" / "hub-configs" / "Qwen3.5-0.8B" / "config.json"
BASELINE = "int8_asym"
Mode = nncf.CompressWeightsMode


def _grouped(mode: nncf.CompressWeightsMode, group_size: int) -> dict:
    return dict(mode=mode, group_size=group_size, ratio=1.0, all_layers=True)


#: name → how the weight is stored: None (f32), "f16", or ``nncf.compress_weights`` arguments. Every mode of
#: NNCF 3.4's ``CompressWeightsMode`` that is at most 8 bits and needs no data: INT8/INT4 asym and
#: sym (INT4 at group 32/64/128 and per channel), NF4, E2M1 with an f16 scale (``fp4``), MXFP4
#: (E2M1 + E8M0 scale, group 32 only), NVFP4 (E2M1 + E4M3 scale, group 16 only), the fixed 4-bit
#: codebook CB4, MXFP8 and FP8 E4M3. Not here: ``codebook`` (needs a user codebook; CB4 is its
#: built-in case), ``adaptive_codebook`` (needs a dataset), ``int3_sym``/``int2_sym`` (below 4 bits).
FORMATS: dict[str, dict | str | None] = {
    "f16": "f16",
    "int8_asym": dict(mode=Mode.INT8_ASYM),
    "int8_sym": dict(mode=Mode.INT8_SYM),
    **{
        f"int4_{sym}_{name}": _grouped(Mode.INT4_SYM if sym == "sym" else Mode.INT4_ASYM, group)
        for sym in ("asym", "sym")
        for name, group in (("g32", 32), ("g64", 64), ("g128", 128), ("cw", -1))
    },
    "nf4_g32": _grouped(Mode.NF4, 32),
    "nf4_g128": _grouped(Mode.NF4, 128),
    "fp4_g32": _grouped(Mode.FP4, 32),
    "fp4_g128": _grouped(Mode.FP4, 128),
    "mxfp4_g32": _grouped(Mode.MXFP4, 32),
    "nvfp4_g16": _grouped(Mode.NVFP4, 16),
    "cb4_g32": _grouped(Mode.CB4, 32),
    "mxfp8_e4m3_g32": _grouped(Mode.MXFP8_E4M3, 32),
    "fp8_e4m3_cw": _grouped(Mode.FP8_E4M3, -1),
}
#: Not in the default list: f32 weights (twice f16's bytes; for prefill comparisons).
OPTIONAL_FORMATS: dict[str, None] = {"f32": None}


def projections(config_file: Path) -> dict[str, tuple[int, int]]:
    """Projection name → ``(N, K)`` (output, input channels) of a Qwen3.5 text config."""
    config = json.loads(config_file.read_text())
    text = config.get("text_config", config)
    hidden, heads, kv_heads = text["hidden_size"], text["num_attention_heads"], text["num_key_value_heads"]
    head_dim = text.get("head_dim", hidden // heads)
    key_dim = text["linear_num_key_heads"] * text["linear_key_head_dim"]
    value_dim = text["linear_num_value_heads"] * text["linear_value_head_dim"]
    return {
        "linear_attn.in_proj_qkv": (2 * key_dim + value_dim, hidden),
        "linear_attn.in_proj_z": (value_dim, hidden),
        "linear_attn.in_proj_a/b": (text["linear_num_value_heads"], hidden),
        "linear_attn.out_proj": (hidden, value_dim),
        "self_attn.q_proj": (2 * heads * head_dim, hidden),  # query and output gate
        "self_attn.k/v_proj": (kv_heads * head_dim, hidden),
        "self_attn.o_proj": (hidden, heads * head_dim),
        "mlp.gate/up_proj": (text["intermediate_size"], hidden),
        "mlp.down_proj": (hidden, text["intermediate_size"]),
        "lm_head": (text["vocab_size"], hidden),
    }


def build(weights: np.ndarray, tokens: int, storage: dict | str | None) -> ov.Model:
    """The one-MatMul model ``[1, tokens, K] → [1, tokens, N]`` with ``weights [N, K]`` stored as asked."""
    x = ops.parameter([1, tokens, weights.shape[1]], ov.Type.f32, name="x")
    model = ov.Model([ops.matmul(x, ops.constant(weights, shared_memory=True), False, True)], [x])
    if storage == "f16":
        compress_model_transformation(model)
    elif storage is not None:
        model = nncf.compress_weights(model, **storage)
    return model


def weight_bytes(model: ov.Model) -> int:
    """Bytes of the model's weight constants (weights, scales, zero points) as stored."""
    total = 0
    for op in model.get_ops():
        if op.get_type_name() == "Constant" and op.get_output_partial_shape(0).rank.get_length() >= 2:
            elements = int(np.prod(op.get_output_shape(0)))
            total += elements * op.get_output_element_type(0).bitwidth // 8
    return total


def kernel_path(compiled: ov.CompiledModel) -> str:
    """How the compiled ``FullyConnected`` gets its weight (see the module docstring)."""
    for op in compiled.get_runtime_model().get_ops():
        if op.get_rt_info()["layerType"].astype(str) != "FullyConnected":
            continue
        source = op.input_value(1).get_node()
        if source.get_rt_info()["layerType"].astype(str) != "Const":
            return "decompress/call"
        precision = source.get_rt_info()["outputPrecisions"].astype(str)
        return "dense" if precision in ("f32", "bf16", "f16") else "kernel"
    return "no FullyConnected"


@contextmanager
def locked(path: str | None) -> Iterator[None]:
    """Hold ``flock(path)`` (the CPU-sharing lock) while timing; nothing without a path."""
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def time_interleaved(requests: dict[str, ov.InferRequest], x: np.ndarray, rounds: int) -> dict[str, float]:
    """Seconds per inference of each request: the fastest of ``rounds`` interleaved rounds of ~20 ms.

    The fastest, not the median: on a shared machine other processes only ever add time, and a
    2-core machine under load gives every format some slow rounds.
    """
    repeats = {}
    for name, request in requests.items():
        request.infer([x])
        start = time.perf_counter()
        request.infer([x])
        repeats[name] = max(3, min(200, int(0.02 / (time.perf_counter() - start))))
    samples: dict[str, list[float]] = {name: [] for name in requests}
    for _ in range(rounds):
        for name, request in requests.items():
            request.infer([x])  # warm
            start = time.perf_counter()
            for _ in range(repeats[name]):
                request.infer([x])
            samples[name].append((time.perf_counter() - start) / repeats[name])
    return {name: min(values) for name, values in samples.items()}


def measure(
    shape: tuple[int, int], formats: list[str], tokens: int, rounds: int, group: int, lock: str | None
) -> list[dict]:
    """One row per format for the projection ``shape``; formats timed in groups of ``group``, each
    group with the baseline, so that no more than ``group`` compiled weights are held at once."""
    rng = np.random.default_rng(0)
    weights = rng.standard_normal(shape, dtype=np.float32) * 0.02
    x = rng.standard_normal((1, tokens, shape[1]), dtype=np.float32)
    core, config = ov.Core(), {"PERFORMANCE_HINT": "LATENCY"}
    others = [name for name in formats if name != BASELINE]
    rows = []
    for start in range(0, max(len(others), 1), group - 1):
        chunk = [BASELINE, *others[start : start + group - 1]]
        requests, info = {}, {}
        for name in chunk:
            row = {"format": name}
            try:
                model = build(weights, tokens, {**FORMATS, **OPTIONAL_FORMATS}[name])
            except Exception as error:  # noqa: BLE001 - reported in the table, the other formats go on
                info[name] = row | {"path": "NNCF refuses", "error": f"{type(error).__name__}: {error}"}
                continue
            row["weight_bytes"] = weight_bytes(model)
            try:
                compiled = core.compile_model(model, "CPU", config)
            except Exception as error:  # noqa: BLE001
                info[name] = row | {"path": "compile fails", "error": f"{type(error).__name__}: {error}"}
                continue
            del model
            info[name] = row | {"path": kernel_path(compiled)}
            requests[name] = compiled.create_infer_request()
        with locked(lock):
            seconds = time_interleaved(requests, x, rounds)
        for name in chunk:
            if name == BASELINE and start > 0:
                continue
            row = info[name]
            if name in seconds:
                row |= {"ms": seconds[name] * 1e3, "vs_int8_asym": seconds[name] / seconds[BASELINE]}
                row["gb_per_s"] = row["weight_bytes"] / seconds[name] / 1e9
            rows.append(row)
        del requests
        gc.collect()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=CONFIG_0_8B, help="Qwen3.5 config.json for the shapes")
    parser.add_argument("--projections", help="comma-separated projection names (default: all of the config's)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated, from the list above")
    parser.add_argument("--tokens", type=int, default=1, help="M: 1 for decode, more for prefill")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--group", type=int, default=8, help="formats compiled and timed together (with int8_asym)")
    parser.add_argument("--lock", help="flock this file while timing (e.g. /work/bench.lock)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    nncf.set_log_level(40)  # errors only: no progress bars per weight
    shapes = projections(args.config)
    names = args.projections.split(",") if args.projections else list(shapes)
    formats = args.formats.split(",")
    known = FORMATS | OPTIONAL_FORMATS
    unknown = [name for name in names if name not in shapes] + [name for name in formats if name not in known]
    if unknown:
        parser.error(f"unknown projection(s)/format(s) {', '.join(unknown)}; projections: {', '.join(shapes)}")
    if args.group < 2:
        parser.error("--group must be at least 2 (int8_asym and one format)")
    if BASELINE not in formats:
        formats.insert(0, BASELINE)
    results = {}
    print(f"M={args.tokens}, CPU defaults + PERFORMANCE_HINT=LATENCY, fastest of {args.rounds} interleaved rounds")
    for name in names:
        n, k = shapes[name]
        rows = measure((n, k), formats, args.tokens, args.rounds, args.group, args.lock)
        results[name] = {"shape": [n, k], "rows": rows}
        print(f"\n{name}: N={n} K={k}")
        print(f"{'format':<16}{'path':<17}{'MB':>9}{'ms':>9}{'GB/s':>8}{'vs int8_asym':>14}")
        for row in rows:
            if "ms" not in row:
                print(f"{row['format']:<16}{row['path']:<17}  {row['error'][:100]}")
                continue
            rate = (
                f"{row['gb_per_s']:8.2f}"
                if args.tokens == 1
                else f"{2 * args.tokens * n * k / row['ms'] / 1e6:7.0f}G"  # GFLOP/s for prefill
            )
            print(
                f"{row['format']:<16}{row['path']:<17}{row['weight_bytes'] / 1e6:9.2f}{row['ms']:9.3f}"
                f"{rate}{row['vs_int8_asym']:14.3f}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
