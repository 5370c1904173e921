"""``OVModelForCausalLM`` runtime for the plugin's IRs.

optimum-intel picks the runtime class from ``config.model_type``: for ``qwen3_5_text`` that is
``OVModelWithMambaForCausalLM``, which never feeds ``position_ids`` (so RoPE sees garbage),
always sends ``beam_idx = arange(batch)`` (so beam search never reorders a state) and reads
every state back to the host after each step. Our IR hides every state behind one
``beam_idx`` Gather, exactly like a stateful KV-cache decoder, so optimum-intel's standard
stateful ``OVModelForCausalLM`` path is the right runtime: it feeds ``position_ids`` from the
attention mask, reorders beams through ``beam_idx``, resets state at each new prompt and never
copies state to the host.
"""

from __future__ import annotations

import functools

import openvino as ov
from optimum.intel import OVModelForCausalLM
from optimum.intel.openvino.modeling_decoder import OVModelWithMambaForCausalLM

#: rt_info path written into every IR this plugin exports.
RT_INFO_KEY = ["optimum_qwen35", "version"]


def is_plugin_ir(model: ov.Model) -> bool:
    """True when ``model`` was exported by optimum-qwen35."""
    return model.has_rt_info(RT_INFO_KEY)


class OVQwen35ForCausalLM(OVModelForCausalLM):
    """Stateful Qwen3.5 text LLM: conv, recurrent and KV states all live inside the compiled model.

    Inputs fed each step: ``input_ids [B, T]``, ``attention_mask [B, P+T]``, ``position_ids
    [B, T]`` and ``beam_idx [B]``; output ``logits [B, T, vocab]``.
    """


def install() -> None:
    """Make ``OVModelForCausalLM.from_pretrained`` return :class:`OVQwen35ForCausalLM` for our IRs."""
    original = OVModelForCausalLM.__dict__["_from_pretrained"].__func__
    if getattr(original, "__optimum_qwen35__", False):
        return

    @functools.wraps(original)
    def _from_pretrained(cls, *args, **kwargs):
        model = original(cls, *args, **kwargs)
        if type(model) is OVModelWithMambaForCausalLM and is_plugin_ir(model.model):
            # Same constructor (the hybrid class only adds bookkeeping lists), so switching the
            # class keeps the compiled request and avoids compiling the model twice.
            model.__class__ = OVQwen35ForCausalLM
        return model

    _from_pretrained.__optimum_qwen35__ = True
    OVModelForCausalLM._from_pretrained = classmethod(_from_pretrained)
