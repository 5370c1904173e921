"""The second compression pass: INT8 for the weights the INT4 pass left out by policy.

``nncf.compress_weights`` takes one primary precision per call. The policy wants INT4 for most
weights and INT8 for the Gated DeltaNet and full attention projections, ``mlp.down_proj`` (MoE:
the shared expert's) and the MoE router, so the INT4 pass ignores
those weights (the :func:`.policy.is_int8_pattern` patterns in its ignored scope) and this pass
compresses exactly them to INT8. NNCF skips weights that are already compressed, and everything
that does not match a policy pattern is ignored here, so nothing is compressed twice and weights
the user chose to ignore stay as they are. optimum-intel's GPT-OSS recipe uses the same two-pass
scheme.
"""

from __future__ import annotations

import re

import nncf
import openvino as ov

#: OpenVINO op types NNCF can compress weights of.
_WEIGHTED_OPS = {"MatMul", "Gather", "Convolution", "GroupConvolution", "ConvolutionBackpropData"}


def unique_friendly_names(model: ov.Model) -> None:
    """Give every op a friendly name no other op has (NNCF builds its graph by friendly name).

    The first pass names its new nodes ``Constant_<id>`` from this process's counter; a model read
    from an IR another process wrote already holds such names from that process's counter, so the
    two can collide ("More than one node in NNCFGraph matches name Constant_142019"). A renamed op
    keeps its name with a suffix; tensor names, which inputs and outputs are found by, are untouched.
    """
    seen: set[str] = set()
    for op in model.get_ordered_ops():
        name = op.get_friendly_name()
        if name in seen:
            suffix = 1
            while f"{name}_{suffix}" in seen:
                suffix += 1
            name = f"{name}_{suffix}"
            op.set_friendly_name(name)
        seen.add(name)


def compress_int8(model: ov.Model, patterns: list[str]) -> ov.Model:
    """Compress the weights whose node names match ``patterns`` to INT8 asymmetric, per channel.

    ``model`` is modified in place and returned. Weight shapes are unchanged (``[out, in]``
    constants become ``u8 [out, in]`` + ``f32 [out, 1]`` scale and zero point).
    """
    if not patterns:
        return model
    unique_friendly_names(model)
    # Ignore every other weighted op by name. (A negated regex would also match the weights'
    # own Constant/Convert nodes, which makes NNCF skip the MatMuls we want.)
    others = [
        op.get_friendly_name()
        for op in model.get_ops()
        if op.get_type_name() in _WEIGHTED_OPS and not any(re.match(p, op.get_friendly_name()) for p in patterns)
    ]
    return nncf.compress_weights(
        model,
        mode=nncf.CompressWeightsMode.INT8_ASYM,
        ignored_scope=nncf.IgnoredScope(names=others, validate=False),
    )
