"""The quick-start notebook runs as written: every code cell, in order, against the bundled checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def code_cells(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]


def test_quickstart_notebook_runs_and_generates(tmp_path, monkeypatch, capsys):
    # The notebook runs from notebooks/ and finds the checkpoint at ../demo: the same layout here,
    # with the export written to the temporary folder.
    (tmp_path / "demo").symlink_to(REPO / "demo")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    namespace: dict = {}
    for source in code_cells(REPO / "notebooks" / "quickstart.ipynb"):
        exec(compile(source, "quickstart.ipynb", "exec"), namespace)
    printed = capsys.readouterr().out

    output, prompt = namespace["output"], namespace["prompt"]
    assert output == tmp_path / "notebooks" / "qwen35-code-ov"
    assert {"openvino_model.xml", "openvino_tokenizer.xml", "openvino_detokenizer.xml"} <= {
        path.name for path in output.iterdir()
    }
    # What the cells printed: LLMPipeline's continuation, the continuous-batching texts and
    # OVModelForCausalLM's class and continuation.
    stateful = namespace["pipe"].generate(prompt, namespace["config"])
    assert stateful.strip() and prompt + stateful in printed
    paged = namespace["paged"].generate(namespace["prompts"], namespace["config"]).texts
    assert paged[0] == stateful  # the notebook says continuous batching gives the same tokens
    assert all(text in printed for text in paged)
    assert "OVQwen35ForCausalLM" in printed
    assert printed.count(prompt) >= 2
