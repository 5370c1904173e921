"""Stateful step: normalise dtypes, add ``beam_idx``, hide every state inside the model.

Order matters. Dtypes first: states and logits must be f32 in the IR whatever the checkpoint's
dtype, because the CPU plugin's ReadValue/Assign pair breaks on a bf16/f32 mismatch and states
kept in bf16 lose the recurrence's precision. Then optimum-intel's public helpers add one
``beam_idx`` Gather in front of every state (so beam search reorders conv, recurrent and KV state
alike) and turn the state inputs/outputs into variables.
"""

from __future__ import annotations

import openvino as ov
import openvino.opset14 as ops
from optimum.exporters.openvino.stateful import fuse_cache_reorder, make_stateful

STATE_INPUT_PREFIX = "cache_params.past."
STATE_OUTPUT_PREFIX = "cache_params.present."
BATCH_AXIS = 0


def _is_state(port: ov.Output, prefix: str) -> bool:
    return any(name.startswith(prefix) for name in port.get_names())


def normalise_dtypes(model: ov.Model) -> None:
    """Make every state input/output and ``logits`` f32, inserting Converts where they are not."""
    f32 = ov.Type.f32
    for parameter in model.get_parameters():
        port = parameter.output(0)
        if _is_state(port, STATE_INPUT_PREFIX) and port.get_element_type() != f32:
            original = port.get_element_type()
            consumers = list(port.get_target_inputs())
            parameter.set_element_type(f32)
            converted = ops.convert(port, original)
            for consumer in consumers:
                consumer.replace_source_output(converted.output(0))
    for result in model.get_results():
        source = result.input_value(0)
        names = result.output(0).get_names()
        wants_f32 = "logits" in names or any(name.startswith(STATE_OUTPUT_PREFIX) for name in names)
        if wants_f32 and source.get_element_type() != f32:
            converted = ops.convert(source, f32)
            converted.output(0).get_tensor().set_names(set(names))
            result.input(0).replace_source_output(converted.output(0))
    model.validate_nodes_and_infer_types()


def make_hybrid_stateful(model: ov.Model) -> None:
    """Turn ``cache_params.*`` inputs/outputs into variables behind a ``beam_idx`` input."""
    normalise_dtypes(model)
    state_inputs = [p.get_any_name() for p in model.inputs if _is_state(p, STATE_INPUT_PREFIX)]
    state_outputs = [p.get_any_name() for p in model.outputs if _is_state(p, STATE_OUTPUT_PREFIX)]
    other_inputs = [p for p in model.inputs if not _is_state(p, STATE_INPUT_PREFIX)]
    fuse_cache_reorder(model, other_inputs, state_inputs, BATCH_AXIS)
    make_stateful(model, other_inputs, state_inputs, state_outputs, BATCH_AXIS)
