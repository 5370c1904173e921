"""Wall time and peak memory of ``optimum-cli export openvino`` on full-size Qwen3.5 shapes.

Builds random-weight bf16 checkpoints of public Qwen3.5 shapes (weights do not change
memory or time), exports each with ``optimum-cli export openvino`` in a child process per
weight format, and reports its peak resident set size (anonymous memory plus mapped file pages)
and its peak anonymous memory against the checkpoint's safetensors size. Both are sampled every
20 ms from ``/proc``, summed over the child and its own children (the plugin's page-out helper).
The kernel's own peak (``ru_maxrss``) is not enough: pages reclaimed with ``MADV_PAGEOUT`` leave it
unrecorded, so it misses pages that were resident for a while and then paged out; the reported
peak RSS is the larger of the two.

Shapes: ``0.8B``, ``2B``, ``4B`` are text-only ``Qwen3_5ForCausalLM`` checkpoints saved by
transformers at full depth; ``27B`` and ``35B-A3B`` are the hub's composite checkpoints (vision
tower and MTP head included, ``hub_layout.py``) at full width with the depth cut to each of
``--layers`` (the real ``layer_types`` prefix: fewer than 4 layers have no full-attention layer).
For those, the growth per added layer (a least-squares line through the layer counts) and the
figures it extrapolates to the real depth are printed after the table.
``--llama-converter`` adds rows for llama.cpp's ``convert_hf_to_gguf.py`` on the same checkpoint
(F16; and Q4_K_M quantized from it when ``llama-cpp-python`` is installed), measured the same way.
``--label`` and ``--python``/``--pythonpath`` let one run compare installations: another
interpreter (a venv with upstream optimum-intel only) or another plugin checkout first on
``PYTHONPATH``. ``--json`` keeps rows across runs (a row is replaced by the same label, shape,
layers and format); ``--plot`` draws peak anonymous memory against layers from them (matplotlib).

    python benchmarks/export_memory.py --work-dir /tmp/q35-mem --shapes 0.8B,2B --formats none,fp16,int4
    python benchmarks/export_memory.py --work-dir /work/q35-bench --shapes 35B-A3B --layers 2,4 \\
        --formats fp16,int4 --json export_memory.json --plot export_memory.png
    python benchmarks/export_memory.py --work-dir /tmp/q35-mem --label upstream --python /venv-upstream/bin/python \\
        --formats fp16 --task text-generation-with-past --json upstream.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gguf_export import llama_cpp_missing
from hub_layout import HUB_SHAPES, build_hub_checkpoint, hub_config, spec_bytes, tensor_specs
from int4_full_size import CONFIG_0_8B

#: Public text shapes (``../shared/NOTES.md``; the hub model cards' text configs).
SHAPES = {
    "0.8B": CONFIG_0_8B,
    "2B": CONFIG_0_8B | {"hidden_size": 2048, "intermediate_size": 6144},
    "4B": CONFIG_0_8B
    | {
        "hidden_size": 2560,
        "intermediate_size": 9216,
        "num_hidden_layers": 32,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "linear_num_value_heads": 32,
    },
}
FORMATS = ("none", "fp16", "int8", "int4")
#: llama.cpp rows: the converter's F16, and the usual 4-bit recipe quantized from it.
GGUF_TYPES = ("F16", "Q4_K_M")
GGUF_EXPORT = Path(__file__).resolve().parent / "gguf_export.py"


def build_checkpoint(shape: str, path: Path) -> Path:
    """A random bf16 ``Qwen3_5ForCausalLM`` checkpoint of ``shape``, built without an f32 copy."""
    if (path / "config.json").is_file():
        return path
    import torch
    from transformers import Qwen3_5ForCausalLM, Qwen3_5TextConfig

    config = Qwen3_5TextConfig(**SHAPES[shape], dtype="bfloat16")
    with torch.device("meta"):
        model = Qwen3_5ForCausalLM(config)
    model = model.to(torch.bfloat16).to_empty(device="cpu")
    model.tie_weights()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.zero_()  # Qwen3.5 norms scale by (1 + weight)
            else:
                parameter.normal_(0.0, 0.02, generator=generator)
    model.save_pretrained(path)
    return path


def full_depth(shape: str, path: Path) -> None:
    """Write ``path``: the real depth of hub ``shape`` and its checkpoint's bytes (from the meta model)."""
    config = hub_config(shape)
    layers = config["text_config"]["num_hidden_layers"]
    path.write_text(json.dumps({"layers": layers, "checkpoint_bytes": spec_bytes(tensor_specs(config))}))


def run_apart(target: Callable, *args: object) -> None:
    """``target(*args)`` in a fresh interpreter. An export child's ``ru_maxrss`` starts from its
    parent's peak at the fork (Linux carries it across exec), so a parent that had just held a
    model (or imported torch) would set a floor under every export measured after it."""
    builder = multiprocessing.get_context("spawn").Process(target=target, args=args)
    builder.start()
    builder.join()
    if builder.exitcode != 0:
        raise RuntimeError(f"{target.__name__}{args} failed (exit code {builder.exitcode})")


def checkpoint_for(shape: str, layers: int | None, work_dir: Path) -> Path:
    """The random checkpoint of ``shape`` (cut to ``layers`` for a hub shape) under ``work_dir``, built if missing."""
    if layers is None:
        path = work_dir / f"ckpt-{shape}"
        if not (path / "config.json").is_file():
            run_apart(build_checkpoint, shape, path)
        return path
    path = work_dir / f"ckpt-{shape}-L{layers}"
    if not (path / "config.json").is_file():
        run_apart(build_hub_checkpoint, shape, layers, path, work_dir / f"pool-{shape}")
    return path


def safetensors_bytes(path: Path) -> int:
    return sum(file.stat().st_size for file in path.glob("*.safetensors"))


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """The ``kB`` fields of ``/proc/<pid>/status`` in bytes (``VmRSS``, ``RssAnon``, ``VmHWM``, ...)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if value.endswith(" kB"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def _resident(pid: int) -> tuple[int, int]:
    """``(resident, anonymous resident)`` bytes of a process and its children (Linux), 0 once gone."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        status = proc_status(pid)
    except OSError:
        return 0, 0
    rss, anon = status.get("VmRSS", 0), status.get("RssAnon", 0)  # an exited (zombie) process has neither
    for child in children:
        child_rss, child_anon = _resident(int(child))
        rss, anon = rss + child_rss, anon + child_anon
    return rss, anon


def measure(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict:
    """Run ``cmd`` (output to ``log``, working directory ``log``'s folder): its exit code, wall
    seconds and peak RSS / anonymous bytes over it and its children."""
    start = time.perf_counter()
    with log.open("w") as stream:
        # cwd: ``python -m`` puts the working directory first on sys.path, ahead of --pythonpath.
        child = subprocess.Popen(cmd, stdout=stream, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
        rss_peak = anon_peak = 0
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)  # reaps the child and its rusage when done
            if pid:
                break
            rss, anon = _resident(child.pid)
            rss_peak, anon_peak = max(rss_peak, rss), max(anon_peak, anon)
            time.sleep(0.02)
    return {
        "exit_code": os.waitstatus_to_exitcode(status),
        "seconds": time.perf_counter() - start,
        "peak_rss": max(rss_peak, usage.ru_maxrss * 1024),
        "sampled_peak_rss": rss_peak,
        "kernel_peak_rss": usage.ru_maxrss * 1024,
        "peak_anon": anon_peak,
        "log": str(log),
    }


def run_export(
    python: str,
    pythonpath: str | None,
    checkpoint: Path,
    output: Path,
    weight_format: str,
    task: str | None,
    keep: bool = False,
) -> dict:
    """One ``optimum-cli export openvino`` in a child process: wall seconds, peak RSS and peak anonymous bytes.

    The exported folder is deleted afterwards unless ``keep``.

    RSS counts the pages of memory-mapped weight files the process has touched; the kernel can drop
    those under pressure, so the anonymous peak is what must fit in RAM.
    """
    shutil.rmtree(output, ignore_errors=True)
    cmd = [python, "-m", "optimum.commands.optimum_cli", "export", "openvino", "--model", str(checkpoint)]
    if weight_format != "none":
        cmd += ["--weight-format", weight_format]
    if task:
        cmd += ["--task", task]
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    result = measure([*cmd, str(output)], output.parent / f"{output.name}.log", env)
    # openvino_model.xml, or a VLM's parts (openvino_language_model.xml, ...)
    ok = result.pop("exit_code") == 0 and any(output.glob("openvino_*model.xml"))
    ir_bytes = sum(file.stat().st_size for file in output.glob("*.bin")) if ok else 0
    if not keep:
        shutil.rmtree(output, ignore_errors=True)
    return {"ok": ok, "ir_bytes": ir_bytes} | result


def run_llama_converter(converter: Path, checkpoint: Path, output: Path, gguf_type: str) -> dict:
    """llama.cpp's ``converter`` (then its quantizer, for a type other than F16) on ``checkpoint``
    through ``gguf_export.py`` in a child process, measured as :func:`run_export`; the GGUF is deleted."""
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    cmd = [sys.executable, str(GGUF_EXPORT), str(checkpoint), str(output), "--converter", str(converter)]
    result = measure([*cmd, "--types", gguf_type], output.parent / f"{output.name}.log")
    gguf = output / f"gguf-{gguf_type.lower()}.gguf"
    ok = result.pop("exit_code") == 0 and gguf.is_file()
    ir_bytes = gguf.stat().st_size if ok else 0
    shutil.rmtree(output, ignore_errors=True)
    return {"ok": ok, "ir_bytes": ir_bytes} | result


def available_bytes() -> int:
    """``MemAvailable`` of ``/proc/meminfo`` (what ``free`` calls available), in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def wait_for_memory(minimum: float, patience: float) -> bool:
    """Whether ``minimum`` bytes are available, waiting up to ``patience`` seconds for them (a shared
    machine: another job's peak would both distort the figures and risk the kernel's OOM killer)."""
    deadline = time.monotonic() + patience
    while available_bytes() < minimum:
        if time.monotonic() > deadline:
            return False
        time.sleep(10)
    return True


def growth(rows: list[dict], full: dict) -> dict:
    """Least-squares growth per layer of wall time, peak RSS and peak anonymous memory over the
    ``rows`` of one shape and format, and the figures it gives at the real depth ``full``.

    A line falling with depth (peak RSS can: it is mostly mapped pages in flight) is no growth:
    the full-depth figure is then the largest measured, never below it."""
    layers = [row["layers"] for row in rows]
    fit = {}
    for key in ("checkpoint_bytes", "seconds", "peak_rss", "peak_anon"):
        values = [row[key] for row in rows]
        slope, intercept = statistics.linear_regression(layers, values)
        fit[key] = {"per_layer": slope, "full_depth": max(intercept + slope * full["layers"], *values)}
    fit["checkpoint_bytes"]["full_depth"] = full["checkpoint_bytes"]  # exact, from the meta model
    return fit


def print_growth(fits: dict[tuple[str, str, str], dict], full: dict[str, dict]) -> None:
    """The :func:`growth` of each ``(label, shape, format)`` as a table, after the measured rows."""
    if not fits:
        return
    print("\ngrowth per added layer (least squares over the layer counts) and extrapolated to the real depth:")
    header = ("label", "shape", "format", "layer GB", "wall s/L", "RSS GB/L", "anon GB/L", "anon/layer")
    print(f"{header[0]:<10}{header[1]:<9}{header[2]:<8}" + "".join(f"{name:>11}" for name in header[3:]), end="")
    print("  at full depth: layers, ckpt GB, wall s, RSS GB, anon GB")
    for (label, shape, weight_format), fit in fits.items():
        layer, anon = fit["checkpoint_bytes"]["per_layer"], fit["peak_anon"]["per_layer"]
        per_layer = [layer / 1e9, fit["seconds"]["per_layer"], fit["peak_rss"]["per_layer"] / 1e9, anon / 1e9]
        at_full = [fit[key]["full_depth"] / (1 if key == "seconds" else 1e9) for key in fit]
        print(
            f"{label:<10}{shape:<9}{weight_format:<8}"
            + "".join(f"{value:11.2f}" for value in [*per_layer, anon / layer])
            + f"  {full[shape]['layers']:>6}"
            + "".join(f"{value:9.1f}" for value in at_full)
        )


def plot(rows: list[dict], path: Path) -> None:
    """Peak anonymous memory against layers, a line per shape, label and format (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"no plot: matplotlib is not installed (pip install matplotlib), {path} not written")
        return
    lines: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        if row["ok"] and row.get("layers") is not None:
            lines.setdefault(f"{row['shape']} {row['label']} {row['format']}", []).append(
                (row["layers"], row["peak_anon"] / 1e9)
            )
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, points in sorted(lines.items()):
        points.sort()
        axes.plot(*zip(*points, strict=True), marker="o", label=name)
    axes.set_ylim(bottom=0)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_xlabel("decoder layers (full width)")
    axes.set_ylabel("peak anonymous memory (GB)")
    axes.set_title("optimum-cli export openvino: peak anonymous memory")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"plot: {path}")


def _row_key(row: dict) -> tuple:
    return row["label"], row["shape"], row.get("layers"), row["format"]


def _comma_list(text: str, allowed: tuple[str, ...], option: str, parser: argparse.ArgumentParser) -> list[str]:
    values = [value for value in text.split(",") if value]
    if unknown := [value for value in values if value not in allowed]:
        parser.error(f"{option}: unknown {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="checkpoints and logs go here")
    shapes = (*SHAPES, *HUB_SHAPES)
    parser.add_argument("--shapes", default="0.8B,2B", help=f"comma-separated, from {', '.join(shapes)}")
    parser.add_argument("--layers", default="2,4", help=f"decoder layers of the {' and '.join(HUB_SHAPES)} cuts")
    parser.add_argument("--formats", default="none,fp16,int4", help=f"from {','.join(FORMATS)}; 'none': no flag")
    parser.add_argument("--label", default="plugin", help="name of this installation in the table")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs optimum-cli")
    parser.add_argument("--pythonpath", help="put this directory first on PYTHONPATH (another plugin checkout)")
    parser.add_argument("--task", help="pass --task to optimum-cli (upstream cannot infer it for a local checkpoint)")
    parser.add_argument("--llama-converter", type=Path, help="llama.cpp's convert_hf_to_gguf.py: add llama.cpp rows")
    parser.add_argument("--min-available", type=float, default=6.0, help="GB free before each run (else wait)")
    parser.add_argument("--json", type=Path, help="keep the rows in this JSON file (merged with its rows)")
    parser.add_argument("--plot", type=Path, help="PNG of peak anonymous memory against layers (--json's rows)")
    args = parser.parse_args()
    args.work_dir = args.work_dir.absolute()  # the exports run in another working directory
    shape_list = _comma_list(args.shapes, shapes, "--shapes", parser)
    formats = _comma_list(args.formats, FORMATS, "--formats", parser)
    try:
        layer_counts = sorted({int(value) for value in args.layers.split(",")})
    except ValueError:
        parser.error(f"--layers {args.layers}: comma-separated layer counts, e.g. 2,4")
    for shape in set(shape_list) & set(HUB_SHAPES):
        depth = hub_config(shape)["text_config"]["num_hidden_layers"]
        if not 1 <= layer_counts[0] <= layer_counts[-1] <= depth:
            parser.error(f"--layers {args.layers}: Qwen3.5-{shape} has 1 to {depth} decoder layers")
    if args.llama_converter is not None and not args.llama_converter.is_file():
        parser.error(f"--llama-converter {args.llama_converter}: no such file (llama.cpp's convert_hf_to_gguf.py)")
    args.work_dir.mkdir(parents=True, exist_ok=True)

    kept = json.loads(args.json.read_text()) if args.json and args.json.is_file() else []
    rows: list[dict] = []
    full: dict[str, dict] = {}

    def keep(row: dict) -> None:
        rows.append(row)
        if args.json:
            merged = {_row_key(old): old for old in kept} | {_row_key(new): new for new in rows}
            args.json.write_text(json.dumps(list(merged.values()), indent=2))

    header = ("ckpt GB", "wall s", "RSS GB", "RSS/ckpt", "anon GB", "anon/ckpt", "IR GB")
    print(f"{'label':<10}{'shape':<9}{'layers':>6}  {'format':<8}" + "".join(f"{name:>10}" for name in header))
    for shape in shape_list:
        if shape in HUB_SHAPES:
            facts = args.work_dir / f"pool-{shape}" / "full-depth.json"
            if not facts.is_file():
                facts.parent.mkdir(parents=True, exist_ok=True)
                run_apart(full_depth, shape, facts)
            full[shape] = json.loads(facts.read_text())
        for layers in layer_counts if shape in HUB_SHAPES else [None]:
            checkpoint = checkpoint_for(shape, layers, args.work_dir)
            size = safetensors_bytes(checkpoint)
            depth = layers if layers is not None else SHAPES[shape].get("num_hidden_layers", 24)
            runs = [(args.label, weight_format) for weight_format in formats]
            if args.llama_converter is not None:
                runs += [("llama.cpp", gguf_type) for gguf_type in GGUF_TYPES]
            for label, weight_format in runs:
                row = {"label": label, "shape": shape, "layers": layers, "format": weight_format}
                row |= {"checkpoint_bytes": size, "task": args.task}
                prefix = f"{label:<10}{shape:<9}{depth:>6}  {weight_format:<8}{size / 1e9:10.2f}"
                if label == "llama.cpp" and weight_format != "F16" and (missing := llama_cpp_missing()):
                    keep(row | {"ok": False, "error": missing})
                    print(f"{prefix}  not run: {missing}", flush=True)
                    continue
                if not wait_for_memory(args.min_available * 1e9, patience=900):
                    keep(row | {"ok": False, "error": f"less than {args.min_available} GB available"})
                    print(f"{prefix}  not run: less than {args.min_available} GB available for 15 min", flush=True)
                    continue
                name = f"out-{label}-{shape}" + (f"-L{layers}" if layers else "") + f"-{weight_format}"
                if label == "llama.cpp":
                    result = run_llama_converter(args.llama_converter, checkpoint, args.work_dir / name, weight_format)
                else:
                    output = args.work_dir / name
                    result = run_export(args.python, args.pythonpath, checkpoint, output, weight_format, args.task)
                keep(row | result)
                if not result["ok"]:
                    print(f"{prefix}  failed, see {result['log']}", flush=True)
                    continue
                peak, anon, ir = result["peak_rss"], result["peak_anon"], result["ir_bytes"]
                figures = [peak / 1e9, peak / size, anon / 1e9, anon / size, ir / 1e9]
                print(f"{prefix}{result['seconds']:10.1f}" + "".join(f"{value:10.2f}" for value in figures), flush=True)

    every = list(({_row_key(old): old for old in kept} | {_row_key(new): new for new in rows}).values())
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in every:  # this run's hub shapes, with the rows --json kept from earlier runs
        if row["ok"] and row["shape"] in full and row.get("layers") is not None:
            groups.setdefault((row["label"], row["shape"], row["format"]), []).append(row)
    print_growth({key: growth(group, full[key[1]]) for key, group in groups.items() if len(group) > 1}, full)
    if args.plot:
        plot(every, args.plot)
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
