"""Where an IR spends its time on CPU: OpenVINO ``PERF_COUNT`` per node type, prefill and decode.

Compiles the IR with ``PERF_COUNT`` and a ``logits_to_keep`` input (any IR whose ``logits`` come
from a MatMul; logits for the last prompt position only, as ``LLMPipeline`` and the plugin's
``OVModelForCausalLM`` run it, so IRs of other exporters compare like for like), runs one prefill
of ``--prompt`` tokens and ``--steps`` decode steps, and prints the time of each (node type,
kernel) pair for the prefill and for the last decode step, largest first. With
``--nodes TYPE`` it also lists the slowest nodes of that type with their producer and consumers,
which is how layout churn (``Transpose``/``Reorder``) is traced back to the graph.

    python benchmarks/profile_ops.py IR_DIR --prompt 512 --steps 8
    python benchmarks/profile_ops.py IR_DIR --nodes Transpose --nodes Reorder
    python benchmarks/profile_ops.py IR_DIR --weights      # decode time per projection and weight type

``--weights`` groups the decode step's ``FullyConnected*`` nodes by projection (the module name
before ``/``) and weight type, with the rate at which each group streams its weights: on a CPU
whose decode is bandwidth-bound every group reaches about the same GB/s whatever its type.

The CPU plugin reports each node's *mean* time over every inference so far, so the time of the
n-th inference is recovered as ``n * mean_n - (n - 1) * mean_(n-1)``.
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np
from step_inputs import step_inputs


class Profiler:
    """One compiled IR and its request; :meth:`run` returns the per-node times of one inference."""

    def __init__(self, ir: str, config: dict[str, str]):
        import openvino as ov

        from optimum_qwen35.runtime import lm_head, with_logits_to_keep

        core = ov.Core()
        model = core.read_model(f"{ir}/openvino_model.xml")
        if lm_head(model) is not None:
            model = with_logits_to_keep(model)
        self.compiled = core.compile_model(model, "CPU", {"PERF_COUNT": "YES"} | config)
        self.names = {name for port in self.compiled.inputs for name in port.get_names()}
        self.request = self.compiled.create_infer_request()
        self.count = 0
        self.means = self._means()

    def _means(self) -> dict[str, tuple[str, str, float]]:
        return {
            info.node_name: (info.node_type, info.exec_type, info.real_time.total_seconds() * 1000)
            for info in self.request.profiling_info
        }

    def run(self, ids: np.ndarray, past: int) -> tuple[float, dict[str, tuple[str, str, float]]]:
        """Wall time (s) and ``{node: (type, kernel, ms)}`` of one inference."""
        start = time.perf_counter()
        self.request.infer(step_inputs(ids, past, self.names, logits_to_keep=np.array(1, np.int64)))
        wall = time.perf_counter() - start
        self.count += 1
        means, previous = self._means(), self.means
        self.means = means
        count = self.count
        times = {}
        for name, (kind, kernel, mean) in means.items():
            before = previous.get(name, (kind, kernel, 0.0))[2]
            times[name] = (kind, kernel, max(0.0, count * mean - (count - 1) * before))
        return wall, times


def by_type(times: dict[str, tuple[str, str, float]]) -> list[tuple[str, str, float, int]]:
    """``[(type, kernel, ms, nodes)]`` summed over nodes, largest first."""
    groups: dict[tuple[str, str], list] = collections.defaultdict(lambda: [0.0, 0])
    for kind, kernel, ms in times.values():
        if ms > 0:
            groups[(kind, kernel)][0] += ms
            groups[(kind, kernel)][1] += 1
    return sorted(((k, e, ms, n) for (k, e), (ms, n) in groups.items()), key=lambda row: -row[2])


def print_table(title: str, wall: float, times: dict, top: int) -> None:
    rows = by_type(times)
    total = sum(row[2] for row in rows)
    print(f"\n{title}: wall {1000 * wall:.1f} ms, nodes {total:.1f} ms")
    print(f"{'node type':<40}{'kernel':<24}{'ms':>10}{'share':>8}{'nodes':>7}")
    for kind, kernel, ms, nodes in rows[:top]:
        print(f"{kind:<40}{kernel:<24}{ms:>10.2f}{100 * ms / total:>7.1f}%{nodes:>7}")


def print_nodes(profiler: Profiler, times: dict, kind: str, top: int) -> None:
    runtime = {node.get_friendly_name(): node for node in profiler.compiled.get_runtime_model().get_ordered_ops()}
    rows = sorted(((ms, name) for name, (k, _, ms) in times.items() if k == kind), reverse=True)[:top]
    print(f"\nslowest {kind} nodes in the prefill:")
    for ms, name in rows:
        node = runtime[name]
        source = node.input_value(0).get_node().get_friendly_name()
        targets = [port.get_node().get_friendly_name() for port in node.output(0).get_target_inputs()]
        print(f"{ms:8.2f} ms  {name}  {node.get_output_partial_shape(0)}  <- {source}  -> {targets}")


def print_weights(profiler: Profiler, times: dict) -> None:
    runtime = {node.get_friendly_name(): node for node in profiler.compiled.get_runtime_model().get_ordered_ops()}
    groups: dict[tuple[str, str, tuple], list] = collections.defaultdict(lambda: [0.0, 0, 0])
    for name, (kind, _, ms) in times.items():
        if not kind.startswith("FullyConnected"):
            continue
        weight = runtime[name].input_value(1)
        element, shape = weight.get_element_type(), tuple(weight.get_shape())
        group = groups[(name.split("/")[0].rsplit(".", 1)[-1], element.get_type_name(), shape)]
        group[0] += ms
        group[1] += 1
        group[2] += int(np.prod(shape)) * element.bitwidth // 8
    print("\ndecode step, FullyConnected nodes by projection and weight type:")
    print(f"{'projection':<24}{'weights':<9}{'shape':<16}{'nodes':>6}{'ms':>9}{'MB':>9}{'GB/s':>7}")
    for (projection, element, shape), (ms, count, nbytes) in sorted(groups.items(), key=lambda item: -item[1][0]):
        rate = nbytes / ms / 1e6 if ms else float("nan")
        dims = "x".join(map(str, shape))
        print(f"{projection:<24}{element:<9}{dims:<16}{count:>6}{ms:>9.2f}{nbytes / 1e6:>9.1f}{rate:>7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ir", help="exported folder (openvino_model.xml)")
    parser.add_argument("--prompt", type=int, default=512, help="prefill length")
    parser.add_argument("--steps", type=int, default=8, help="decode steps after the prefill")
    parser.add_argument("--top", type=int, default=15, help="rows per table")
    parser.add_argument("--nodes", action="append", default=[], help="also list the slowest nodes of this type")
    parser.add_argument("--weights", action="store_true", help="decode FullyConnected time by projection")
    parser.add_argument("--config", action="append", default=[], help="KEY=VALUE compile property, repeatable")
    args = parser.parse_args()

    profiler = Profiler(args.ir, dict(item.split("=", 1) for item in args.config))
    rng = np.random.default_rng(0)
    prompt = rng.integers(1, 1000, (1, args.prompt))
    # Warm-up: first-inference allocations and the shapes of both phases.
    profiler.run(prompt, 0)
    profiler.run(np.array([[5]]), args.prompt)
    profiler.request.reset_state()
    wall, prefill = profiler.run(prompt, 0)
    print_table(f"prefill of {args.prompt} tokens", wall, prefill, args.top)
    for kind in args.nodes:  # before decoding: the runtime model reports the last inference's shapes
        print_nodes(profiler, prefill, kind, args.top)
    walls = []
    for step in range(args.steps):
        wall, decode = profiler.run(np.array([[5]]), args.prompt + step)
        walls.append(wall)
    title = f"decode step (median wall of {args.steps}: {1000 * np.median(walls):.1f} ms)"
    print_table(title, walls[-1], decode, args.top)
    if args.weights:
        print_weights(profiler, decode)


if __name__ == "__main__":
    main()
