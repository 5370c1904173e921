"""The accuracy tool: its perplexity for an uncompressed IR reproduces Hugging Face's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from optimum_qwen35.cli import main
from optimum_qwen35.evaluation.perplexity import score_hf, score_ir, token_windows

SAMPLE_TEXT = Path(__file__).parent / "data" / "heldout_python_sample.txt"  # a slice of the held-out eval text


def test_token_windows_are_evenly_spread():
    windows = token_windows(np.arange(1000), count=4, length=100)
    assert [int(w[0]) for w in windows] == [0, 300, 600, 900] and all(len(w) == 100 for w in windows)
    with pytest.raises(ValueError, match="fewer than one window"):
        token_windows(np.arange(50), count=2, length=100)


def test_ir_perplexity_matches_hf_float32(reference_checkpoint, reference_export):
    ids = AutoTokenizer.from_pretrained(reference_checkpoint)(SAMPLE_TEXT.read_text(), return_tensors="np")
    windows = token_windows(ids["input_ids"][0], count=3, length=256)
    hf = score_hf(reference_checkpoint, windows)
    ov = score_ir(reference_export, windows)
    assert 1.5 < hf.perplexity < 200, "the trained reference model should predict Python source"
    assert abs(ov.perplexity / hf.perplexity - 1) < 0.005
    assert ov.agreement(hf) > 0.99
    np.testing.assert_allclose(ov.nll, hf.nll, atol=2e-3)


def test_eval_command_prints_a_table_and_writes_json(reference_checkpoint, reference_export, tmp_path, capsys):
    report = tmp_path / "eval.json"
    argv = ["eval", str(reference_checkpoint), "--text", str(SAMPLE_TEXT), "--windows", "2", "--window-length", "128"]
    assert main([*argv, "--variants", f"exported={reference_export}", "--json", str(report)]) == 0
    table = capsys.readouterr().out
    assert "hf-fp32" in table and "exported" in table and "top-1 agree" in table
    rows = {row["variant"]: row for row in json.loads(report.read_text())["results"]}
    assert abs(rows["exported"]["delta_pct"]) < 0.5 and rows["exported"]["top1"] > 0.99
    assert rows["exported"]["size_mb"] > 1
