"""Patcher: swaps a Qwen3.5 model's forward for the static decoder while it is traced.

optimum-intel's ``export_pytorch`` uses a patcher as a context manager and reads four attributes
from it: ``orig_forward`` (for argument order), ``patched_forward`` (what gets traced),
``module_extensions`` and ``conversion_extensions`` (handed to ``openvino.convert_model``).
Everything is restored on exit, even if tracing fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from ..modeling import StaticQwen35Decoder, delta_rule_cell
from . import weight_dtypes
from .progress import advance, counting


@contextlib.contextmanager
def counted_layers(decoder: StaticQwen35Decoder) -> Iterator[None]:
    """Count the decoder's layers on the export's display while the block runs it ("layer 3/8, ETA").

    The trace is one forward pass, and each layer's part of it (reading the layer's weights from
    the mapped checkpoint, running its ops, recording them) takes about the same time."""
    with counting("layer", len(decoder.layer_types), summary=("traced", "layers"), every_item=True) as count:
        decoder.layer_done = count.advance
        try:
            yield
        finally:
            decoder.layer_done = None


class Qwen35TextPatcher:
    """Context manager that makes a transformers Qwen3.5 model traceable as a stateful text LLM."""

    def __init__(self, config: Any, model: torch.nn.Module, model_kwargs: dict | None = None):
        self._model = model
        self._decoder = StaticQwen35Decoder(model)
        self._with_past = bool(getattr(config, "use_past_in_inputs", False))
        cell_modules, cell_conversions = delta_rule_cell.conversion_extensions()
        weight_modules, weight_conversions = weight_dtypes.conversion_extensions()
        self.module_extensions = cell_modules | weight_modules
        self.conversion_extensions = cell_conversions + weight_conversions
        self._held_experts = contextlib.ExitStack()

        forward = self._traced_forward()
        self.orig_forward = forward
        self.patched_forward = forward
        self._had_instance_forward = False
        self._saved_forward = None
        self._saved_weights: list[tuple[torch.nn.Module, torch.nn.Parameter]] = []

    def _traced_forward(self):
        """The function traced: ``(input_ids, attention_mask, position_ids, cache_params)`` (its
        argument names are the IR's input names, in this order)."""
        decoder, with_past = self._decoder, self._with_past

        def forward(
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            position_ids: torch.Tensor,
            cache_params: list[torch.Tensor] | None = None,
        ) -> dict:
            states = cache_params if with_past else decoder.empty_state(input_ids.shape[0])
            with counted_layers(decoder):
                outputs = decoder(input_ids, attention_mask, position_ids, states)
            if not with_past:
                outputs.pop("present_key_values")
            return outputs

        return forward

    def _upcast_gate_projections(self) -> None:
        """Give the narrow projections f32 weights for the trace: the Gated DeltaNet
        ``in_proj_a``/``in_proj_b`` and the MoE ``shared_expert_gate``.

        OpenVINO 2026.4's CPU plugin crashes (SIGSEGV at the first inference) on AVX2-only CPUs
        when the two Gated DeltaNet ones (``linear_num_value_heads`` outputs, e.g. [8, 256]) carry
        bf16 weights next to the other bf16 projections of the same input. The shared expert gate
        ([1, hidden]) is never compressed (``compression.policy.MOE_SHARED_EXPERT_GATE``), so in f32
        it is the same in every export instead of the one bf16 weight of an INT4 IR. In f32 they
        cost a few KB per layer; the wider projections stay 16-bit.
        """
        for module in self._model.modules():
            for name in ("in_proj_a", "in_proj_b", "shared_expert_gate"):
                linear = getattr(module, name, None)
                if isinstance(linear, torch.nn.Linear) and linear.weight.dtype in (torch.bfloat16, torch.float16):
                    self._saved_weights.append((linear, linear.weight))
                    linear.weight = torch.nn.Parameter(linear.weight.float(), requires_grad=False)

    def __enter__(self) -> Qwen35TextPatcher:
        advance("trace")
        self._had_instance_forward = "forward" in self._model.__dict__
        self._saved_forward = self._model.__dict__.get("forward")
        self._model.forward = self.patched_forward
        self._upcast_gate_projections()
        self._decoder.attach_cells()
        self._held_experts.enter_context(weight_dtypes.held_16bit_experts(self._model))
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self._held_experts.close()
        self._decoder.detach_cells()
        for linear, weight in reversed(self._saved_weights):
            linear.weight = weight
        self._saved_weights.clear()
        if self._had_instance_forward:
            self._model.forward = self._saved_forward
        else:
            del self._model.forward


class Qwen35LanguagePatcher(Qwen35TextPatcher):
    """The vision-language layout's language model: the same static decoder, fed embeddings.

    Traces ``(inputs_embeds [B, T, hidden], attention_mask [B, P+T], position_ids [4, B, T],
    cache_params)``; the text embeddings and the vision tower are separate models of the layout.
    """

    def _traced_forward(self):
        decoder = self._decoder

        def forward(
            inputs_embeds: torch.Tensor,
            attention_mask: torch.Tensor,
            position_ids: torch.Tensor,
            cache_params: list[torch.Tensor],
        ) -> dict:
            with counted_layers(decoder):
                return decoder.forward_embeds(inputs_embeds, attention_mask, position_ids, cache_params)

        return forward
