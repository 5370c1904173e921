"""Why continuous batching's prefill is slow: ``PERF_COUNT`` of the paged graph next to the stateful one.

openvino-genai's default ``LLMPipeline`` backend (continuous batching) does not run the IR as
saved: it applies OpenVINO's ``SDPAToPagedAttention`` pass (public as
``openvino._offline_transformations.paged_attention_transformation``), which turns every SDPA into
``PagedAttentionExtension`` and each Gated DeltaNet layer's conv and recurrence into
``PagedCausalConv1D`` and ``PagedGatedDeltaNet`` reading and writing block tables, then keeps the
``lm_head`` for the sampled positions only. GenAI does not expose the compiled model, so this
script applies the same pass, slices the ``lm_head`` input to the last position (GenAI's
gather-before-matmul), compiles with ``PERF_COUNT`` and feeds one sequence the way GenAI's model
runner does without prefix caching (one linear-attention block read and written in place, KV
blocks ``0..n-1``). The stateful IR runs the same prompt through ``profile_ops.Profiler`` (the
``ATTENTION_BACKEND="SDPA"`` path's graph, last-position logits). Prints wall time and time per
node type for both, one prefill of ``--prompt`` tokens after a warm-up prefill.

    python benchmarks/paged_prefill_profile.py IR_DIR --prompt 2048
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from profile_ops import Profiler, by_type


class PagedProfiler:
    """The IR after GenAI's paged-attention conversion, compiled with ``PERF_COUNT``; one sequence."""

    def __init__(self, ir: str, config: dict[str, str], capacity: int):
        import openvino as ov
        import openvino.opset14 as ops
        from openvino._offline_transformations import paged_attention_transformation

        from optimum_qwen35.runtime import lm_head

        core = ov.Core()
        model = core.read_model(f"{ir}/openvino_model.xml")
        # GenAI's arguments without cache eviction, sparse attention or rotation (pipeline_impl.cpp).
        paged_attention_transformation(model, False, False, True, False, False, False)
        matmul = lm_head(model)  # hidden states [tokens, 1, H]: keep the last token's row
        last = ops.slice(matmul.input_value(0), [-1], [np.iinfo(np.int64).max], [1], [0])
        matmul.input(0).replace_source_output(last.output(0))
        model.validate_nodes_and_infer_types()
        self.compiled = core.compile_model(model, "CPU", {"PERF_COUNT": "YES"} | config)
        self.request = self.compiled.create_infer_request()
        self.capacity = capacity
        self._allocate_caches()
        self.count, self.means = 0, {}

    def _allocate_caches(self) -> None:
        """Zeroed cache tensors: KV blocks for ``capacity`` tokens, one linear-attention block."""
        import openvino as ov

        ports = {port.get_any_name(): port for port in self.compiled.inputs}
        # CPU layout [blocks, heads, block size, head size]; a u8 key cache adds rows for its
        # per-channel scales in the third axis, so the block size is read from the value cache.
        self.block = ports["value_cache.0"].get_partial_shape()[2].get_length()
        for name, port in ports.items():
            if name.startswith(("key_cache.", "value_cache.")):
                first = math.ceil(self.capacity / self.block)
            elif name.startswith(("conv_state_table.", "gated_delta_state_table.")):
                first = 1
            else:
                continue
            dims = [first] + [dim.get_length() for dim in list(port.get_partial_shape())[1:]]
            tensor = ov.Tensor(port.get_element_type(), dims)
            np.asarray(tensor.data).view(np.uint8)[...] = 0
            self.request.set_tensor(name, tensor)

    def run(self, ids: np.ndarray) -> tuple[float, dict[str, tuple[str, str, float]]]:
        """Wall time (s) and ``{node: (type, kernel, ms)}`` of one prefill of ``ids`` from an empty cache."""
        tokens = ids.shape[-1]
        blocks = math.ceil(tokens / self.block)
        i32 = np.int32
        feed = {
            "input_ids": ids.reshape(-1).astype(np.int64),
            "position_ids": np.arange(tokens, dtype=np.int64),
            "max_context_len": np.array(tokens, i32),
            "past_lens": np.array([0], i32),
            "subsequence_begins": np.array([0, tokens], i32),
            "block_indices_begins": np.array([0, blocks], i32),
            "block_indices": np.arange(blocks, dtype=i32),
            "score_aggregation_window": np.array([1], i32),
            # No prefix caching: block 0 is read and written in place (scheduler.hpp), interval 0.
            "la.block_indices": np.array([0, 0], i32),
            "la.block_indices_begins": np.array([0, 2], i32),
            "la.past_lens": np.array([0], i32),
            "la.cache_interval": np.array([0], i32),
        }
        names = {name for port in self.compiled.inputs for name in port.get_names()}
        start = time.perf_counter()
        self.request.infer({name: value for name, value in feed.items() if name in names})
        wall = time.perf_counter() - start
        self.count += 1
        means = {
            info.node_name: (info.node_type, info.exec_type, info.real_time.total_seconds() * 1000)
            for info in self.request.profiling_info
        }
        times = {
            name: (kind, kernel, max(0.0, self.count * mean - (self.count - 1) * self.means.get(name, (0, 0, 0.0))[2]))
            for name, (kind, kernel, mean) in means.items()
        }
        self.means = means
        return wall, times


def grouped(times: dict) -> dict[str, float]:
    """Milliseconds per node type (kernels merged)."""
    table: dict[str, float] = {}
    for kind, _, ms, _ in by_type(times):
        table[kind] = table.get(kind, 0.0) + ms
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ir", help="folder exported by the plugin (or any stateful Qwen3.5 IR)")
    parser.add_argument("--prompt", type=int, default=2048)
    parser.add_argument("--top", type=int, default=14)
    parser.add_argument("--config", action="append", default=[], help="KEY=VALUE CPU property (repeatable)")
    args = parser.parse_args()
    config = dict(item.split("=", 1) for item in args.config)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 1000, (1, args.prompt))

    paged = PagedProfiler(args.ir, config, args.prompt)
    paged.run(ids)  # warm-up: weight repacking and first-inference allocations
    paged_wall, paged_times = paged.run(ids)
    del paged
    stateful = Profiler(args.ir, config)
    stateful.run(ids, 0)
    stateful.request.reset_state()
    stateful_wall, stateful_times = stateful.run(ids, 0)

    print(
        f"prefill of {args.prompt} tokens: paged (continuous batching) {paged_wall:.2f} s, "
        f"stateful (SDPA backend) {stateful_wall:.2f} s, ratio {paged_wall / stateful_wall:.2f}x"
    )
    left, right = grouped(paged_times), grouped(stateful_times)
    print(f"{'node type':<34}{'paged ms':>11}{'share':>7}{'stateful ms':>13}{'share':>7}")
    total_left, total_right = sum(left.values()), sum(right.values())
    for kind in sorted(set(left) | set(right), key=lambda k: -max(left.get(k, 0), right.get(k, 0)))[: args.top]:
        a, b = left.get(kind, 0.0), right.get(kind, 0.0)
        print(f"{kind:<34}{a:>11.1f}{100 * a / total_left:>6.1f}%{b:>13.1f}{100 * b / total_right:>6.1f}%")
    print(f"{'all nodes':<34}{total_left:>11.1f}{'':>7}{total_right:>13.1f}")
    print("\nslowest paged kernels:")
    for kind, kernel, ms, nodes in by_type(paged_times)[:6]:
        print(f"  {kind:<32}{kernel:<28}{ms:>10.1f} ms{nodes:>5} nodes")


if __name__ == "__main__":
    main()
