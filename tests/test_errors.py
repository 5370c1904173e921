"""Bad input gets one clear error naming the fix, and never leaves a partial output folder."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from ov_helpers import run_optimum_cli

import optimum_qwen35
from optimum_qwen35 import (
    CheckpointError,
    DiskFullError,
    NotQwen35Error,
    OutputDirectoryError,
    UnsupportedEnvironmentError,
)
from optimum_qwen35 import versions as versions_module
from optimum_qwen35.checkpoint import check_config_matches_weights


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if ".partial-" in p.name]


@pytest.fixture
def broken_copy(text_checkpoint, tmp_path):
    copy = tmp_path / "broken"
    shutil.copytree(text_checkpoint, copy)
    return copy


def test_non_qwen_checkpoint_is_refused(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = tmp_path / "llama"
    LlamaForCausalLM(LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, vocab_size=64)).save_pretrained(llama)  # fmt: skip
    with pytest.raises(NotQwen35Error, match="'llama' checkpoint, not Qwen3.5.*Fix"):
        optimum_qwen35.export(llama, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # The plugin's own option is refused for other models rather than silently ignored.
    result = run_optimum_cli("export", "openvino", "--model", str(llama), str(tmp_path / "out"), "--thinking", "off")
    assert result.returncode == 1 and "optimum-cli: error: --thinking is optimum-qwen35's option" in result.stderr
    assert not (tmp_path / "out").exists()


def test_truncated_weights_are_reported(broken_copy, tmp_path):
    weights = broken_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match="truncated.*Fix: re-download"):
        optimum_qwen35.export(broken_copy, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_python_main_export_checks_before_exporting(broken_copy, tmp_path):
    from optimum.exporters.openvino import main_export

    weights = broken_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match="truncated.*Fix: re-download"):
        main_export(str(broken_copy), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_weights_are_reported(broken_copy, tmp_path):
    (broken_copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors.*Fix"):
        optimum_qwen35.export(broken_copy, tmp_path / "out")


def test_missing_shard_is_reported(broken_copy, tmp_path):
    index = {"metadata": {}, "weight_map": {"model.embed_tokens.weight": "model-00002-of-00002.safetensors"}}
    (broken_copy / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="missing weight shard.*model-00002-of-00002"):
        optimum_qwen35.export(broken_copy, tmp_path / "out")


def test_unsupported_transformers_version_names_the_fix(text_checkpoint, tmp_path, monkeypatch):
    real_version = versions_module.version
    monkeypatch.setattr(
        versions_module, "version", lambda name: "4.57.0" if name == "transformers" else real_version(name)
    )
    with pytest.raises(UnsupportedEnvironmentError, match=r"transformers 4.57.0 is not supported.*pip install"):
        optimum_qwen35.export(text_checkpoint, tmp_path / "out")


def test_non_empty_output_needs_overwrite(text_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(OutputDirectoryError, match="not empty.*overwrite=True"):
        optimum_qwen35.export(text_checkpoint, out)
    assert (out / "keep.txt").read_text() == "user data"

    optimum_qwen35.export(text_checkpoint, out, overwrite=True, convert_tokenizer=False)
    assert (out / "openvino_model.xml").is_file() and not (out / "keep.txt").exists()
    assert _leftovers(tmp_path) == []


def test_output_folder_gets_the_mode_of_a_plain_mkdir(text_checkpoint, tmp_path):
    """The export is written to a private temporary folder first; the folder users get must not
    stay private (0700) but follow their umask, like any folder they create — in a setgid shared
    folder, keeping the setgid bit."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o2775)
    previous = os.umask(0o027)
    try:
        optimum_qwen35.export(text_checkpoint, tmp_path / "out", convert_tokenizer=False)
        optimum_qwen35.export(text_checkpoint, shared / "out", convert_tokenizer=False)
        (shared / "plain").mkdir()
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o750
    assert stat.S_IMODE((shared / "out").stat().st_mode) == stat.S_IMODE((shared / "plain").stat().st_mode)


@pytest.mark.parametrize(
    ("key", "factor", "message"),
    [
        ("hidden_size", 2, r"embed_tokens.weight has shape \[512, 64\] but config.json implies \[512, 128\].*Fix"),
        ("num_hidden_layers", 2, r"config.json declares 10 layers but the weights hold 5.*Fix"),
        ("linear_num_value_heads", 2, r"in_proj_qkv.weight has shape \[128, 64\] but config.json implies \[192, 64\]"),
        (
            "intermediate_size",
            2,
            r"mlp.down_proj.weight has shape \[64, 128\] but .* \[64, 256\] \(intermediate_size = 256\)",
        ),
    ],
)
def test_config_that_does_not_match_the_weights_is_refused_up_front(broken_copy, tmp_path, key, factor, message):
    config = json.loads((broken_copy / "config.json").read_text())
    config[key] = factor * config[key]
    (broken_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message):
        optimum_qwen35.export(broken_copy, tmp_path / "out")
    assert list(tmp_path.iterdir()) == [broken_copy]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        # The fused experts tensors sort before the router: a wrong expert count is caught there first.
        # The first mismatching tensor names the key: fused experts (saved by transformers 5.5) or the
        # router and per-expert tensors (5.2).
        ("num_experts", r"(experts.down_proj|mlp.gate.weight) has shape \[6, .* \[8, .*\(num_experts = 8\)"),
        ("moe_intermediate_size", r"experts.(0.)?down_proj(.weight)? has shape .*\(moe_intermediate_size = 50\)"),
        (
            "shared_expert_intermediate_size",
            r"shared_expert.down_proj.weight has shape \[64, 96\] but .* \[64, 98\] "
            r"\(shared_expert_intermediate_size = 98\)",
        ),
    ],
)
def test_moe_config_that_does_not_match_the_weights_is_refused(moe_text_checkpoint, tmp_path, key, message):
    copy = tmp_path / "moe"
    shutil.copytree(moe_text_checkpoint, copy)
    config = json.loads((copy / "config.json").read_text())
    config[key] += 2
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message + r"\. Fix: use the config.json"):
        optimum_qwen35.export(copy, tmp_path / "out")
    assert list(tmp_path.iterdir()) == [copy]


def test_moe_router_mismatch_is_refused():
    # A router that disagrees with a composite config while no other tensor does (keys as in config.json).
    config = {"model_type": "qwen3_5_moe", "text_config": {"hidden_size": 64, "num_experts": 8}}
    message = r"mlp.gate.weight has shape \[6, 64\] but config.json implies \[8, 64\] \(text_config.num_experts = 8\)"
    with pytest.raises(CheckpointError, match=message):
        check_config_matches_weights(config, {"model.language_model.layers.0.mlp.gate.weight": [6, 64]})


def test_disk_full_while_saving_leaves_nothing(text_checkpoint, tmp_path, monkeypatch):
    import optimum.exporters.openvino.convert as ov_convert

    def save_half_then_fail(model, path, *args, **kwargs):
        Path(path).write_text("<net>")  # a partial IR, as a full disk would leave it
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ov_convert, "save_model", save_half_then_fail)
    with pytest.raises(DiskFullError, match=r"No space left on device while exporting to .*out .*Fix: free disk"):
        optimum_qwen35.export(text_checkpoint, tmp_path / "out", convert_tokenizer=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("nearly_full", [True, False])
def test_openvino_write_error_is_reported_as_a_full_disk_only_when_it_is(
    text_checkpoint, tmp_path, monkeypatch, nearly_full
):
    # OpenVINO's writer reports a full disk as a bare iostream error, without errno.
    import optimum.exporters.openvino.convert as ov_convert

    from optimum_qwen35.exporters import output_dir

    def save_fails(model, path, *args, **kwargs):
        raise RuntimeError("basic_ios::clear: iostream error")

    monkeypatch.setattr(ov_convert, "save_model", save_fails)
    if nearly_full:  # every disk counts as nearly full
        monkeypatch.setattr(output_dir, "NEARLY_FULL_BYTES", 2**62)
    expected = DiskFullError if nearly_full else RuntimeError
    with pytest.raises(expected) as raised:
        optimum_qwen35.export(text_checkpoint, tmp_path / "out", convert_tokenizer=False)
    assert isinstance(raised.value, DiskFullError) == nearly_full
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_ir_that_fills_the_disk_is_reported_as_a_full_disk(text_checkpoint, tmp_path, monkeypatch):
    # An int4 export's uncompressed IR goes to optimum-intel's temporary folder, which is removed
    # (freeing the disk again) before the error reaches the export's own handler: whether the disk
    # was full must be judged when OpenVINO's writer fails.
    import openvino

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    real_usage = shutil.disk_usage

    def disk_usage(path):  # the partial IR fills the disk while it exists
        usage = real_usage(path)
        return usage._replace(free=0) if any(temporary.rglob("*.bin")) else usage

    def save_fills_the_disk(model, path, *args, **kwargs):
        Path(path).with_suffix(".bin").write_bytes(b"\0" * 4096)
        raise RuntimeError("basic_ios::clear: iostream error")

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    monkeypatch.setattr(openvino, "save_model", save_fills_the_disk)  # the quantizer's save
    with pytest.raises(DiskFullError, match=r"No space left on device while exporting to .*out .*Fix: .*set TMPDIR"):
        optimum_qwen35.export(text_checkpoint, tmp_path / "out", weight_format="int4", convert_tokenizer=False)
    assert list(tmp_path.iterdir()) == [temporary]
    assert list(temporary.iterdir()) == []


def test_disk_full_while_converting_weights_leaves_nothing(text_checkpoint, tmp_path, monkeypatch):
    # --weight-format fp16 of a bf16 checkpoint writes converted weights to a scratch folder beside
    # the output first: a full disk there must leave neither that folder nor a partial output.
    from optimum_qwen35.exporters import loading, scratch

    def write_half_then_fail(tensors, dtype=None):
        (scratch.current_scratch() / "0.safetensors").write_bytes(b"\0" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(loading, "write_tensors", write_half_then_fail)
    with pytest.raises(DiskFullError, match="No space left on device while exporting"):
        optimum_qwen35.export(text_checkpoint, tmp_path / "out", weight_format="fp16", convert_tokenizer=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["compressed save", "move into place"])
def test_disk_full_during_an_int4_export_leaves_nothing(text_checkpoint, tmp_path, monkeypatch, where):
    # With --weight-format int4 optimum-intel exports to a temporary folder, compresses there after
    # main_export returns, creates the output folder and only then moves the result into it: a full
    # disk at either step must leave neither an (empty) output folder nor any scratch folder.
    import openvino

    scratch = tmp_path / "tmp"  # where optimum-intel's temporary folders go
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    def write_half_then_fail(destination):
        Path(destination).write_bytes(b"\0" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "compressed save":  # optimum-intel's quantizer; the export itself uses convert.py's own binding
        monkeypatch.setattr(openvino, "save_model", lambda model, path, *args, **kwargs: write_half_then_fail(path))
    else:  # the move from the temporary folder into the output, across file systems: a copy
        real_rename, real_copyfile = os.rename, shutil.copyfile

        def rename(source, destination, *args, **kwargs):
            if Path(source).is_relative_to(scratch) and not Path(destination).is_relative_to(scratch):
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            return real_rename(source, destination, *args, **kwargs)

        def copy_bin_fails(source, destination, **kwargs):
            if str(source).endswith(".bin"):
                return write_half_then_fail(destination)
            return real_copyfile(source, destination, **kwargs)

        monkeypatch.setattr(os, "rename", rename)
        monkeypatch.setattr(shutil, "copyfile", copy_bin_fails)  # what shutil.move's copy2 calls
    with pytest.raises(DiskFullError, match=r"No space left on device while exporting to .*out .*Fix: free disk"):
        optimum_qwen35.export(text_checkpoint, tmp_path / "out", weight_format="int4", convert_tokenizer=False)
    assert list(tmp_path.iterdir()) == [scratch]
    assert list(scratch.iterdir()) == []


def test_weights_that_leave_parameters_uninitialised_are_refused(text_checkpoint, tmp_path):
    # A tensor under a name the model does not know (here: renamed; in practice e.g. experts stored
    # one tensor per expert by another transformers release) would be initialised at random.
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "renamed"
    shutil.copytree(text_checkpoint, copy)
    tensors = load_file(copy / "model.safetensors")
    (name,) = [name for name in tensors if name.endswith("layers.0.mlp.gate_proj.weight")]
    tensors[name + "_renamed"] = tensors.pop(name)
    save_file(tensors, copy / "model.safetensors", metadata={"format": "pt"})
    message = r"1 parameters are missing \(first: model.layers.0.mlp.gate_proj.weight\).* Fix: "
    with pytest.raises(CheckpointError, match=message):
        optimum_qwen35.export(copy, tmp_path / "out", convert_tokenizer=False)
    assert list(tmp_path.iterdir()) == [copy]


@pytest.mark.parametrize("show", [None, "--verbose", "OPTIMUM_QWEN35_TRACEBACK=1"])
def test_cli_user_errors_are_one_line_without_a_traceback(show, text_checkpoint, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    args = ["export", "openvino", "--model", str(text_checkpoint), str(output)]
    env = {key: value for key, value in os.environ.items() if key != "OPTIMUM_QWEN35_OVERWRITE"}
    env["PYTHONWARNINGS"] = "ignore"
    if show == "--verbose":
        args.append(show)
    elif show is not None:
        env |= dict([show.split("=")])
    result = run_optimum_cli(*args, env=env)
    assert result.returncode == 1
    assert (output / "keep.txt").read_text() == "mine" and len(list(output.iterdir())) == 1
    if show is None:
        error_lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
        assert error_lines == [error_lines[-1]] and error_lines[-1].startswith("optimum-cli: error: Output folder")
        assert "is not empty" in error_lines[-1] and "OPTIMUM_QWEN35_OVERWRITE=1" in error_lines[-1]
        assert "Traceback" not in result.stderr
    else:
        assert "Traceback (most recent call last)" in result.stderr and "OutputDirectoryError" in result.stderr


def test_cli_other_errors_keep_pythons_report(tmp_path):
    """Only the plugin's own errors are shortened: optimum-intel's keep their traceback."""
    result = run_optimum_cli("export", "openvino", "--model", str(tmp_path / "missing"), str(tmp_path / "out"))
    assert result.returncode != 0 and "optimum-cli: error:" not in result.stderr


def _with_huge_sparse_tensor(checkpoint: Path, folder: Path) -> Path:
    """A copy of ``checkpoint`` whose safetensors file also declares a 2 TB tensor, stored as a
    sparse hole: the file is as long as its header says, and takes no disk space."""
    shutil.copytree(checkpoint, folder)
    (weights,) = folder.glob("*.safetensors")
    raw = weights.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header, data = json.loads(raw[8 : 8 + length]), raw[8 + length :]
    end = max(entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__")
    huge = 2**20 * 2**20 * 2
    header["model.unused_huge.weight"] = {"dtype": "BF16", "shape": [2**20, 2**20], "data_offsets": [end, end + huge]}
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with weights.open("wb") as out:
        out.write(len(encoded).to_bytes(8, "little") + encoded + data[:end])
        out.truncate(8 + len(encoded) + end + huge)
    return folder


@pytest.mark.parametrize(
    ("flags", "fix"),
    [
        ([], "choose an output folder on a disk with space"),
        # optimum-intel writes the uncompressed IR to a temporary folder first: that disk must hold it.
        (["--weight-format", "int4"], "set TMPDIR to a folder on a disk with space"),
    ],
)
def test_cli_refuses_an_export_the_disk_cannot_hold_before_loading(text_checkpoint, tmp_path, flags, fix):
    checkpoint = _with_huge_sparse_tensor(text_checkpoint, tmp_path / "huge")
    output = tmp_path / "out"
    result = run_optimum_cli("export", "openvino", "--model", str(checkpoint), *flags, str(output))
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(error_lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    # 2.3 TB (the 2.2 TB tensor + 5 % headroom) needed, the free space named, and a fix.
    assert error_lines[0].startswith(f"optimum-cli: error: Exporting {checkpoint} needs about 2309.")
    assert "GB are free. Nothing was written. Fix: free" in error_lines[0] and f" or {fix}" in error_lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge"]


def _dead_pid() -> int:
    pid = 2**22 - 1  # above the usual pid_max; searched downwards for a free one
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            pass
        pid -= 1


def test_a_terminated_int4_export_removes_everything_it_made(text_checkpoint, tmp_path):
    # `kill` (SIGTERM) of a compressed export while optimum-intel's temporary IR exists: the export
    # ends as Ctrl-C would, removing that IR, its staging and its scratch folders.
    import signal
    import subprocess
    import sys
    import time

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    cmd = [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "openvino", "--weight-format", "int4"]
    environment = os.environ | {"TMPDIR": str(temporary)}
    export = subprocess.Popen(
        [*cmd, "--model", str(text_checkpoint), str(tmp_path / "out")], stderr=subprocess.DEVNULL, env=environment
    )
    deadline = time.monotonic() + 180
    while not list(temporary.glob("*/*.xml")) and export.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert export.poll() is None, "the export ended before its temporary IR was seen"
    export.send_signal(signal.SIGTERM)
    assert export.wait(timeout=120) == 128 + signal.SIGTERM
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
    # Only what the export made is checked: torch may keep a cache folder in TMPDIR.
    assert not [p for p in temporary.iterdir() if p.name.startswith("tmp") or p.suffix in (".xml", ".bin")]


def test_a_sigterm_whose_exit_was_lost_ends_the_export_at_its_next_step():
    # Python runs a signal handler between any two bytecodes, also inside a __del__, which prints and
    # drops its exception: the export's progress points raise the exit again.
    import signal

    from optimum_qwen35.exporters.progress import advance
    from optimum_qwen35.exporters.termination import ended_cleanly_on_sigterm

    with ended_cleanly_on_sigterm():
        try:
            signal.raise_signal(signal.SIGTERM)
        except SystemExit as lost:  # as if inside a __del__
            assert lost.code == 128 + signal.SIGTERM
        with pytest.raises(SystemExit) as ended:
            advance("load")
        assert ended.value.code == 128 + signal.SIGTERM
    advance("load")  # no export running: nothing remembered
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_folders_of_an_export_that_was_killed_are_removed_by_the_next_one(text_checkpoint, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    output = tmp_path / "out"
    cmd = [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "openvino", "--model"]
    killed = subprocess.Popen([*cmd, str(text_checkpoint), str(output)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".qwen35-scratch-*")) and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)  # no handler runs: the staging and scratch folders stay
    killed.wait()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert any(".out.partial-" in name for name in left) and any("qwen35-scratch" in name for name in left), left
    # A live export's folder (this process) is never touched; a dead process's is.
    live = tmp_path / f".out.partial-{os.getpid()}-live"
    other = tmp_path / f".qwen35-scratch-{_dead_pid()}-old"
    live.mkdir()
    other.mkdir()

    optimum_qwen35.export(text_checkpoint, output, convert_tokenizer=False)
    assert (output / "openvino_model.xml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", live.name])
