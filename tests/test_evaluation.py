"""The accuracy tool: its perplexity for an uncompressed IR reproduces Hugging Face's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from optimum_qwen35.cli import main
from optimum_qwen35.evaluation.bootstrap import paired_bootstrap
from optimum_qwen35.evaluation.perplexity import score_hf, score_ir, token_windows

SAMPLE_TEXT = Path(__file__).parent / "data" / "heldout_python_sample.txt"  # a slice of the held-out eval text


def test_token_windows_are_evenly_spread():
    windows = token_windows(np.arange(1000), count=4, length=100)
    assert [int(w[0]) for w in windows] == [0, 300, 600, 900] and all(len(w) == 100 for w in windows)
    with pytest.raises(ValueError, match="fewer than one window"):
        token_windows(np.arange(50), count=2, length=100)


def test_bootstrap_of_a_variant_equal_to_the_reference_is_exactly_zero():
    reference = np.random.default_rng(1).uniform(300, 2000, size=50)
    difference = paired_bootstrap(reference, reference.copy(), np.full(50, 511))
    assert (difference.delta_pct, difference.ci95_low_pct, difference.ci95_high_pct) == (0.0, 0.0, 0.0)


def test_bootstrap_is_paired_a_constant_shift_per_token_gives_exp_c_minus_1():
    rng = np.random.default_rng(2)
    tokens = rng.integers(100, 512, size=200)
    reference = tokens * rng.uniform(0.5, 4.0, size=200)  # windows of very different difficulty
    c = 0.004
    difference = paired_bootstrap(reference + c * tokens, reference, tokens)
    expected = 100 * np.expm1(c)
    assert difference.delta_pct == pytest.approx(expected, rel=1e-9)
    # Unpaired resampling would spread this over several %: the windows' difficulty is shared.
    assert difference.ci95_low_pct == pytest.approx(expected, rel=1e-9)
    assert difference.ci95_high_pct == pytest.approx(expected, rel=1e-9)


def test_bootstrap_interval_has_the_width_of_the_mean_per_window_difference():
    rng = np.random.default_rng(3)
    windows, tokens = 400, np.full(400, 511)
    reference = tokens * rng.uniform(0.5, 4.0, size=windows)
    noise = rng.normal(0, 0.01, size=windows)
    shift = 0.003 + noise - noise.mean()  # per-token log-ratio of each window, mean exactly 0.003
    difference = paired_bootstrap(reference + shift * tokens, reference, tokens)
    assert difference.delta_pct == pytest.approx(100 * np.expm1(0.003), rel=1e-9)
    assert difference.ci95_low_pct < difference.delta_pct < difference.ci95_high_pct
    # The normal approximation of a 95 % interval of a mean: ±1.96 standard errors.
    expected_width = 100 * 2 * 1.96 * shift.std() / np.sqrt(windows)
    width = difference.ci95_high_pct - difference.ci95_low_pct
    assert width == pytest.approx(expected_width, rel=0.1)
    assert paired_bootstrap(reference + shift * tokens, reference, tokens) == difference  # fixed seed


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
