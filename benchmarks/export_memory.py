"""Wall time and peak memory of ``optimum-cli export openvino`` on full-size Qwen3.5 shapes.

Builds random-weight bf16 checkpoints of public Qwen3.5 text shapes (weights do not change
memory or time), exports each with ``optimum-cli export openvino`` in a child process per
weight format, and reports its peak resident set size (anonymous memory plus mapped file pages)
and its peak anonymous memory against the checkpoint's safetensors size. Both are sampled every
20 ms from ``/proc``, summed over the child and its own children (the plugin's page-out helper).
The kernel's own peak (``ru_maxrss``) is not enough: pages reclaimed with ``MADV_PAGEOUT`` leave it
unrecorded, so it misses pages that were resident for a while and then paged out; the reported
peak RSS is the larger of the two.
``--label`` and ``--python``/``--pythonpath`` let one run compare installations: another
interpreter (a venv with upstream optimum-intel only) or another plugin checkout first on
``PYTHONPATH``.

    python benchmarks/export_memory.py --work-dir /tmp/q35-mem --shapes 0.8B,2B --formats none,fp16,int4
    python benchmarks/export_memory.py --work-dir /tmp/q35-mem --label upstream --python /venv-upstream/bin/python \\
        --formats fp16 --task text-generation-with-past --json upstream.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

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


def build_checkpoint_apart(shape: str, path: Path) -> Path:
    """:func:`build_checkpoint` in a fresh interpreter. An export child's ``ru_maxrss`` starts from
    its parent's peak at the fork (Linux carries it across exec), so a parent that had just held a
    model would set a floor under every export measured after it."""
    if (path / "config.json").is_file():
        return path
    builder = multiprocessing.get_context("spawn").Process(target=build_checkpoint, args=(shape, path))
    builder.start()
    builder.join()
    if builder.exitcode != 0:
        raise RuntimeError(f"building the random {shape} checkpoint in {path} failed (exit code {builder.exitcode})")
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
    log = output.parent / f"{output.name}.log"
    start = time.perf_counter()
    with log.open("w") as stream:
        # cwd: ``python -m`` puts the working directory first on sys.path, ahead of --pythonpath.
        child = subprocess.Popen(
            [*cmd, str(output)], stdout=stream, stderr=subprocess.STDOUT, env=env, cwd=output.parent
        )
        rss_peak = anon_peak = 0
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)  # reaps the child and its rusage when done
            if pid:
                break
            rss, anon = _resident(child.pid)
            rss_peak, anon_peak = max(rss_peak, rss), max(anon_peak, anon)
            time.sleep(0.02)
    seconds = time.perf_counter() - start
    ok = os.waitstatus_to_exitcode(status) == 0 and (output / "openvino_model.xml").is_file()
    ir_bytes = sum(file.stat().st_size for file in output.glob("*.bin")) if ok else 0
    if not keep:
        shutil.rmtree(output, ignore_errors=True)
    return {
        "ok": ok,
        "seconds": seconds,
        "peak_rss": max(rss_peak, usage.ru_maxrss * 1024),
        "sampled_peak_rss": rss_peak,
        "kernel_peak_rss": usage.ru_maxrss * 1024,
        "peak_anon": anon_peak,
        "ir_bytes": ir_bytes,
        "log": str(log),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="checkpoints and logs go here")
    parser.add_argument("--shapes", default="0.8B,2B", help=f"comma-separated, from {', '.join(SHAPES)}")
    parser.add_argument("--formats", default="none,fp16,int4", help="weight formats; 'none' keeps the checkpoint's")
    parser.add_argument("--label", default="plugin", help="name of this installation in the table")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs optimum-cli")
    parser.add_argument("--pythonpath", help="put this directory first on PYTHONPATH (another plugin checkout)")
    parser.add_argument("--task", help="pass --task to optimum-cli (upstream cannot infer it for a local checkpoint)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args()
    args.work_dir = args.work_dir.absolute()  # the exports run in another working directory

    rows = []
    header = ("label", "shape", "format", "ckpt GB", "wall s", "RSS GB", "RSS/ckpt", "anon GB", "anon/ckpt", "IR GB")
    print(f"{header[0]:<10}{header[1]:<7}{header[2]:<8}" + "".join(f"{name:>10}" for name in header[3:]))
    for shape in args.shapes.split(","):
        checkpoint = build_checkpoint_apart(shape, args.work_dir / f"ckpt-{shape}")
        size = safetensors_bytes(checkpoint)
        for weight_format in args.formats.split(","):
            output = args.work_dir / f"out-{args.label}-{shape}-{weight_format}"
            result = run_export(args.python, args.pythonpath, checkpoint, output, weight_format, args.task)
            row = {"label": args.label, "shape": shape, "format": weight_format, "checkpoint_bytes": size} | result
            rows.append(row)
            prefix = f"{args.label:<10}{shape:<7}{weight_format:<8}{size / 1e9:10.2f}"
            if not result["ok"]:
                print(f"{prefix}  export failed, see {result['log']}", flush=True)
                continue
            peak, anon, ir = result["peak_rss"], result["peak_anon"], result["ir_bytes"]
            figures = [peak / 1e9, peak / size, anon / 1e9, anon / size, ir / 1e9]
            print(f"{prefix}{result['seconds']:10.1f}" + "".join(f"{value:10.2f}" for value in figures), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
