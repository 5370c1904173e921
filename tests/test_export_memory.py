"""An export holds MoE expert weights in no anonymous memory (issue #20).

OpenVINO's 16-bit tracing helper used to replace every 3-D expert tensor by an f32 copy, and the
export then made a second, 16-bit copy of each: 3x the experts' bytes of anonymous memory on top
of everything else (4.2x per layer measured on the 35B-A3B width). Now the experts reach the graph
from the mapped checkpoint and the scratch file (``exporters/weight_dtypes.py``,
``exporters/scratch.py``). The checkpoint here is shaped so that its experts are most of its bytes,
and the export runs in a child process whose anonymous memory is sampled from ``/proc``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_models import MOE_TEXT_CONFIG
from transformers import Qwen3_5MoeForCausalLM, Qwen3_5MoeTextConfig

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

#: Two layers with 128 experts of 1024 x 512: 403 MB of bf16 experts per layer, 0.8 GB in all.
MID_MOE_CONFIG = dict(
    MOE_TEXT_CONFIG,
    vocab_size=1024,
    hidden_size=1024,
    num_hidden_layers=2,
    layer_types=["linear_attention", "full_attention"],
    num_experts=128,
    num_experts_per_tok=8,
    moe_intermediate_size=512,
    shared_expert_intermediate_size=512,
)


def _anonymous_bytes(pid: int) -> int:
    """Resident anonymous bytes of a process and its children, 0 once it is gone."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    anonymous = int(fields["RssAnon"].split()[0]) * 1024 if "RssAnon" in fields else 0
    return anonymous + sum(_anonymous_bytes(int(child)) for child in children)


def peak_anonymous_export(checkpoint: Path, output: Path, *flags: str) -> int:
    """Peak anonymous bytes of ``optimum-cli export openvino`` (and its children), sampled every 20 ms."""
    cmd = [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "openvino", "--model", str(checkpoint)]
    child = subprocess.Popen([*cmd, *flags, str(output)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = 0
    while child.poll() is None:
        peak = max(peak, _anonymous_bytes(child.pid))
        time.sleep(0.02)
    log = child.stdout.read().decode(errors="replace")
    assert child.returncode == 0 and (output / "openvino_model.xml").is_file(), log[-3000:]
    return peak


@pytest.fixture(scope="module")
def mid_moe_checkpoint(tmp_path_factory) -> Path:
    """A random bf16 checkpoint of :data:`MID_MOE_CONFIG`, built without an f32 copy, its experts
    fused as the hub stores them (transformers 5.2's ``save_pretrained`` would split them per expert,
    and its loader would then fuse them into new anonymous tensors)."""
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("ckpt") / "mid_moe"
    with torch.device("meta"):
        model = Qwen3_5MoeForCausalLM(Qwen3_5MoeTextConfig(**MID_MOE_CONFIG, dtype="bfloat16"))
    model = model.to(torch.bfloat16).to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.zero_() if name.endswith("norm.weight") else parameter.normal_(0.0, 0.02, generator=generator)
    model.config.save_pretrained(path)
    tensors = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    del tensors["lm_head.weight"]  # tied to the embedding, stored once
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})
    return path


def _expert_bytes(checkpoint: Path) -> int:
    """Bytes of the ``mlp.experts.*`` tensors in a checkpoint's safetensors files."""
    from safetensors import safe_open

    total = 0
    for file in checkpoint.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():
                if ".mlp.experts." in name:
                    total += _bytes(handle, name)
    return total


def _bytes(handle, name: str) -> int:
    shape, dtype = handle.get_slice(name).get_shape(), handle.get_slice(name).get_dtype()
    count = 1
    for size in shape:
        count *= size
    return count * {"BF16": 2, "F16": 2, "F32": 4}[dtype]


def test_moe_export_holds_no_expert_copy_in_anonymous_memory(mid_moe_checkpoint, tmp_path):
    # Measured (Sapphire Rapids, transformers 5.5.4): 0.44 GB here, 4.26 GB before (f32 copies of
    # the experts, then 16-bit copies). The interpreter, torch and OpenVINO alone take ~0.4 GB, so
    # a single copy of the experts' 0.81 GB anywhere in the export breaks the bound.
    experts = _expert_bytes(mid_moe_checkpoint)
    peak = peak_anonymous_export(mid_moe_checkpoint, tmp_path / "ov", "--weight-format", "fp16")
    assert experts > 0.8e9
    assert peak < experts, f"peak anonymous memory {peak / 1e9:.2f} GB, experts {experts / 1e9:.2f} GB"


def test_compressed_constants_are_file_backed_and_unchanged(hub_moe_checkpoint, tmp_path, monkeypatch):
    """NNCF's compressed weights, scales and zero points (and the chunked vocabulary tables) move to
    the export's scratch file as they are made, not kept in anonymous memory until the save; the
    compressed IR is the same bytes either way."""
    import optimum_qwen35
    from optimum_qwen35.exporters import scratch

    kept = optimum_qwen35.export(hub_moe_checkpoint, tmp_path / "in-memory", weight_format="int4")
    spilled = []
    original = scratch.spilled_constant

    def recording(constant):
        result = original(constant)
        if result is not constant:
            spilled.append((constant.get_output_element_type(0).get_type_name(), result.data.nbytes))
        return result

    monkeypatch.setattr(scratch, "SPILL_MIN_BYTES", 0)  # the miniature's constants are all small
    monkeypatch.setattr(scratch, "spilled_constant", recording)
    from optimum_qwen35.compression import embedding, hooks

    monkeypatch.setattr(embedding, "spilled_constant", recording)
    monkeypatch.setattr(hooks, "spilled_constant", recording)
    moved = optimum_qwen35.export(hub_moe_checkpoint, tmp_path / "spilled", weight_format="int4")

    types = {name for name, _ in spilled}
    assert {"u4", "u8", "f16"} <= types, types  # INT4 and INT8 weights, their zero points and scales
    assert (moved / "openvino_model.bin").read_bytes() == (kept / "openvino_model.bin").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in-memory", "spilled"]  # no scratch folder left


# --- the Python routes: the same scratch space, the model the user gets keeps it ----------------------


#: Element types of compressed weights, scales aside (f16 scales are small in real models).
COMPRESSED = ("u4", "i4", "u8", "i8")


def _mapped_files() -> list[tuple[int, int, str]]:
    """``(start, end, path)`` of this process's file mappings."""
    mappings = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            start, end = (int(address, 16) for address in fields[0].split("-"))
            mappings.append((start, end, fields[5]))
    return mappings


def compressed_constant_backing(model) -> tuple[dict[str, int], set[Path]]:
    """How many of ``model``'s compressed weight constants (u4/i4/u8/i8) live in each kind of memory —
    ``scratch`` (a deleted file of a plugin scratch folder), ``file`` (any other mapped file),
    ``anonymous`` — and the folders the scratch folders were made in."""
    from optimum_qwen35.exporters.scratch import SCRATCH_PREFIX

    mappings = _mapped_files()
    counts, parents = {"scratch": 0, "file": 0, "anonymous": 0}, set()
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant" or op.get_output_element_type(0).get_type_name() not in COMPRESSED:
            continue
        address = op.data.ctypes.data
        path = next((path for start, end, path in mappings if start <= address < end), None)
        if path is None:
            counts["anonymous"] += 1
        elif SCRATCH_PREFIX in path and path.endswith(" (deleted)"):
            counts["scratch"] += 1
            parents.add(Path(path.removesuffix(" (deleted)")).parent.parent)
        else:
            counts["file"] += 1
    return counts, parents


def _no_scratch_left(*folders: Path) -> bool:
    from optimum_qwen35.exporters.scratch import SCRATCH_PREFIX

    return not any(any(folder.glob(f"{SCRATCH_PREFIX}{os.getpid()}-*")) for folder in folders)


@pytest.fixture(scope="module")
def cli_int4_of_hub_moe(hub_moe_checkpoint, tmp_path_factory) -> Path:
    """The CLI route's INT4 export of the MoE miniature: what every Python route must equal."""
    import optimum_qwen35

    return optimum_qwen35.export(hub_moe_checkpoint, tmp_path_factory.mktemp("cli") / "int4", weight_format="int4")


def _assert_file_backed_and_equal(model, cli_export: Path, saved: Path, beside: Path) -> None:
    """Every compressed constant of ``model`` is in a scratch folder made in ``beside``, and ``saved``
    holds the CLI's weights byte for byte."""
    counts, parents = compressed_constant_backing(model)
    assert counts["scratch"] > 0 and counts["anonymous"] == 0 and counts["file"] == 0, counts
    assert parents == {beside}
    assert (saved / "openvino_model.bin").read_bytes() == (cli_export / "openvino_model.bin").read_bytes()


def _assert_runs_like(model, cli_export: Path) -> None:
    """``model`` compiled after every Python reference to the objects that built it is gone (only the
    graph is kept) gives the CLI IR's logits exactly: its file-backed constants outlive their scratch space."""
    import gc

    import numpy as np
    import openvino as ov

    core, ids = ov.Core(), np.array([[5, 17, 3, 250, 9]])
    inputs = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "position_ids": np.arange(5)[None],
        "beam_idx": np.array([0], dtype=np.int32),
    }
    gc.collect()
    ours = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request().infer(inputs)
    cli = core.compile_model(cli_export / "openvino_model.xml", "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert np.array_equal(ours["logits"], cli.create_infer_request().infer(inputs)["logits"])


def test_from_pretrained_export_keeps_compressed_constants_file_backed(
    hub_moe_checkpoint, cli_int4_of_hub_moe, tmp_path, monkeypatch
):
    """``from_pretrained(checkpoint, export=True, quantization_config=...)`` compresses the model it
    returns with the same scratch space as the CLI: its constants stay file-backed for as long as the
    model lives, and it saves the CLI's bytes."""
    import tempfile

    from optimum.intel import OVModelForCausalLM

    from optimum_qwen35.exporters import scratch

    monkeypatch.setattr(scratch, "SPILL_MIN_BYTES", 0)  # the miniature's constants are all small
    model = OVModelForCausalLM.from_pretrained(
        hub_moe_checkpoint, export=True, quantization_config={"bits": 4}, compile=False
    )
    model.save_pretrained(tmp_path / "saved")
    # Beside optimum-intel's temporary export folder, where the 16-bit IR it compresses is.
    _assert_file_backed_and_equal(model.model, cli_int4_of_hub_moe, tmp_path / "saved", model.model_save_dir.parent)
    assert _no_scratch_left(Path(tempfile.gettempdir()), tmp_path)
    graph = model.model
    del model
    _assert_runs_like(graph, cli_int4_of_hub_moe)


@pytest.mark.parametrize("route", ["quantization_config", "OVQuantizer"])
def test_compressing_an_exported_folder_keeps_constants_file_backed(
    route, hub_moe_export, cli_int4_of_hub_moe, tmp_path, monkeypatch
):
    """Compressing an exported 16-bit folder in Python (on load, or with ``OVQuantizer`` and a save
    directory) uses the same scratch space, beside the folder or the save directory."""
    from optimum.intel import OVConfig, OVModelForCausalLM, OVQuantizer, OVWeightQuantizationConfig

    from optimum_qwen35.exporters import scratch

    monkeypatch.setattr(scratch, "SPILL_MIN_BYTES", 0)
    config = OVWeightQuantizationConfig(bits=4)
    if route == "quantization_config":
        model = OVModelForCausalLM.from_pretrained(hub_moe_export, quantization_config=config, compile=False)
        model.save_pretrained(tmp_path / "saved")
    else:
        model = OVModelForCausalLM.from_pretrained(hub_moe_export, compile=False)
        quantizer = OVQuantizer.from_pretrained(model)
        quantizer.quantize(ov_config=OVConfig(quantization_config=config), save_directory=tmp_path / "saved")
    # Beside the exported folder it was read from; with a save directory, beside that.
    beside = hub_moe_export.parent if route == "quantization_config" else tmp_path
    _assert_file_backed_and_equal(model.model, cli_int4_of_hub_moe, tmp_path / "saved", beside)
    assert _no_scratch_left(hub_moe_export.parent, tmp_path)


@pytest.mark.parametrize("recipe", [{"awq": True, "scale_estimation": True}, {"gptq": True}], ids=["awq-se", "gptq"])
def test_data_aware_compression_keeps_constants_file_backed(recipe, reference_checkpoint, monkeypatch):
    """Data-aware recipes (AWQ with scale estimation, GPTQ) make their constants through the same
    NNCF backend call as data-free compression, so they go to the scratch space too: every
    compressed constant of the returned model is a deleted scratch file's page."""
    from optimum.intel import OVModelForCausalLM, OVWeightQuantizationConfig

    from optimum_qwen35.exporters import scratch

    monkeypatch.setattr(scratch, "SPILL_MIN_BYTES", 0)
    texts = [f"def f{i}(x):\n    return x * {i} + len(str(x))\n" * 20 for i in range(4)]
    config = OVWeightQuantizationConfig(
        bits=4, dataset=texts, num_samples=4, tokenizer=str(reference_checkpoint), **recipe
    )
    model = OVModelForCausalLM.from_pretrained(
        reference_checkpoint, export=True, quantization_config=config, compile=False
    )
    counts, _ = compressed_constant_backing(model.model)
    assert counts["scratch"] > 0 and counts["anonymous"] == counts["file"] == 0, counts


def _failing_spills(monkeypatch, disk_fills: bool) -> None:
    """Every spill of a compressed constant (:func:`scratch.spilled_constant`, at any size) fails as
    OpenVINO's writer fails on a full disk — a partial file, then a bare iostream error — and, when
    ``disk_fills``, the disk reports no free space from then on."""
    import shutil

    import openvino

    from optimum_qwen35.exporters import scratch

    monkeypatch.setattr(scratch, "SPILL_MIN_BYTES", 0)
    real_save, real_usage = openvino.save_model, shutil.disk_usage
    filled = []

    def save_model(model, path, *args, **kwargs):
        if not Path(path).parent.name.startswith(scratch.SCRATCH_PREFIX):
            return real_save(model, path, *args, **kwargs)
        Path(path).with_suffix(".bin").write_bytes(b"\0" * 4096)
        filled.append(disk_fills)
        raise RuntimeError("basic_ios::clear: iostream error")

    def disk_usage(path):
        usage = real_usage(path)
        return usage._replace(free=0) if any(filled) else usage

    monkeypatch.setattr(openvino, "save_model", save_model)
    monkeypatch.setattr(shutil, "disk_usage", disk_usage)


@pytest.mark.parametrize("disk_fills", [True, False])
def test_a_full_disk_while_compressing_in_python_is_reported(disk_fills, hub_moe_export, monkeypatch):
    """``from_pretrained(folder, quantization_config=...)`` whose compressed constants fill the disk:
    a ``DiskFullError`` naming the scratch folder's disk and the fix, no scratch folder left behind;
    a write error on a disk with space stays OpenVINO's own error."""
    from optimum.intel import OVModelForCausalLM, OVWeightQuantizationConfig

    from optimum_qwen35 import DiskFullError

    _failing_spills(monkeypatch, disk_fills)
    with pytest.raises(DiskFullError if disk_fills else RuntimeError) as raised:
        OVModelForCausalLM.from_pretrained(
            hub_moe_export, quantization_config=OVWeightQuantizationConfig(bits=4), compile=False
        )
    if disk_fills:
        message = str(raised.value)
        assert f"scratch files in {hub_moe_export.parent} " in message
        assert message.startswith("No space left on device for the compressed weights'")
        assert "Fix: free disk space there" in message
    else:
        assert "iostream error" in str(raised.value)
    assert _no_scratch_left(hub_moe_export.parent)


def test_a_full_disk_while_the_cli_spills_compressed_constants_is_reported(hub_moe_checkpoint, tmp_path, monkeypatch):
    """The CLI route: a compressed constant that fills the disk is the export's own full-disk report
    (the partial output removed, nothing left beside it), not OpenVINO's bare iostream error (seen on
    a 35B-A3B 8-layer export that shared its disk)."""
    import optimum_qwen35
    from optimum_qwen35 import DiskFullError

    _failing_spills(monkeypatch, disk_fills=True)
    with pytest.raises(DiskFullError, match=r"No space left on device while exporting to .*out .*Fix: free disk"):
        optimum_qwen35.export(hub_moe_checkpoint, tmp_path / "out", weight_format="int4", convert_tokenizer=False)
    assert list(tmp_path.iterdir()) == []


def test_visual_from_pretrained_export_keeps_every_part_file_backed(composite_checkpoint, tmp_path, monkeypatch):
    """``OVModelForVisualCausalLM.from_pretrained(..., export=True, quantization_config=...)``: every
    part of the vision-language layout (the language model's INT4/INT8 and optimum-intel's INT8 of
    the embeddings and vision tower) keeps its compressed constants file-backed, and saves the
    bytes the CLI's ``--task image-text-to-text --weight-format int4`` writes."""
    from optimum.intel import OVModelForVisualCausalLM

    import optimum_qwen35
    from optimum_qwen35.exporters import scratch

    cli = optimum_qwen35.export(
        composite_checkpoint, tmp_path / "cli", task="image-text-to-text", weight_format="int4", convert_tokenizer=False
    )
    monkeypatch.setattr(scratch, "SPILL_MIN_BYTES", 0)
    model = OVModelForVisualCausalLM.from_pretrained(
        composite_checkpoint, export=True, quantization_config={"bits": 4}, compile=False
    )
    model.save_pretrained(tmp_path / "saved")
    for name, part in model.ov_models.items():
        counts, parents = compressed_constant_backing(part)
        assert counts["scratch"] > 0 and counts["anonymous"] == counts["file"] == 0, (name, counts)
        assert parents == {model.model_save_dir.parent}, name
    for weights in sorted(cli.glob("*.bin")):
        assert (tmp_path / "saved" / weights.name).read_bytes() == weights.read_bytes(), weights.name
