"""Export configs of the vision-language layout (``--task image-text-to-text``).

The layout openvino-genai's ``VLMPipeline``, OVMS's VLM servable and optimum-intel's
``OVModelForVisualCausalLM`` load, one IR per part (``openvino_<behaviour>_model.xml``):

* ``language``: the plugin's static decoder fed embeddings (:class:`Qwen35LanguageOpenVINOConfig`):
  ``inputs_embeds [B, T, H]``, ``attention_mask [B, P+T]``, ``position_ids [4, B, T]`` (row 0 text
  positions, rows 1–3 the mRoPE axes, as GenAI and transformers lay them out), ``beam_idx``, every
  state inside; output ``logits`` straight from the ``lm_head`` MatMul (GenAI's MTP decoding reads
  that MatMul's input as the hidden state);
* ``text_embeddings``, ``vision_embeddings`` (patch embedding), ``vision_embeddings_merger``
  (vision blocks and merger), ``vision_embeddings_pos`` (position table): optimum-intel's own
  configs, which trace transformers' modules unchanged on every supported release;
* ``mtp``: the MTP head (:mod:`.mtp_config`) when the checkpoint has one.

optimum-intel's own config (which this one extends) stops at transformers 5.2 and builds its
language model with a patcher that imports 5.2's cache class.
"""

from __future__ import annotations

from typing import Any

import torch
from optimum.exporters.openvino.model_configs import (
    Qwen3_5OpenVINOConfig,
    QwenVLConfigBehavior,
    get_vlm_text_embeddings_config,
)

from ..versions import SUPPORTED
from .config import VLM_TASK, Qwen35TextOpenVINOConfig
from .mtp_config import Qwen35MTPOpenVINOConfig, has_mtp_tensors, load_mtp_head, mtp_layers
from .patcher import Qwen35LanguagePatcher
from .plugin_ir import claim

TASK = VLM_TASK
#: mRoPE position rows the language model takes: text positions, then temporal, height, width.
POSITION_ROWS = 4


class Qwen35LanguageOpenVINOConfig(Qwen35TextOpenVINOConfig):
    """Inputs ``inputs_embeds``, ``attention_mask``, ``position_ids [4, B, T]`` (+ states); outputs ``logits``."""

    _MODEL_PATCHER = Qwen35LanguagePatcher

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        inputs = super().inputs
        inputs.pop("input_ids")
        inputs["position_ids"] = {1: "batch_size", 2: "sequence_length"}
        return {"inputs_embeds": {0: "batch_size", 1: "sequence_length"}, **inputs}

    def generate_dummy_inputs(self, framework: str = "pt", **input_shapes) -> dict:
        inputs = super().generate_dummy_inputs(framework, **input_shapes)
        input_ids = inputs.pop("input_ids")
        # Distinct axes, so no part of the mRoPE graph is specialised to equal rows.
        positions = inputs["position_ids"]
        offsets = torch.arange(POSITION_ROWS)[:, None, None]
        return {
            "inputs_embeds": torch.randn(*input_ids.shape, self._config.hidden_size),
            "attention_mask": inputs["attention_mask"],
            "position_ids": positions[None] + offsets,
            **({"cache_params": inputs["cache_params"]} if "cache_params" in inputs else {}),
        }


@claim
class Qwen35VisionLanguageOpenVINOConfig(Qwen3_5OpenVINOConfig):
    """optimum-intel's Qwen3.5 VLM config with the plugin's language model and MTP head, on 5.2–5.5."""

    MIN_TRANSFORMERS_VERSION = SUPPORTED["transformers"][0]
    MAX_TRANSFORMERS_VERSION = "5.5.99"

    def __init__(self, config: Any, *args, **kwargs):
        mtp_layers(config.get_text_config())  # refuse mtp_num_hidden_layers > 1 before any work
        super().__init__(config, *args, **kwargs)
        mtp = QwenVLConfigBehavior.MTP.value
        if mtp in self.SUPPORTED_BEHAVIORS and not has_mtp_tensors(str(config._name_or_path)):
            self.SUPPORTED_BEHAVIORS = [b for b in self.SUPPORTED_BEHAVIORS if b != mtp]

    def with_behavior(self, behavior: str | QwenVLConfigBehavior):
        behavior = QwenVLConfigBehavior(behavior)
        text_config = self._orig_config.text_config
        if behavior == QwenVLConfigBehavior.LANGUAGE:
            return Qwen35LanguageOpenVINOConfig(
                text_config, task="text-generation-with-past", use_past=True, use_past_in_inputs=True,
                int_dtype=self.int_dtype, float_dtype=self.float_dtype,
            )  # fmt: skip
        if behavior == QwenVLConfigBehavior.TEXT_EMBEDDINGS:
            return claim(get_vlm_text_embeddings_config(
                text_config.model_type, text_config, self.int_dtype, self.float_dtype,
                self.MIN_TRANSFORMERS_VERSION, self.MAX_TRANSFORMERS_VERSION,
            ))  # fmt: skip
        if behavior == QwenVLConfigBehavior.MTP:
            return Qwen35MTPOpenVINOConfig(self._orig_config, int_dtype=self.int_dtype, float_dtype=self.float_dtype)
        return super().with_behavior(behavior)

    @staticmethod
    def get_model_for_behavior(model: torch.nn.Module, behavior: str | QwenVLConfigBehavior):
        behavior = QwenVLConfigBehavior(behavior)
        if behavior == QwenVLConfigBehavior.MTP:
            return load_mtp_head(model)
        return Qwen3_5OpenVINOConfig.get_model_for_behavior(model, behavior)
