"""``OVModelForCausalLM`` runtime for the plugin's IRs.

optimum-intel picks the runtime class from ``config.model_type``: for ``qwen3_5_text`` that is
``OVModelWithMambaForCausalLM``, which never feeds ``position_ids`` (so RoPE sees garbage),
always sends ``beam_idx = arange(batch)`` (so beam search never reorders a state) and reads
every state back to the host after each step. Our IR hides every state behind one
``beam_idx`` Gather, exactly like a stateful KV-cache decoder, so optimum-intel's standard
stateful ``OVModelForCausalLM`` path is the right runtime: it feeds ``position_ids`` from the
attention mask, reorders beams through ``beam_idx``, resets state at each new prompt and never
copies state to the host.

One addition: ``logits_to_keep``, transformers' own argument. ``generate()`` passes 1, so a
prompt's prefill computes the 248k-wide ``lm_head`` for its last position only instead of every
position (a third of the prefill work on the 0.8B shape); a plain ``forward()`` still returns
logits for every position (perplexity needs them). The input is added to the graph when the
model is loaded, not to the IR on disk, which openvino-genai loads unchanged (it slices the
``lm_head`` input itself).

And the first inference of each compiled request, when the CPU plugin repacks the weights, runs
inside :func:`.weight_pages.released_weight_pages`: the mapped IR file's pages it read are handed
back instead of staying resident next to the repacked copy.
"""

from __future__ import annotations

import contextlib
import functools
import json
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset14 as ops
import torch
from optimum.intel import OVModelForCausalLM
from optimum.intel.openvino.modeling_decoder import OVModelWithMambaForCausalLM

from .checkpoint import is_qwen35_config
from .exporters.quiet import DYNAMIC_SHAPES, LOCAL_IR_CHECK, hidden
from .weight_pages import released_weight_pages

#: rt_info path written into every IR this plugin exports.
RT_INFO_KEY = ["optimum_qwen35", "version"]


def is_plugin_ir(model: ov.Model) -> bool:
    """True when ``model`` was exported by optimum-qwen35."""
    return model.has_rt_info(RT_INFO_KEY)


LOGITS_TO_KEEP = "logits_to_keep"


def through_converts(output: ov.Output) -> ov.Node:
    """The node producing ``output`` once any chain of Converts in front of it is skipped."""
    node = output.get_node()
    while node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    return node


def lm_head(model: ov.Model) -> ov.Node | None:
    """The MatMul that produces ``logits`` (through Converts), if there is one (the MTP head has none)."""
    if not any("logits" in output.get_names() for output in model.outputs):
        return None
    node = through_converts(model.output("logits").get_node().input_value(0))
    return node if node.get_type_name() == "MatMul" else None


def with_logits_to_keep(model: ov.Model) -> ov.Model:
    """A copy of ``model`` (sharing its weights) with a scalar i64 input ``logits_to_keep``.

    The hidden states ``[B, T, H]`` entering the ``lm_head`` MatMul are sliced to ``[:, -k:]``, so
    ``logits`` becomes ``[B, k, vocab]``; ``k = 0`` keeps every position, as in transformers.
    """
    model = model.clone()
    matmul = lm_head(model)
    keep = ops.parameter([], np.int64, LOGITS_TO_KEEP)
    keep.output(0).get_tensor().set_names({LOGITS_TO_KEEP})
    start = ops.unsqueeze(ops.negative(keep), ops.constant(0, np.int64))  # -0 == 0: every position
    end = ops.constant([np.iinfo(np.int64).max], np.int64)
    one = ops.constant([1], np.int64)
    matmul.input(0).replace_source_output(ops.slice(matmul.input_value(0), start, end, one, one).output(0))
    model.add_parameters([keep])
    model.validate_nodes_and_infer_types()
    return model


class OVQwen35ForCausalLM(OVModelForCausalLM):
    """Stateful Qwen3.5 text LLM: conv, recurrent and KV states all live inside the compiled model.

    Inputs fed each step: ``input_ids [B, T]``, ``attention_mask [B, P+T]``, ``position_ids
    [B, T]``, ``beam_idx [B]`` and (added at compile time, see :func:`with_logits_to_keep`)
    ``logits_to_keep``;
    output ``logits [B, T, vocab]`` (``[B, logits_to_keep, vocab]`` when it is positive).
    """

    def compile(self) -> None:
        """Compile :func:`with_logits_to_keep` of the IR; ``self.model`` (what ``save_pretrained`` writes) is kept."""
        if self.request is not None or LOGITS_TO_KEEP not in self.input_names:
            return super().compile()
        exported, self.model = self.model, with_logits_to_keep(self.model)
        try:
            super().compile()
        finally:
            self.model = exported

    def _apply_quantization(self, *args, **kwargs):
        # Data-aware compression records the inputs fed to the compiled request and replays them on
        # the IR, which has no logits_to_keep: run it without the input, restore it afterwards.
        position = self.input_names.pop(LOGITS_TO_KEEP, None)
        self.request = None
        try:
            return super()._apply_quantization(*args, **kwargs)
        finally:
            if position is not None:
                self.input_names[LOGITS_TO_KEEP] = position
                self.request = None  # compiled again, with the input, on first use

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor | None = None,
        past_key_values=None,
        position_ids: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        logits_to_keep: int = 0,
        **kwargs,
    ):
        """As ``OVModelForCausalLM.forward``; ``logits_to_keep=k > 0`` returns the last k positions' logits."""
        kwargs[LOGITS_TO_KEEP] = logits_to_keep
        args = (input_ids, attention_mask, past_key_values, position_ids, token_type_ids)
        if self.request is not None and self.request is getattr(self, "_repacked_request", None):
            return super().forward(*args, **kwargs)
        # The first inference of this request (compiled here if need be) repacks the weights.
        with released_weight_pages():
            outputs = super().forward(*args, **kwargs)
        self._repacked_request = self.request
        return outputs

    def prepare_inputs(self, input_ids, attention_mask=None, past_key_values=None, *args, **kwargs) -> dict:
        if past_key_values is None and self.use_cache and not self.stateful:  # a stateless IR's first step
            past_key_values = self._empty_states(input_ids.shape[0])
        inputs = super().prepare_inputs(input_ids, attention_mask, past_key_values, *args, **kwargs)
        if LOGITS_TO_KEEP in self.input_names:
            inputs[LOGITS_TO_KEEP] = np.array(int(kwargs.get(LOGITS_TO_KEEP) or 0), dtype=np.int64)
        return inputs

    def _empty_states(self, batch: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """Zero conv/recurrent states and empty KV caches for a stateless IR (``--disable-stateful``),
        in optimum-intel's layout for them: pairs, in the IR's state input order."""
        from .modeling.state_layout import StateLayout

        layout = StateLayout.from_text_config(self.config.get_text_config())
        states = [np.zeros(shape, np.float32) for _, shape in layout.state_shapes(batch, 0)]
        return tuple(zip(states[::2], states[1::2], strict=True))

    def _get_past_length(self, past_key_values=None) -> int:
        if past_key_values is None or self.stateful:
            return super()._get_past_length(past_key_values)
        states = list(past_key_values)  # pairs (generation) or already flattened (prepare_inputs)
        if len(states) != len(self.key_value_input_names):
            states = [state for pair in states for state in pair]
        key = next(i for i, name in enumerate(self.key_value_input_names) if ".key." in name)
        return states[key].shape[2]  # [B, kv heads, past, head dim]

    def _deduplicate_inputs(self, model_inputs: dict):
        # optimum-intel indexes every input but input_ids and beam_idx by batch row: not a scalar.
        keep = model_inputs.pop(LOGITS_TO_KEEP, None)
        deduplicated, indices = super()._deduplicate_inputs(model_inputs)
        if keep is not None:
            deduplicated[LOGITS_TO_KEEP] = keep
        return deduplicated, indices

    def prepare_inputs_for_generation(self, input_ids, past_key_values=None, **kwargs) -> dict:
        inputs = super().prepare_inputs_for_generation(input_ids, past_key_values, **kwargs)
        if LOGITS_TO_KEEP in kwargs:
            inputs[LOGITS_TO_KEEP] = kwargs[LOGITS_TO_KEEP]
        return inputs


def _is_qwen35_folder(folder: Path) -> bool:
    """True for a local folder whose ``config.json`` is a Qwen3.5 one (a checkpoint or an export)."""
    from .registry import TEXT_MODEL_TYPES

    try:
        return is_qwen35_config(json.loads((folder / "config.json").read_text()), set(TEXT_MODEL_TYPES))
    except (OSError, ValueError):
        return False


def install() -> None:
    """Make ``OVModelForCausalLM.from_pretrained`` return :class:`OVQwen35ForCausalLM` for our IRs (and
    keep two of optimum-intel's messages that say nothing about the caller's input quiet)."""
    original = OVModelForCausalLM.__dict__["_from_pretrained"].__func__
    if getattr(original, "__optimum_qwen35__", False):
        return

    @functools.wraps(original)
    def _from_pretrained(cls, *args, compile: bool = True, **kwargs):
        # optimum-intel's hybrid class passes dynamic_shapes=True to its base class, which then says
        # the value is ignored: not a word about the caller's input unless the caller set it.
        quiet = hidden([DYNAMIC_SHAPES]) if "dynamic_shapes" not in kwargs else contextlib.nullcontext()
        with quiet:
            # Load uncompiled, so the graph can still gain its logits_to_keep input.
            model = original(cls, *args, compile=False, **kwargs)
        # optimum-intel picks its hybrid class for a qwen3_5_text config and its plain class for
        # a composite one (from_pretrained(composite checkpoint, export=True) reloads the export
        # with the checkpoint's qwen3_5 config). Same constructor either way (the hybrid class only
        # adds bookkeeping lists), so switching the class keeps everything optimum-intel set up.
        known = (OVModelWithMambaForCausalLM, OVModelForCausalLM, OVQwen35ForCausalLM)
        if type(model) in known and is_plugin_ir(model.model):
            model.__class__ = OVQwen35ForCausalLM
            if not model.stateful:  # --disable-stateful: states are inputs/outputs, fed back by optimum-intel
                model.key_value_input_names = [n for n in model.input_names if n.startswith("cache_params.past.")]
                model.key_value_output_names = [n for n in model.output_names if n.startswith("cache_params.present.")]
                model._pkv_precision = ov.Type.f32  # see _keep_f32_states
            if not model._compile_only and lm_head(model.model) is not None:
                model.input_names[LOGITS_TO_KEEP] = len(model.input_names)
                model.input_dtypes[LOGITS_TO_KEEP] = "i64"
        if compile:
            model.compile()
        return model

    _from_pretrained.__optimum_qwen35__ = True
    OVModelForCausalLM._from_pretrained = classmethod(_from_pretrained)

    @functools.wraps(OVModelForCausalLM.from_pretrained.__func__)
    def from_pretrained(cls, model_id, *args, **kwargs):
        # In offline mode optimum-intel's check for an existing IR looks for a local folder in the hub
        # cache, says it could not tell and keeps the caller's `export`: right when it matches the
        # folder (an IR and export=False, a checkpoint and export=True).
        folder = Path(str(model_id)) / (kwargs.get("subfolder") or "")
        matches = _is_qwen35_folder(folder) and (folder / "openvino_model.xml").is_file() != bool(kwargs.get("export"))
        with hidden([LOCAL_IR_CHECK]) if matches else contextlib.nullcontext():
            # Looked up at call time: OVBaseModel.from_pretrained is hooked too (local_folders.py).
            return super(OVModelForCausalLM, cls).from_pretrained(model_id, *args, **kwargs)

    OVModelForCausalLM.from_pretrained = classmethod(from_pretrained)
    _keep_f32_states()
    _install_visual_runtime()


def _keep_f32_states() -> None:
    """Keep a stateless plugin IR's state ports f32 when ``OVModelForCausalLM`` loads it.

    On a CPU with bf16 inference optimum-intel re-types a stateless IR's KV-cache ports to bf16,
    finding inputs by ``past_key_values`` and outputs by ``present``: on our IR it would re-type
    only the ``cache_params.present.*`` outputs (and save them so after compression), and the
    recurrent state would lose precision between steps.
    """
    original = OVModelForCausalLM._get_model_with_updated_pkv_precision  # a staticmethod: the function

    def _get_model_with_updated_pkv_precision(model: ov.Model, pkv_precision: ov.Type) -> ov.Model:
        return model if is_plugin_ir(model) else original(model, pkv_precision)

    OVModelForCausalLM._get_model_with_updated_pkv_precision = staticmethod(_get_model_with_updated_pkv_precision)


def _install_visual_runtime() -> None:
    """Make optimum-intel's Qwen3.5 VLM runtime run what the processor returns, on 5.2 and 5.5.

    ``_OVQwen3_5ForCausalLM`` (optimum-intel 2.2) was written for transformers 5.2. Patched here,
    on the class:

    - ``prepare_inputs_for_generation`` indexes ``cache_position``, which 5.5's ``generate`` no
      longer passes ("'NoneType' object is not subscriptable"). The positions still to process
      are those after the language model's stateful past (``_past_length``; none on a
      generation's first step, which has no ``past_key_values``), exactly what 5.2 passes.
    - Its signature has no ``mm_token_type_ids``, which 5.5's processor returns, so ``generate``
      refused the processor's output ("model_kwargs are not used by the model"). The wrapper
      names it (``generate`` validates against the signature, so no ``functools.wraps``, whose
      ``__wrapped__`` the check would follow).
    - It borrows transformers' ``Qwen3_5Model.get_rope_index``, which from 5.3 requires
      ``mm_token_type_ids`` and calls ``get_vision_position_ids``; optimum-intel's
      ``get_multimodal_embeddings`` calls it without the ids (every ``forward`` without
      ``position_ids``, text-only too, raised ``TypeError``) and never borrowed the helper. The
      replacement takes 5.2's argument order, derives the ids from ``input_ids`` when none are
      given — image token 1, video token 2, else 0, what the processor computes
      (``create_mm_token_type_ids``) — and drops them on 5.2, whose ``get_rope_index`` reads the
      token ids itself.
    - ``get_multimodal_embeddings`` keeps the previous sequence's ``rope_deltas`` and, when they
      exist, skips the mRoPE computation on a call without ``cache_position``: a second
      ``model(**inputs)`` with an image got wrong positions (logits off by 0.38 on the reference,
      both releases). A call with neither ``past_key_values`` nor ``position_ids`` starts a new
      sequence (the language model resets its states then too), so it forgets them; ``generate``
      sets them before its first step, which has ``position_ids``.
    """
    import inspect

    from optimum.intel.openvino.modeling_visual_language import _OVQwen3_5ForCausalLM
    from transformers.models.qwen3_5.modeling_qwen3_5 import Qwen3_5Model

    original = _OVQwen3_5ForCausalLM.prepare_inputs_for_generation
    if getattr(original, "__optimum_qwen35__", False):
        return
    borrowed_rope_index = Qwen3_5Model.get_rope_index
    takes_token_types = "mm_token_type_ids" in inspect.signature(borrowed_rope_index).parameters

    def prepare_inputs_for_generation(
        self, input_ids, past_key_values=None, *args, cache_position=None, mm_token_type_ids=None, **kwargs
    ) -> dict:
        if cache_position is None:
            past = 0 if past_key_values is None else self.language_model._past_length
            cache_position = torch.arange(past, input_ids.shape[1], device=input_ids.device)
        # mm_token_type_ids is named only to be accepted: generate() hands it to
        # _prepare_position_ids_for_generation, the one place that needs it (the prefill's mRoPE).
        return original(self, input_ids, past_key_values, *args, cache_position=cache_position, **kwargs)

    def get_rope_index(self, input_ids, *args, mm_token_type_ids=None, **kwargs):
        if not takes_token_types:
            return borrowed_rope_index(self, input_ids, *args, **kwargs)
        if mm_token_type_ids is None:
            mm_token_type_ids = torch.zeros_like(input_ids, dtype=torch.int32)
            mm_token_type_ids[input_ids == self.config.image_token_id] = 1
            mm_token_type_ids[input_ids == self.config.video_token_id] = 2
        return borrowed_rope_index(self, input_ids, mm_token_type_ids, *args, **kwargs)

    embeddings = _OVQwen3_5ForCausalLM.get_multimodal_embeddings

    def get_multimodal_embeddings(self, input_ids, *args, position_ids=None, **kwargs):
        if position_ids is None and kwargs.get("past_key_values") is None:
            self.rope_deltas = None  # a new sequence: its mRoPE positions come from its own tokens
        return embeddings(self, input_ids, *args, position_ids=position_ids, **kwargs)

    prepare_inputs_for_generation.__doc__ = original.__doc__
    prepare_inputs_for_generation.__optimum_qwen35__ = True
    _OVQwen3_5ForCausalLM.prepare_inputs_for_generation = prepare_inputs_for_generation
    _OVQwen3_5ForCausalLM.get_rope_index = get_rope_index
    _OVQwen3_5ForCausalLM.get_multimodal_embeddings = get_multimodal_embeddings
    if hasattr(Qwen3_5Model, "get_vision_position_ids"):  # transformers >= 5.3
        _OVQwen3_5ForCausalLM.get_vision_position_ids = Qwen3_5Model.get_vision_position_ids
