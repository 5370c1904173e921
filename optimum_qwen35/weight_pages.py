"""Keep an IR's weight file out of the resident set once the CPU plugin has repacked its weights.

OpenVINO maps the IR's ``openvino_model.bin`` and the CPU plugin, at the first inference (not at
``compile_model``), copies most weights into its own blocked layouts in anonymous memory. Every
page of the file it read stays resident in the process until the mapping closes, which is never
while the model lives: on the 0.8B shape's INT4 IR (646 MB) the first 2048-token prefill through
``LLMPipeline`` leaves 0.64 GB of file pages next to 1.08 GB of anonymous memory, and the peak is
their sum (``docs/performance.md``, "Runtime memory"). Only ~84 MB of the file is read again
afterwards (constants the kernels use in place).

While :func:`released_weight_pages` is open, a thread hands the pages of read-only weight-file
mappings back to the kernel every ``interval`` seconds (``madvise(MADV_DONTNEED)``, as
:mod:`.exporters.page_release` does during an export), and once more when it closes. The data stays
in the page cache; the next access maps it again. OpenVINO releases Python's GIL while it infers,
so the thread runs during the repacking. ``OVModelForCausalLM`` does this around the first
inference of every compiled plugin IR (:mod:`.runtime`); for ``openvino_genai.LLMPipeline`` wrap
the first ``generate`` call::

    pipe = openvino_genai.LLMPipeline(ir, "CPU")
    with optimum_qwen35.released_weight_pages():
        pipe.generate(prompt, max_new_tokens=1)  # or the first real request

Linux only; elsewhere it does nothing.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from .exporters.page_release import released_file_pages


def released_weight_pages(interval: float = 0.1) -> contextlib.AbstractContextManager[None]:
    """Release read-only weight-file pages every ``interval`` seconds while the block runs, and at its end.

    The export's mechanism (:func:`.exporters.page_release.released_file_pages`), read-only: writable
    private mappings (safetensors' torch storages) are an export's, which pages them out itself.
    """
    return released_file_pages(interval, read_only=True)


def resident_bytes(path: str | Path) -> int:
    """Resident bytes of every mapping of the file ``path`` in this process (``Rss`` of ``smaps``), 0 off Linux."""
    smaps = Path("/proc/self/smaps")
    if not smaps.is_file():
        return 0
    total, inside, target = 0, False, str(Path(path).resolve())
    for line in smaps.read_text().splitlines():
        first = line.split(maxsplit=1)[0] if line.strip() else ""
        if "-" in first and not first.endswith(":"):  # a mapping's header line
            inside = line.rstrip().endswith(target)
        elif inside and first == "Rss:":
            total += int(line.split()[1]) * 1024
    return total
