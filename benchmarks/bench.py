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
  one ``eval`` per greedy token;
* ``vlm`` and ``vlm-mtp-k<K>``: with ``--mtp K,...``, every format also exported as the
  vision-language layout (``--task image-text-to-text``, MTP head included) and run by
  ``openvino_genai.VLMPipeline`` without a draft and with its MTP head drafting K tokens per step;
  these rows also report the draft acceptance rate and the greedy text.

Each child loads its runtime once and makes one first call before any timed one; that call's
time to first token is the ``cold TTFT`` column, and every other figure is warm: time to first
token (TTFT) for every ``--prompts`` length, time per output token (TPOT) over ``--new-tokens``
tokens after the first prompt, plus the child's peak RSS (all of it: the runtime's libraries, the
model and its caches). Every figure
is also printed as a ratio to the ``--baseline`` row measured in the same run, next to the
bandwidth floor for decode: bytes read per token (weights + recurrent/conv states + KV cache at the
context length) divided by this machine's read bandwidth, measured in the same run.

    python benchmarks/bench.py --work-dir /tmp/q35-bench                  # 0.8B, fp16 + int4
    python benchmarks/bench.py --work-dir /tmp/q35-bench --quick          # 128/512 tokens, 32 new
    python benchmarks/bench.py --work-dir /tmp/q35-bench --ir upstream-fp16=/tmp/upstream-ir
    python benchmarks/bench.py --work-dir /tmp/q35-bench --gguf Q4_0,F16 \
        --llama-converter <llama.cpp>/convert_hf_to_gguf.py
    python benchmarks/bench.py --work-dir /tmp/q35-bench --formats int4 --runtimes "" --mtp 1,2 \
        --baseline plugin-vl-int4/vlm

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
from collections.abc import Callable
from pathlib import Path

import numpy as np
from export_memory import SHAPES, build_checkpoint, proc_status, run_export
from generate_overhead import timed_generate
from gguf_export import export_gguf, llama_cpp_missing, unknown_types
from mtp_decoding import build_0_8b_checkpoint, timed_config
from step_inputs import step_inputs

STOP_TOKEN = 0  # random checkpoints have no real EOS; generation runs to max_new_tokens (ignore_eos)
HELDOUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "heldout_python_sample.txt"  # VLM prompts


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


#: One call of a loaded runtime: a prompt of ``length`` tokens drawn from ``rng``, then ``new_tokens``
#: greedy tokens; returns ``ttft_s`` and, when ``new_tokens > 1``, ``tpot_s`` (plus figures of its own).
Generate = Callable[[int, int, np.random.Generator], dict]


def timed_calls(generate: Generate, prompts: list[int], new_tokens: int) -> dict:
    """Every figure of one loaded runtime. Its first call (a ``prompts[0]``-token prompt, two
    tokens) pays for what a runtime sets up lazily — kernel compilation, first-inference
    allocations, caches — so its time to first token is kept apart as ``cold_ttft_s`` and every
    ``ttft_s`` after it is warm: one call per prompt length, then TPOT (and any other figure the
    runtime reports) from the first length's ``new_tokens``."""
    rng = np.random.default_rng(0)
    result = {"cold_ttft_s": generate(prompts[0], 2, rng)["ttft_s"], "ttft_s": {}}
    for index, length in enumerate(prompts):
        call = generate(length, new_tokens if index == 0 else 1, rng)
        result["ttft_s"][length] = call.pop("ttft_s")
        if index == 0:
            result |= call
    return result


def _infer_request_session(ir: Path, vocab: int, device: dict[str, str]) -> Generate:
    import openvino as ov

    compiled = ov.Core().compile_model(ir / "openvino_model.xml", "CPU", device)
    names = {name for port in compiled.inputs for name in port.get_names()}
    request = compiled.create_infer_request()

    def generate(length: int, new_tokens: int, rng: np.random.Generator) -> dict:
        request.reset_state()
        feed = step_inputs(rng.integers(1, vocab, (1, length)), 0, names)
        start = time.perf_counter()
        request.infer(feed)
        token = int(request.get_tensor("logits").data[0, -1].argmax())
        call = {"ttft_s": time.perf_counter() - start}
        steps = []
        for step in range(new_tokens - 1):
            feed = step_inputs(np.array([[token]]), length + step, names)
            start = time.perf_counter()
            request.infer(feed)
            token = int(request.get_tensor("logits").data[0, -1].argmax())
            steps.append(time.perf_counter() - start)
        return call | ({"tpot_s": statistics.median(steps)} if steps else {})

    return generate


def _genai_session(ir: Path, vocab: int, device: dict[str, str], **properties: str) -> Generate:
    import openvino as ov
    import openvino_genai

    pipe = openvino_genai.LLMPipeline(str(ir), "CPU", **device, **properties)

    def generate(length: int, new_tokens: int, rng: np.random.Generator) -> dict:
        config = pipe.get_generation_config()
        config.max_new_tokens = new_tokens
        config.ignore_eos = True
        config.set_eos_token_id(STOP_TOKEN)  # a random checkpoint has none, which genai rejects
        config.stop_token_ids = {STOP_TOKEN}
        ids = ov.Tensor(rng.integers(1, vocab, (1, length)).astype(np.int64))
        metrics = pipe.generate(ids, config).perf_metrics
        call = {"ttft_s": metrics.get_ttft().mean / 1000}
        return call | ({"tpot_s": metrics.get_tpot().mean / 1000} if new_tokens > 1 else {})

    return generate


def _optimum_session(ir: Path, vocab: int, device: dict[str, str]) -> Generate:
    """``OVModelForCausalLM.generate`` as users call it: the plugin's runtime for plugin IRs (last
    position logits in prefill), optimum-intel's own class for any other IR."""
    import torch
    from optimum.intel import OVModelForCausalLM

    import optimum_qwen35  # noqa: F401  (routes plugin IRs to the plugin's runtime class)

    model = OVModelForCausalLM.from_pretrained(ir, ov_config=device)

    def generate(length: int, new_tokens: int, rng: np.random.Generator) -> dict:
        clock = _TokenClock()
        ids = torch.from_numpy(rng.integers(1, vocab, (1, length)))
        start = time.perf_counter()
        timed_generate(model, ids, new_tokens, streamer=clock)
        call = {"ttft_s": clock.arrivals[1] - start}  # arrivals[0] is the prompt
        return call | ({"tpot_s": statistics.median(np.diff(clock.arrivals[1:]))} if new_tokens > 1 else {})

    return generate


def _llama_cpp_session(model: Path, vocab: int, longest: int, new_tokens: int) -> Generate:
    """A GGUF file through ``llama-cpp-python`` on every core this process may use: the prompt in
    one ``eval`` (llama.cpp splits it into its 512-token micro-batches), then one ``eval`` per
    greedy token, the next token taken from the last position's logits."""
    import llama_cpp

    threads = len(os.sched_getaffinity(0))
    llm = llama_cpp.Llama(
        str(model),
        n_ctx=longest + new_tokens + 1,
        n_batch=longest,
        n_threads=threads,  # the binding's default is half the cores
        n_threads_batch=threads,
        verbose=False,
    )

    def next_token() -> int:
        logits = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return int(np.ctypeslib.as_array(logits, (llm.n_vocab(),)).argmax())

    def generate(length: int, new_tokens: int, rng: np.random.Generator) -> dict:
        llm.reset()  # empties the KV cache and the recurrent states
        ids = rng.integers(1, vocab, length).tolist()
        start = time.perf_counter()
        llm.eval(ids)
        token = next_token()
        call = {"ttft_s": time.perf_counter() - start}
        steps = []
        for _ in range(new_tokens - 1):
            start = time.perf_counter()
            llm.eval([token])
            token = next_token()
            steps.append(time.perf_counter() - start)
        return call | ({"tpot_s": statistics.median(steps)} if steps else {})

    return generate


def _vlm_session(folder: Path, vocab: int, device: dict[str, str], draft_tokens: int = 0) -> Generate:
    """``openvino_genai.VLMPipeline`` on the vision-language layout, text prompts cut from held-out
    source to the asked number of tokens; with ``draft_tokens``, the layout's MTP head drafts that
    many tokens per step (greedy speculative decoding). Both use one scheduler with prefix caching
    off, which GenAI's drafting needs for the hybrid model's states, so the draft is the only
    difference. TPOT is the time after the first token over the tokens after it (a verification
    step yields several); the decode call also reports its text and, drafting, GenAI's draft
    acceptance rate."""
    import openvino_genai

    scheduler = openvino_genai.SchedulerConfig()
    scheduler.enable_prefix_caching = False
    draft = {"draft_model": openvino_genai.draft_model(str(folder), "CPU", **device)} if draft_tokens else {}
    pipe = openvino_genai.VLMPipeline(str(folder), "CPU", scheduler_config=scheduler, **device, **draft)
    tokenizer = pipe.get_tokenizer()
    corpus = tokenizer.encode(HELDOUT.read_text(), add_special_tokens=False).input_ids.data[0]

    def generate(length: int, new_tokens: int, rng: np.random.Generator) -> dict:
        offset = int(rng.integers(0, len(corpus) - length))
        prompt = tokenizer.decode(corpus[offset : offset + length].tolist())
        result = pipe.generate(prompt, generation_config=timed_config(new_tokens, draft_tokens))
        metrics = result.perf_metrics
        call = {"ttft_s": metrics.get_ttft().mean / 1000}
        if new_tokens == 1:
            return call
        after_first = (metrics.get_generate_duration().mean - metrics.get_ttft().mean) / 1000
        call |= {"tpot_s": after_first / (metrics.get_num_generated_tokens() - 1), "text": result.texts[0]}
        if draft_tokens:
            call["acceptance"] = result.extended_perf_metrics.get_draft_acceptance_rate()
        return call

    return generate


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
    "infer": _infer_request_session,
    "optimum": _optimum_session,
    "genai": _genai_session,
    "genai-sdpa": functools.partial(_genai_session, ATTENTION_BACKEND="SDPA"),
}
LLAMA_CPP = "llama.cpp"  # the runtime of GGUF rows (``--gguf``)
VLM = "vlm"  # the runtime of vision-language layout rows (``--mtp``): no draft, then ``vlm-mtp-k<K>``
#: ``--f32``: exact inference (on AMX/AVX-512 BF16 CPUs the default is bf16 activations, and an
#: u8 KV cache), for checks such as "drafting gives the same greedy text"
F32 = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
VLM_TASK = "image-text-to-text"  # the export task that writes that layout (with the MTP head)


def vlm_runtime(draft_tokens: int) -> str:
    """The runtime name of a vision-language row drafting ``draft_tokens`` per step (0: no draft)."""
    return f"{VLM}-mtp-k{draft_tokens}" if draft_tokens else VLM


def measure(
    model: Path, runtime: str, prompts: list[int], new_tokens: int, config_file: Path, f32: bool = False
) -> dict:
    """Run one model (IR folder or GGUF file) × runtime in this process (the ``--measure`` child mode);
    ``f32``: OpenVINO runtimes compiled with f32 inference and KV cache, not the CPU plugin's defaults."""
    device = F32 if f32 else {}
    config = json.loads(config_file.read_text())
    vocab = config.get("text_config", config)["vocab_size"]
    if runtime == LLAMA_CPP:
        generate = _llama_cpp_session(model, vocab, max(prompts), new_tokens)
    elif runtime.startswith(VLM):
        generate = _vlm_session(model, vocab, device, int(runtime.removeprefix(VLM).removeprefix("-mtp-k") or 0))
    else:
        generate = RUNTIMES[runtime](model, vocab, device)
    # VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's peak at the fork (Linux
    # carries it across exec), so it could only report the larger of the two.
    return timed_calls(generate, prompts, new_tokens) | {"peak_rss": proc_status()["VmHWM"]}


def _child(model: Path, runtime: str, config_file: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--measure", str(model), "--runtime", runtime, "--config", str(config_file)]
    cmd += ["--prompts", args.prompts, "--new-tokens", str(args.new_tokens)] + (["--f32"] if args.f32 else [])
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
    parser.add_argument(
        "--runtimes", default=",".join(RUNTIMES), help=f"comma-separated, from {', '.join(RUNTIMES)}; may be empty"
    )
    parser.add_argument("--prompts", default="128,512,2048", help="prompt lengths for TTFT; TPOT after the first")
    parser.add_argument("--new-tokens", type=int, default=128, help="tokens after the first prompt, for TPOT")
    parser.add_argument("--baseline", help="row name the ratios refer to (default: the first row)")
    parser.add_argument("--quick", action="store_true", help="prompts 128,512 and 32 new tokens")
    parser.add_argument("--gguf", default="", help="llama.cpp rows: comma-separated GGUF types, e.g. Q4_0,F16")
    parser.add_argument("--llama-converter", type=Path, help="llama.cpp's convert_hf_to_gguf.py (with --gguf)")
    parser.add_argument("--f32", action="store_true", help="OpenVINO runtimes at f32, not the CPU's defaults")
    parser.add_argument("--mtp", default="", help="VLMPipeline rows without and with k MTP drafts: k list, e.g. 1,2")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--runtime", help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.new_tokens = "128,512", 32
    prompts = [int(length) for length in args.prompts.split(",")]
    runtimes = [name for name in args.runtimes.split(",") if name]  # none: only --gguf/--mtp rows
    unknown = set(runtimes) - set(RUNTIMES)
    if unknown:
        parser.error(f"unknown runtime(s) {', '.join(sorted(unknown))}: choose from {', '.join(RUNTIMES)}")
    if args.measure:  # child mode: one model, one runtime, JSON on the last line of stdout
        print(json.dumps(measure(args.measure, args.runtime, prompts, args.new_tokens, args.config, args.f32)))
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
    try:
        drafts = [int(k) for k in args.mtp.split(",") if k]
    except ValueError:
        parser.error(f"--mtp {args.mtp}: draft token counts are whole numbers, e.g. --mtp 1,2")
    if any(k < 1 for k in drafts):
        parser.error(f"--mtp {args.mtp}: draft token counts start at 1")
    if drafts and not args.checkpoint and args.shape != "0.8B":
        parser.error("--mtp builds a random 0.8B checkpoint with an MTP head; for other shapes give --checkpoint")
    args.work_dir.mkdir(parents=True, exist_ok=True)

    if args.checkpoint:
        checkpoint = args.checkpoint
    elif drafts:  # the composite layout: vision tower, MTP head, a tokenizer for VLMPipeline's text prompts
        checkpoint = build_0_8b_checkpoint(args.work_dir / "ckpt-0.8B-vl")
    else:
        checkpoint = build_checkpoint(args.shape, args.work_dir / f"ckpt-{args.shape}")

    def exported(prefix: str, weight_format: str, task: str | None) -> Path | None:
        """The IR of ``checkpoint`` in ``weight_format`` (exported unless already there), None on failure."""
        ir = args.work_dir / f"{prefix}-{weight_format}"
        model = "openvino_language_model.xml" if task == VLM_TASK else "openvino_model.xml"
        if not (ir / model).is_file():
            layout = " as the vision-language layout" if task == VLM_TASK else ""
            print(f"exporting {weight_format}{layout} ...", flush=True)
            result = run_export(sys.executable, None, checkpoint, ir, weight_format, task, keep=True)
            if not result["ok"]:
                print(f"export failed, see {result['log']}")
                return None
        return ir

    irs, vlm_irs = {}, {}
    for weight_format in args.formats.split(",") if runtimes else []:  # none: only --gguf/--mtp rows
        if (ir := exported("ir", weight_format, None)) is None:
            return 1
        irs[f"plugin-{weight_format}"] = ir
    irs |= {name: Path(folder) for name, folder in (spec.split("=", 1) for spec in args.ir)}
    for weight_format in args.formats.split(",") if drafts else []:
        if (ir := exported("ir-vl", weight_format, VLM_TASK)) is None:
            return 1
        vlm_irs[f"plugin-vl-{weight_format}"] = ir
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
        for runtime in runtimes
    ]
    runs += [(name, gguf, LLAMA_CPP, gguf, checkpoint / "config.json") for name, gguf in ggufs.items()]
    runs += [
        (f"{name}/{vlm_runtime(k)}", ir, vlm_runtime(k), ir / "openvino_language_model.bin", ir / "config.json")
        for name, ir in vlm_irs.items()
        for k in (0, *drafts)
    ]
    rows = []
    for name, model, runtime, weights, config_file in runs:
        floor_ms = 1000 * bytes_per_token(weights, config_file, context) / bandwidth
        print(f"measuring {name} ...", flush=True)
        row = {"name": name, "model": str(model), "runtime": runtime, "floor_ms": floor_ms}
        rows.append(row | _child(model, runtime, config_file, args))
    baseline = next((row for row in rows if row["name"] == args.baseline), rows[0])

    print(f"\nratios: baseline / row, so > 1 means faster than {baseline['name']}")
    header = f"{f'cold TTFT {prompts[0]}':>16}" + "".join(f"{f'TTFT {n}':>14}" for n in prompts)
    header += f"{'TPOT ms':>15}{'floor ms':>10}{'TPOT/floor':>11}"
    width = max(len(row["name"]) for row in rows) + 2
    print(f"{'row':<{width}}{header}{'peak RSS':>10}{'accepted':>10}")

    def cell(seconds: float, baseline_seconds: float | None, unit: str = "s", scale: float = 1) -> str:
        ratio = baseline_seconds / seconds if baseline_seconds else float("nan")
        return f"{scale * seconds:>8.{1 if scale > 1 else 2}f}{unit} {ratio:>4.2f}x"

    for row in rows:
        if "error" in row:
            print(f"{row['name']:<{width}}failed: {row['error']}")
            continue
        cells = f"  {cell(row['cold_ttft_s'], baseline.get('cold_ttft_s'))}"
        for length in prompts:
            cells += cell(row["ttft_s"][length], baseline.get("ttft_s", {}).get(length))
        cells += f"{cell(row['tpot_s'], baseline.get('tpot_s'), 'ms', 1000):>15}"
        cells += f"{row['floor_ms']:>10.1f}{1000 * row['tpot_s'] / row['floor_ms']:>10.2f}x"
        accepted = f"{row['acceptance']:>10.3f}" if "acceptance" in row else ""
        print(f"{row['name']:<{width}}{cells}{row['peak_rss'] / 1e9:>8.2f}GB{accepted}", flush=True)
    result = {"shape": args.shape, "prompts": prompts, "new_tokens": args.new_tokens, "bandwidth": bandwidth}
    result["bandwidth_probes"] = probes
    (args.work_dir / "bench.json").write_text(json.dumps(result | {"rows": rows}, indent=2))
    for plot in _plots(rows, prompts, args.work_dir):
        print(f"wrote {plot}")
    print(f"wrote {args.work_dir / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
