"""The vision-language layout (``--task image-text-to-text``): parity of every part with transformers,
the MTP head against a PyTorch reference built from transformers' own layers, and the runtimes
that load the layout (openvino-genai's ``VLMPipeline`` with and without MTP drafts,
optimum-intel's ``OVModelForVisualCausalLM``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import openvino as ov
import openvino_genai
import pytest
import torch
import transformers
from ov_helpers import F32, assert_greedy_matches, relative_max_error, run_optimum_cli, runtime_layer_types
from vision_inputs import processor_inputs, processor_returns_mm_token_type_ids, sample_image

import optimum_qwen35
from optimum_qwen35.checkpoint import mtp_tensors
from optimum_qwen35.modeling.mtp import MTPHead

VLM = "image-text-to-text"
PARTS = ("language", "text_embeddings", "vision_embeddings", "vision_embeddings_merger", "vision_embeddings_pos")
HELDOUT = Path(__file__).parent / "data" / "heldout_python_sample.txt"


def _export(checkpoint: Path, folder: Path, **kwargs) -> Path:
    return optimum_qwen35.export(checkpoint, folder, task=VLM, **kwargs)


@pytest.fixture(scope="module")
def vl_dense(hub_dense_checkpoint, tmp_path_factory) -> Path:
    return _export(hub_dense_checkpoint, tmp_path_factory.mktemp("vl") / "dense")


@pytest.fixture(scope="module")
def vl_moe(hub_moe_checkpoint, tmp_path_factory) -> Path:
    return _export(hub_moe_checkpoint, tmp_path_factory.mktemp("vl") / "moe")


@pytest.fixture(scope="module")
def vl_reference(reference_checkpoint, tmp_path_factory) -> Path:
    return _export(reference_checkpoint, tmp_path_factory.mktemp("vl") / "reference")


@pytest.fixture(scope="module")
def vl_reference_int4(reference_checkpoint, tmp_path_factory) -> Path:
    """``optimum-cli export openvino --task image-text-to-text --weight-format int4``, no other flag."""
    out = tmp_path_factory.mktemp("vl") / "reference-int4"
    result = run_optimum_cli(
        "export", "openvino", "--model", str(reference_checkpoint), "--task", VLM, "--weight-format", "int4", str(out)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def hf_composite(checkpoint: Path) -> torch.nn.Module:
    """transformers' vision-language model in float32 (5.5 loads the text part in the config's dtype)."""
    return transformers.AutoModelForImageTextToText.from_pretrained(checkpoint).float().eval()


def _compile(folder: Path, part: str) -> ov.CompiledModel:
    return ov.Core().compile_model(folder / f"openvino_{part}_model.xml", "CPU", F32)


def _bf16_constants(folder: Path) -> dict[str, int]:
    counts = {}
    for xml in folder.glob("openvino_*model.xml"):
        model = ov.Core().read_model(xml)
        counts[xml.name] = sum(
            op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.bf16 for op in model.get_ops()
        )
    return counts


# --- layout -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["vl_dense", "vl_moe"])
def test_layout_has_every_part_with_genais_names(layout, request):
    folder = request.getfixturevalue(layout)
    core = ov.Core()
    for part in (*PARTS, "mtp"):
        assert (folder / f"openvino_{part}_model.xml").is_file(), part
    # The miniatures have no processor files: the hub's Qwen3.5 image settings, at the config's patch size.
    preprocessor = json.loads((folder / "preprocessor_config.json").read_text())
    vision = json.loads((folder / "config.json").read_text())["vision_config"]
    assert (preprocessor["patch_size"], preprocessor["merge_size"]) == (
        vision["patch_size"],
        vision["spatial_merge_size"],
    )
    assert preprocessor["image_mean"] == preprocessor["image_std"] == [0.5, 0.5, 0.5]
    language = core.read_model(folder / "openvino_language_model.xml")
    inputs = {port.get_any_name(): port for port in language.inputs}
    assert list(inputs) == ["inputs_embeds", "attention_mask", "position_ids", "beam_idx"]
    assert inputs["position_ids"].get_partial_shape()[0].get_length() == 4
    assert [port.get_any_name() for port in language.outputs] == ["logits"]
    # GenAI's MTP decoding reads the hidden state at the input of the MatMul producing logits.
    assert language.output("logits").get_node().input_value(0).get_node().get_type_name() == "MatMul"
    assert language.output("logits").get_element_type() == ov.Type.f32
    layers = json.loads(language.get_rt_info("hidden_states_decoder_layers").astype(str))["layers"]
    assert len(layers) == json.loads((folder / "config.json").read_text())["text_config"]["num_hidden_layers"]
    mtp = core.read_model(folder / "openvino_mtp_model.xml")
    assert [p.get_any_name() for p in mtp.inputs] == [
        "hidden_states", "inputs_embeds", "attention_mask", "position_ids", "beam_idx",
    ]  # fmt: skip
    assert [p.get_any_name() for p in mtp.outputs] == ["last_hidden_state"]
    assert len(mtp.get_sinks()) == 2  # one stateful KV pair
    assert all(count == 0 for count in _bf16_constants(folder).values()), _bf16_constants(folder)


@pytest.mark.parametrize("layout", ["vl_dense", "vl_moe"])
def test_language_model_keeps_the_fused_gated_deltanet(layout, request):
    kinds = runtime_layer_types(_compile(request.getfixturevalue(layout), "language"))
    assert "GatedDeltaNet" in kinds
    # mRoPE is a constant per-axis mask, not transformers' slice assignments (ScatterNDUpdate in
    # optimum-intel's IR), and the MoE routing scatter is absorbed by GatherMatmul: no Scatter runs.
    assert not [kind for kind in kinds if "Scatter" in kind]


# --- language model parity ------------------------------------------------------------------------------


def test_mrope_tables_match_transformers_and_reduce_to_1d_rope_on_text(hub_dense_checkpoint):
    from optimum_qwen35.modeling.rotary import mrope_cos_sin, rotary_cos_sin

    model = hf_composite(hub_dense_checkpoint)
    rotary = model.model.language_model.rotary_emb
    section = model.config.text_config.rope_parameters["mrope_section"]
    positions = torch.from_numpy(_image_positions(20, 5, (2, 3))[1:])
    cos, sin = mrope_cos_sin(positions, rotary.inv_freq, section, 1.0)
    expected_cos, expected_sin = rotary(torch.zeros(1, 20, 8), positions)
    assert torch.equal(cos, expected_cos) and torch.equal(sin, expected_sin)
    text = torch.arange(20)[None]
    one_axis = rotary_cos_sin(text, rotary.inv_freq, 1.0)
    three_axes = mrope_cos_sin(text[None].expand(3, 1, 20), rotary.inv_freq, section, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(one_axis, three_axes, strict=True))


def _image_positions(length: int, start: int, grid: tuple[int, int]) -> np.ndarray:
    """``[4, 1, L]`` positions with an image of ``grid`` (h, w) merged tokens at ``start``: text rows
    advance by one, image tokens share the temporal position and spread over height and width."""
    rows, cols = grid
    positions = np.zeros((4, 1, length), dtype=np.int64)
    positions[0, 0] = np.arange(length)
    mrope = []
    for index in range(length):
        if index < start:
            mrope.append((index,) * 3)
        elif index < start + rows * cols:
            offset = index - start
            mrope.append((start, start + offset // cols, start + offset % cols))
        else:
            mrope.append((index - rows * cols + max(rows, cols),) * 3)
    positions[1:, 0] = np.array(mrope).T
    return positions


def _run_language(compiled: ov.CompiledModel, embeds: np.ndarray, positions: np.ndarray, chunks: list[int]):
    request = compiled.create_infer_request()
    request.reset_state()
    done, logits = 0, []
    for chunk in chunks:
        step = {
            "inputs_embeds": embeds[:, done : done + chunk],
            "attention_mask": np.ones((1, done + chunk), dtype=np.int64),
            "position_ids": positions[:, :, done : done + chunk],
            "beam_idx": np.zeros(1, dtype=np.int32),
        }
        logits.append(request.infer(step)["logits"].copy())
        done += chunk
    return np.concatenate(logits, axis=1)


@pytest.mark.parametrize("layout,checkpoint", [("vl_dense", "hub_dense_checkpoint"), ("vl_moe", "hub_moe_checkpoint")])
@pytest.mark.parametrize("with_image", [False, True])
def test_language_model_matches_transformers(layout, checkpoint, with_image, request):
    folder, model = request.getfixturevalue(layout), hf_composite(request.getfixturevalue(checkpoint))
    length = 20
    ids = torch.randint(0, 1000, (1, length), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids)
        if with_image:  # six merged image tokens (2 x 3 grid) replace text embeddings at 5..10
            embeds[0, 5:11] = torch.randn(6, embeds.shape[-1], generator=torch.Generator().manual_seed(1))
    positions = _image_positions(length, 5, (2, 3)) if with_image else np.tile(np.arange(length), (4, 1, 1))
    with torch.no_grad():  # truth for chunked feeding: one uncached forward over the whole sequence
        hidden = model.model.language_model(inputs_embeds=embeds, position_ids=torch.from_numpy(positions))[0]
        expected = model.lm_head(hidden).numpy()
    # prefill 8, three single-token decode steps, then a chunk of 9
    actual = _run_language(_compile(folder, "language"), embeds.numpy(), positions, [8, 1, 1, 1, 9])
    assert relative_max_error(actual, expected) <= 1e-4


# --- vision and text embeddings -------------------------------------------------------------------------


def test_vision_parts_match_transformers_vision_tower(vl_dense, hub_dense_checkpoint):
    from optimum.intel import OVModelForVisualCausalLM

    model = hf_composite(hub_dense_checkpoint)
    vision = model.config.vision_config
    grid = torch.tensor([[1, 4, 6]])  # one image of 4 x 6 patches -> 6 merged tokens
    patch = vision.in_channels * vision.temporal_patch_size * vision.patch_size**2
    pixels = torch.randn(int(grid.prod()), patch, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        output = model.model.visual(pixels, grid_thw=grid)
    expected = getattr(output, "pooler_output", output)
    ov_model = OVModelForVisualCausalLM.from_pretrained(vl_dense, ov_config=F32)
    actual = ov_model.get_vision_embeddings(pixels, grid)
    assert actual.shape == expected.shape
    assert relative_max_error(np.asarray(actual), expected.numpy()) <= 1e-4
    ids = np.array([[3, 14, 159, 265]])
    embedded = _compile(vl_dense, "text_embeddings")(ids)[0]
    assert relative_max_error(embedded, model.get_input_embeddings()(torch.from_numpy(ids)).detach().numpy()) <= 1e-6


# --- the MTP head ---------------------------------------------------------------------------------------


def reference_mtp(checkpoint: Path, model: torch.nn.Module) -> torch.nn.Module:
    """The MTP module as optimum-intel's ``Qwen3_5MTPModule`` builds it: transformers' decoder layer
    (dense or MoE) and RMSNorms, eager attention, with the checkpoint's ``mtp.*`` weights."""
    text = model.config.text_config
    modeling = transformers.models.qwen3_5_moe.modeling_qwen3_5_moe if text.model_type.startswith("qwen3_5_moe") else (
        transformers.models.qwen3_5.modeling_qwen3_5
    )  # fmt: skip
    prefix = "Qwen3_5Moe" if text.model_type.startswith("qwen3_5_moe") else "Qwen3_5"
    config = copy.deepcopy(text)
    config.num_hidden_layers, config.layer_types, config._attn_implementation = 1, ["full_attention"], "eager"
    norm = getattr(modeling, f"{prefix}RMSNorm")

    class MTP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2 * text.hidden_size, text.hidden_size, bias=False)
            self.pre_fc_norm_embedding = norm(text.hidden_size, eps=text.rms_norm_eps)
            self.pre_fc_norm_hidden = norm(text.hidden_size, eps=text.rms_norm_eps)
            self.layers = torch.nn.ModuleList([getattr(modeling, f"{prefix}DecoderLayer")(config, 0)])
            self.norm = norm(text.hidden_size, eps=text.rms_norm_eps)
            self.rotary_emb = getattr(modeling, f"{prefix}TextRotaryEmbedding")(config)

        def forward(self, hidden, embeds):
            x = self.fc(torch.cat([self.pre_fc_norm_embedding(embeds), self.pre_fc_norm_hidden(hidden)], dim=-1))
            length = x.shape[1]
            positions = torch.arange(length)[None]
            mask = torch.full((length, length), torch.finfo(torch.float32).min).triu(1)[None, None]
            out = self.layers[0](x, position_embeddings=self.rotary_emb(x, positions), attention_mask=mask,
                                 position_ids=positions)  # fmt: skip
            return self.norm(out[0] if isinstance(out, tuple) else out)

    tensors = {name.removeprefix("mtp."): t.float() for name, t in mtp_tensors(checkpoint).items()}
    experts = "layers.0.mlp.experts."
    if f"{experts}0.gate_proj.weight" in tensors:  # the hub's per-expert MTP tensors -> fused parameters
        count = text.num_experts
        gate_up = [
            torch.cat([tensors.pop(f"{experts}{e}.{p}_proj.weight") for p in ("gate", "up")]) for e in range(count)
        ]
        tensors[experts + "gate_up_proj"] = torch.stack(gate_up)
        tensors[experts + "down_proj"] = torch.stack(
            [tensors.pop(f"{experts}{e}.down_proj.weight") for e in range(count)]
        )
    module = MTP()
    module.load_state_dict(tensors, strict=False)
    missing = set(module.state_dict()) - set(tensors) - {k for k in module.state_dict() if "rotary" in k}
    assert not missing, missing
    return module.eval()


@pytest.mark.parametrize("layout,checkpoint", [("vl_dense", "hub_dense_checkpoint"), ("vl_moe", "hub_moe_checkpoint")])
def test_mtp_head_matches_a_reference_of_transformers_layers(layout, checkpoint, request):
    folder, path = request.getfixturevalue(layout), request.getfixturevalue(checkpoint)
    model = hf_composite(path)
    length, hidden_size = 12, model.config.text_config.hidden_size
    generator = torch.Generator().manual_seed(3)
    hidden, embeds = (
        torch.randn(1, length, hidden_size, generator=generator),
        torch.randn(1, length, hidden_size, generator=generator),
    )
    with torch.no_grad():
        expected = reference_mtp(path, model)(hidden, embeds).numpy()
    request_ = _compile(folder, "mtp").create_infer_request()
    request_.reset_state()
    outputs, done = [], 0
    for chunk in (9, 1, 2):  # prefill, one draft step, then two (a verification-sized chunk)
        step = {
            "hidden_states": hidden[:, done : done + chunk].numpy(),
            "inputs_embeds": embeds[:, done : done + chunk].numpy(),
            "attention_mask": np.ones((1, done + chunk), dtype=np.int64),
            "position_ids": np.arange(done, done + chunk)[None],
            "beam_idx": np.zeros(1, dtype=np.int32),
        }
        outputs.append(request_.infer(step)["last_hidden_state"].copy())
        done += chunk
    assert relative_max_error(np.concatenate(outputs, axis=1), expected) <= 1e-4


def test_mtp_head_of_a_cut_without_full_attention_is_the_same_head(hub_dense_checkpoint):
    """Depth cuts of only linear-attention layers (the benchmarks' 2-layer 27B and 35B-A3B) still
    build the head's full-attention layer, with the same parameters as the uncut model's head."""
    model = hf_composite(hub_dense_checkpoint)
    text_config = model.config.text_config
    cut = copy.deepcopy(text_config)
    cut.layer_types = ["linear_attention"] * len(cut.layer_types)
    whole, linear_only = MTPHead(model.model.language_model, text_config), MTPHead(model.model.language_model, cut)
    assert linear_only.layers[0].layer_type == "full_attention"
    assert {k: v.shape for k, v in linear_only.state_dict().items()} == {
        k: v.shape for k, v in whole.state_dict().items()
    }
    linear_only.load_mtp_tensors(mtp_tensors(hub_dense_checkpoint))


# --- runtimes on the trained reference -------------------------------------------------------------------


def _prompts(count: int = 8) -> list[str]:
    text = HELDOUT.read_text()
    starts = np.linspace(0, len(text) - 1200, count).astype(int)
    return [text[start : start + 300] for start in starts]


def _greedy(max_new_tokens: int, draft_tokens: int = 0) -> openvino_genai.GenerationConfig:
    config = openvino_genai.GenerationConfig()
    config.max_new_tokens, config.apply_chat_template = max_new_tokens, False
    if draft_tokens:
        config.num_assistant_tokens = draft_tokens
    return config


def test_vlm_pipeline_text_greedy_equals_transformers(vl_reference, reference_checkpoint):
    tokenizer = transformers.AutoTokenizer.from_pretrained(reference_checkpoint)
    model = hf_composite(reference_checkpoint)
    pipe = openvino_genai.VLMPipeline(str(vl_reference), "CPU", **F32)
    for prompt in _prompts(3):
        text = pipe.generate(prompt, generation_config=_greedy(24)).texts[0]
        tokens = tokenizer(text, add_special_tokens=False).input_ids
        assert_greedy_matches(model, tokenizer(prompt).input_ids, tokens)


def test_vlm_pipeline_answers_an_image_prompt(vl_reference):
    image = ov.Tensor(np.random.default_rng(0).integers(0, 256, (1, 64, 96, 3), dtype=np.uint8))
    pipe = openvino_genai.VLMPipeline(str(vl_reference), "CPU", **F32)
    config = _greedy(8)
    config.apply_chat_template = True
    result = pipe.generate("Describe the image.", images=[image], generation_config=config)
    assert result.perf_metrics.get_num_generated_tokens() == 8


def test_mtp_drafts_give_the_plain_text_and_are_accepted(vl_reference):
    plain = openvino_genai.VLMPipeline(str(vl_reference), "CPU", **F32)
    scheduler = openvino_genai.SchedulerConfig()
    scheduler.enable_prefix_caching = False  # required for the hybrid model's states
    draft = openvino_genai.draft_model(str(vl_reference), "CPU", **F32)
    mtp = openvino_genai.VLMPipeline(str(vl_reference), "CPU", draft_model=draft, scheduler_config=scheduler, **F32)
    acceptance = []
    for prompt in _prompts():
        expected = plain.generate(prompt, generation_config=_greedy(48)).texts[0]
        for draft_tokens in (1, 3):
            result = mtp.generate(prompt, generation_config=_greedy(48, draft_tokens))
            assert result.texts[0] == expected, (prompt, draft_tokens)
            if draft_tokens == 1:
                acceptance.append(result.extended_perf_metrics.get_draft_acceptance_rate())
    # optimum-intel 2.2's (all-fp16, transformers 5.2) export of the same weights reads 0.324 on
    # these 8 prompts at one draft token (docs/vision-language.md)
    assert np.mean(acceptance) >= 0.323, acceptance


def test_ov_model_for_visual_causal_lm_generates_transformers_greedy(vl_reference, reference_checkpoint):
    from optimum.intel import OVModelForVisualCausalLM

    tokenizer = transformers.AutoTokenizer.from_pretrained(reference_checkpoint)
    ov_model = OVModelForVisualCausalLM.from_pretrained(vl_reference, ov_config=F32)
    model = hf_composite(reference_checkpoint)
    for prompt in _prompts(2):
        inputs = tokenizer(prompt, return_tensors="pt")
        tokens = ov_model.generate(**inputs, max_new_tokens=16, do_sample=False)[0, inputs.input_ids.shape[1] :]
        assert_greedy_matches(model, inputs.input_ids[0].tolist(), tokens.tolist())


# --- OVModelForVisualCausalLM on what the processor returns ----------------------------------------------

_TEXT = np.random.default_rng(4).integers(0, 700, 40).tolist()  # plain token ids (the miniatures' specials: >= 757)
PROCESSOR_PROMPTS = {
    "text-only": [_TEXT[:20]],
    "one-image": [_TEXT[:6], sample_image(256, 256, seed=0), _TEXT[6:12]],  # 16 x 16 patches: 64 image tokens
    "two-images": [_TEXT[:6], sample_image(256, 256, seed=0), _TEXT[6:9], sample_image(256, 320, seed=1), _TEXT[9:14]],
}


def _assert_greedy_equals(hf_result, tokens: list[int], tie: float = 0.05) -> None:
    """``tokens`` equal transformers' greedy ``hf_result`` up to its end, or up to a near tie: the first
    token that differs must be within ``tie`` of HF's best log-probability at that step (as
    ``ov_helpers.assert_greedy_matches``, with the scores of HF's own ``generate``)."""
    expected = hf_result.sequences[0, -len(hf_result.scores) :].tolist()
    for position, (token, best) in enumerate(zip(tokens, expected, strict=False)):
        if token != best:
            logprobs = torch.log_softmax(hf_result.scores[position][0].float(), dim=-1)
            gap = float(logprobs[best] - logprobs[token])
            assert gap <= tie, f"token {position}: got {token}, HF greedy {best} (log-prob gap {gap:.3f} > {tie})"
            return
    assert tokens == expected


@pytest.mark.parametrize("layout,checkpoint", [("vl_dense", "hub_dense_checkpoint"), ("vl_moe", "hub_moe_checkpoint")])
@pytest.mark.parametrize("prompt", list(PROCESSOR_PROMPTS))
def test_ov_model_for_visual_causal_lm_runs_processor_outputs(layout, checkpoint, prompt, request):
    """``model(**inputs)`` and ``model.generate(**inputs)`` with the processor's dict as it is
    (``mm_token_type_ids`` included on transformers 5.3+) give transformers' logits and greedy tokens."""
    from optimum.intel import OVModelForVisualCausalLM

    folder, model = request.getfixturevalue(layout), hf_composite(request.getfixturevalue(checkpoint))
    inputs = processor_inputs(folder, PROCESSOR_PROMPTS[prompt])
    assert ("mm_token_type_ids" in inputs) == processor_returns_mm_token_type_ids()
    ov_model = OVModelForVisualCausalLM.from_pretrained(folder, ov_config=F32)
    with torch.no_grad():
        expected = model(**inputs).logits.numpy()
        hf_greedy = model.generate(
            **inputs, max_new_tokens=12, do_sample=False, output_scores=True, return_dict_in_generate=True
        )
    assert relative_max_error(ov_model(**inputs).logits.numpy(), expected) <= 1e-4
    # A caller that drops mm_token_type_ids (or a transformers 5.2 processor) gets the same logits.
    without = {key: value for key, value in inputs.items() if key != "mm_token_type_ids"}
    assert relative_max_error(ov_model(**without).logits.numpy(), expected) <= 1e-4
    tokens = ov_model.generate(**inputs, max_new_tokens=12, do_sample=False)[0, inputs["input_ids"].shape[1] :]
    _assert_greedy_equals(hf_greedy, tokens.tolist())


# --- compression ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_int4_cli_compresses_the_whole_layout(vl_reference_int4):
    out = vl_reference_int4
    assert all(count == 0 for count in _bf16_constants(out).values())
    core = ov.Core()

    def weight_types(part: str) -> dict[str, str]:
        model = core.read_model(out / f"openvino_{part}_model.xml")
        found = {}
        for op in model.get_ops():
            if op.get_type_name() == "MatMul":
                node = op.input_value(1).get_node()
                while node.get_type_name() in ("Convert", "Subtract", "Multiply", "Reshape"):
                    node = node.input_value(0).get_node()
                if node.get_type_name() == "Constant":
                    found[op.get_friendly_name()] = node.get_element_type().get_type_name()
        return found

    language = weight_types("language")
    assert any("mlp.gate_proj" in n and t in ("u4", "i4") for n, t in language.items())
    assert all(t in ("u8", "i8") for n, t in language.items() if "linear_attn" in n)  # never INT4 on GDN
    assert all(t == "u8" for n, t in language.items() if "self_attn" in n)  # the policy's INT8 attention
    mtp = weight_types("mtp")
    assert {t for n, t in mtp.items() if "self_attn" in n} == {"u8"}
    assert any("mlp.gate_proj" in n and t in ("u4", "i4") for n, t in mtp.items())
    assert "GatedDeltaNet" in runtime_layer_types(_compile(out, "language"))
    text = openvino_genai.VLMPipeline(str(out), "CPU", **F32).generate("def add(a, b):\n", generation_config=_greedy(8))
    assert text.texts[0].strip()


def test_text_embeddings_table_is_compressed_in_chunks_to_nncfs_constants(vl_moe, monkeypatch):
    """The text-embeddings model's vocabulary table goes through the chunked INT8 compression, as the
    text LLM's does: NNCF would take the whole table at once (2 GB of f32 plus temporaries on the hub's
    248320 x 2048, the peak of the 35B-A3B export). The constants are NNCF's own; the vision
    position table, also looked up by an input named ``input``, is not a vocabulary table."""
    import nncf

    from optimum_qwen35.compression import embedding

    def constants(output: ov.Output) -> list[np.ndarray]:
        return [constant.get_data().copy() for constant in embedding._constants(output)]

    core = ov.Core()
    assert embedding.embedding_constant(core.read_model(vl_moe / "openvino_vision_embeddings_pos_model.xml")) is None
    model = core.read_model(vl_moe / "openvino_text_embeddings_model.xml")
    table = embedding.embedding_constant(model)
    text_config = json.loads((vl_moe / "config.json").read_text())["text_config"]
    vocab, hidden = text_config["vocab_size"], text_config["hidden_size"]
    assert list(table.get_output_shape(0)) == [vocab, hidden]
    mode = nncf.CompressWeightsMode.INT8_SYM  # optimum-intel's config for the parts beside the language model
    whole = constants(embedding._compress_chunk(table, slice(0, vocab), mode))
    monkeypatch.setattr(embedding, "CHUNK_BYTES", 100 * 4 * hidden)  # 100 rows per chunk, the last one short
    assert embedding.compress_vocabulary_tables(model, mode)
    gather = model.output("inputs_embeds").get_node().input_value(0).get_node()  # the Result's producer
    while gather.get_type_name() == "Convert":
        gather = gather.input_value(0).get_node()
    chunked = constants(gather.input_value(0))
    assert {np.int8, np.float16} <= {array.dtype.type for array in chunked}  # weights, scale
    for expected, actual in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(actual, expected)


# --- bad input ------------------------------------------------------------------------------------------


def test_text_only_checkpoint_is_refused_with_one_line(text_checkpoint, tmp_path):
    out = tmp_path / "out"
    result = run_optimum_cli("export", "openvino", "--model", str(text_checkpoint), "--task", VLM, str(out))
    assert result.returncode == 1
    assert "needs a vision-language checkpoint" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.slow
@pytest.mark.parametrize("recipe", [("--awq", "--scale-estimation"), ("--gptq",)], ids=["awq-se", "gptq"])
def test_data_aware_int4_of_the_layout_from_text_alone(reference_checkpoint, vl_reference_int4, recipe, tmp_path):
    out = tmp_path / "data-aware"
    result = run_optimum_cli(
        "export", "openvino", "--model", str(reference_checkpoint), "--task", VLM, "--weight-format", "int4",
        "--dataset", "builtin", "--num-samples", "8", *recipe, str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    core = ov.Core()
    data_free = vl_reference_int4

    def scales(folder: Path) -> list[np.ndarray]:
        model = core.read_model(folder / "openvino_language_model.xml")
        return [op.get_data().copy() for op in model.get_ordered_ops() if op.get_friendly_name().endswith("/scale")]

    # Scale estimation and GPTQ (which need the calibration activations) change the language model's INT4 scales.
    assert any(not np.array_equal(a, b) for a, b in zip(scales(out), scales(data_free), strict=True))
    # ... and the MTP head, which has no calibration data, got the policy's precisions data-free
    # (AWQ, which NNCF runs without data, adds its per-channel input scales: ~1 KB).
    mtp = core.read_model(out / "openvino_mtp_model.xml")
    assert any(op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.u4 for op in mtp.get_ops())
    mtp_sizes = [(folder / "openvino_mtp_model.bin").stat().st_size for folder in (out, data_free)]
    assert abs(mtp_sizes[0] / mtp_sizes[1] - 1) < 0.01
    result = openvino_genai.VLMPipeline(str(out), "CPU", **F32).generate(
        "def add(a, b):\n", generation_config=_greedy(8)
    )
    assert result.texts[0].strip()


def _rewrite(checkpoint: Path, folder: Path, edit) -> Path:
    """A copy of ``checkpoint`` whose tensors went through ``edit(dict) -> dict`` (and config, if returned)."""
    from hub_models import write_hub_shards
    from safetensors.torch import load_file

    folder.mkdir()
    tensors = {}
    for shard in sorted(checkpoint.glob("model.safetensors-*.safetensors")):
        tensors |= load_file(shard)
    write_hub_shards(folder, edit(tensors))
    for name in ("config.json", "generation_config.json"):
        (folder / name).write_bytes((checkpoint / name).read_bytes())
    return folder


def test_missing_mtp_tensors_warn_and_export_without_the_head(hub_dense_checkpoint, tmp_path, caplog):
    checkpoint = _rewrite(
        hub_dense_checkpoint, tmp_path / "no-mtp", lambda t: {k: v for k, v in t.items() if "mtp." not in k}
    )
    out = _export(checkpoint, tmp_path / "out")
    assert not (out / "openvino_mtp_model.xml").exists()
    assert (out / "openvino_language_model.xml").is_file()
    assert "no mtp.* tensors" in caplog.text


def test_mis_shaped_mtp_tensors_are_refused(hub_dense_checkpoint, tmp_path):
    def shrink(tensors):
        tensors["mtp.fc.weight"] = tensors["mtp.fc.weight"][:, :-8].contiguous()
        return tensors

    checkpoint = _rewrite(hub_dense_checkpoint, tmp_path / "bad-mtp", shrink)
    with pytest.raises(optimum_qwen35.CheckpointError, match=r"mis-shaped mtp\.fc\.weight"):
        _export(checkpoint, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_more_than_one_mtp_layer_is_refused(hub_dense_checkpoint, tmp_path):
    checkpoint = _rewrite(hub_dense_checkpoint, tmp_path / "two-mtp", lambda t: t)
    config = json.loads((checkpoint / "config.json").read_text())
    config["text_config"]["mtp_num_hidden_layers"] = 2
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(optimum_qwen35.CheckpointError, match="mtp_num_hidden_layers is 2"):
        _export(checkpoint, tmp_path / "out")
    assert not (tmp_path / "out").exists()
