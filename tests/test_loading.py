"""Zero-copy loading for export: parameters live in the mapped safetensors files, not in copies."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from optimum_qwen35.exporters import scratch
from optimum_qwen35.exporters.loading import load_for_export
from optimum_qwen35.exporters.scratch import scratch_space


def _mapped_ranges(folder: Path, suffix: str = ".safetensors") -> list[tuple[int, int]]:
    """Address ranges of this process's mappings of the folder's files ending in ``suffix`` (Linux)."""
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith(str(folder.resolve())) and fields[5].endswith(suffix):
            start, end = (int(address, 16) for address in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


def _in_files(parameter: torch.Tensor, ranges: list[tuple[int, int]]) -> bool:
    return any(start <= parameter.data_ptr() < end for start, end in ranges)


def _assert_same_weights(model, reference) -> None:
    expected = reference.state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_parameters_are_views_of_the_mapped_files(composite_checkpoint, tmp_path):
    with scratch_space(tmp_path):
        model = load_for_export(composite_checkpoint, torch.bfloat16)
    ranges = _mapped_ranges(composite_checkpoint)
    assert ranges, "the safetensors files are not mapped"
    outside = [name for name, parameter in model.named_parameters() if not _in_files(parameter, ranges)]
    assert outside == []
    # A composite checkpoint loads as its language model, with the checkpoint's weights and
    # generation config.
    _assert_same_weights(model, AutoModelForCausalLM.from_pretrained(composite_checkpoint, dtype=torch.bfloat16))
    assert model.generation_config.eos_token_id is not None


@pytest.mark.parametrize("chunk_bytes", [scratch.CHUNK_BYTES, 96])
def test_16_bit_dtype_is_converted_into_a_mapped_scratch_file(text_checkpoint, tmp_path, chunk_bytes, monkeypatch):
    # 96 bytes: every tensor is converted in several chunks through the reused buffer, the last one partial.
    monkeypatch.setattr(scratch, "CHUNK_BYTES", chunk_bytes)
    with scratch_space(tmp_path) as folder:
        model = load_for_export(text_checkpoint, torch.float16)
        assert list(folder.iterdir()) == []  # the scratch file is unlinked once mapped
    assert {parameter.dtype for parameter in model.parameters()} == {torch.float16}
    assert not any(_in_files(parameter, _mapped_ranges(text_checkpoint)) for parameter in model.parameters())
    # Every converted parameter is a view of the scratch file, which is already unlinked: file pages
    # the page release can drop, and nothing left on disk once the mapping goes.
    converted = _mapped_ranges(tmp_path, suffix=".safetensors (deleted)")
    assert converted and all(_in_files(parameter, converted) for parameter in model.parameters())
    assert list(tmp_path.iterdir()) == []
    _assert_same_weights(model, AutoModelForCausalLM.from_pretrained(text_checkpoint, dtype=torch.float16))
