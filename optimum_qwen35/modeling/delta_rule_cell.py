"""The gated delta rule recurrence and its lowering to an OpenVINO ``Loop``.

The recurrence is the heart of a Gated DeltaNet layer. Traced naively it unrolls into one copy of
the step per token, which both fixes the sequence length and hides the structure from OpenVINO.
Instead the step runs inside :class:`GatedDeltaRuleCell`; at conversion time a ``ModuleExtension``
turns the whole module into one custom node, and :func:`convert_gated_delta_rule_cell` rewrites
that node into an ``opset`` ``Loop`` over time steps. The Loop has exactly the shape OpenVINO's
``FuseGDNLoop`` transformation matches (9 inputs, body results ``[condition, state, scattered
output]``, unit slices along the time axis, state ``[B, H, K, V]``), so the CPU and GPU plugins
replace it with their native ``GatedDeltaNet`` kernel. A graph that drifts from that shape still
runs, only slowly: ``tests/test_graph.py`` asserts the fused op is present.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset14 as ops
import torch
from openvino.frontend.pytorch import ConversionExtension, ModuleExtension

CELL_OP_NAME = "Qwen35GatedDeltaRuleCellOp"


class GatedDeltaRuleCell(torch.nn.Module):
    """One gated-delta-rule scan over a sequence, in float32.

    Inputs (already L2-normalised, query scaled by ``1/sqrt(K)``, heads repeated to ``H``):
        query, key: ``[B, H, T, K]``; value: ``[B, H, T, V]``; g (log decay), beta: ``[B, H, T]``;
        state: ``[B, H, K, V]``.

    Returns one flat tensor ``concat(out.flatten(), new_state.flatten())`` with ``out`` of shape
    ``[B, H, T, V]``: OpenVINO's module extensions replace a module by a node with a single output,
    so both results travel in one tensor and :func:`split_cell_output` takes them apart.
    """

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        g: torch.Tensor,
        beta: torch.Tensor,
        state: torch.Tensor,
    ) -> torch.Tensor:
        # In-place updates and matmuls instead of [B, H, K, V] temporaries: this runs while the
        # model is traced, and the tracer keeps every intermediate of every step alive until
        # tracing ends (with B=2, T=8 that was ~1.4 GB for the 0.8B shape).
        batch, heads, length, k_dim = key.shape
        state = state.clone()
        flat_state = state.view(batch * heads, k_dim, -1)  # [B*H, K, V], shares storage
        out = torch.empty_like(value)
        for t in range(length):
            state.mul_(g[:, :, t].exp()[..., None, None])
            kv_mem = torch.matmul(key[:, :, t, None, :], state)  # [B, H, 1, V]
            delta = (value[:, :, t, None, :] - kv_mem) * beta[:, :, t, None, None]  # [B, H, 1, V]
            flat_state.baddbmm_(key[:, :, t, :, None].reshape(-1, k_dim, 1), delta.reshape(batch * heads, 1, -1))
            out[:, :, t] = torch.matmul(query[:, :, t, None, :], state).squeeze(-2)
        return torch.cat([out.flatten(), state.flatten()])


def split_cell_output(
    flat: torch.Tensor, value: torch.Tensor, state: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split :class:`GatedDeltaRuleCell`'s flat output into ``out [B,H,T,V]`` and ``state [B,H,K,V]``."""
    n_out = value.numel()
    return flat[:n_out].reshape(value.shape), flat[n_out:].reshape(state.shape)


def convert_gated_delta_rule_cell(context) -> list:
    """OpenVINO conversion rule: the cell node becomes a ``Loop`` over the time axis (axis 2)."""
    query, key, value, g, beta, state_in = (context.get_input(i) for i in range(6))

    i32 = np.int32
    axis_t = ops.constant(2, dtype=i32)
    minus_one = ops.constant(-1, dtype=i32)
    minus_two = ops.constant(-2, dtype=i32)

    value_shape = ops.shape_of(value)
    out_init = ops.broadcast(ops.constant(0, dtype=np.float32), value_shape)
    seq_len = ops.convert(ops.gather(value_shape, axis_t, ops.constant(0, dtype=i32)), "i32")

    # Body: one time step. Sliced inputs keep a unit time axis, squeezed away here.
    timestep = ops.parameter([], i32, "timestep")
    q_t = ops.parameter([-1, -1, 1, -1], np.float32, "q_t")
    k_t = ops.parameter([-1, -1, 1, -1], np.float32, "k_t")
    v_t = ops.parameter([-1, -1, 1, -1], np.float32, "v_t")
    g_t = ops.parameter([-1, -1, 1], np.float32, "g_t")
    beta_t = ops.parameter([-1, -1, 1], np.float32, "beta_t")
    state_t = ops.parameter([-1, -1, -1, -1], np.float32, "state_t")
    out_t = ops.parameter([-1, -1, -1, -1], np.float32, "out_t")

    q = ops.squeeze(q_t, axis_t)  # [B, H, K]
    k = ops.squeeze(k_t, axis_t)  # [B, H, K]
    v = ops.squeeze(v_t, axis_t)  # [B, H, V]
    k_col = ops.unsqueeze(k, minus_one)  # [B, H, K, 1]

    decayed = ops.multiply(state_t, ops.unsqueeze(ops.exp(g_t), minus_one))  # [B, H, K, V]
    kv_mem = ops.reduce_sum(ops.multiply(decayed, k_col), minus_two, False)  # [B, H, V]
    delta = ops.multiply(ops.subtract(v, kv_mem), beta_t)  # [B, H, V]
    new_state = ops.add(decayed, ops.multiply(k_col, ops.unsqueeze(delta, minus_two)))
    step_out = ops.reduce_sum(ops.multiply(new_state, ops.unsqueeze(q, minus_one)), minus_two, True)
    new_out = ops.scatter_update(out_t, ops.unsqueeze(timestep, ops.constant(0, dtype=i32)), step_out, axis_t)

    body = ov.Model(
        [ops.constant([True], dtype=bool), new_state, new_out],
        [timestep, q_t, k_t, v_t, g_t, beta_t, state_t, out_t],
        "gated_delta_rule_step",
    )
    loop = ops.loop(seq_len, ops.constant(True, dtype=bool))
    loop.set_function(body)
    for param, source in ((q_t, query), (k_t, key), (v_t, value), (g_t, g), (beta_t, beta)):
        loop.set_sliced_input(param, source, 0, 1, 1, -1, 2)
    loop.set_merged_input(state_t, state_in, new_state.output(0))
    loop.set_merged_input(out_t, out_init.output(0), new_out.output(0))
    loop.set_special_body_ports([0, 0])

    flat = ops.constant([-1], dtype=i32)
    out_final = ops.reshape(loop.get_iter_value(new_out.output(0), -1), flat, False)
    state_final = ops.reshape(loop.get_iter_value(new_state.output(0), -1), flat, False)
    return [ops.concat([out_final, state_final], 0).output(0)]


def conversion_extensions() -> tuple[dict, list]:
    """The ``(module_extensions, conversion_extensions)`` pair handed to ``openvino.convert_model``."""
    return (
        {GatedDeltaRuleCell: ModuleExtension(GatedDeltaRuleCell, CELL_OP_NAME)},
        [ConversionExtension(CELL_OP_NAME, convert_gated_delta_rule_cell)],
    )
