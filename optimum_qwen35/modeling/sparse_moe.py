"""Qwen3.5-MoE experts in the static, vectorised form OpenVINO fuses into ``GatherMatmul``.

transformers runs the experts of a sparse MoE block as a Python loop over the experts that were
hit (``nonzero`` and ``index_add_``): traced, that loop freezes which experts run. While the model
is exported, every ``…Experts`` module's ``forward`` is replaced by :func:`vectorized_experts_forward`;
the rest of the block (router softmax → top-k → renormalisation, shared expert with its sigmoid
gate) is transformers' own code and traces as it is.

The vectorised form computes every expert for every token and weighs the results with a dense
routing matrix. Written exactly this way (``Reshape → Tile → Reshape → MatMul×2 (gate, up) →
Swish·up → MatMul (down) → Reshape → Multiply(routing from ScatterElementsUpdate → Transpose →
Reshape → Unsqueeze) → ReduceSum``) it is the pattern of OpenVINO's
``ConvertTiledMoeBlockTo3GatherMatmuls``: the CPU plugin turns it into ``GatherMatmul`` nodes that
compute only the routed experts, so the dense form costs nothing at run time on CPU.
"""

from __future__ import annotations

import types

import torch

#: Marks an experts module whose ``forward`` the export replaced (and must restore).
_PATCHED = "_optimum_qwen35_vectorized"
#: Where an export may hold an experts module's weights for the trace: a module returning
#: ``(gate [E, I, H], up [E, I, H], down [E, H, I])`` (``exporters.weight_dtypes``).
WEIGHTS_ATTRIBUTE = "_optimum_qwen35_weights"


def expert_weights(experts: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(gate [E, I, H], up [E, I, H], down [E, H, I])`` of an experts module: what the export holds
    for it, or views of its ``gate_up_proj`` (gate rows first) and ``down_proj``."""
    held = getattr(experts, WEIGHTS_ATTRIBUTE, None)
    if held is not None:
        return held()
    gate, up = experts.gate_up_proj.chunk(2, dim=1)
    return gate, up, experts.down_proj


def vectorized_experts_forward(
    experts: torch.nn.Module,
    hidden_states: torch.Tensor,
    top_k_index: torch.Tensor,
    top_k_weights: torch.Tensor,
) -> torch.Tensor:
    """Drop-in for ``Qwen3_5MoeExperts.forward``, traceable and fused by OpenVINO.

    Args:
        experts: the transformers experts module: ``gate_up_proj [E, 2I, H]`` (gate rows first),
            ``down_proj [E, H, I]``, ``act_fn``.
        hidden_states: ``[N, H]`` tokens; top_k_index, top_k_weights: ``[N, k]`` from the router.

    Returns:
        ``[N, H]``: ``sum_k weight_k · down_e(act(gate_e(x)) · up_e(x))`` over the routed experts.
    """
    gate_weight, up_weight, down_weight = expert_weights(experts)
    num_experts, hidden = gate_weight.shape[0], hidden_states.shape[-1]
    routing = torch.zeros(hidden_states.shape[0], num_experts, dtype=top_k_weights.dtype)
    routing = routing.scatter(1, top_k_index, top_k_weights)  # [N, E], zero for experts not chosen

    # Separate gate and up MatMuls (the 3-GEMM pattern): two weights, not a slice of one.
    tiled = hidden_states.repeat(num_experts, 1).view(num_experts, -1, hidden)  # [E, N, H]
    gate = torch.bmm(tiled, gate_weight.transpose(1, 2))
    up = torch.bmm(tiled, up_weight.transpose(1, 2))
    out = torch.bmm(experts.act_fn(gate) * up, down_weight.transpose(1, 2))  # [E, N, H]
    out = out.view(num_experts, -1, 1, hidden) * routing.transpose(0, 1).view(num_experts, -1, 1)[..., None]
    return out.sum(dim=0).view(-1, hidden).to(hidden_states.dtype)


def is_sparse_moe(mlp: torch.nn.Module) -> bool:
    """True for a sparse MoE block (router ``gate`` + ``experts`` holding 3-D expert weights)."""
    experts = getattr(mlp, "experts", None)
    if experts is None:
        return False
    if hasattr(experts, WEIGHTS_ATTRIBUTE):
        return True
    return getattr(getattr(experts, "gate_up_proj", None), "ndim", 0) == 3


def vectorize_experts(mlp: torch.nn.Module) -> None:
    """Replace ``mlp.experts.forward`` by :func:`vectorized_experts_forward` (undo: :func:`restore_experts`)."""
    mlp.experts.forward = types.MethodType(vectorized_experts_forward, mlp.experts)
    setattr(mlp.experts, _PATCHED, True)


def restore_experts(mlp: torch.nn.Module) -> None:
    """Give ``mlp.experts`` back its class ``forward``."""
    if getattr(mlp.experts, _PATCHED, False):
        del mlp.experts.forward
        delattr(mlp.experts, _PATCHED)
