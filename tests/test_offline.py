"""``HF_HUB_OFFLINE=1`` with local folders: every loading route works, or fails with one clear line.

Each route runs in a fresh interpreter with the variable set before anything reads it (huggingface_hub
reads it at import).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ov_helpers import run_optimum_cli

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}


def _run_offline(code: str) -> subprocess.CompletedProcess:
    script = "import optimum_qwen35\nfrom optimum.intel import OVModelForCausalLM, OVModelForVisualCausalLM\n"
    return subprocess.run(
        [sys.executable, "-c", script + textwrap.dedent(code)], capture_output=True, text=True, env=OFFLINE
    )


@pytest.mark.parametrize(
    ("kind", "cls", "xml"),
    [
        ("text", "OVModelForCausalLM", "openvino_model.xml"),
        ("composite", "OVModelForVisualCausalLM", "openvino_language_model.xml"),
    ],
)
def test_offline_python_routes_on_local_folders(kind, cls, xml, request, tmp_path):
    checkpoint = request.getfixturevalue(f"{kind}_checkpoint")
    result = _run_offline(f"""
        from pathlib import Path
        out = Path({str(tmp_path)!r})
        {cls}.from_pretrained({str(checkpoint)!r}, export=True, compile=False).save_pretrained(out / "a")
        {cls}.from_pretrained({str(checkpoint)!r}, compile=False).save_pretrained(out / "b")  # no export flag
        {cls}.from_pretrained(out / "a", compile=False).save_pretrained(out / "c")  # exported folder, saved again
        {cls}.from_pretrained(str(out / "c"), compile=False)
        try:
            {cls}.from_pretrained(out / "a", export=True)
        except optimum_qwen35.CheckpointError as error:
            print("ERROR:", error)
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    for folder in "abc":
        assert (tmp_path / folder / xml).is_file(), folder
    assert "No OpenVINO files in" in result.stderr, "a checkpoint folder without export=True is exported, as online"
    error = [line for line in result.stdout.splitlines() if line.startswith("ERROR:")]
    assert len(error) == 1 and "is an exported OpenVINO folder, not a checkpoint" in error[0]
    assert "Fix: load it without export=True" in error[0]


def test_offline_cli_and_python_export_of_a_local_checkpoint(composite_checkpoint, tmp_path):
    for task in ("text-generation-with-past", "image-text-to-text"):
        out = tmp_path / task
        args = ("export", "openvino", "--model", str(composite_checkpoint), "--task", task, str(out))
        result = run_optimum_cli(*args, "--weight-format", "int8", env=OFFLINE)
        assert result.returncode == 0, result.stderr[-3000:]
        assert any(Path(out).glob("openvino_*model.xml"))
    result = _run_offline(f"optimum_qwen35.export({str(composite_checkpoint)!r}, {str(tmp_path / 'py')!r})")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "py" / "openvino_model.xml").is_file()
