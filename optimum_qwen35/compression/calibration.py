"""Calibration text for data-aware compression (AWQ, scale estimation, GPTQ) without the hub.

optimum-intel accepts a list of strings as a causal-LM calibration dataset and tokenizes each
string as one sample; this module produces that list from a user's text file or from the
built-in corpus, so ``--dataset path/to/file.txt`` and ``--dataset builtin`` work offline.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CalibrationDataError

#: ``--dataset`` value that selects the built-in corpus: CPython's own documentation text
#: (``pydoc_data.topics``), present wherever Python is, English prose mixed with code.
BUILTIN = "builtin"

#: Characters per calibration sample: about 256 tokens of English or code with a BPE tokenizer.
SAMPLE_CHARS = 1024

DEFAULT_NUM_SAMPLES = 128


def is_text_source(dataset: object) -> bool:
    """True when ``dataset`` names something this module reads (a file or ``builtin``)."""
    if not isinstance(dataset, (str, os.PathLike)):
        return False
    return str(dataset) == BUILTIN or Path(dataset).suffix in {".txt", ".md", ".py", ".jsonl"} or Path(dataset).exists()


def _builtin_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def _read(dataset: str | os.PathLike) -> str:
    if str(dataset) == BUILTIN:
        return _builtin_text()
    path = Path(dataset)
    if not path.is_file():
        raise CalibrationDataError(
            f"Calibration text file {path} does not exist. Fix: pass an existing UTF-8 text file to --dataset, "
            f"or --dataset {BUILTIN} for the built-in corpus."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CalibrationDataError(f"Calibration file {path} is not UTF-8 text ({error}). Fix: convert it.") from None
    if path.suffix == ".jsonl":
        import json

        text = "\n\n".join(json.loads(line)["text"] for line in text.splitlines() if line.strip())
    return text


def calibration_texts(dataset: str | os.PathLike, num_samples: int | None = None) -> list[str]:
    """Split a text source into ``num_samples`` samples of about ``SAMPLE_CHARS`` characters.

    Samples are spread evenly over the whole text (not just its beginning) and cut at line
    boundaries, so each one is a natural piece of text. A short text gives fewer samples.

    Raises :class:`CalibrationDataError` when the file is missing, unreadable or holds no text.
    """
    text = _read(dataset)
    lines = text.splitlines(keepends=True)
    chunks, current = [], ""
    for line in lines:
        current += line
        if len(current) >= SAMPLE_CHARS:
            chunks.append(current)
            current = ""
    if current.strip():
        chunks.append(current)
    chunks = [chunk for chunk in chunks if chunk.strip()]
    if not chunks:
        raise CalibrationDataError(
            f"Calibration source {dataset} holds no text. Fix: pass a file with at least a few lines of text "
            "representative of what the model will see."
        )
    wanted = num_samples or DEFAULT_NUM_SAMPLES
    if len(chunks) <= wanted:
        return chunks
    step = len(chunks) / wanted
    return [chunks[int(i * step)] for i in range(wanted)]


def vision_language_calibration(model, texts: list[str], tokenizer_path: str | None):
    """Calibration data for the vision-language layout's language model, from text alone.

    optimum-intel calibrates this layout only from its image datasets on the hub; the language
    model takes embeddings, so each text becomes one prefill step: its tokens through the
    layout's own text-embeddings model, all-ones attention mask, text positions on all four
    mRoPE rows. NNCF resets the model's states before every sample. Returns optimum-intel's
    ``OVCalibrationDataset`` with data for ``lm_model`` only (the other parts are compressed
    data-free).
    """
    import nncf
    import numpy as np
    from optimum.intel.openvino.quantization import OVCalibrationDataset
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or model.model_save_dir)
    samples = []
    for text in texts:
        ids = tokenizer(text, return_tensors="np").input_ids
        length = ids.shape[1]
        if length == 0:
            continue
        samples.append(
            {
                "inputs_embeds": np.asarray(model.language_model.embed_tokens(ids)),
                "attention_mask": np.ones((1, length), dtype=np.int64),
                "position_ids": np.ascontiguousarray(np.broadcast_to(np.arange(length), (4, 1, length))),
                "beam_idx": np.zeros(1, dtype=np.int32),
            }
        )
    if not samples:
        raise CalibrationDataError("The calibration text gave no tokens. Fix: pass a text file with content.")
    return OVCalibrationDataset({"lm_model": nncf.Dataset(samples)})
