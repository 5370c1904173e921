"""INT8 for the vocabulary tables (embedding, ``lm_head``) in row chunks, a chunk's worth of memory at a time.

NNCF compresses every weight in one piece: for Qwen3.5's 248320-row embedding (tied to ``lm_head``)
it makes an f32 copy plus f32 temporaries of the whole matrix — about 2 GB on the 0.8B shape and
4 GB on the 2B shape, more than the rest of the compression step together, and the peak of the
whole export. INT8 quantization is per row, so the same constants come out of compressing row
chunks one at a time, each with ``nncf.compress_weights`` on a one-``Gather`` model, and joining
them. The result has NNCF's own decompression subgraph (u8 weights, u8 zero point, f16 scale), so
the CPU plugin decompresses it as usual and the main NNCF pass skips it as already compressed.
An untied ``lm_head`` (``[vocab, hidden]``, also quantized per row) is compressed the same way.

NNCF gives its backup precision to the first and last weights it compresses; with the vocabulary
tables already done it would pick two other layers, so the INT4 pass then runs with
``all_layers`` (see :func:`.hooks.install`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import nncf
import numpy as np
import openvino as ov
import openvino.opset14 as ops

from ..exporters.progress import counting
from ..exporters.scratch import spilled_constant
from ..runtime import lm_head, through_converts
from .policy import config_value

#: f32 bytes of embedding compressed at a time (NNCF needs about twice that while it works). Fewer,
#: larger chunks are faster: each chunk is one NNCF call with its own compiled helper models.
CHUNK_BYTES = 256 * 2**20
_FLOAT_TYPES = (ov.Type.f32, ov.Type.f16, ov.Type.bf16)


def _looks_up_tokens(gather: ov.Node) -> bool:
    """Whether a Gather looks up token ids given as a model input: the text LLM's ``input_ids``, or the
    input of the vision-language layout's text-embeddings model, whose result is ``inputs_embeds``
    (optimum-intel names that input ``input``, like the vision position table's, which is not one)."""
    indices = through_converts(gather.input_value(1))
    if indices.get_type_name() != "Parameter":
        return False
    return "input_ids" in indices.output(0).get_names() or "inputs_embeds" in gather.output(0).get_names()


def embedding_constant(model: ov.Model) -> ov.Node | None:
    """The float Constant ``[vocab, hidden]`` that the token-id Gather reads, if there is one."""
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Gather" or not _looks_up_tokens(node):
            continue
        table = through_converts(node.input_value(0))
        if table.get_type_name() == "Constant" and table.get_element_type() in _FLOAT_TYPES:
            return table
    return None


def embedding_mode(config: Any) -> nncf.CompressWeightsMode | None:
    """The INT8 mode NNCF would give the embedding under an optimum-intel weight config, else None.

    INT4 configs give the embedding NNCF's backup precision unless ``all_layers`` is set; INT8
    configs compress it like every other weight. Data-aware configs are left to NNCF.
    """
    get = functools.partial(config_value, config)
    if get("dataset") is not None or get("bits") not in (4, 8):
        return None
    if get("bits") == 8:
        return nncf.CompressWeightsMode.INT8_SYM if get("sym") else nncf.CompressWeightsMode.INT8_ASYM
    if get("all_layers"):
        return None
    backup = get("backup_precision") or "int8_asym"
    return {"int8_asym": nncf.CompressWeightsMode.INT8_ASYM, "int8_sym": nncf.CompressWeightsMode.INT8_SYM}.get(backup)


def _compress_chunk(constant: ov.Node, rows: slice, mode: nncf.CompressWeightsMode) -> ov.Output:
    """NNCF's decompression subgraph for ``constant[rows]`` (its output feeds a Gather)."""
    element_type = constant.get_element_type()
    data = constant.get_data()
    if element_type == ov.Type.bf16:  # numpy has no bf16: the data come as f16-typed raw bits
        data = data.view(np.uint16)
    chunk = data[rows]
    table = ops.constant(ov.Tensor(chunk, list(chunk.shape), element_type), shared_memory=True)
    weights = table if element_type == ov.Type.f32 else ops.convert(table, ov.Type.f32)
    indices = ops.parameter([-1], np.int32, "indices")
    gather = ops.gather(weights, indices, ops.constant(0, np.int32))
    compressed = nncf.compress_weights(ov.Model([gather], [indices]), mode=mode)
    return next(op for op in compressed.get_ordered_ops() if op.get_type_name() == "Gather").input_value(0)


def _constants(output: ov.Output) -> list[ov.Node]:
    """Constants of a decompression subgraph, in a fixed traversal order."""
    node = output.get_node()
    if node.get_type_name() == "Constant":
        return [node]
    return [constant for value in node.input_values() for constant in _constants(value)]


def lm_head_constant(model: ov.Model) -> ov.Node | None:
    """The float weight Constant of the MatMul producing ``logits``, if there is one."""
    matmul = lm_head(model)
    if matmul is None:
        return None
    weight = through_converts(matmul.input_value(1))
    return weight if weight.get_type_name() == "Constant" and weight.get_element_type() in _FLOAT_TYPES else None


def _chunks(constant: ov.Node) -> list[slice]:
    """The row ranges ``constant`` ``[vocab, hidden]`` is compressed in."""
    vocab, hidden = constant.get_output_shape(0)
    rows_per_chunk = max(1, CHUNK_BYTES // (4 * hidden))
    return [slice(start, min(start + rows_per_chunk, vocab)) for start in range(0, vocab, rows_per_chunk)]


def _compress_table(constant: ov.Node, mode: nncf.CompressWeightsMode, chunk_done: Callable[[], None]) -> None:
    """Replace ``constant`` ``[vocab, hidden]`` (and its Converts) by NNCF's INT8 form, chunk by chunk
    (``chunk_done`` called after each)."""
    vocab = constant.get_output_shape(0)[0]
    chunks = _chunks(constant)
    template = _compress_chunk(constant, chunks[0], mode)
    per_row = [c for c in _constants(template) if c.get_output_shape(0)[0] == chunks[0].stop]
    # OpenVINO-owned tensors: the new Constants share them and keep them alive (a numpy array would
    # be freed under the Constant when this function returns).
    full = [ov.Tensor(c.get_element_type(), ov.Shape([vocab, *c.get_output_shape(0)[1:]])) for c in per_row]
    for rows in chunks:
        chunk_output = template if rows is chunks[0] else _compress_chunk(constant, rows, mode)
        chunk_constants = [c for c in _constants(chunk_output) if c.get_output_shape(0)[0] == rows.stop - rows.start]
        for tensor, source in zip(full, chunk_constants, strict=True):
            tensor.data[rows] = source.get_data()
        chunk_done()
    # The first chunk's subgraph becomes the full one: swap in the full-height constants (moved to
    # the export's scratch file, when there is one, so that they are not held in anonymous memory).
    for target, tensor in zip(per_row, full, strict=True):
        replacement = spilled_constant(ops.constant(tensor, shared_memory=True)).output(0)
        for user in list(target.output(0).get_target_inputs()):
            user.replace_source_output(replacement)
    # Every f32 view of the old table (through its Converts) now reads the decompressed table.
    for consumer in list(constant.output(0).get_target_inputs()):
        node = consumer.get_node()
        source = node.output(0) if node.get_type_name() == "Convert" else constant.output(0)
        for target in list(source.get_target_inputs()):
            target.replace_source_output(template)


def compress_vocabulary_tables(model: ov.Model, mode: nncf.CompressWeightsMode) -> bool:
    """Compress the embedding and an untied ``lm_head`` of ``model`` in place; False if neither exists."""
    tables = {}
    for constant in (embedding_constant(model), lm_head_constant(model)):
        if constant is not None:
            tables.setdefault(constant.get_friendly_name(), constant)
    chunks = sum(len(_chunks(constant)) for constant in tables.values())
    # Its own summary line: on a large model these chunks take minutes, often more than NNCF's passes.
    with counting("vocabulary table chunks", chunks, summary=("compressed", "vocabulary table chunks")) as count:
        for constant in tables.values():
            _compress_table(constant, mode, count.advance)
    model.validate_nodes_and_infer_types()
    return bool(tables)
