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
