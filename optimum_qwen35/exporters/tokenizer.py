"""The tokenizer that travels with an export: only one that can encode, with the chosen thinking default.

optimum-intel saves whatever ``transformers`` loads from the checkpoint folder next to the IR, and
converts it with openvino-tokenizers. For a folder without tokenizer files transformers 5.x builds
an empty ``Qwen3_5Tokenizer`` (a vocabulary of one token that encodes every text to ``[]``), so the
export would carry ``tokenizer.json`` and ``openvino_tokenizer.xml`` that ``LLMPipeline`` loads and
that cannot encode anything. While our export runs, such tokenizers (and processors holding one)
are dropped, and the export says so once.

Qwen3.5's chat templates switch reasoning with ``enable_thinking``: the 0.8B/2B template thinks
only when it is true, the 4B and larger ones unless it is false. openvino-genai's
``generate(str)`` and OVMS requests cannot always pass it, so an export can fix the default
(``--thinking on|off``): the template gets a first line that sets ``enable_thinking`` when the
caller did not, and that one template is what ``chat_template.jinja`` and the tokenizer IR's
``rt_info`` (where openvino-genai reads it) receive. An explicit ``enable_thinking`` still wins.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import optimum.exporters.openvino.__main__ as ov_main

from ..errors import ChatTemplateError

logger = logging.getLogger(__name__)

#: The default thinking mode the exported chat template gets: True (on), False (off), None (as it is).
DEFAULT_THINKING: ContextVar[bool | None] = ContextVar("optimum_qwen35_default_thinking", default=None)

_SWITCH = "enable_thinking"
_PROBE_TEXT = "def main():\n    return 0\n"


def can_encode(tokenizer: Any) -> bool:
    """True when ``tokenizer`` turns a short text into at least one token."""
    try:
        return len(tokenizer(_PROBE_TEXT)["input_ids"]) > 0
    except Exception:  # a tokenizer that cannot even run is no more usable than an empty one
        return False


def with_default_thinking(template: str, thinking: bool) -> str:
    """``template`` with ``enable_thinking`` defaulting to ``thinking`` when the caller passes none.

    Raises :class:`ChatTemplateError` when the template has no ``enable_thinking`` switch.
    """
    if _SWITCH not in template:
        raise ChatTemplateError(
            f"--thinking was given, but the checkpoint's chat template has no '{_SWITCH}' switch. "
            "Fix: drop --thinking, or export a checkpoint with a Qwen3.5 chat template."
        )
    value = "true" if thinking else "false"
    return f"{{%- if {_SWITCH} is not defined %}}{{%- set {_SWITCH} = {value} %}}{{%- endif %}}\n{template}"


def local_chat_template(folder: Path) -> str | None:
    """The chat template a checkpoint folder ships (``chat_template.jinja`` or ``tokenizer_config.json``)."""
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text(encoding="utf-8")
    config = folder / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        return template if isinstance(template, str) else None
    return None


def check_thinking_option(model_name_or_path: Any, thinking: bool | None) -> None:
    """Refuse ``--thinking`` up front for a local checkpoint whose chat template cannot take it."""
    folder = Path(str(model_name_or_path))
    if thinking is None or not folder.is_dir():
        return
    template = local_chat_template(folder)
    if template is None:
        raise ChatTemplateError(
            f"--thinking was given, but {folder} has no chat template (no chat_template.jinja, none in "
            "tokenizer_config.json). Fix: drop --thinking, or add the checkpoint's tokenizer files."
        )
    with_default_thinking(template, thinking)


def _usable(preprocessor: Any) -> bool:
    tokenizer = getattr(preprocessor, "tokenizer", preprocessor)
    return not hasattr(tokenizer, "encode") or can_encode(tokenizer)


def _set_default_thinking(preprocessors: list, thinking: bool) -> None:
    templates = [p for p in preprocessors if isinstance(getattr(p, "chat_template", None), str)]
    if not templates:
        raise ChatTemplateError(
            "--thinking was given, but the checkpoint has no chat template. Fix: drop --thinking, or add the "
            "checkpoint's tokenizer files."
        )
    for preprocessor in templates:
        preprocessor.chat_template = with_default_thinking(preprocessor.chat_template, thinking)


@contextlib.contextmanager
def checked_preprocessors(model_name_or_path: Any) -> Iterator[None]:
    """While active, optimum-intel's ``load_preprocessors`` keeps only tokenizers that can encode and
    gives chat templates the :data:`DEFAULT_THINKING` default; restored on exit."""
    original = ov_main.load_preprocessors

    def load_preprocessors(*args, **kwargs) -> list:
        loaded = original(*args, **kwargs)
        kept = [p for p in loaded if _usable(p)]
        if len(kept) < len(loaded):
            dropped = ", ".join(sorted({type(p).__name__ for p in loaded if p not in kept}))
            logger.warning(
                "%s has no usable tokenizer (transformers built an empty %s): the export gets no tokenizer files. "
                "Fix: put the checkpoint's tokenizer.json and tokenizer_config.json in the folder and export again.",
                model_name_or_path,
                dropped,
            )
        thinking = DEFAULT_THINKING.get()
        if thinking is not None:
            _set_default_thinking(kept, thinking)
        return kept

    ov_main.load_preprocessors = load_preprocessors
    try:
        yield
    finally:
        ov_main.load_preprocessors = original
