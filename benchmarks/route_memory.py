"""Peak memory of each route into an INT4 (or INT8) compression of a Qwen3.5 checkpoint.

The plugin's rule is that a choice it makes holds on every route: the CLI's compressed constants go
to a file-backed scratch space as they are made, and so must the Python routes'. Each route runs
in a child process whose peak RSS and peak anonymous memory are sampled from ``/proc``
(``export_memory.measure``); the compressed IR each route writes is hashed and compared with the
CLI's, then deleted.

Routes (``--routes``):

* ``cli``: ``optimum-cli export openvino --weight-format F CHECKPOINT OUT``;
* ``export``: ``optimum_qwen35.export(CHECKPOINT, OUT, weight_format=F)``;
* ``from-pretrained-export``: ``OVModelForCausalLM.from_pretrained(CHECKPOINT, export=True,
  quantization_config=OVWeightQuantizationConfig(bits=B), compile=False)``, then ``save_pretrained(OUT)``;
* ``from-pretrained-ir``: the same on a 16-bit IR of the checkpoint (exported first with
  ``--weight-format fp16``, kept under ``--work-dir``);
* ``quantizer``: ``OVQuantizer.from_pretrained(OVModelForCausalLM.from_pretrained(IR, compile=False))
  .quantize(ov_config=OVConfig(quantization_config=...), save_directory=OUT)``.

``--pythonpath`` runs every child with another plugin checkout first on ``PYTHONPATH`` (e.g. the
code before a change), ``--label`` names it in the table.

    python benchmarks/route_memory.py --work-dir /work/q35-routes --shape 35B-A3B --layers 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from export_memory import checkpoint_for, measure, run_export, safetensors_bytes

ROUTES = ("cli", "export", "from-pretrained-export", "from-pretrained-ir", "quantizer")
#: Routes that compress an existing 16-bit IR rather than a checkpoint.
IR_ROUTES = ("from-pretrained-ir", "quantizer")


def run_route(route: str, source: Path, output: Path, weight_format: str) -> None:
    """Run one Python route in this process (the measured child; ``cli`` runs ``optimum-cli`` itself)."""
    import optimum_qwen35  # also registers the plugin for optimum-intel's Python API

    bits = 4 if weight_format == "int4" else 8
    if route == "export":
        optimum_qwen35.export(source, output, weight_format=weight_format)
        return
    from optimum.intel import OVConfig, OVModelForCausalLM, OVQuantizer, OVWeightQuantizationConfig

    config = OVWeightQuantizationConfig(bits=bits)
    if route == "from-pretrained-export":
        model = OVModelForCausalLM.from_pretrained(source, export=True, quantization_config=config, compile=False)
        model.save_pretrained(output)
    elif route == "from-pretrained-ir":
        OVModelForCausalLM.from_pretrained(source, quantization_config=config, compile=False).save_pretrained(output)
    elif route == "quantizer":
        model = OVModelForCausalLM.from_pretrained(source, compile=False)
        OVQuantizer.from_pretrained(model).quantize(
            ov_config=OVConfig(quantization_config=config), save_directory=output
        )
    else:
        raise ValueError(route)


def ir_digest(folder: Path) -> str | None:
    """SHA-256 of a folder's ``openvino_model.bin`` (the weights), None if there is none."""
    weights = folder / "openvino_model.bin"
    if not weights.is_file():
        return None
    digest = hashlib.sha256()
    with weights.open("rb") as stream:
        while chunk := stream.read(2**24):
            digest.update(chunk)
    return digest.hexdigest()


def measure_route(route: str, source: Path, output: Path, weight_format: str, pythonpath: str | None) -> dict:
    """One route in a child process: wall seconds, peak RSS / anonymous bytes, the IR's digest and size."""
    shutil.rmtree(output, ignore_errors=True)
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    if route == "cli":
        cmd = [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "openvino", "--model", str(source)]
        cmd += ["--weight-format", weight_format, str(output)]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", route, str(source), str(output), weight_format]
    result = measure(cmd, output.parent / f"{output.name}.log", env)
    ok = result.pop("exit_code") == 0
    row = {"ok": ok, "digest": ir_digest(output) if ok else None}
    row["ir_bytes"] = (output / "openvino_model.bin").stat().st_size if row["digest"] else 0
    shutil.rmtree(output, ignore_errors=True)
    return row | result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=4, metavar=("ROUTE", "SOURCE", "OUTPUT", "FORMAT"), help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", type=Path, help="checkpoint, 16-bit IR and logs go here")
    parser.add_argument("--checkpoint", type=Path, help="measure this checkpoint instead of building --shape")
    parser.add_argument("--shape", default="35B-A3B", help="a shape of export_memory.py")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers of a hub shape's cut")
    parser.add_argument("--routes", default=",".join(ROUTES), help=f"comma-separated, from {','.join(ROUTES)}")
    parser.add_argument("--weight-format", default="int4", choices=("int4", "int8"))
    parser.add_argument("--label", default="plugin", help="name of this installation in the table")
    parser.add_argument("--pythonpath", help="put this directory first on PYTHONPATH (another plugin checkout)")
    parser.add_argument("--json", type=Path, help="append the rows to this JSON file")
    args = parser.parse_args()
    if args.child:
        route, source, output, weight_format = args.child
        run_route(route, Path(source), Path(output), weight_format)
        return 0
    if args.work_dir is None:
        parser.error("--work-dir is required")
    routes = args.routes.split(",")
    if unknown := set(routes) - set(ROUTES):
        parser.error(f"unknown routes {sorted(unknown)}")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    layers = args.layers if args.shape in ("27B", "35B-A3B") else None
    checkpoint = args.checkpoint or checkpoint_for(args.shape, layers, args.work_dir)
    ir16 = args.work_dir / f"ir16-{checkpoint.name}"
    if set(routes) & set(IR_ROUTES) and not (ir16 / "openvino_model.xml").is_file():
        built = run_export(sys.executable, args.pythonpath, checkpoint, ir16, "fp16", None, keep=True)
        if not built["ok"]:
            raise RuntimeError(f"the 16-bit IR failed, see {built['log']}")
    size = safetensors_bytes(checkpoint)
    rows = []
    print(f"{'route':24} {'wall':>8} {'peak RSS':>10} {'peak anon':>10} {'IR':>9}  digest")
    for route in routes:
        source = ir16 if route in IR_ROUTES else checkpoint
        output = args.work_dir / f"out-{args.label}-{route}"
        row = {"label": args.label, "route": route, "checkpoint": str(checkpoint), "layers": layers}
        row |= {"format": args.weight_format, "checkpoint_bytes": size}
        row |= measure_route(route, source, output, args.weight_format, args.pythonpath)
        rows.append(row)
        print(
            f"{route:24} {row['seconds']:7.1f}s {row['peak_rss'] / 1e9:9.2f}G {row['peak_anon'] / 1e9:9.2f}G "
            f"{row['ir_bytes'] / 1e9:8.2f}G  {(row['digest'] or 'FAILED ' + row['log'])[:16]}",
            flush=True,
        )
    if args.json:
        previous = json.loads(args.json.read_text()) if args.json.is_file() else []
        args.json.write_text(json.dumps(previous + rows, indent=1))
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
