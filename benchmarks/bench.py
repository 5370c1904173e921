"""Latency benchmark on CPU: time to first token and time per output token, with ratios and plots.

Builds (or takes) a random-weight checkpoint of a full-size Qwen3.5 shape, exports it with the
plugin for each ``--formats`` entry (extra IRs, e.g. upstream optimum-intel's exported in another
venv, come in with ``--ir NAME=DIR``), and measures each IR × runtime in a child process of its own:

* ``infer``: a bare ``InferRequest`` loop — prefill of the prompt, then greedy decode steps; the
  IR's contract, so logits for every prompt position;
* ``optimum``: ``OVModelForCausalLM.generate`` — the plugin's runtime for plugin IRs (logits for
  the last prompt position only), optimum-intel's own for other IRs; TTFT is ``generate`` of one
  token, TPOT the median interval between tokens seen by a streamer;
* ``genai``: ``openvino_genai.LLMPipeline`` with its own perf metrics (TTFT, TPOT), default
  backend (continuous batching, paged attention, on CPU);
* ``genai-sdpa``: the same with ``ATTENTION_BACKEND="SDPA"`` (the stateful pipeline);
* ``llama.cpp``: with ``--gguf TYPES`` (optional: ``llama-cpp-python`` and llama.cpp's
  ``convert_hf_to_gguf.py`` given as ``--llama-converter``), the same checkpoint converted to GGUF
  (``gguf_export.py``) and run by ``llama-cpp-python`` on all cores — prompt in one ``eval``, then
  one ``eval`` per greedy token.

Time to first token (TTFT) is measured for every ``--prompts`` length, time per output token
(TPOT) over ``--new-tokens`` tokens after the first prompt, plus the child's peak RSS (all of
it: the runtime's libraries, the model and its caches). Every figure
is also printed as a ratio to the ``--baseline`` row measured in the same run, next to the
bandwidth floor for decode: bytes read per token (weights + recurrent/conv states + KV cache at the
context length) divided by this machine's read bandwidth, measured in the same run.

    python benchmarks/bench.py --work-dir /tmp/q35-bench                  # 0.8B, fp16 + int4
    python benchmarks/bench.py --work-dir /tmp/q35-bench --quick          # 128/512 tokens, 32 new
    python benchmarks/bench.py --work-dir /tmp/q35-bench --ir upstream-fp16=/tmp/upstream-ir
    python benchmarks/bench.py --work-dir /tmp/q35-bench --gguf Q4_0,F16 \
        --llama-converter <llama.cpp>/convert_hf_to_gguf.py

Writes ``bench.json`` and, when matplotlib is installed, ``ttft.png`` and ``decode.png`` into the
work dir. Speed does not depend on weight values, so random weights measure the real shape.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from export_memory import SHAPES, build_checkpoint, proc_status, run_export
from generate_overhead import timed_generate
from gguf_export import export_gguf, llama_cpp_missing, unknown_types
from step_inputs import step_inputs

STOP_TOKEN = 0  # random checkpoints have no real EOS; generation runs to max_new_tokens (ignore_eos)


def measure_bandwidth(gigabytes: float = 1.0, repeats: int = 5) -> dict[str, float]:
    """Read bandwidth in bytes/s by three probes over ``gigabytes`` of data, median of ``repeats``:

    * ``numpy``: one thread summing an f32 array;
    * ``reduce``: OpenVINO's CPU plugin (all its threads) summing the same array;
    * ``matvec``: the CPU plugin multiplying one f32 row by an f32 weight matrix — the decode
      kernel's own access pattern (``FullyConnected``), which reads faster than a reduction here.

    The fastest probe is the machine's bandwidth for the floor (the stricter floor)."""
    import openvino as ov
    import openvino.opset14 as ops

    core, config = ov.Core(), {"INFERENCE_PRECISION_HINT": "f32"}
    data = np.ones(int(gigabytes * 2**30) // 4, np.float32)
    values = ops.parameter([data.size], np.float32, "values")
    reduce = ov.Model([ops.reduce_sum(values, ops.constant([0], np.int64))], [values])
    reduce_request = core.compile_model(reduce, "CPU", config).create_infer_request()
    tensor = ov.Tensor(data, shared_memory=True)
    columns = 4096
    weight = data.reshape(-1, columns)  # f32 weights: no conversion inside the kernel
    row = ops.parameter([1, columns], np.float32, "row")
    matvec = ov.Model([ops.matmul(row, ops.constant(weight, shared_memory=True), False, True)], [row])
    matvec_request = core.compile_model(matvec, "CPU", config).create_infer_request()
    one_row = np.ones((1, columns), np.float32)
    probes = {
        "numpy": (data.sum, data.nbytes),
        "reduce": (lambda: reduce_request.infer([tensor], share_inputs=True), data.nbytes),
        "matvec": (lambda: matvec_request.infer([one_row]), weight.nbytes),
    }
    rates = {}
    for name, (run, nbytes) in probes.items():
        run()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        rates[name] = nbytes / statistics.median(times)
    return rates


def bytes_per_token(weights: Path, config_file: Path, context: int) -> int:
    """Bytes a decode step must read: the ``weights`` file (IR ``.bin`` or GGUF), the recurrent and
    conv states (f32) and an f16 KV cache of ``context`` tokens, for the model ``config_file`` describes."""
    config = json.loads(config_file.read_text())
    config = config.get("text_config", config)
    layers = config["layer_types"]
    linear, full = layers.count("linear_attention"), layers.count("full_attention")
    key_dim = config["linear_num_key_heads"] * config["linear_key_head_dim"]
    value_heads, value_dim = config["linear_num_value_heads"], config["linear_value_head_dim"]
    recurrent = value_heads * config["linear_key_head_dim"] * value_dim * 4
    conv = (2 * key_dim + value_heads * value_dim) * config["linear_conv_kernel_dim"] * 4
    kv = 2 * config["num_key_value_heads"] * config["head_dim"] * context * 2
    return weights.stat().st_size + linear * (recurrent + conv) + full * kv


def _infer_request_run(ir: Path, prompts: list[int], new_tokens: int, vocab: int) -> dict:
    import openvino as ov

    compiled = ov.Core().compile_model(ir / "openvino_model.xml", "CPU")
    names = {name for port in compiled.inputs for name in port.get_names()}
    request = compiled.create_infer_request()
    rng = np.random.default_rng(0)
    ttft, tpot = {}, []
    for index, length in enumerate(prompts):
        request.reset_state()
        feed = step_inputs(rng.integers(1, vocab, (1, length)), 0, names)
        start = time.perf_counter()
        request.infer(feed)
        token = int(request.get_tensor("logits").data[0, -1].argmax())
        ttft[length] = time.perf_counter() - start
        if index:
            continue
        steps = []
        for step in range(new_tokens):
            feed = step_inputs(np.array([[token]]), length + step, names)
            start = time.perf_counter()
            request.infer(feed)
            token = int(request.get_tensor("logits").data[0, -1].argmax())
            steps.append(time.perf_counter() - start)
        tpot = steps
    return {"ttft_s": ttft, "tpot_s": statistics.median(tpot)}


def _genai_run(ir: Path, prompts: list[int], new_tokens: int, vocab: int, **properties: str) -> dict:
    import openvino as ov
    import openvino_genai

    pipe = openvino_genai.LLMPipeline(str(ir), "CPU", **properties)
    rng = np.random.default_rng(0)
    ttft, tpot = {}, None
    for index, length in enumerate(prompts):
        config = pipe.get_generation_config()
        config.max_new_tokens = new_tokens if index == 0 else 1
        config.ignore_eos = True
        config.set_eos_token_id(STOP_TOKEN)  # a random checkpoint has none, which genai rejects
        config.stop_token_ids = {STOP_TOKEN}
        ids = ov.Tensor(rng.integers(1, vocab, (1, length)).astype(np.int64))
        metrics = pipe.generate(ids, config).perf_metrics
        ttft[length] = metrics.get_ttft().mean / 1000
        if index == 0:
            tpot = metrics.get_tpot().mean / 1000
    return {"ttft_s": ttft, "tpot_s": tpot}


def _optimum_run(ir: Path, prompts: list[int], new_tokens: int, vocab: int) -> dict:
    """``OVModelForCausalLM.generate`` as users call it: the plugin's runtime for plugin IRs (last
    position logits in prefill), optimum-intel's own class for any other IR."""
    import torch
    from optimum.intel import OVModelForCausalLM

    import optimum_qwen35  # noqa: F401  (routes plugin IRs to the plugin's runtime class)

    model = OVModelForCausalLM.from_pretrained(ir)
    rng = np.random.default_rng(0)
    timed_generate(model, torch.ones((1, 4), dtype=torch.int64), 2)  # first-inference set-up, untimed
    ttft, tpot = {}, None
    for index, length in enumerate(prompts):
        ids = torch.from_numpy(rng.integers(1, vocab, (1, length)))
        ttft[length] = timed_generate(model, ids, 1)
        if index == 0:
            clock = _TokenClock()
            timed_generate(model, ids, new_tokens, streamer=clock)
            tpot = statistics.median(np.diff(clock.arrivals[1:]))  # [0] is the prompt
    return {"ttft_s": ttft, "tpot_s": tpot}


def _llama_cpp_run(model: Path, prompts: list[int], new_tokens: int, vocab: int) -> dict:
    """A GGUF file through ``llama-cpp-python`` on every core this process may use: the prompt in
    one ``eval`` (llama.cpp splits it into its 512-token micro-batches), then one ``eval`` per
    greedy token, the next token taken from the last position's logits."""
    import llama_cpp

    threads = len(os.sched_getaffinity(0))
    llm = llama_cpp.Llama(
        str(model),
        n_ctx=max(prompts) + new_tokens + 1,
        n_batch=max(prompts),
        n_threads=threads,  # the binding's default is half the cores
        n_threads_batch=threads,
        verbose=False,
    )

    def next_token() -> int:
        logits = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return int(np.ctypeslib.as_array(logits, (llm.n_vocab(),)).argmax())

    rng = np.random.default_rng(0)
    ttft, tpot = {}, None
    for index, length in enumerate(prompts):
        llm.reset()  # empties the KV cache and the recurrent states
        ids = rng.integers(1, vocab, length).tolist()
        start = time.perf_counter()
        llm.eval(ids)
        token = next_token()
        ttft[length] = time.perf_counter() - start
        if index:
            continue
        steps = []
        for _ in range(new_tokens):
            start = time.perf_counter()
            llm.eval([token])
            token = next_token()
            steps.append(time.perf_counter() - start)
        tpot = statistics.median(steps)
    return {"ttft_s": ttft, "tpot_s": tpot}


class _TokenClock:
    """A ``generate()`` streamer that notes when the prompt and then each new token arrive."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []

    def put(self, value) -> None:
        self.arrivals.append(time.perf_counter())

    def end(self) -> None:
        pass


#: ``--runtimes`` names. ``genai`` is LLMPipeline's default backend (continuous batching with paged
#: attention on CPU); ``genai-sdpa`` asks for its stateful SDPA backend.
RUNTIMES = {
    "infer": _infer_request_run,
    "optimum": _optimum_run,
    "genai": _genai_run,
    "genai-sdpa": functools.partial(_genai_run, ATTENTION_BACKEND="SDPA"),
}
LLAMA_CPP = "llama.cpp"  # the runtime of GGUF rows (``--gguf``)


def measure(model: Path, runtime: str, prompts: list[int], new_tokens: int, config_file: Path) -> dict:
    """Run one model (IR folder or GGUF file) × runtime in this process (the ``--measure`` child mode)."""
    config = json.loads(config_file.read_text())
    vocab = config.get("text_config", config)["vocab_size"]
    run = _llama_cpp_run if runtime == LLAMA_CPP else RUNTIMES[runtime]
    run(model, prompts[:1], 2, vocab)  # warm-up: compilation and first-inference allocations
    # VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's peak at the fork (Linux
    # carries it across exec), so it could only report the larger of the two.
    return run(model, prompts, new_tokens, vocab) | {"peak_rss": proc_status()["VmHWM"]}


def _child(model: Path, runtime: str, config_file: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--measure", str(model), "--runtime", runtime, "--config", str(config_file)]
    cmd += ["--prompts", args.prompts, "--new-tokens", str(args.new_tokens)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    output = child.stdout.read()
    if child.wait() != 0:
        return {"error": f"exit status {child.returncode}"}
    result = json.loads(output.strip().splitlines()[-1])
    result["ttft_s"] = {int(length): seconds for length, seconds in result["ttft_s"].items()}
    return result


def _plots(rows: list[dict], prompts: list[int], work_dir: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots (pip install matplotlib)")
        return []
    ok = [row for row in rows if "error" not in row]
    colors = plt.colormaps["tab20"].colors  # one colour per row: the default cycle repeats after 10
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for index, row in enumerate(ok):
        seconds = [row["ttft_s"][length] for length in prompts]
        axis.plot(prompts, seconds, marker="o", color=colors[index % len(colors)], label=row["name"])
    axis.set(xlabel="prompt tokens", ylabel="time to first token (s)", title="Prefill latency, batch 1, CPU")
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3)
    ttft = work_dir / "ttft.png"
    figure.savefig(ttft, dpi=110, bbox_inches="tight")
    figure, axis = plt.subplots(figsize=(7, 1.5 + 0.35 * len(ok)))
    names = [row["name"] for row in ok][::-1]  # first row on top
    axis.barh(names, [1 / row["tpot_s"] for row in ok][::-1], color="tab:blue", label="measured")
    ceiling = [1000 / row["floor_ms"] for row in ok][::-1]
    axis.scatter(ceiling, names, color="tab:red", zorder=3, label="bandwidth ceiling")
    axis.set(xlabel="output tokens/s", title=f"Decode speed after a {prompts[0]}-token prompt")
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3, axis="x")
    decode = work_dir / "decode.png"
    figure.savefig(decode, dpi=110, bbox_inches="tight")
    return [ttft, decode]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", type=Path, help="checkpoint, IRs, bench.json and plots go here")
    parser.add_argument("--shape", default="0.8B", choices=sorted(SHAPES), help="random-weight checkpoint shape")
    parser.add_argument("--checkpoint", type=Path, help="use this checkpoint instead of a random one")
    parser.add_argument("--formats", default="fp16,int4", help="plugin exports to measure")
    parser.add_argument("--ir", action="append", default=[], help="NAME=DIR: also measure this IR")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help=f"comma-separated, from {', '.join(RUNTIMES)}")
    parser.add_argument("--prompts", default="128,512,2048", help="prompt lengths for TTFT; TPOT after the first")
    parser.add_argument("--new-tokens", type=int, default=128, help="decode steps for TPOT")
    parser.add_argument("--baseline", help="row name the ratios refer to (default: the first row)")
    parser.add_argument("--quick", action="store_true", help="prompts 128,512 and 32 new tokens")
    parser.add_argument("--gguf", default="", help="llama.cpp rows: comma-separated GGUF types, e.g. Q4_0,F16")
    parser.add_argument("--llama-converter", type=Path, help="llama.cpp's convert_hf_to_gguf.py (with --gguf)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--runtime", help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.new_tokens = "128,512", 32
    prompts = [int(length) for length in args.prompts.split(",")]
    unknown = set(args.runtimes.split(",")) - set(RUNTIMES)
    if unknown:
        parser.error(f"unknown runtime(s) {', '.join(sorted(unknown))}: choose from {', '.join(RUNTIMES)}")
    if args.measure:  # child mode: one model, one runtime, JSON on the last line of stdout
        print(json.dumps(measure(args.measure, args.runtime, prompts, args.new_tokens, args.config)))
        return 0
    if args.work_dir is None:
        parser.error("--work-dir is required")
    gguf_types = [name for name in args.gguf.split(",") if name]
    if gguf_types and args.llama_converter is None:
        parser.error("--gguf needs --llama-converter <llama.cpp>/convert_hf_to_gguf.py")
    if gguf_types and not args.llama_converter.is_file():
        parser.error(f"--llama-converter {args.llama_converter}: no such file (llama.cpp's convert_hf_to_gguf.py)")
    if gguf_types and (missing := llama_cpp_missing()):
        parser.error(f"--gguf: {missing}")
    if gguf_types and (bad_types := unknown_types(gguf_types)):
        parser.error(f"--gguf: llama.cpp has no type {', '.join(bad_types)} (e.g. Q4_0, Q4_K_M, Q8_0, F16)")
    args.work_dir.mkdir(parents=True, exist_ok=True)

    checkpoint = args.checkpoint or build_checkpoint(args.shape, args.work_dir / f"ckpt-{args.shape}")
    irs = {}
    for weight_format in args.formats.split(","):
        ir = args.work_dir / f"ir-{weight_format}"
        if not (ir / "openvino_model.xml").is_file():
            print(f"exporting {weight_format} ...", flush=True)
            result = run_export(sys.executable, None, checkpoint, ir, weight_format, None, keep=True)
            if not result["ok"]:
                print(f"export failed, see {result['log']}")
                return 1
        irs[f"plugin-{weight_format}"] = ir
    irs |= {name: Path(folder) for name, folder in (spec.split("=", 1) for spec in args.ir)}
    ggufs = {}
    for gguf_type in gguf_types:
        print(f"converting to GGUF {gguf_type} ...", flush=True)
        ggufs[f"llama.cpp-{gguf_type}"] = export_gguf(checkpoint, args.work_dir, gguf_type, args.llama_converter)

    probes = measure_bandwidth()
    bandwidth = max(probes.values())
    print("read bandwidth: " + ", ".join(f"{name} {rate / 1e9:.1f} GB/s" for name, rate in probes.items()), flush=True)
    context = prompts[0] + args.new_tokens // 2
    runs = [
        (f"{name}/{runtime}", ir, runtime, ir / "openvino_model.bin", ir / "config.json")
        for name, ir in irs.items()
        for runtime in args.runtimes.split(",")
    ]
    runs += [(name, gguf, LLAMA_CPP, gguf, checkpoint / "config.json") for name, gguf in ggufs.items()]
    rows = []
    for name, model, runtime, weights, config_file in runs:
        floor_ms = 1000 * bytes_per_token(weights, config_file, context) / bandwidth
        print(f"measuring {name} ...", flush=True)
        row = {"name": name, "model": str(model), "runtime": runtime, "floor_ms": floor_ms}
        rows.append(row | _child(model, runtime, config_file, args))
    baseline = next((row for row in rows if row["name"] == args.baseline), rows[0])

    print(f"\nratios: baseline / row, so > 1 means faster than {baseline['name']}")
    header = "".join(f"{f'TTFT {n}':>14}" for n in prompts) + f"{'TPOT ms':>10}{'floor ms':>10}{'TPOT/floor':>11}"
    width = max(len(row["name"]) for row in rows) + 2
    print(f"{'row':<{width}}{header}{'peak RSS':>10}")
    for row in rows:
        if "error" in row:
            print(f"{row['name']:<{width}}failed: {row['error']}")
            continue
        cells = ""
        for length in prompts:
            ratio = baseline["ttft_s"][length] / row["ttft_s"][length] if "ttft_s" in baseline else float("nan")
            cells += f"{row['ttft_s'][length]:>8.2f}s {ratio:>4.2f}x"
        tpot_ms = 1000 * row["tpot_s"]
        cells += f"{tpot_ms:>10.1f}{row['floor_ms']:>10.1f}{tpot_ms / row['floor_ms']:>10.2f}x"
        print(f"{row['name']:<{width}}{cells}{row['peak_rss'] / 1e9:>8.2f}GB", flush=True)
    result = {"shape": args.shape, "prompts": prompts, "new_tokens": args.new_tokens, "bandwidth": bandwidth}
    result["bandwidth_probes"] = probes
    (args.work_dir / "bench.json").write_text(json.dumps(result | {"rows": rows}, indent=2))
    for plot in _plots(rows, prompts, args.work_dir):
        print(f"wrote {plot}")
    print(f"wrote {args.work_dir / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
