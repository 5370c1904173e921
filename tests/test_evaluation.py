"""The accuracy tool: consecutive windows, the paired bootstrap interval, the HF cache, and an
uncompressed IR whose perplexity reproduces Hugging Face's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import transformers
from transformers import AutoTokenizer

from optimum_qwen35.cli import main
from optimum_qwen35.evaluation import cache, perplexity
from optimum_qwen35.evaluation.bootstrap import paired_bootstrap
from optimum_qwen35.evaluation.cache import checkpoint_fingerprint, default_cache_dir
from optimum_qwen35.evaluation.perplexity import _score, score_hf, score_ir, select_windows, windows_at

SAMPLE_TEXT = Path(__file__).parent / "data" / "heldout_python_sample.txt"  # a slice of the held-out eval text


@pytest.fixture(autouse=True)
def _no_home_cache(tmp_path, monkeypatch):
    """Whatever a test forgets to pass, the user's own cache is never read or written."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def test_windows_are_the_consecutive_grid_of_the_text():
    ids = np.arange(1050)
    indices = select_windows(len(ids), 100)
    windows = windows_at(ids, indices, 100)
    assert windows.shape == (10, 100)
    np.testing.assert_array_equal(windows.ravel(), np.arange(1000))  # covers the text, no overlap, tail dropped
    with pytest.raises(ValueError, match="fewer than one window"):
        select_windows(50, 100)


def test_max_windows_keeps_evenly_spread_windows_of_the_same_grid():
    np.testing.assert_array_equal(select_windows(1050, 100, max_windows=4), [0, 3, 6, 9])
    np.testing.assert_array_equal(windows_at(np.arange(1050), np.array([0, 3, 6, 9]), 100)[:, 0], [0, 300, 600, 900])
    np.testing.assert_array_equal(select_windows(1050, 100, max_windows=50), np.arange(10))  # a cap, not a count
    for grid in (1, 2, 7, 90):
        for keep in range(1, grid + 1):
            indices = select_windows(grid * 64, 64, max_windows=keep)
            gaps = np.diff(indices)
            assert len(indices) == keep and indices[0] == 0 and (keep == 1 or indices[-1] == grid - 1)
            assert keep == 1 or (gaps.min() >= 1 and gaps.max() - gaps.min() <= 1), (grid, keep, indices)
    with pytest.raises(ValueError, match="at least 1"):
        select_windows(1050, 100, max_windows=0)


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
    ids = ids["input_ids"][0]
    windows = windows_at(ids, select_windows(len(ids), 256, max_windows=3), 256)
    hf = score_hf(reference_checkpoint, windows)
    ov = score_ir(reference_export, windows)
    assert hf.nll.shape == ov.nll.shape == (3, 255)
    assert 1.5 < hf.perplexity < 200, "the trained reference model should predict Python source"
    assert abs(ov.perplexity / hf.perplexity - 1) < 0.005
    assert ov.agreement(hf) > 0.99
    np.testing.assert_allclose(ov.nll, hf.nll, atol=2e-3)


def test_batched_scoring_equals_one_window_at_a_time(reference_checkpoint, reference_export):
    ids = AutoTokenizer.from_pretrained(reference_checkpoint)(SAMPLE_TEXT.read_text(), return_tensors="np")
    windows = windows_at(ids["input_ids"][0], select_windows(len(ids["input_ids"][0]), 128, max_windows=5), 128)
    alone = score_ir(reference_export, windows, batch_size=1, streams=1)
    # Batches of 2 (the last one short) on two requests at once: each window still starts empty.
    batched = score_ir(reference_export, windows, batch_size=2, streams=2)
    np.testing.assert_allclose(batched.nll, alone.nll, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(batched.argmax, alone.argmax)
    assert len({round(float(row.sum()), 3) for row in alone.nll}) == 5, "five different windows, in order"


def test_scores_are_the_negated_full_log_softmax_bit_for_bit():
    """The HF cache holds scores computed with the full log-softmax: they must stay the same values."""
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 4, size=(64, 300)).astype(np.float32)
    window = rng.integers(0, 300, size=64)
    wide = logits[:-1].astype(np.float64)
    shifted = wide - wide.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    nll, argmax = _score(logits, window)
    np.testing.assert_array_equal(nll, -log_probs[np.arange(63), window[1:]])
    np.testing.assert_array_equal(argmax, wide.argmax(axis=-1))


def _eval_argv(checkpoint: Path, export: Path, *extra: str, text: Path = SAMPLE_TEXT) -> list[str]:
    return ["eval", str(checkpoint), "--text", str(text), "--variants", f"exported={export}", *extra]


def test_eval_command_prints_a_table_and_writes_json(reference_checkpoint, reference_export, tmp_path, capsys):
    report, unused_cache = tmp_path / "eval.json", tmp_path / "cache"
    argv = ["--max-windows", "6", "--window-length", "128", "--json", str(report)]
    assert (
        main(_eval_argv(reference_checkpoint, reference_export, *argv, "--no-cache", "--cache-dir", str(unused_cache)))
        == 0
    )
    table = capsys.readouterr().out
    assert "6 of 90 consecutive windows x 128 tokens" in table and "762 scored" in table
    assert "hf-fp32" in table and "exported" in table and "top-1 agree" in table and "[95 % interval]" in table
    result = json.loads(report.read_text())
    assert (result["windows"], result["grid_windows"], result["scored_tokens"]) == (6, 90, 6 * 127)
    rows = {row["variant"]: row for row in result["results"]}
    exported = rows["exported"]
    assert exported["ci95_low_pct"] <= exported["delta_pct"] <= exported["ci95_high_pct"]
    # The IR computes the checkpoint's own weights in f32, like HF: 0 within float32 rounding.
    assert exported["ci95_low_pct"] <= 1e-3 and exported["ci95_high_pct"] >= -1e-3
    assert exported["ci95_high_pct"] - exported["ci95_low_pct"] < 1e-3
    assert f"{exported['delta_pct']:+.3f} % [{exported['ci95_low_pct']:+.3f}, " in table
    assert exported["top1"] > 0.99 and exported["size_mb"] > 1
    assert not unused_cache.exists()


def _results(report: Path) -> list[dict]:
    return json.loads(report.read_text())["results"]


def test_a_repeated_run_takes_hf_scores_from_the_cache(
    reference_checkpoint, reference_export, tmp_path, capsys, monkeypatch
):
    store, report = tmp_path / "cache", tmp_path / "eval.json"

    def run(max_windows: int = 2, length: int = 128, text: Path = SAMPLE_TEXT) -> str:
        argv = ["--max-windows", str(max_windows), "--window-length", str(length), "--cache-dir", str(store)]
        assert main(_eval_argv(reference_checkpoint, reference_export, *argv, "--json", str(report), text=text)) == 0
        return capsys.readouterr().out

    output = run()
    assert "HF float32: 0 windows from the cache" in output and ", 2 scored" in output
    first, first_table = _results(report), output.split("\nvariant")[1]
    assert len(list(store.glob("*.npz"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("transformers was asked to load the model")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    output = run()
    assert "HF float32: 2 windows from the cache" in output and ", 0 scored" in output
    assert _results(report) == first and output.split("\nvariant")[1] == first_table
    # Another window length is another key, even for grid window 0, which the cache holds for 128.
    with pytest.raises(AssertionError, match="asked to load"):
        run(max_windows=1, length=64)
    changed = tmp_path / "changed.txt"
    changed.write_text(SAMPLE_TEXT.read_text()[1:])
    with pytest.raises(AssertionError, match="asked to load"):  # another text: another key
        run(text=changed)


def test_a_larger_run_scores_only_the_windows_missing_from_the_cache(
    reference_checkpoint, reference_export, tmp_path, capsys, monkeypatch
):
    store, report = tmp_path / "cache", tmp_path / "eval.json"
    argv = ["--window-length", "128", "--cache-dir", str(store), "--json", str(report)]
    asked = []

    def counting(checkpoint, windows):
        asked.append(windows)
        return score_hf(checkpoint, windows)

    monkeypatch.setattr(cache, "score_hf", counting)
    assert main(_eval_argv(reference_checkpoint, reference_export, *argv, "--max-windows", "2")) == 0
    assert main(_eval_argv(reference_checkpoint, reference_export, *argv, "--max-windows", "4")) == 0
    assert "HF float32: 2 windows from the cache" in capsys.readouterr().out
    partly_cached = _results(report)
    # Grid windows 0 and 89 (2 spread over 90), then 0, 30, 59, 89: only 30 and 59 are new.
    ids = np.array(AutoTokenizer.from_pretrained(reference_checkpoint)(SAMPLE_TEXT.read_text())["input_ids"])
    assert len(asked) == 2
    np.testing.assert_array_equal(asked[0], windows_at(ids, np.array([0, 89]), 128))
    np.testing.assert_array_equal(asked[1], windows_at(ids, np.array([30, 59]), 128))
    assert main(_eval_argv(reference_checkpoint, reference_export, *argv, "--max-windows", "4", "--no-cache")) == 0
    assert _results(report) == partly_cached  # the merged cache gives what a fresh run gives


def test_the_cache_key_follows_the_checkpoint_contents(text_checkpoint, tmp_path, monkeypatch):
    copy = Path(shutil.copytree(text_checkpoint, tmp_path / "copy"))
    assert checkpoint_fingerprint(copy) == checkpoint_fingerprint(text_checkpoint)  # not its path
    weights = sorted(copy.glob("*.safetensors"))[-1]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # same names, shapes and size: a retrained checkpoint
    weights.write_bytes(bytes(data))
    assert checkpoint_fingerprint(copy) != checkpoint_fingerprint(text_checkpoint)
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("{", '{"note": 1, ', 1))
    assert checkpoint_fingerprint(copy) != checkpoint_fingerprint(text_checkpoint)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "optimum-qwen35" / "eval"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "optimum-qwen35" / "eval"


def _precisions(compiled) -> tuple[str, str]:
    return tuple(compiled.get_property(name).to_string() for name in ("INFERENCE_PRECISION_HINT", "KV_CACHE_PRECISION"))


def test_device_config_reaches_the_compiled_model(
    reference_checkpoint, reference_export, tmp_path, monkeypatch, capsys
):
    """``--device-config default`` compiles as users run the IR; ``f32`` (the default) in f32 only."""
    import openvino as ov

    compiled = []

    def recording(*args, **kwargs):
        compiled.append(perplexity_compile(*args, **kwargs))
        return compiled[-1]

    perplexity_compile = perplexity.compile_for_scoring
    monkeypatch.setattr(perplexity, "compile_for_scoring", recording)
    store = tmp_path / "cache"
    reports = {}
    for choice in (None, "f32", "default"):
        report = tmp_path / f"{choice}.json"
        flag = [] if choice is None else ["--device-config", choice]
        argv = ["--max-windows", "2", "--window-length", "64", "--cache-dir", str(store), "--json", str(report), *flag]
        assert main(_eval_argv(reference_checkpoint, reference_export, *argv)) == 0
        reports[choice] = json.loads(report.read_text())
        assert f"OpenVINO device config: {choice or 'f32'}\n" in capsys.readouterr().out
    assert [report["device_config"] for report in reports.values()] == ["f32", "f32", "default"]
    assert (
        reports["default"]["compile_options"] == {} and reports["f32"]["compile_options"]["KV_CACHE_PRECISION"] == "f32"
    )
    # What the CPU itself picks by default (bf16 on AMX, f32 on an AVX2-only CPU), not a hard-coded guess.
    assert [_precisions(model) for model in compiled[:2]] == [("f32", "f32"), ("f32", "f32")]
    inference, kv_cache = _precisions(compiled[2])
    assert inference == ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").to_string()
    assert kv_cache != "f32", "the plugin's default KV cache is compressed (u8/f16) on every CPU kind it runs"


def test_an_unknown_device_config_is_one_clear_argparse_error(reference_checkpoint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(reference_checkpoint), "--text", str(SAMPLE_TEXT), "--device-config", "bf16"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "argument --device-config: invalid choice: 'bf16'" in error and "'f32', 'default'" in error
    assert "Traceback" not in error
