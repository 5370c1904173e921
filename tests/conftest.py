"""Shared fixtures: tiny random checkpoints, hub-shaped miniatures, their exports, and the trained reference."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hub_models import make_hub_checkpoint  # noqa: E402
from tiny_models import (  # noqa: E402
    make_composite_checkpoint,
    make_moe_composite_checkpoint,
    make_moe_text_checkpoint,
    make_text_checkpoint,
)

import optimum_qwen35  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUNDLED_REFERENCE = REPO / "demo" / "qwen35-code-vl-mtp"
SHARED_MODELS = REPO.parent / "shared" / "reference-models"
SHARED_REFERENCE = SHARED_MODELS / "qwen35-code-vl-mtp"


@pytest.fixture(scope="session")
def text_checkpoint(tmp_path_factory) -> Path:
    return make_text_checkpoint(tmp_path_factory.mktemp("ckpt") / "text", seed=1)


@pytest.fixture(scope="session")
def composite_checkpoint(tmp_path_factory) -> Path:
    return make_composite_checkpoint(tmp_path_factory.mktemp("ckpt") / "composite", seed=2)


@pytest.fixture(scope="session")
def moe_text_checkpoint(tmp_path_factory) -> Path:
    return make_moe_text_checkpoint(tmp_path_factory.mktemp("ckpt") / "moe_text", seed=3)


@pytest.fixture(scope="session")
def moe_composite_checkpoint(tmp_path_factory) -> Path:
    return make_moe_composite_checkpoint(tmp_path_factory.mktemp("ckpt") / "moe_composite", seed=4)


@pytest.fixture(scope="session")
def hub_dense_checkpoint(tmp_path_factory) -> Path:
    """A miniature of Qwen/Qwen3.5-27B in the hub's layout (untied head, 24/4 heads, 16/48 linear heads)."""
    return make_hub_checkpoint(tmp_path_factory.mktemp("ckpt") / "hub_dense", "27B", seed=6)


@pytest.fixture(scope="session")
def hub_moe_checkpoint(tmp_path_factory) -> Path:
    """A miniature of Qwen/Qwen3.5-35B-A3B in the hub's layout (fused experts, per-expert MTP experts)."""
    return make_hub_checkpoint(tmp_path_factory.mktemp("ckpt") / "hub_moe", "35B-A3B", seed=7)


@pytest.fixture(scope="session")
def hub_dense_export(hub_dense_checkpoint, tmp_path_factory) -> Path:
    return optimum_qwen35.export(hub_dense_checkpoint, tmp_path_factory.mktemp("ov") / "hub_dense")


@pytest.fixture(scope="session")
def hub_moe_export(hub_moe_checkpoint, tmp_path_factory) -> Path:
    return optimum_qwen35.export(hub_moe_checkpoint, tmp_path_factory.mktemp("ov") / "hub_moe")


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


def _shared_reference(name: str) -> Path:
    """A trained reference model from ../shared (not bundled: tests using it skip without it)."""
    path = SHARED_MODELS / name
    if not path.is_dir():
        pytest.skip(f"{path} not found (the trained references live in ../shared)")
    return path


@pytest.fixture(scope="session")
def moe_reference_checkpoint() -> Path:
    """The trained MoE reference model (``qwen3_5_moe_text``)."""
    return _shared_reference("qwen35-code-moe")


@pytest.fixture(scope="session")
def dense_reference_checkpoint() -> Path:
    """The trained text-only reference model (``qwen3_5_text``)."""
    return _shared_reference("qwen35-code-dense")


@pytest.fixture(scope="session")
def reference_export(reference_checkpoint, tmp_path_factory) -> Path:
    return optimum_qwen35.export(reference_checkpoint, tmp_path_factory.mktemp("ov") / "reference")


def pytest_configure(config):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
