"""The export display's counts: "layer i/N", "weights i/N", "GB x/y", each with an ETA from its own rate."""

from __future__ import annotations

import io
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

import optimum_qwen35
from optimum_qwen35.exporters import progress
from optimum_qwen35.exporters.progress import Count, counting, export_progress
from optimum_qwen35.exporters.save_progress import clock, eta_seconds, watched_save, written_text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _frames(text: str) -> list[str]:
    return [frame.rstrip() for frame in re.split(r"[\r\n]", text) if frame.strip()]


def test_eta_is_the_time_left_at_the_rate_so_far():
    assert eta_seconds(1, 4, 2.0) == 6.0  # 1 of 4 in 2 s: 3 more at 2 s each
    assert eta_seconds(3, 4, 3.0) == 1.0
    assert eta_seconds(0, 4, 5.0) is None  # no rate before the first item
    assert eta_seconds(4, 4, 5.0) is None  # nothing left
    assert eta_seconds(1, None, 5.0) is None
    assert clock(75) == "01:15" and clock(3725) == "1:02:05"


def test_weighted_count_takes_its_rate_from_the_sizes(monkeypatch):
    """NNCF compresses the largest weights first: after the 3-unit item in 3 s, the 1-unit one needs 1 s."""
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    count = Count("weights", 2, sizes=[3.0, 1.0])
    assert count.text() == "weights 0/2"
    now[0] += 3.0
    count.advance()
    assert count.eta() == pytest.approx(1.0)
    assert count.text() == "weights 1/2, ETA 00:01"
    now[0] += 1.0
    count.advance()
    assert count.text() == "weights 2/2"  # no ETA once done


def test_written_text_is_gigabytes_and_an_eta_from_the_first_bytes():
    first = (100.0, 10**9)  # first seen growing at 1 GB
    assert written_text(10**9, 8 * 10**9, first, 100.0) == "GB 1.0/8.0"  # no rate yet
    assert written_text(3 * 10**9, 8 * 10**9, first, 110.0) == "GB 3.0/8.0, ETA 00:25"  # 2 GB in 10 s
    assert written_text(2 * 10**9, 8 * 10**9, None, 110.0) == "GB 2.0/8.0"
    assert written_text(9 * 10**9, 8 * 10**9, first, 110.0) == "GB 8.0/8.0"  # the estimate is capped


def _drawn_until(fd: int, text: str, timeout: float = 30.0) -> str:
    """What the helper draws on ``fd`` until a frame shows ``text`` (a frame ends where the next starts)."""
    drawn, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        drawn += os.read(fd, 4096)
        frames = drawn.decode().split("\r")
        if any(text in frame for frame in frames[:-1]):
            return drawn.decode()
    raise AssertionError(f"no frame with {text!r} in {timeout} s: {drawn!r}")


def test_save_helper_draws_the_file_growing(tmp_path):
    """The helper process watches the ``.bin`` (sparse here) while the caller is busy, then clears its line."""
    weights = tmp_path / "model.bin"
    read_end, write_end = os.pipe()
    drawn = ""
    with watched_save(weights, 8 * 10**9, "Qwen3.5 export: saving the IR: step 5/6", time.monotonic(), write_end):
        drawn += _drawn_until(read_end, ", GB 0.0/8.0")  # nothing written yet
        with weights.open("wb") as file:
            file.truncate(2 * 10**9)
        drawn += _drawn_until(read_end, ", GB 2.0/8.0")  # first bytes seen: no rate yet
        with weights.open("r+b") as file:
            file.truncate(4 * 10**9)
        drawn += _drawn_until(read_end, ", GB 4.0/8.0, ETA ")  # 2 GB since the first bytes: a rate
    os.close(write_end)
    with os.fdopen(read_end, "rb") as rest:
        drawn += rest.read().decode()
    frames = _frames(drawn)
    sizes = [re.search(r", GB (\d\.\d)/8\.0", frame).group(1) for frame in frames]
    assert sizes[0] == "0.0" and sizes == sorted(sizes), frames
    assert all(frame.startswith("Qwen3.5 export: saving the IR: step 5/6 [00:") for frame in frames)
    assert not any(", ETA " in frame for frame in frames if ", GB 2.0/8.0" in frame)
    assert drawn.endswith("\r"), "the line is cleared for the bar"


def test_nested_counts_show_together_and_only_the_outer_one_is_summed(monkeypatch):
    log = io.StringIO()  # not a terminal: one line per step, the summaries at the step's end
    monkeypatch.setattr(sys, "stderr", log)
    with export_progress():
        progress.advance("compress")
        with counting("vocabulary table chunks", 2, summary=("compressed", "chunks")) as outer:
            with counting("weights", 1, summary=("compressed", "weights")) as inner:
                assert progress._display.counts == [outer, inner]
                inner.advance()
            outer.advance()
        with counting("vocabulary tables", 0, summary=("compressed", "tables")):
            pass  # a model without a vocabulary table: no "compressed 0 tables" line
    lines = log.getvalue().splitlines()
    assert lines[1] == "Qwen3.5 export: compressing weights: step 7/8"
    assert re.fullmatch(r"Qwen3\.5 export: compressed 1 chunk in \d+\.\d s", lines[2]), lines  # one: no plural
    assert lines[3].startswith("Qwen3.5 export: done ["), lines


def test_export_shows_each_layer_and_the_weights_with_an_eta(text_checkpoint, tmp_path, monkeypatch):
    """A tiny multi-layer checkpoint exported on a (captured) terminal: the trace counts every decoder
    layer up to N, with an ETA until the last; compression counts weights up to its total."""
    layers = json.loads((Path(text_checkpoint) / "config.json").read_text())["num_hidden_layers"]
    assert layers > 2
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    optimum_qwen35.export(text_checkpoint, tmp_path / "out", weight_format="int8")
    frames = _frames(terminal.getvalue())
    counted = [re.search(r"tracing: step 2/6 \[\d\d:\d\d\], layer (\d+)/(\d+)(, ETA \d\d:\d\d)?$", f) for f in frames]
    counted = [(int(match.group(1)), int(match.group(2)), bool(match.group(3))) for match in counted if match]
    assert [done for done, _, _ in counted] == list(range(1, layers + 1)), frames
    assert {total for _, total, _ in counted} == {layers}
    assert all(eta for done, _, eta in counted if done < layers) and not counted[-1][2]
    weights = [re.search(r"compressing weights: step 7/8 \[\d\d:\d\d\], weights (\d+)/(\d+)", f) for f in frames]
    weights = [(int(match.group(1)), int(match.group(2))) for match in weights if match]
    assert weights and all(0 < done <= total for done, total in weights), frames
    assert frames[-1].startswith("Qwen3.5 export: done: step 8/8")
