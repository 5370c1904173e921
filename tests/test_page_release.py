"""Releasing mapped weight pages shrinks the resident set and never changes a byte the process sees."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from optimum_qwen35.exporters import page_release
from optimum_qwen35.exporters.page_release import release_weight_pages, released_file_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page release is Linux-only")

SIZE = 32 * 2**20  # bytes per file


def resident_bytes(path: Path, pid: int | str = "self") -> int:
    """Resident bytes of a process's mappings of ``path`` (from /proc/<pid>/smaps)."""
    total, current = 0, None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
            current = fields[5] if len(fields) > 5 else None
        elif fields[0] == "Rss:" and current == str(path):
            total += int(fields[1]) * 1024
    return total


def write(path: Path) -> np.ndarray:
    values = np.random.default_rng(len(path.name)).standard_normal(SIZE // 4).astype(np.float32)
    values.tofile(path)
    return values


def test_release_drops_pages_of_both_mapping_kinds_and_keeps_their_contents(tmp_path):
    # OpenVINO maps an IR's .bin read-only and shared; safetensors' torch tensors are private
    # writable mappings (torch.UntypedStorage.from_file(shared=False)).
    ir_bin, checkpoint = tmp_path / "openvino_model.bin", tmp_path / "model.safetensors"
    ir_values, checkpoint_values = write(ir_bin), write(checkpoint)
    ir_mapped = np.memmap(ir_bin, dtype=np.float32, mode="r")
    storage = torch.UntypedStorage.from_file(str(checkpoint), shared=False, nbytes=SIZE)
    checkpoint_mapped = torch.tensor([], dtype=torch.float32).set_(storage)
    checkpoint_mapped[12345] = 42.0  # a private modification must survive the release
    assert float(ir_mapped.sum(dtype=np.float64)) == pytest.approx(float(ir_values.sum(dtype=np.float64)))
    assert float(checkpoint_mapped.sum()) != 0.0  # reads every page
    assert resident_bytes(ir_bin) > SIZE * 0.9 and resident_bytes(checkpoint) > SIZE * 0.9

    assert release_weight_pages()

    assert resident_bytes(ir_bin) < SIZE * 0.05
    # What stays is the privately modified page (up to a 2 MiB transparent huge page).
    assert resident_bytes(checkpoint) < SIZE * 0.05 + 2 * 2**20
    np.testing.assert_array_equal(np.asarray(ir_mapped), ir_values)
    expected = checkpoint_values.copy()
    expected[12345] = 42.0
    np.testing.assert_array_equal(checkpoint_mapped.numpy(), expected)


def test_context_manager_releases_pages_read_inside_it(tmp_path):
    path = tmp_path / "weights.bin"
    values = write(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r")
    with released_file_pages(interval=0.05):
        total = float(mapped.sum(dtype=np.float64))
        deadline = time.monotonic() + 5
        while resident_bytes(path) > SIZE * 0.05 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert resident_bytes(path) < SIZE * 0.05
    assert total == pytest.approx(float(values.sum(dtype=np.float64)))


def test_other_files_are_left_alone(tmp_path):
    path = tmp_path / "weights.npy"  # not a weight suffix: the exporter never maps such files
    write(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r")
    float(mapped.sum(dtype=np.float64))
    assert release_weight_pages()
    assert resident_bytes(path) > SIZE * 0.9


def test_nested_blocks_share_one_release_thread():
    # Compression runs inside an export: one thread does the work for both blocks.
    def release_threads() -> int:
        return sum(thread.name == "qwen35-page-release" for thread in threading.enumerate())

    with released_file_pages(interval=0.05):
        with released_file_pages(interval=0.05):
            assert release_threads() == 1
        assert release_threads() == 1
    assert release_threads() == 0


_SAVE_SCRIPT = """
import importlib.util, sys, numpy as np, openvino as ov, openvino.opset13 as ops, torch
# The module alone (stdlib only), without the package's 10 s of optimum imports.
spec = importlib.util.spec_from_file_location("page_release", {module!r})
page_release = importlib.util.module_from_spec(spec)
spec.loader.exec_module(page_release)
path, output, mode = sys.argv[1:]
storage = torch.UntypedStorage.from_file(path, shared=False, nbytes={size})  # as safetensors maps
weights = torch.tensor([], dtype=torch.float32).set_(storage).reshape(-1, 1024)
rows = weights.shape[0] // 8
parameter = ops.parameter([1, 1024], np.float32)
outputs = [
    ops.matmul(parameter, ov.op.Constant(ov.Tensor(weights[i * rows : (i + 1) * rows].numpy(), shared_memory=True),
                                         shared_memory=True), False, True)
    for i in range(8)
]
model = ov.Model(outputs, [parameter])
if mode == "thread":
    page_release._start_helper = lambda interval: None
with page_release.released_file_pages(interval=0.02):
    ov.save_model(model, output, compress_to_fp16=False)
"""


def peak_resident_bytes(command: list[str], path: Path) -> int:
    """Run ``command`` and return the most of ``path`` found resident in it, sampled from outside.

    Not the kernel's peak RSS (``ru_maxrss``, ``VmHWM``): pages reclaimed by ``MADV_PAGEOUT`` leave
    it unrecorded, so it would not see pages that were resident while a call held the GIL.
    """
    child = subprocess.Popen(command, stderr=subprocess.PIPE)
    peak = 0
    while child.poll() is None:
        with contextlib.suppress(OSError):  # the child may exit while it is read
            peak = max(peak, resident_bytes(path, child.pid))
    assert child.wait() == 0, child.stderr.read().decode()
    return peak


def test_pages_are_released_while_a_call_holds_the_gil(tmp_path):
    # openvino.save_model holds the GIL while it reads every weight: the release thread cannot run,
    # so the helper process pages the checkpoint's mapping out from outside.
    size = 8 * SIZE
    checkpoint = tmp_path / "model.safetensors"
    np.random.default_rng(0).standard_normal(size // 4).astype(np.float32).tofile(checkpoint)
    script = _SAVE_SCRIPT.format(size=size, module=page_release.__file__)

    def peak(mode: str) -> int:
        command = [sys.executable, "-c", script, str(checkpoint), str(tmp_path / f"{mode}.xml"), mode]
        return peak_resident_bytes(command, checkpoint)

    # The thread alone: every page stays until save_model returns (1.0 of the file on a quiet
    # machine; the sampler can miss the last pages under load). The helper: 0.2 of it here.
    assert peak("thread") > 0.6 * size
    assert peak("helper") < 0.4 * size
    assert (tmp_path / "helper.bin").read_bytes() == (tmp_path / "thread.bin").read_bytes()


def test_helper_pages_out_the_end_of_a_mapping_larger_than_2_gib(tmp_path):
    # One process_madvise call stops after ~2 GiB: the tail of a 4B checkpoint's 8 GB file stayed
    # resident until the helper advised in 1 GiB pieces. The file is sparse, so this costs no disk.
    path = tmp_path / "model.safetensors"
    size = 5 * 2**29  # 2.5 GiB
    with path.open("wb") as handle:
        handle.truncate(size)
    storage = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=size)
    tail = torch.tensor([], dtype=torch.uint8).set_(storage)[-SIZE:]
    assert int(tail.sum()) == 0  # reads the last 32 MiB
    assert resident_bytes(path) > SIZE * 0.9
    pidfd = os.pidfd_open(os.getpid())  # this process: the same call the helper makes for its parent
    try:
        assert page_release.page_out_writable_mappings(os.getpid(), pidfd)
    finally:
        os.close(pidfd)
    assert resident_bytes(path) < SIZE * 0.05


_FREED_HEAP_CHILD = """
import importlib.util, re, sys

# The module alone (standard library only), not the package: the child starts in well under a second.
spec = importlib.util.spec_from_file_location("page_release", sys.argv[1])
page_release = importlib.util.module_from_spec(spec)
spec.loader.exec_module(page_release)

def anonymous():
    return int(re.search(r"RssAnon:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024

blocks = [bytearray(b"x" * 65536) for _ in range(4096)]  # 256 MiB of 64 KiB heap blocks (below mmap's threshold)
pinned = bytearray(b"x" * 65536)  # allocated last: the top of the heap stays in use, so free() trims nothing
del blocks
before = anonymous()
released = page_release.release_free_heap()
print(released, before, anonymous())
"""


def test_freed_heap_pages_go_back_to_the_kernel():
    """What a traced part of the model leaves in the heap (freed, yet resident below a block still in
    use) is returned by :func:`release_free_heap`."""
    child = [sys.executable, "-c", _FREED_HEAP_CHILD, page_release.__file__]
    result = subprocess.run(child, capture_output=True, text=True, check=True)
    released, before, after = result.stdout.split()
    assert released == "True"
    assert int(before) - int(after) > 200 * 2**20, (before, after)
