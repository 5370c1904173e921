"""What a user sees: an export prints its steps and nothing the plugin knows to be irrelevant.

The CLI runs are real ``optimum-cli`` processes on the bundled demo checkpoint (the layout of a hub
checkpoint) with stdout and stderr captured, so neither is a terminal: each step is one line.
"""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ov_helpers import run_optimum_cli

from optimum_qwen35.exporters.progress import advance, export_progress, substeps
from optimum_qwen35.exporters.quiet import DURING_EXPORT, quiet_export

REPO = Path(__file__).resolve().parents[1]
DEMO_CHECKPOINT = REPO / "demo" / "qwen35-code-vl-mtp"
STEPS = [
    "loading weights",
    "tracing",
    "converting to OpenVINO",
    "making the model stateful",
    "saving the IR",
    "converting the tokenizer",
]
COMPRESSION_STEPS = [(7, "compressing weights"), (8, "saving the compressed IR")]
DONE = re.compile(r"Qwen3\.5 export: done \[\d\d:\d\d\]")
#: What the libraries underneath print during an export of this checkpoint when nothing is hidden.
LIBRARY_MESSAGES = [
    "The fast path is not available because one of the required library is not installed.",
    "`loss_type=None` was set in the config but it is unrecognized.",
    "Loading weights",  # transformers' bar
]


def _user_env() -> dict:
    """The environment of a user without network: no warning filter of the test suite's own."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    return env | {"HF_HUB_OFFLINE": "1"}


#: The demo checkpoint's decoder layers (its config.json).
DEMO_LAYERS = 8
#: After the step of the same index (1-based) starts: what the step measured, one line each.
SUMMARIES = {
    2: [rf"traced {DEMO_LAYERS} layers in \d+\.\d s"],
    5: [r"wrote [\d.]+ [kMG]B in \d+\.\d s"],
    7: [r"compressed \d+ vocabulary table chunks? in \d+\.\d s", r"compressed \d+ weights in \d+\.\d s"],
    8: [r"wrote [\d.]+ [kMG]B in \d+\.\d s"],
}


def _assert_only_steps(stderr: str, compressed: bool) -> None:
    """Each step's line, its figures (no per-layer lines), the last line with the total time."""
    steps = [(n, f"{step}: step {n}/6") for n, step in enumerate(STEPS, 1)]
    if compressed:
        steps += [(n, f"{step}: step {n}/8") for n, step in COMPRESSION_STEPS]
    expected = []
    for n, step in steps:
        expected += [re.escape(f"Qwen3.5 export: {step}")] + [
            f"Qwen3\\.5 export: {line}" for line in SUMMARIES.get(n, [])
        ]
    lines = stderr.split("\n")
    assert lines[-1] == "", "the last line ends"
    assert len(lines[:-2]) == len(expected) and DONE.fullmatch(lines[-2]), stderr
    for line, pattern in zip(lines[:-2], expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert "\r" not in stderr


@pytest.mark.parametrize("weight_format", [None, "int4"])
def test_cli_export_prints_its_steps_and_nothing_else(weight_format, tmp_path):
    args = ["export", "openvino", "--model", str(DEMO_CHECKPOINT), str(tmp_path / "out")]
    if weight_format:
        args += ["--weight-format", weight_format]
    result = run_optimum_cli(*args, env=_user_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == ""
    _assert_only_steps(result.stderr, compressed=weight_format is not None)
    assert (tmp_path / "out" / "openvino_model.xml").is_file()


def test_cli_verbose_export_shows_the_library_messages(tmp_path):
    args = ["export", "openvino", "--model", str(DEMO_CHECKPOINT), str(tmp_path / "out"), "--verbose"]
    result = run_optimum_cli(*args, env=_user_env())
    assert result.returncode == 0, result.stderr[-3000:]
    for message in LIBRARY_MESSAGES:
        assert message in result.stderr, message
    # The steps are still there, each on a line of its own.
    for n, step in enumerate(STEPS, 1):
        assert f"\nQwen3.5 export: {step}: step {n}/6\n" in "\n" + result.stderr, step


def test_demo_prints_folder_size_and_both_generations(tmp_path):
    """``make demo``: ``optimum_qwen35.export`` (the Python route), then LLMPipeline and OVModelForCausalLM."""
    output = tmp_path / "demo-output"
    result = subprocess.run(
        [sys.executable, str(REPO / "demo" / "run_demo.py"), "--output", str(output), "--max-new-tokens", "16"],
        capture_output=True,
        text=True,
        env=_user_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_only_steps(result.stderr, compressed=False)
    size = sum(file.stat().st_size for file in output.rglob("*") if file.is_file()) / 2**20
    lines = result.stdout.splitlines()
    assert lines[0] == f"Exported {DEMO_CHECKPOINT} to {output} ({size:.1f} MiB)"
    genai = lines.index("--- openvino_genai.LLMPipeline ---")
    optimum = lines.index("--- optimum.intel.OVQwen35ForCausalLM ---")
    assert lines[1:genai] == [""] and genai < optimum
    genai_text = "\n".join(lines[genai + 1 : optimum]).strip()
    optimum_text = "\n".join(lines[optimum + 1 :]).strip()
    assert genai_text.startswith("def read_lines(path):\n") and len(genai_text) > len("def read_lines(path):") + 8
    assert optimum_text == genai_text  # greedy on both runtimes


def _find_cuda_home() -> None:
    from torch.utils.cpp_extension import _find_cuda_home

    _find_cuda_home()


def test_known_message_hidden_only_during_the_export(monkeypatch, tmp_path, caplog):
    """torch's CUDA_HOME message (torch.utils.cpp_extension, imported by nncf.torch during conversion,
    on a CPU-only machine with a CUDA toolkit) is hidden inside the export, shown outside it and
    with verbose; the filter is gone afterwards."""
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    message = f"No CUDA runtime is found, using CUDA_HOME='{tmp_path}'"
    with caplog.at_level(logging.WARNING, logger="torch.utils.cpp_extension"):
        with quiet_export(verbose=False):
            _find_cuda_home()
        assert message not in caplog.messages
        _find_cuda_home()
        assert caplog.messages.count(message) == 1
        with quiet_export(verbose=True):
            _find_cuda_home()
        assert caplog.messages.count(message) == 2
    for known in DURING_EXPORT:
        assert not logging.getLogger(known.logger).filters, known.logger


def test_other_messages_of_the_same_logger_still_show(caplog):
    """Exact messages, not loggers: a loss_type the user set still warns, and nested exports keep
    the filter until the outer one ends."""
    logger = logging.getLogger("transformers.modeling_utils")
    ours = "`loss_type=None` was set in the config but it is unrecognized. Using the default loss: `ForCausalLMLoss`."
    users = ours.replace("None", "my_loss")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        with quiet_export(verbose=False):
            with quiet_export(verbose=False):
                logger.warning(ours)
            logger.warning(ours)
            logger.warning(users)
        logger.warning(ours)
    assert caplog.messages == [users, ours]


def test_transformers_bars_off_during_the_export_only():
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()
    with quiet_export(verbose=False):
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()
    with quiet_export(verbose=True):
        assert hf_logging.is_progress_bar_enabled()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_one_bar_redraws(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with export_progress():
        assert list(substeps(["a", "b"], "mapping weight files")) == ["a", "b"]
        advance("trace")
        advance("compress")
    text = terminal.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1, repr(text)  # one line, redrawn with \r
    frames = [frame.rstrip() for frame in text.strip().split("\r") if frame.strip()]
    assert "Qwen3.5 export: loading weights: step 1/6 [00:00], mapping weight files 1/2, ETA 00:00" in frames
    assert "Qwen3.5 export: tracing: step 2/6 [00:00]" in frames
    assert "Qwen3.5 export: compressing weights: step 7/8 [00:00]" in frames
    assert frames[-1] == "Qwen3.5 export: done: step 8/8 [00:00]"


def test_loading_an_export_says_nothing_unless_the_caller_set_dynamic_shapes(text_export, caplog):
    """optimum-intel's hybrid class passes dynamic_shapes=True itself and then says it is ignored."""
    from optimum.intel import OVModelForCausalLM

    message = "`dynamic_shapes` was set to True, but this value will be ignored"
    with caplog.at_level(logging.WARNING, logger="optimum.intel.openvino.modeling_decoder"):
        OVModelForCausalLM.from_pretrained(text_export, compile=False)
        assert not [line for line in caplog.messages if message in line]
        OVModelForCausalLM.from_pretrained(text_export, compile=False, dynamic_shapes=True)
        assert [line for line in caplog.messages if message in line]
