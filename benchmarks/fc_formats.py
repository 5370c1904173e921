"""Rate of one OpenVINO CPU ``FullyConnected`` for each weight format NNCF can produce.

Builds ``x [1, M, K] @ W [N, K]ᵀ`` with random weights, compresses ``W`` per format, compiles each
with ``PERFORMANCE_HINT=LATENCY`` and times them in interleaved rounds, so that machine noise hits
every format alike. ``M = 1`` is a decode step (reported in weight parameters per second), larger
``M`` a prefill (GFLOP/s).

    python benchmarks/fc_formats.py                      # decode: M = 1, N = 65536
    python benchmarks/fc_formats.py --tokens 1024 --rows 4096 --config DYNAMIC_QUANTIZATION_GROUP_SIZE=32
"""

from __future__ import annotations

import argparse
import statistics
import time

import nncf
import numpy as np
import openvino as ov
import openvino.opset13 as ops
from openvino._offline_transformations import compress_model_transformation

INT4 = dict(ratio=1.0, all_layers=True)
#: name → how the weight is stored: None (f32), "f16", or ``nncf.compress_weights`` arguments.
FORMATS: dict[str, dict | str | None] = {
    "f32": None,
    "f16": "f16",
    "int8_asym": dict(mode=nncf.CompressWeightsMode.INT8_ASYM),
    "int8_sym": dict(mode=nncf.CompressWeightsMode.INT8_SYM),
    "int4_asym_g128": dict(mode=nncf.CompressWeightsMode.INT4_ASYM, group_size=128, **INT4),
    "int4_asym_g64": dict(mode=nncf.CompressWeightsMode.INT4_ASYM, group_size=64, **INT4),
    "int4_asym_cw": dict(mode=nncf.CompressWeightsMode.INT4_ASYM, group_size=-1, **INT4),
    "int4_sym_g128": dict(mode=nncf.CompressWeightsMode.INT4_SYM, group_size=128, **INT4),
    "int4_sym_cw": dict(mode=nncf.CompressWeightsMode.INT4_SYM, group_size=-1, **INT4),
}


def build(weights: np.ndarray, tokens: int, storage: dict | str | None) -> ov.Model:
    """The one-MatMul model ``[1, tokens, K] → [1, tokens, N]`` with ``weights [N, K]`` stored as asked."""
    x = ops.parameter([1, tokens, weights.shape[1]], ov.Type.f32, name="x")
    model = ov.Model([ops.matmul(x, ops.constant(weights), False, True)], [x])
    if storage == "f16":
        compress_model_transformation(model)
    elif storage is not None:
        model = nncf.compress_weights(model, **storage)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=65536, help="N, output channels")
    parser.add_argument("--columns", type=int, default=1024, help="K, input channels")
    parser.add_argument("--tokens", type=int, default=1, help="M: 1 for decode, more for prefill")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated, from the list above")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--config", action="append", default=[], help="extra CPU property KEY=VALUE")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    weights = rng.standard_normal((args.rows, args.columns), dtype=np.float32) * 0.02
    x = rng.standard_normal((1, args.tokens, args.columns), dtype=np.float32)
    config = {"PERFORMANCE_HINT": "LATENCY", **dict(item.split("=", 1) for item in args.config)}
    core = ov.Core()
    requests = {}
    for name in args.formats.split(","):
        compiled = core.compile_model(build(weights, args.tokens, FORMATS[name]), "CPU", config)
        requests[name] = compiled.create_infer_request()
    repeats = 10 if args.tokens == 1 else 2
    times: dict[str, list[float]] = {name: [] for name in requests}
    for _ in range(args.rounds):
        for name, request in requests.items():
            request.infer([x])  # warm
            start = time.perf_counter()
            for _ in range(repeats):
                request.infer([x])
            times[name].append((time.perf_counter() - start) / repeats)

    params = args.rows * args.columns
    print(f"M={args.tokens} N={args.rows} K={args.columns}, median of {args.rounds} interleaved rounds")
    for name, samples in times.items():
        seconds = statistics.median(samples)
        rate = (
            f"{params / seconds / 1e9:6.2f} Gparam/s"
            if args.tokens == 1
            else f"{2 * args.tokens * params / seconds / 1e9:7.1f} GFLOP/s"
        )
        print(f"{name:16s} {seconds * 1e3:8.2f} ms  {rate}")


if __name__ == "__main__":
    main()
