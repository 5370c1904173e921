"""16-bit MoE expert weights: into the graph straight from the mapped checkpoint.

For a 16-bit model optimum-intel's ``export_pytorch`` runs OpenVINO's ``__make_16bit_traceable``:
``Linear``/``Embedding`` weights reach the graph as 16-bit constants behind a ``Convert`` marked as
decompression, but every other 16-bit parameter is replaced by an f32 copy — among them the
experts' 3-D ``gate_up_proj``/``down_proj``, which are nearly all of a MoE model's weights (4.2×
their bytes of anonymous memory per layer were measured when those copies were turned back into
16-bit constants after conversion).

:func:`held_16bit_experts` therefore takes the expert weights out of the parameters before that
helper runs and gives each experts module a :class:`HeldExpertWeights`: three
:class:`DecompressedWeight` modules that OpenVINO replaces by a custom node (``ModuleExtension``),
converted to ``Constant(16-bit) → Convert(f32)`` (:func:`convert_decompressed_weight`). The constant
shares the tensor's memory: ``down_proj`` is the checkpoint's own mapping, and the gate and up
halves of ``gate_up_proj`` (the pattern OpenVINO fuses into ``GatherMatmul`` needs them as two
weights) are written once to the export's file-backed scratch space (:mod:`.scratch`). Nothing of
the experts is copied into anonymous memory, and no value changes.

The router (``mlp.gate``) is an ordinary parameter cast to f32 by that helper: it is only E·H values
per layer, and in bf16 it crashes OpenVINO 2026.4's CPU plugin on AVX2-only CPUs (the trained MoE
reference, router ``[8, 256]``, segfaults at its first inference), like ``in_proj_a``/``in_proj_b``.

After conversion :func:`mark_expert_decompression` gives those ``Convert`` nodes the decompression
mark the Linear weights' carry, so every OpenVINO pass treats both alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import openvino as ov
import openvino.opset14 as ops
import torch
from openvino.frontend.pytorch import ConversionExtension, ModuleExtension

from ..modeling.sparse_moe import WEIGHTS_ATTRIBUTE, is_sparse_moe
from .scratch import write_tensors

#: rt_info key of OpenVINO's decompression mark (``ov::Decompression``, version 0).
DECOMPRESSION = "decompression_0"
_HALF_TYPES = (ov.Type.bf16, ov.Type.f16)
_HALF = (torch.bfloat16, torch.float16)
DECOMPRESSED_WEIGHT_OP = "Qwen35DecompressedWeightOp"


class DecompressedWeight(torch.nn.Module):
    """A 16-bit weight that the traced graph reads as f32 (``Constant → Convert``).

    ``stored`` is a plain attribute, not a parameter or buffer, so OpenVINO's 16-bit tracing
    helper leaves it alone. ``forward`` runs only outside a trace; traced, the module is one node.
    """

    def __init__(self, stored: torch.Tensor):
        super().__init__()
        self.stored = stored

    def forward(self) -> torch.Tensor:
        return self.stored.float()


class HeldExpertWeights(torch.nn.Module):
    """The gate ``[E, I, H]``, up ``[E, I, H]`` and down ``[E, H, I]`` weights of one experts module."""

    def __init__(self, gate: torch.Tensor, up: torch.Tensor, down: torch.Tensor):
        super().__init__()
        self.gate, self.up, self.down = DecompressedWeight(gate), DecompressedWeight(up), DecompressedWeight(down)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.gate(), self.up(), self.down()


def _placeholder(module: DecompressedWeight, *args, **kwargs) -> torch.Tensor:
    """What the node yields while tracing: an f32 tensor of the weight's shape that owns one value
    (a real f32 copy would be what this module exists to avoid)."""
    return torch.zeros((), dtype=torch.float32).expand(module.stored.shape)


def convert_decompressed_weight(context) -> list:
    """OpenVINO conversion rule: the node's input (the 16-bit constant) converted to f32."""
    return [ops.convert(context.get_input(0), ov.Type.f32).output(0)]


def conversion_extensions() -> tuple[dict, list]:
    """The ``(module_extensions, conversion_extensions)`` pair for :class:`DecompressedWeight`."""
    return (
        {
            DecompressedWeight: ModuleExtension(
                DecompressedWeight,
                DECOMPRESSED_WEIGHT_OP,
                evaluate=_placeholder,
                convert=lambda module, target_op, *args, **kwargs: target_op(module.stored),
            )
        },
        [ConversionExtension(DECOMPRESSED_WEIGHT_OP, convert_decompressed_weight)],
    )


def _hold(experts: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """Take a 16-bit experts module's weights out of its parameters into a :class:`HeldExpertWeights`."""
    gate_up, down = experts.gate_up_proj, experts.down_proj
    inner = gate_up.shape[1] // 2
    halves = write_tensors({"gate": gate_up.data[:, :inner], "up": gate_up.data[:, inner:]})
    if not down.is_contiguous():
        down = write_tensors({"down": down.data})["down"]
    taken = {name: experts._parameters.pop(name) for name in ("gate_up_proj", "down_proj")}
    setattr(experts, WEIGHTS_ATTRIBUTE, HeldExpertWeights(halves["gate"], halves["up"], down.data))
    return taken


@contextlib.contextmanager
def held_16bit_experts(model: torch.nn.Module) -> Iterator[int]:
    """While active, every sparse MoE block of ``model`` with 16-bit experts traces them as
    16-bit constants (see the module docstring). Yields how many experts modules were held;
    restores the parameters on exit."""
    held = []
    try:
        for mlp in (module for module in model.modules() if is_sparse_moe(module)):
            if mlp.experts.gate_up_proj.dtype in _HALF:
                held.append((mlp.experts, _hold(mlp.experts)))
        yield len(held)
    finally:
        for experts, taken in held:
            delattr(experts, WEIGHTS_ATTRIBUTE)
            experts._parameters.update(taken)


def mark_expert_decompression(model: ov.Model) -> int:
    """Give the unmarked ``Convert``s from 16-bit constants the decompression mark of the Linear
    weights' ``Convert``s. Returns how many were marked (0 for an f32 or a dense export)."""
    converts = [
        op
        for op in model.get_ordered_ops()
        if op.get_type_name() == "Convert"
        and op.input_value(0).get_node().get_type_name() == "Constant"
        and op.get_input_element_type(0) in _HALF_TYPES
    ]
    marked = [op for op in converts if DECOMPRESSION in op.get_rt_info()]
    if not marked:
        return 0
    mark = marked[0].get_rt_info()[DECOMPRESSION]
    count = 0
    for op in converts:
        if DECOMPRESSION not in op.get_rt_info():
            op.set_rt_info(mark, DECOMPRESSION)
            count += 1
    return count
