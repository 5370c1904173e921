"""16-bit MoE weights: give the experts back the checkpoint's 16-bit type.

For a 16-bit model optimum-intel's ``export_pytorch`` runs OpenVINO's ``__make_16bit_traceable``:
``Linear``/``Embedding`` weights reach the graph as 16-bit constants behind a ``Convert`` marked as
decompression, but every other 16-bit parameter is replaced by an f32 copy — among them the MoE
router (``mlp.gate.weight [E, H]``) and the experts' 3-D ``gate_up_proj``/``down_proj``, which
are nearly all of a MoE model's weights. :func:`restore_16bit_moe_weights` runs on the converted
graph, before the stateful step, and turns each expert f32 constant back into the 16-bit
``Constant → Convert(f32)`` form the Linear weights have (same type, same decompression mark), so
the IR keeps the checkpoint's precision and the CPU plugin still fuses the experts into
``GatherMatmul``.

The router stays f32, like the Gated DeltaNet ``in_proj_a``/``in_proj_b`` (see the patcher): a
bf16 router crashes OpenVINO 2026.4's CPU plugin on AVX2-only CPUs (the trained MoE reference,
router ``[8, 256]``, segfaults at its first inference), and it is only E·H values per layer (under
0.1% of Qwen3.5-35B-A3B's weights).

The 16-bit type is the one the graph's Linear weights carry: an f32 export (an f32 checkpoint,
``--weight-format fp32``) has none and is left alone. A constant is converted only when every
value round-trips exactly through that type — true of a copy of a 16-bit parameter; anything
else stays f32.
"""

from __future__ import annotations

import logging

import numpy as np
import openvino as ov
import openvino.opset14 as ops

log = logging.getLogger(__name__)

#: rt_info key of OpenVINO's decompression mark (``ov::Decompression``, version 0).
DECOMPRESSION = "decompression_0"
_HALF_TYPES = (ov.Type.bf16, ov.Type.f16)


def _decompression_converts(model: ov.Model) -> list[ov.Node]:
    """The ``Convert``s from a 16-bit constant that the frontend marked as weight decompression."""
    return [
        op
        for op in model.get_ordered_ops()
        if op.get_type_name() == "Convert"
        and DECOMPRESSION in op.get_rt_info()
        and op.input_value(0).get_node().get_type_name() == "Constant"
        and op.get_input_element_type(0) in _HALF_TYPES
    ]


def expert_weight_constants(model: ov.Model) -> list[ov.Node]:
    """The f32 constants that are expert weights: the only 3-D constant weights of a MatMul
    (the vectorised experts' ``bmm``: gate, up and down of every MoE block)."""
    found = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        weight = op.input_value(1).get_node()
        if (
            weight.get_type_name() == "Constant"
            and weight.get_output_element_type(0) == ov.Type.f32
            and len(weight.get_output_shape(0)) == 3
        ):
            found.append(weight)
    return found


def exact_16bit_tensor(values: np.ndarray, element_type: ov.Type) -> ov.Tensor | None:
    """``values`` (f32) as an ``element_type`` tensor, or None unless every value round-trips exactly."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    tensor = ov.Tensor(element_type, ov.Shape(list(values.shape)))
    if element_type == ov.Type.bf16:
        # bf16 is the upper half of f32: exact iff every lower half is zero (little-endian halves).
        halves = values.view(np.uint16).reshape(-1, 2)
        if halves[:, 0].any():
            return None
        tensor.data.view(np.uint16).reshape(-1)[:] = halves[:, 1]
    else:
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values):
            return None
        tensor.data.view(np.float16)[...] = half
    return tensor


def restore_16bit_moe_weights(model: ov.Model) -> int:
    """Replace the experts' f32 constants by 16-bit ``Constant → Convert`` pairs.

    Returns how many were replaced (0 for an f32 or a dense export).
    """
    marked = _decompression_converts(model)
    if not marked:
        return 0
    element_type = marked[0].get_input_element_type(0)
    mark = marked[0].get_rt_info()[DECOMPRESSION]
    replaced = kept = 0
    for constant in expert_weight_constants(model):
        tensor = exact_16bit_tensor(constant.get_data(), element_type)
        if tensor is None:
            kept += 1
            continue
        weight = ops.constant(tensor)
        weight.set_friendly_name(constant.get_friendly_name())
        decompress = ops.convert(weight, ov.Type.f32)
        decompress.set_rt_info(mark, DECOMPRESSION)
        constant.output(0).replace(decompress.output(0))  # every consumer, so each constant is seen once
        replaced += 1
    if kept:
        log.warning("%d expert weight(s) are not exactly %s and stay f32", kept, element_type.get_type_name())
    model.validate_nodes_and_infer_types()
    return replaced
