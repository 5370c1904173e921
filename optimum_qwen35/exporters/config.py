"""OpenVINO export config for Qwen3.5 text generation (``text-generation[-with-past]``).

Registered for the text (``qwen3_5_text``) and composite (``qwen3_5``) model types; the composite
keeps optimum-intel's own ``image-text-to-text`` entry, because a registration only replaces
the tasks it names. The class constants are what optimum-intel reads: the patcher to trace with
and the transformers range the export is tested on.
"""

from __future__ import annotations

from collections import OrderedDict

from optimum.exporters.openvino.config import TextDecoderWithPositionIdsOpenVINOConfig
from optimum.utils import NormalizedTextConfig

from ..modeling.state_layout import StateLayout
from ..versions import SUPPORTED
from .dummy_inputs import dummy_inputs
from .patcher import Qwen35TextPatcher
from .plugin_ir import claim

TASKS = ("text-generation", "text-generation-with-past")
#: The vision-language layout's task (``exporters/vlm_config.py``).
VLM_TASK = "image-text-to-text"


@claim
class Qwen35TextOpenVINOConfig(TextDecoderWithPositionIdsOpenVINOConfig):
    """Inputs ``input_ids``, ``attention_mask``, ``position_ids`` (+ states); outputs ``logits`` (+ states)."""

    MIN_TRANSFORMERS_VERSION = SUPPORTED["transformers"][0]
    MAX_TRANSFORMERS_VERSION = "5.5.99"
    NORMALIZED_CONFIG_CLASS = NormalizedTextConfig
    _MODEL_PATCHER = Qwen35TextPatcher

    def __init__(self, config, *args, **kwargs):
        # A composite (vision-language) config exports its language model: work from the text part.
        super().__init__(config.get_text_config(), *args, **kwargs)
        self._orig_config = config
        self.layout = StateLayout.from_text_config(self._config)

    def _state_axes(self, direction: str) -> dict[str, dict[int, str]]:
        sequence = "past_sequence_length" if direction == "past" else "past_sequence_length + sequence_length"
        names = self.layout.state_names(direction)
        kinds = [kind for kind, _ in self.layout.state_shapes(1, 0)]
        return {
            name: {0: "batch_size", 2: sequence} if kind in ("key", "value") else {0: "batch_size"}
            for name, kind in zip(names, kinds, strict=True)
        }

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        total = "past_sequence_length + sequence_length" if self.use_past_in_inputs else "sequence_length"
        inputs = {
            "input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: total},
            "position_ids": {0: "batch_size", 1: "sequence_length"},
        }
        if self.use_past_in_inputs:
            inputs.update(self._state_axes("past"))
        return inputs

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        outputs = OrderedDict({"logits": {0: "batch_size", 1: "sequence_length"}})
        if self.use_past:
            outputs.update(self._state_axes("present"))
        return outputs

    def generate_dummy_inputs(self, framework: str = "pt", **input_shapes) -> dict:
        return dummy_inputs(self.layout, with_past=self.use_past_in_inputs)
