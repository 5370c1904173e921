"""Where the IR's per-layer hidden states are: the ``hidden_states_decoder_layers`` rt_info.

openvino-genai finds a model's hidden states (for MTP and other draft-model features) through this
rt_info, which optimum-intel's ``add_hidden_states_rt_info`` writes: ``{"layers": {"<i>":
{"producer": <friendly name>, "output_index": <n>}}}``, where layer ``i < L-1`` points at the
``[B, T, hidden]`` value leaving decoder layer ``i`` (the one entering layer ``i+1``) and layer
``L-1`` at the normalised value the ``lm_head`` reads. optimum-intel locates them by matching the
friendly names of ops scoped under one decoder layer that feed the next one; in our static decoder
the residual additions sit between the layers, outside any layer's scope, so that search finds
nothing and every export logged "Skipping hidden-state RT-info annotation". The static decoder
knows exactly where the values are: the one input of layer ``i+1``'s ``input_layernorm`` that
comes from outside it, and the ``lm_head`` MatMul's input.
"""

from __future__ import annotations

import json
from collections import Counter

import openvino as ov
import torch

from ..modeling import locate_text_model
from ..runtime import lm_head, through_converts

RT_INFO_KEY = "hidden_states_decoder_layers"
#: The TorchScript trace names a module's ops after its path in the traced model.
TRACE_SCOPE = "__module.{path}"


def _in_scope(node: ov.Node, scope: str) -> bool:
    name = node.get_friendly_name()
    return name == scope or name.startswith((scope + "/", scope + "."))


def _entering(ops: list[ov.Node], scope: str, hidden_size: int) -> set[tuple[str, int]]:
    """``(producer, output index)`` of every ``[?, ?, hidden]`` value that ops in ``scope`` read from outside it."""
    found = set()
    for op in ops:
        if not _in_scope(op, scope):
            continue
        for port in op.inputs():
            source = port.get_source_output()
            if through_converts(source).get_type_name() == "Constant":  # the norm's own [1, 1, hidden] weight
                continue
            shape = source.get_partial_shape()
            hidden = shape.rank.is_static and len(shape) == 3 and shape[2].is_static
            if hidden and shape[2].get_length() == hidden_size and not _in_scope(source.get_node(), scope):
                found.add((source.get_node().get_friendly_name(), source.get_index()))
    return found


def input_norm_scopes(source_model: torch.nn.Module) -> list[str]:
    """Trace scope of every decoder layer's ``input_layernorm``: ``__module.model.layers.{i}...`` for a
    text model, ``__module.model.language_model.layers.{i}...`` for a composite one."""
    layers = locate_text_model(source_model).text_model.layers
    paths = {id(module): path for path, module in source_model.named_modules()}
    return [TRACE_SCOPE.format(path=paths[id(layer.input_layernorm)]) for layer in layers]


def hidden_state_locators(model: ov.Model, scopes: list[str], hidden_size: int) -> dict[str, dict]:
    """The rt_info value for ``model``: one ``{producer, output_index}`` per decoder layer.

    Raises ValueError when a layer's boundary is not one uniquely named value (the annotation
    would then point somewhere wrong; better none).
    """
    ops = model.get_ordered_ops()
    counts = Counter(op.get_friendly_name() for op in ops)
    layers = {}
    num_layers = len(scopes)
    for index in range(num_layers - 1):
        entering = _entering(ops, scopes[index + 1], hidden_size)
        if len(entering) != 1:
            raise ValueError(f"layer {index + 1}'s input_layernorm reads {len(entering)} hidden-size values")
        (producer, output), *_ = entering
        layers[str(index)] = {"producer": producer, "output_index": output}
    head = lm_head(model)
    if head is None:
        raise ValueError("no lm_head MatMul in front of logits")
    final = head.input_value(0)
    if final.get_node().get_type_name() == "Convert":  # a 16-bit lm_head input: point at the value itself
        final = through_converts(final).output(0)
    layers[str(num_layers - 1)] = {"producer": final.get_node().get_friendly_name(), "output_index": final.get_index()}
    names = [locator["producer"] for locator in layers.values()]
    if len(set(names)) != len(names) or any(counts[name] != 1 for name in names):
        raise ValueError("hidden-state producers are not uniquely named")
    return {"layers": layers}


def annotate_hidden_states(model: ov.Model, source_model: torch.nn.Module, hidden_size: int) -> None:
    """Write :data:`RT_INFO_KEY` into ``model``'s rt_info (JSON, as optimum-intel writes it)."""
    annotation = hidden_state_locators(model, input_norm_scopes(source_model), hidden_size)
    model.set_rt_info(json.dumps(annotation, separators=(",", ":")), RT_INFO_KEY)
