"""The ``hidden_states_decoder_layers`` rt_info points at transformers' per-layer hidden states.

openvino-genai reads it to find the hidden state a draft model (MTP) continues from; a locator
that points at the wrong value would silently feed it garbage, so each one is checked by value.
"""

from __future__ import annotations

import json

import numpy as np
import openvino as ov
import pytest
import torch
from ov_helpers import F32, hf_float32, run_chunks

from optimum_qwen35.exporters.hidden_states import RT_INFO_KEY


def _hidden_states_at_locators(export, ids: np.ndarray) -> dict[int, np.ndarray]:
    """Run the IR with an extra output at every locator: ``{layer: [B, T, hidden]}``."""
    model = ov.Core().read_model(export / "openvino_model.xml")
    layers = json.loads(model.get_rt_info(RT_INFO_KEY).astype(str))["layers"]
    by_name = {op.get_friendly_name(): op for op in model.get_ops()}
    outputs = {int(layer): by_name[loc["producer"]].output(loc["output_index"]) for layer, loc in layers.items()}
    for output in outputs.values():
        model.add_outputs([output])
    compiled = ov.Core().compile_model(model, "CPU", F32)
    request = compiled.create_infer_request()
    run_chunks(compiled, ids, [ids.shape[1]], request)
    first_extra = len(model.outputs) - len(outputs)  # add_outputs appends after the original outputs
    return {layer: request.get_output_tensor(first_extra + k).data.copy() for k, layer in enumerate(outputs)}


@pytest.mark.parametrize("kind", ["text", "hub_dense", "hub_moe"])
def test_locators_hold_transformers_hidden_states(kind, request):
    checkpoint = request.getfixturevalue(f"{kind}_checkpoint")
    export = request.getfixturevalue(f"{kind}_export")
    hf = hf_float32(checkpoint)
    ids = np.random.default_rng(0).integers(0, hf.config.vocab_size, (2, 9))
    with torch.no_grad():
        expected = hf(torch.from_numpy(ids), output_hidden_states=True).hidden_states  # embeddings, then each layer
    actual = _hidden_states_at_locators(export, ids)
    layers = hf.config.num_hidden_layers
    assert sorted(actual) == list(range(layers))
    for layer in range(layers):
        # Layer i's output is transformers' hidden_states[i + 1]; the last one is the normalised value.
        want = expected[layer + 1].numpy()
        error = np.abs(actual[layer] - want).max() / np.abs(want).max()
        assert error <= 1e-4, f"{kind} layer {layer}: relative error {error:.2e}"
