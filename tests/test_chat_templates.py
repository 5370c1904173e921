"""The real Qwen3.5 chat templates travel into the export and openvino-genai renders them like transformers.

Both hub templates are tested on the trained reference's tokenizer: the 0.8B/2B one (reasoning only
when ``enable_thinking`` is true; the bundled checkpoint ships it) and the 4B-and-larger one
(reasoning unless it is false). ``--thinking on|off`` fixes the default for requests that do not
say, which is all openvino-genai's ``generate(str)`` and OVMS can do.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import openvino as ov
import openvino_genai
import pytest
from hub_models import CHAT_TEMPLATES
from transformers import AutoTokenizer

import optimum_qwen35
from optimum_qwen35.errors import ChatTemplateError

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a text file.",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        },
    }
]
CONVERSATIONS = {
    "one turn": [{"role": "user", "content": "Write a function that reverses a list."}],
    "history with an earlier think block": [
        {"role": "system", "content": "You write Python."},
        {"role": "user", "content": "What does len([]) return?"},
        {"role": "assistant", "content": "<think>\nAn empty list has no items.\n</think>\n\nIt returns 0."},
        {"role": "user", "content": "And len('ab')?"},
    ],
}
THINKING = {"unset": None, "off": False, "on": True}


def _with_template(checkpoint: Path, template: Path, folder: Path) -> Path:
    """A copy of ``checkpoint`` (weights linked, not copied) whose chat template is ``template``."""
    folder.mkdir()
    for item in checkpoint.iterdir():
        (folder / item.name).symlink_to(item.resolve())
    (folder / "chat_template.jinja").unlink()
    shutil.copy(template, folder / "chat_template.jinja")
    return folder


@pytest.fixture(scope="module")
def template_checkpoints(reference_checkpoint, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("templates")
    return {name: _with_template(reference_checkpoint, path, root / name) for name, path in CHAT_TEMPLATES.items()}


@pytest.fixture(scope="module")
def template_exports(template_checkpoints, tmp_path_factory) -> dict[tuple[str, bool | None], Path]:
    """``{(template, default thinking): export}``: each template as it is, and with the default flipped."""
    root = tmp_path_factory.mktemp("template-exports")
    flipped = {"no-thinking-default": True, "thinking-default": False}
    exports = {}
    for name, checkpoint in template_checkpoints.items():
        for thinking in (None, flipped[name]):
            output = root / f"{name}-{thinking}"
            exports[name, thinking] = optimum_qwen35.export(checkpoint, output, thinking=thinking)
    return exports


def _transformers_render(folder: Path, messages: list, tools: list | None, thinking: bool | None) -> str:
    context = {} if thinking is None else {"enable_thinking": thinking}
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False, **context)


def _genai_render(export: Path, messages: list, tools: list | None, thinking: bool | None) -> str:
    history = openvino_genai.ChatHistory(messages)
    if thinking is not None:
        history.set_extra_context({"enable_thinking": thinking})
    if tools:
        history.set_tools(tools)
    return openvino_genai.Tokenizer(str(export)).apply_chat_template(history, add_generation_prompt=True)


@pytest.mark.parametrize("name", sorted(CHAT_TEMPLATES))
def test_the_real_template_travels_into_the_export(name, template_exports):
    export = template_exports[name, None]
    real = CHAT_TEMPLATES[name].read_text()
    assert (export / "chat_template.jinja").read_text() == real
    tokenizer_ir = ov.Core().read_model(export / "openvino_tokenizer.xml")
    assert tokenizer_ir.get_rt_info("chat_template").astype(str) == real


@pytest.mark.parametrize("thinking", sorted(THINKING))
@pytest.mark.parametrize("tools", [None, TOOLS], ids=["no tools", "tools"])
@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
@pytest.mark.parametrize("name", sorted(CHAT_TEMPLATES))
def test_genai_renders_like_transformers(name, conversation, tools, thinking, template_exports, template_checkpoints):
    messages, enable = CONVERSATIONS[conversation], THINKING[thinking]
    expected = _transformers_render(template_checkpoints[name], messages, tools, enable)
    assert _genai_render(template_exports[name, None], messages, tools, enable) == expected
    if tools:
        assert "read_file" in expected
    if conversation.startswith("history"):
        assert "An empty list has no items" not in expected  # earlier reasoning is dropped from the history


@pytest.mark.parametrize(("name", "flipped"), [("thinking-default", False), ("no-thinking-default", True)])
def test_thinking_option_sets_the_templates_default(name, flipped, template_exports, template_checkpoints):
    original, export = template_checkpoints[name], template_exports[name, flipped]
    messages = CONVERSATIONS["one turn"]
    as_flipped = _transformers_render(original, messages, None, flipped)
    assert as_flipped != _transformers_render(original, messages, None, None), "the flip must change the prompt"
    # No enable_thinking in the request: the export's default now.
    assert _transformers_render(export, messages, None, None) == as_flipped
    assert _genai_render(export, messages, None, None) == as_flipped
    # An explicit enable_thinking still wins.
    explicit = _transformers_render(original, messages, None, not flipped)
    assert _genai_render(export, messages, None, not flipped) == explicit
    assert (
        ov.Core().read_model(export / "openvino_tokenizer.xml").get_rt_info("chat_template").astype(str)
        == (export / "chat_template.jinja").read_text()
    )


def test_llm_pipeline_generate_str_uses_the_exported_default(template_exports, template_checkpoints):
    """``generate(str)`` applies the chat template with no extra context: the exported default decides."""
    export = template_exports["thinking-default", False]
    pipe = openvino_genai.LLMPipeline(str(export), "CPU")
    prompt = CONVERSATIONS["one turn"][0]["content"]
    config = openvino_genai.GenerationConfig(max_new_tokens=12)
    templated = pipe.generate(prompt, config)
    rendered = _transformers_render(template_checkpoints["thinking-default"], CONVERSATIONS["one turn"], None, False)
    assert rendered.endswith("<think>\n\n</think>\n\n")  # what --thinking off asks of this template
    config.apply_chat_template = False
    assert templated == pipe.generate(rendered, config)
    # ChatHistory input goes through the same template.
    config.apply_chat_template = True
    assert pipe.generate(openvino_genai.ChatHistory(CONVERSATIONS["one turn"]), config).texts[0] == templated


def test_thinking_option_needs_a_template_with_the_switch(text_checkpoint, tmp_path):
    with pytest.raises(ChatTemplateError, match="has no chat template"):
        optimum_qwen35.export(text_checkpoint, tmp_path / "out", thinking=False)
    assert not (tmp_path / "out").exists()
    plain = tmp_path / "plain"
    shutil.copytree(text_checkpoint, plain)
    (plain / "chat_template.jinja").write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    with pytest.raises(ChatTemplateError, match="no 'enable_thinking' switch"):
        optimum_qwen35.export(plain, tmp_path / "out", thinking=True)
    assert not (tmp_path / "out").exists()
