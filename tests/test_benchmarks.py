"""The benchmark scripts run end to end on a tiny checkpoint (structure of their output, not speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_bench_writes_every_figure_for_every_row(text_checkpoint, tmp_path):
    cmd = [sys.executable, str(BENCHMARKS / "bench.py"), "--work-dir", str(tmp_path), "--checkpoint"]
    cmd += [str(text_checkpoint), "--formats", "fp16", "--prompts", "8,16", "--new-tokens", "4"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["prompts"] == [8, 16] and report["bandwidth"] == max(report["bandwidth_probes"].values()) > 1e8
    assert set(report["bandwidth_probes"]) == {"numpy", "reduce", "matvec"}
    runtimes = ["infer", "optimum", "genai", "genai-sdpa"]
    assert [row["name"] for row in report["rows"]] == [f"plugin-fp16/{runtime}" for runtime in runtimes]
    for row in report["rows"]:
        assert "error" not in row, row
        assert set(row["ttft_s"]) == {"8", "16"} and all(seconds > 0 for seconds in row["ttft_s"].values())
        assert 0 < row["tpot_s"] < 10 and row["floor_ms"] > 0 and row["peak_rss"] > 0
    assert "plugin-fp16/genai" in result.stdout  # the printed table


def test_bench_gguf_rows_say_what_they_need(tmp_path):
    """``--gguf`` (llama.cpp rows, optional) names the missing converter or package before any work."""
    bench = str(BENCHMARKS / "bench.py")
    no_converter = subprocess.run(
        [sys.executable, bench, "--work-dir", str(tmp_path), "--gguf", "Q4_0"], capture_output=True, text=True
    )
    assert no_converter.returncode == 2 and "--gguf needs --llama-converter" in no_converter.stderr
    not_there = subprocess.run(
        [*no_converter.args, "--llama-converter", str(tmp_path / "x.py")], capture_output=True, text=True
    )
    assert not_there.returncode == 2 and "x.py: no such file" in not_there.stderr
    # As if llama-cpp-python were not installed, whether or not it is here.
    hide = "import runpy, sys; sys.modules['llama_cpp'] = None; sys.argv = sys.argv[1:]; "
    hide += f"sys.path.insert(0, {str(BENCHMARKS)!r}); "
    hide += f"runpy.run_path({bench!r}, run_name='__main__')"
    cmd = [sys.executable, "-c", hide, bench, "--work-dir", str(tmp_path), "--gguf", "Q4_0"]
    no_package = subprocess.run([*cmd, "--llama-converter", bench], capture_output=True, text=True)  # any file
    assert no_package.returncode == 2 and "pip install llama-cpp-python" in no_package.stderr
    assert list(tmp_path.iterdir()) == []  # nothing built or exported
