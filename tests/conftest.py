"""Shared fixtures: tiny random checkpoints, their exports, and the trained reference model."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_models import make_composite_checkpoint, make_text_checkpoint  # noqa: E402

import optimum_qwen35  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUNDLED_REFERENCE = REPO / "demo" / "qwen35-code-vl"
SHARED_REFERENCE = REPO.parent / "shared" / "reference-models" / "qwen35-code-vl"


@pytest.fixture(scope="session")
def text_checkpoint(tmp_path_factory) -> Path:
    return make_text_checkpoint(tmp_path_factory.mktemp("ckpt") / "text", seed=1)


@pytest.fixture(scope="session")
def composite_checkpoint(tmp_path_factory) -> Path:
    return make_composite_checkpoint(tmp_path_factory.mktemp("ckpt") / "composite", seed=2)


@pytest.fixture(scope="session")
def text_export(text_checkpoint, tmp_path_factory) -> Path:
    return optimum_qwen35.export(text_checkpoint, tmp_path_factory.mktemp("ov") / "text", convert_tokenizer=False)


@pytest.fixture(scope="session")
def composite_export(composite_checkpoint, tmp_path_factory) -> Path:
    return optimum_qwen35.export(
        composite_checkpoint, tmp_path_factory.mktemp("ov") / "composite", convert_tokenizer=False
    )


@pytest.fixture(scope="session")
def reference_checkpoint() -> Path:
    """The trained composite reference model: from ../shared when present, else the bundled copy."""
    path = SHARED_REFERENCE if SHARED_REFERENCE.is_dir() else BUNDLED_REFERENCE
    if not path.is_dir():
        pytest.skip("no trained reference checkpoint available")
    return path


@pytest.fixture(scope="session")
def reference_export(reference_checkpoint, tmp_path_factory) -> Path:
    return optimum_qwen35.export(reference_checkpoint, tmp_path_factory.mktemp("ov") / "reference")


def pytest_configure(config):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
