"""Where an IR's runtime memory goes: resident, anonymous and file-backed bytes at each stage.

Each configuration runs in a child process of its own and reports ``/proc/self/status`` after
importing the runtime, after compiling (pipeline construction), after a prefill of ``--prompt``
tokens (one generated token) and after ``--new-tokens`` more decode steps, plus the peak
(``VmHWM``) at each point and how much of the resident memory is pages of the IR's weight file
(``/proc/self/smaps``; the "weights" column). Configurations:

* ``core`` / ``core-nommap``: ``ov.Core().compile_model`` of the IR (``ENABLE_MMAP`` on / off) and a
  bare ``InferRequest`` prefill and decode — the plugin's graph with nothing on top;
* ``genai``: ``openvino_genai.LLMPipeline`` as users create it (continuous batching, paged attention);
* ``genai-sdpa``: the same with ``ATTENTION_BACKEND="SDPA"``;
* ``genai-released``: ``genai`` with the first ``generate`` inside
  ``optimum_qwen35.released_weight_pages()`` (``import optimum_qwen35``, as users write it);
* ``genai-released-bare``: the same release loop without importing the plugin (its
  ``exporters/page_release.py`` loaded from the source file: the floor for ``genai-released``,
  which shows what importing the plugin costs);
* ``genai-nocache``: continuous batching with prefix caching off (``SchedulerConfig()``, what
  ``ContinuousBatchingPipeline`` users get by default; ``LLMPipeline`` turns it on);
* ``llama.cpp``: a GGUF file (``--gguf``) through ``llama-cpp-python``.

Extra ``--property NAME=VALUE`` entries go to the OpenVINO / GenAI constructor of every
configuration (e.g. ``KV_CACHE_PRECISION=f16``).

    python benchmarks/runtime_memory.py IR_DIR --configs genai,genai-sdpa,core --prompt 2048 --new-tokens 64
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from export_memory import proc_status
from step_inputs import step_inputs

STAGES = ("imported", "compiled", "prefill", "decode")
CONFIGS = (
    "core",
    "core-nommap",
    "genai",
    "genai-released",
    "genai-released-bare",
    "genai-sdpa",
    "genai-nocache",
    "llama.cpp",
)


def file_resident(path: Path) -> int:
    """Resident bytes of every mapping of ``path`` in this process (``Rss`` lines of ``smaps``).

    ``optimum_qwen35.weight_pages.resident_bytes`` does the same, but importing the plugin in every
    configuration would count its import in rows that are meant to measure the runtime alone."""
    total, inside = 0, False
    target = str(path.resolve())
    for line in Path("/proc/self/smaps").read_text().splitlines():
        first = line.split(maxsplit=1)[0] if line.strip() else ""
        if "-" in first and not first.endswith(":"):  # a mapping's header line
            inside = line.rstrip().endswith(target)
        elif inside and first == "Rss:":
            total += int(line.split()[1]) * 1024
    return total


def snapshot(weights: Path) -> dict[str, int]:
    """The memory figures of this process now: RSS, anonymous, file-backed, the weight file's pages, peak."""
    status = proc_status()
    figures = {key: status[key] for key in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}
    return figures | {"weights_file": file_resident(weights)}


def _core_run(ir: Path, prompt: int, new_tokens: int, vocab: int, record, properties: dict) -> None:
    import openvino as ov

    compiled = ov.Core().compile_model(ir / "openvino_model.xml", "CPU", properties)
    record("compiled")
    names = {name for port in compiled.inputs for name in port.get_names()}
    request = compiled.create_infer_request()
    ids = np.random.default_rng(0).integers(1, vocab, (1, prompt))
    request.infer(step_inputs(ids, 0, names))
    token = int(request.get_tensor("logits").data[0, -1].argmax())
    record("prefill")
    for step in range(new_tokens):
        request.infer(step_inputs(np.array([[token]]), prompt + step, names))
        token = int(request.get_tensor("logits").data[0, -1].argmax())
    record("decode")


def _genai_run(
    ir: Path, prompt: int, new_tokens: int, vocab: int, record, properties: dict, first_call=contextlib.nullcontext
) -> None:
    import openvino as ov
    import openvino_genai

    pipe = openvino_genai.LLMPipeline(str(ir), "CPU", **properties)
    record("compiled")
    ids = ov.Tensor(np.random.default_rng(0).integers(1, vocab, (1, prompt)).astype(np.int64))
    config = pipe.get_generation_config()
    config.ignore_eos = True
    config.set_eos_token_id(0)  # random checkpoints have no EOS, which GenAI rejects
    config.stop_token_ids = {0}
    config.max_new_tokens = 1
    with first_call():
        pipe.generate(ids, config)
    record("prefill")
    config.max_new_tokens = new_tokens
    pipe.generate(ids, config)
    record("decode")


def _llama_cpp_run(gguf: Path, prompt: int, new_tokens: int, vocab: int, record, properties: dict) -> None:
    import os

    import llama_cpp

    threads = len(os.sched_getaffinity(0))
    size = {"n_ctx": prompt + new_tokens + 1, "n_batch": prompt}
    llm = llama_cpp.Llama(str(gguf), **size, n_threads=threads, n_threads_batch=threads, verbose=False)
    record("compiled")
    llm.eval(np.random.default_rng(0).integers(1, vocab, prompt).tolist())
    record("prefill")
    for _ in range(new_tokens):
        logits = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        llm.eval([int(np.ctypeslib.as_array(logits, (llm.n_vocab(),)).argmax())])
    record("decode")


@contextlib.contextmanager
def _bare_release_loop(interval: float = 0.1):
    """``optimum_qwen35.released_weight_pages`` without importing the package (the ``genai-released-bare`` row)."""
    import importlib.util
    import threading

    source = Path(__file__).resolve().parent.parent / "optimum_qwen35" / "exporters" / "page_release.py"
    spec = importlib.util.spec_from_file_location("page_release", source)
    page_release = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(page_release)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval) and page_release.release_weight_pages(writable=False):
            pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        page_release.release_weight_pages(writable=False)


def measure(model: Path, config: str, prompt: int, new_tokens: int, vocab: int, properties: dict) -> dict:
    """Run one configuration in this process and return its snapshot per stage."""
    weights = model if config == "llama.cpp" else model / "openvino_model.bin"
    stages: dict[str, dict[str, int]] = {}

    def record(stage: str) -> None:
        stages[stage] = snapshot(weights)

    if config == "llama.cpp":
        import llama_cpp  # noqa: F401  (its import is the runtime's baseline)

        record("imported")
        _llama_cpp_run(model, prompt, new_tokens, vocab, record, properties)
        return stages
    import openvino_genai  # imports openvino too

    first_call = contextlib.nullcontext
    if config == "genai-released":
        import optimum_qwen35

        first_call = optimum_qwen35.released_weight_pages
    elif config == "genai-released-bare":
        first_call = _bare_release_loop
    record("imported")
    if config.startswith("core"):
        properties = properties | {"ENABLE_MMAP": config == "core"}
        _core_run(model, prompt, new_tokens, vocab, record, properties)
    else:
        if config == "genai-sdpa":
            properties = properties | {"ATTENTION_BACKEND": "SDPA"}
        elif config == "genai-nocache":
            properties = properties | {"scheduler_config": openvino_genai.SchedulerConfig()}
        _genai_run(model, prompt, new_tokens, vocab, record, properties, first_call)
    return stages


def _parse_property(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    for kind in (int, float):
        try:
            return name, kind(value)
        except ValueError:
            pass
    return name, {"true": True, "false": False}.get(value.lower(), value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ir", type=Path, help="IR folder (openvino_model.xml/.bin, config.json, tokenizer)")
    choices = ", ".join(CONFIGS)
    parser.add_argument("--configs", default="genai,genai-released,genai-sdpa", help=f"comma-separated, from {choices}")
    parser.add_argument("--gguf", type=Path, help="GGUF file for the llama.cpp configuration")
    parser.add_argument("--prompt", type=int, default=2048)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--property", action="append", default=[], help="NAME=VALUE for the runtime (repeatable)")
    parser.add_argument("--json", type=Path, help="append the rows to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    config_file = json.loads((args.ir / "config.json").read_text())
    vocab = config_file.get("text_config", config_file)["vocab_size"]
    properties = dict(map(_parse_property, args.property))
    if args.child:
        model = args.gguf if args.child == "llama.cpp" else args.ir
        print(json.dumps(measure(model, args.child, args.prompt, args.new_tokens, vocab, properties)))
        return 0
    configs = args.configs.split(",")
    if unknown := set(configs) - set(CONFIGS):
        parser.error(f"unknown configuration(s) {', '.join(sorted(unknown))}: choose from {', '.join(CONFIGS)}")
    if "llama.cpp" in configs and args.gguf is None:
        parser.error("the llama.cpp configuration needs --gguf FILE")
    weights = args.gguf if configs == ["llama.cpp"] else args.ir / "openvino_model.bin"
    print(f"weights file: {weights.stat().st_size / 1e9:.3f} GB; prompt {args.prompt}, {args.new_tokens} new tokens")
    print(f"{'config':<21}{'stage':<10}{'RSS':>8}{'anon':>8}{'file':>8}{'weights':>9}{'peak':>8}  (GB)")
    rows = []
    for config in configs:
        cmd = [sys.executable, __file__, str(args.ir), "--child", config, "--prompt", str(args.prompt)]
        cmd += ["--new-tokens", str(args.new_tokens)] + [f"--property={item}" for item in args.property]
        cmd += ["--gguf", str(args.gguf)] if args.gguf else []
        child = subprocess.run(cmd, capture_output=True, text=True)
        if child.returncode != 0:
            print(f"{config:<21}failed: {child.stderr.strip().splitlines()[-1:]}")
            continue
        stages = json.loads(child.stdout.strip().splitlines()[-1])
        rows.append({"config": config, "properties": args.property, "prompt": args.prompt, "stages": stages})
        for stage in STAGES:
            s = stages[stage]
            cells = [s["VmRSS"], s["RssAnon"], s["RssFile"], s["weights_file"], s["VmHWM"]]
            print(f"{config:<21}{stage:<10}" + "".join(f"{value / 1e9:>8.3f} " for value in cells).rstrip(), flush=True)
    if args.json:
        previous = json.loads(args.json.read_text()) if args.json.is_file() else []
        args.json.write_text(json.dumps(previous + rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
