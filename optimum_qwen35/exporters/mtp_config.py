"""Export config and patcher for the MTP head: ``openvino_mtp_model.xml`` of the vision-language layout.

openvino-genai 2026.4.1 turns MTP speculative decoding on when the folder holds
``openvino_mtp_model.xml`` (next to the language and text-embeddings models) and feeds it by name:
inputs ``hidden_states [B, T, H]`` f32 (the main model's ``lm_head`` input), ``inputs_embeds
[B, T, H]`` f32, ``attention_mask [B, P+T]``, ``position_ids [B, T]`` (2-D) and ``beam_idx``;
output ``last_hidden_state`` f32 (it grafts the main model's ``lm_head`` on it, so the head has
none); one stateful KV pair that its paged-attention conversion replaces. The names and axes are
optimum-intel's (:class:`Qwen3_5MTPOpenVINOConfig`), whose stateful step (``past_key_values.*``
behind ``beam_idx``) the MTP IR goes through; the traced module is ours (:mod:`..modeling.mtp`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Any

import torch
from optimum.exporters.openvino.model_configs import Qwen3_5MTPOpenVINOConfig

from ..checkpoint import checkpoint_folder, files_holding, mtp_tensors
from ..errors import CheckpointError
from ..modeling import locate_text_model
from ..modeling.mtp import PREFIX, MTPHead
from ..modeling.sparse_moe import is_sparse_moe, restore_experts, vectorize_experts
from ..versions import SUPPORTED
from . import weight_dtypes
from .plugin_ir import claim
from .progress import advance
from .scratch import write_tensors

logger = logging.getLogger(__name__)

#: ``config.model_type`` of the exported MTP module: not a text-LLM type, so the plugin's hybrid
#: stateful step leaves it to optimum-intel's KV-cache one.
MTP_MODEL_TYPE = "qwen3_5_mtp"


def mtp_layers(text_config: Any) -> int:
    """``mtp_num_hidden_layers`` of a text config; raises :class:`CheckpointError` above 1."""
    layers = int(getattr(text_config, "mtp_num_hidden_layers", 0) or 0)
    if layers > 1:
        raise CheckpointError(
            f"the checkpoint's text_config.mtp_num_hidden_layers is {layers}; openvino-genai's MTP decoding and "
            "this exporter take one MTP layer (every published Qwen3.5 checkpoint has 1). Fix: set it to 1 (the "
            "first layer's mtp.layers.0.* tensors are then used) or to 0 to export without the MTP head."
        )
    return layers


@functools.lru_cache(maxsize=8)
def has_mtp_tensors(source: str) -> bool:
    """True when the checkpoint at ``source`` (folder or cached hub id) stores ``mtp.*`` tensors.

    Called when the config announces an MTP layer; a checkpoint without them (a fine-tune saved by
    transformers, which drops them) gets one warning and an export without the MTP head.
    """
    folder = checkpoint_folder(source)
    if folder is not None and files_holding(folder, PREFIX):
        return True
    logger.warning(
        "The config announces an MTP layer (mtp_num_hidden_layers: 1) but %s has no mtp.* tensors: the export has "
        "no openvino_mtp_model.xml, so openvino-genai cannot use MTP speculative decoding with it.",
        source,
    )
    return False


def load_mtp_head(model: torch.nn.Module) -> MTPHead:
    """The MTP head of a loaded composite model, from its checkpoint's ``mtp.*`` tensors.

    Raises :class:`CheckpointError` when they are incomplete or do not match the config.
    """
    parts = locate_text_model(model)
    source = model.config._name_or_path
    folder = checkpoint_folder(source)
    dtype = parts.text_model.embed_tokens.weight.dtype
    with torch.device("meta"):  # the parameters are the checkpoint's tensors (or scratch copies) below
        head = MTPHead(parts.text_model, parts.config).to(dtype)
    tensors = mtp_tensors(folder)
    if any(tensor.dtype != dtype for tensor in tensors.values()):
        tensors = write_tensors(tensors, dtype)
    try:
        head.load_mtp_tensors(tensors, stack=lambda parts: write_tensors({"stacked": parts})["stacked"])
    except ValueError as error:
        raise CheckpointError(
            f"{source}: the MTP tensors do not match the config ({error}). Fix: use the checkpoint's own config.json, "
            "or set text_config.mtp_num_hidden_layers to 0 to export without the MTP head."
        ) from None
    head.config.model_type = MTP_MODEL_TYPE
    return head.eval()


class Qwen35MTPPatcher:
    """Context manager tracing :class:`MTPHead` with optimum-intel's MTP input and output names."""

    def __init__(self, config: Any, model: MTPHead, model_kwargs: dict | None = None):
        self._model = model

        def forward(
            hidden_states: torch.Tensor,
            inputs_embeds: torch.Tensor,
            attention_mask: torch.Tensor,
            position_ids: torch.Tensor,
            past_key_values: list[tuple[torch.Tensor, torch.Tensor]],
        ) -> dict:
            ((past_key, past_value),) = past_key_values
            last, key, value = MTPHead.forward(
                model, hidden_states, inputs_embeds, attention_mask, position_ids, past_key, past_value
            )
            return {"last_hidden_state": last, "present_key_values": [key, value]}

        self.orig_forward = forward
        self.patched_forward = forward
        self.module_extensions, self.conversion_extensions = weight_dtypes.conversion_extensions()
        self._held_experts = contextlib.ExitStack()

    def __enter__(self) -> Qwen35MTPPatcher:
        advance("trace")
        self._model.forward = self.patched_forward
        if is_sparse_moe(self._model.layers[0].mlp):
            vectorize_experts(self._model.layers[0].mlp)
        self._held_experts.enter_context(weight_dtypes.held_16bit_experts(self._model))
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self._held_experts.close()
        if is_sparse_moe(self._model.layers[0].mlp):
            restore_experts(self._model.layers[0].mlp)
        del self._model.forward


@claim
class Qwen35MTPOpenVINOConfig(Qwen3_5MTPOpenVINOConfig):
    """optimum-intel's MTP names and axes; our head, patcher and example inputs."""

    MIN_TRANSFORMERS_VERSION = SUPPORTED["transformers"][0]
    MAX_TRANSFORMERS_VERSION = "5.5.99"
    _MODEL_PATCHER = Qwen35MTPPatcher

    def patch_model_for_export(self, model: torch.nn.Module, model_kwargs: dict | None = None) -> Qwen35MTPPatcher:
        return Qwen35MTPPatcher(self, model, model_kwargs)

    def generate_dummy_inputs(self, framework: str = "pt", **input_shapes) -> dict:
        """``hidden_states``/``inputs_embeds [2, 8, H]``, 8 cached positions, one KV pair."""
        text = self._text_config
        batch, length, past = 2, 8, 8
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        kv = (batch, text.num_key_value_heads, past, head_dim)
        return {
            "hidden_states": torch.randn(batch, length, text.hidden_size),
            "inputs_embeds": torch.randn(batch, length, text.hidden_size),
            "attention_mask": torch.ones(batch, past + length, dtype=torch.int64),
            "position_ids": torch.arange(past, past + length).expand(batch, -1).contiguous(),
            "past_key_values": [(torch.randn(kv) * 0.1, torch.randn(kv) * 0.1)],
        }
