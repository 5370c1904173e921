"""openvino-genai LLMPipeline modes on the plugin's IR of the trained reference model.

Each mode is compared with what a user would take as the truth: transformers float32 (tie-aware
for greedy answers, exact for beam search), a fresh pipeline given the whole templated history
for chat turns, the non-streamed result for streaming.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino_genai
import pytest
import torch
from ov_helpers import F32, assert_greedy_matches, hf_float32
from transformers import AutoConfig, AutoTokenizer

import optimum_qwen35

FIRST, SECOND = "def add(a, b):", "Now write subtract."


@pytest.fixture(scope="module")
def pipe(reference_export):
    return openvino_genai.LLMPipeline(str(reference_export), "CPU", **F32)


@pytest.fixture(scope="module")
def tokenizer(reference_checkpoint):
    return AutoTokenizer.from_pretrained(reference_checkpoint)


def _config(**kwargs) -> openvino_genai.GenerationConfig:
    config = openvino_genai.GenerationConfig(**kwargs)
    config.apply_chat_template = False
    return config


class TokenRecorder(openvino_genai.StreamerBase):
    """A streamer that keeps the token ids it is given, in order."""

    def __init__(self):
        super().__init__()
        self.tokens: list[int] = []

    def write(self, token) -> openvino_genai.StreamingStatus:
        self.tokens.extend([token] if isinstance(token, int) else token)
        return openvino_genai.StreamingStatus.RUNNING

    def end(self) -> None:
        pass


def _chat_prompt_ids(tokenizer, turns: list[str], answers: list[str]) -> list[int]:
    history = []
    for index, turn in enumerate(turns):
        history.append({"role": "user", "content": turn})
        if index < len(answers):
            history.append({"role": "assistant", "content": answers[index]})
    return tokenizer.apply_chat_template(history, tokenize=True, add_generation_prompt=True, return_dict=False)


def _fresh_answer(reference_export, tokenizer, first_answer: str, max_new_tokens: int) -> str:
    """Turn 2 as a fresh pipeline computes it from the whole templated history."""
    history = [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": first_answer},
        {"role": "user", "content": SECOND},
    ]
    prompt = tokenizer.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
    fresh = openvino_genai.LLMPipeline(str(reference_export), "CPU", **F32)
    return str(fresh.generate(prompt, _config(max_new_tokens=max_new_tokens, do_sample=False)))


@pytest.mark.parametrize("stop", [None, "(a", "b):"], ids=["plain", "stop-mid-answer", "stop-at-token-end"])
def test_chat_turn_two_equals_a_fresh_pipeline_on_the_history(pipe, reference_export, tokenizer, stop):
    # A stop string ends turn 1 early and is cut from the answer: the recurrent state has seen
    # tokens the history no longer holds, and cannot be trimmed like a KV cache.
    first_config = openvino_genai.GenerationConfig(max_new_tokens=24, do_sample=False)
    if stop is not None:
        first_config.stop_strings = {stop}
        first_config.include_stop_str_in_output = False
    pipe.start_chat()
    try:
        first = str(pipe.generate(FIRST, first_config))
        second = str(pipe.generate(SECOND, openvino_genai.GenerationConfig(max_new_tokens=24, do_sample=False)))
    finally:
        pipe.finish_chat()
    if stop is not None:
        assert stop not in first
    assert second == _fresh_answer(reference_export, tokenizer, first, 24)


def test_streaming_yields_the_generated_text(pipe):
    pieces: list[str] = []

    def streamer(text: str) -> openvino_genai.StreamingStatus:
        pieces.append(text)
        return openvino_genai.StreamingStatus.RUNNING

    result = pipe.generate("import os\n", _config(max_new_tokens=24, do_sample=False), streamer)
    assert len(pieces) > 1 and "".join(pieces) == str(result)
    assert str(result) == str(pipe.generate("import os\n", _config(max_new_tokens=24, do_sample=False)))


def test_streamed_tokens_equal_the_non_streamed_run_and_transformers(pipe, reference_checkpoint, tokenizer):
    prompt_ids = tokenizer("def read_config(path):\n").input_ids
    inputs = openvino_genai.TokenizedInputs(
        ov.Tensor(np.array([prompt_ids], dtype=np.int64)), ov.Tensor(np.ones((1, len(prompt_ids)), np.int64))
    )
    recorder = TokenRecorder()
    streamed = list(pipe.generate(inputs, _config(max_new_tokens=24, do_sample=False), recorder).tokens[0])
    plain = list(pipe.generate(inputs, _config(max_new_tokens=24, do_sample=False)).tokens[0])
    assert recorder.tokens == streamed == plain and len(plain) == 24
    assert_greedy_matches(hf_float32(reference_checkpoint), prompt_ids, plain)


def test_chat_turns_match_transformers(pipe, reference_checkpoint, tokenizer):
    # Each chat turn's tokens are transformers' greedy continuation of the templated history.
    hf = hf_float32(reference_checkpoint)
    config = openvino_genai.GenerationConfig(max_new_tokens=20, do_sample=False)
    turns, answers = [FIRST, SECOND], []
    pipe.start_chat()
    try:
        for index in range(len(turns)):
            recorder = TokenRecorder()
            answers.append(str(pipe.generate(turns[index], config, recorder)))
            assert recorder.tokens, f"turn {index + 1} produced no tokens"
            assert_greedy_matches(hf, _chat_prompt_ids(tokenizer, turns[: index + 1], answers[:index]), recorder.tokens)
    finally:
        pipe.finish_chat()


def test_left_padded_batch_matches_transformers_per_row(pipe, reference_checkpoint, tokenizer):
    hf = hf_float32(reference_checkpoint)
    rows = [tokenizer(prompt).input_ids for prompt in ("def fibonacci(n):\n    ", "import os\nimport sys\n\n\nclass ")]
    width = max(map(len, rows))
    ids = np.array([[tokenizer.pad_token_id or 0] * (width - len(row)) + row for row in rows], dtype=np.int64)
    mask = np.array([[0] * (width - len(row)) + [1] * len(row) for row in rows], dtype=np.int64)
    assert mask.min() == 0  # the prompts differ in length: one row is padded
    result = pipe.generate(openvino_genai.TokenizedInputs(ov.Tensor(ids), ov.Tensor(mask)),
                           _config(max_new_tokens=16, do_sample=False))  # fmt: skip
    for row, tokens in zip(rows, result.tokens, strict=True):
        assert len(tokens) == 16
        assert_greedy_matches(hf, row, list(tokens))


def test_stop_string_ends_generation(pipe):
    full = str(pipe.generate("def f(x):\n", _config(max_new_tokens=40, do_sample=False)))
    stop = full[10:16]
    config = _config(max_new_tokens=40, do_sample=False)
    config.stop_strings = {stop}
    config.include_stop_str_in_output = True
    stopped = str(pipe.generate("def f(x):\n", config))
    assert stopped.endswith(stop) and full.startswith(stopped)


def test_beam_search_matches_transformers(pipe, reference_checkpoint, tokenizer):
    prompt_ids = tokenizer("def fibonacci(n):\n    ").input_ids
    inputs = openvino_genai.TokenizedInputs(
        ov.Tensor(np.array([prompt_ids], dtype=np.int64)), ov.Tensor(np.ones((1, len(prompt_ids)), np.int64))
    )
    config = _config(max_new_tokens=16, num_beams=3, num_return_sequences=2, do_sample=False)
    beams = [list(tokens) for tokens in pipe.generate(inputs, config).tokens]
    expected = hf_float32(reference_checkpoint).generate(
        torch.tensor([prompt_ids]),
        attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
        max_new_tokens=16,
        num_beams=3,
        num_return_sequences=2,
        do_sample=False,
    )
    assert beams == [row[len(prompt_ids) :].tolist() for row in expected]


def test_seeded_multinomial_sampling_is_repeatable(pipe):
    config = _config(max_new_tokens=16, do_sample=True, top_k=20, rng_seed=7)
    first, second = (str(pipe.generate("def fibonacci(n):\n    ", config)) for _ in range(2))
    assert first == second and first.strip()


PROMPTS = ["def fibonacci(n):\n    ", "import os\nimport sys\n\n\nclass ", "def read_config(path):\n"]


def _stateful_answers(pipe) -> list[str]:
    return [str(pipe.generate(prompt, _config(max_new_tokens=24, do_sample=False))) for prompt in PROMPTS]


def test_paged_conversion_fuses_linear_attention(reference_export):
    from openvino._offline_transformations import paged_attention_transformation

    model = ov.Core().read_model(reference_export / "openvino_model.xml")
    paged_attention_transformation(model)  # what openvino-genai runs for continuous batching
    kinds = [op.get_type_name() for op in model.get_ordered_ops()]
    layers = AutoConfig.from_pretrained(reference_export).get_text_config().layer_types
    assert kinds.count("PagedGatedDeltaNet") == kinds.count("PagedCausalConv1D") == layers.count("linear_attention")
    assert kinds.count("PagedAttentionExtension") == layers.count("full_attention")
    # The conv's SiLU runs channels-last, after the transpose back to [B, T, C]: on the paged
    # conv's [tokens, C, 1] output the CPU plugin's Swish took ~10x longer (docs/performance.md).
    for conv in (op for op in model.get_ordered_ops() if op.get_type_name() == "PagedCausalConv1D"):
        node = conv
        while node.get_type_name() != "Swish":
            node = next(iter(node.output(0).get_target_inputs())).get_node()
        assert node.get_output_partial_shape(0)[-1] == conv.get_output_partial_shape(0)[1]
    names = {parameter.get_friendly_name() for parameter in model.get_parameters()}
    assert not names & {"beam_idx", "attention_mask"}


def test_continuous_batching_llm_pipeline_equals_the_stateful_path(pipe, reference_export):
    expected = _stateful_answers(pipe)
    paged = openvino_genai.LLMPipeline(
        str(reference_export), "CPU", scheduler_config=openvino_genai.SchedulerConfig(), **F32
    )
    config = _config(max_new_tokens=24, do_sample=False)
    assert [str(paged.generate(prompt, config)) for prompt in PROMPTS] == expected
    assert list(paged.generate(PROMPTS, config).texts) == expected  # the three scheduled together


def test_continuous_batching_pipeline_concurrent_requests(pipe, reference_export, reference_checkpoint, tokenizer):
    expected = _stateful_answers(pipe)
    cb = openvino_genai.ContinuousBatchingPipeline(str(reference_export), openvino_genai.SchedulerConfig(), "CPU", F32)
    config = _config(max_new_tokens=24, do_sample=False)
    results = cb.generate(PROMPTS, [config] * len(PROMPTS))
    assert [result.m_generation_ids[0] for result in results] == expected
    # And against transformers, token by token (tie-aware).
    prompt_ids = tokenizer(PROMPTS[0]).input_ids
    inputs = ov.Tensor(np.array([prompt_ids], dtype=np.int64))
    tokens = list(cb.generate([inputs], [config])[0].m_generation_ids[0])
    assert len(tokens) == 24
    assert_greedy_matches(hf_float32(reference_checkpoint), prompt_ids, tokens)


def test_dense_reference_greedy_and_continuous_batching(dense_reference_checkpoint, tmp_path):
    # The text-only checkpoint kind (qwen3_5_text) through both GenAI backends.
    export = optimum_qwen35.export(dense_reference_checkpoint, tmp_path / "dense")
    tokenizer = AutoTokenizer.from_pretrained(dense_reference_checkpoint)
    stateful = openvino_genai.LLMPipeline(str(export), "CPU", **F32)
    paged = openvino_genai.LLMPipeline(str(export), "CPU", scheduler_config=openvino_genai.SchedulerConfig(), **F32)
    config = _config(max_new_tokens=24, do_sample=False)
    expected = _stateful_answers(stateful)
    assert list(paged.generate(PROMPTS, config).texts) == expected
    prompt_ids = tokenizer(PROMPTS[1]).input_ids
    inputs = openvino_genai.TokenizedInputs(
        ov.Tensor(np.array([prompt_ids], dtype=np.int64)), ov.Tensor(np.ones((1, len(prompt_ids)), np.int64))
    )
    tokens = list(stateful.generate(inputs, config).tokens[0])
    assert len(tokens) == 24
    assert_greedy_matches(hf_float32(dense_reference_checkpoint), prompt_ids, tokens)


@pytest.fixture(scope="module")
def paged(reference_export):
    """The continuous-batching backend with prefix caching on (GenAI keeps linear-attention states per block)."""
    scheduler = openvino_genai.SchedulerConfig()
    scheduler.enable_prefix_caching = True
    return openvino_genai.LLMPipeline(str(reference_export), "CPU", scheduler_config=scheduler, **F32)


def test_continuous_batching_modes_equal_the_stateful_path(pipe, paged):
    beams = _config(max_new_tokens=16, num_beams=3, num_return_sequences=2, do_sample=False)
    assert list(paged.generate(PROMPTS[0], beams).texts) == list(pipe.generate(PROMPTS[0], beams).texts)
    sampling = _config(max_new_tokens=16, do_sample=True, top_k=20, rng_seed=7)
    assert str(paged.generate(PROMPTS[0], sampling)) == str(pipe.generate(PROMPTS[0], sampling))
    stop = _config(max_new_tokens=40, do_sample=False)
    stop.stop_strings = {str(pipe.generate("def f(x):\n", stop))[10:16]}
    assert str(paged.generate("def f(x):\n", stop)) == str(pipe.generate("def f(x):\n", stop))
    chat = openvino_genai.GenerationConfig(max_new_tokens=20, do_sample=False)
    answers = []
    for backend in (pipe, paged):
        backend.start_chat()
        try:
            answers.append([str(backend.generate(turn, chat)) for turn in (FIRST, SECOND)])
        finally:
            backend.finish_chat()
    assert answers[0] == answers[1]


def test_prefix_caching_on_a_shared_prefix_gives_the_from_scratch_answer(pipe, paged, tokenizer):
    # The second prompt starts with the first, several cache blocks long, so prefix caching may
    # serve its prefix blocks (KV and recurrent states) from the cache; whether it does is not
    # observable here. Either way the answer must be the one computed from scratch.
    prefix = "".join(
        f"def get_{name}(config):\n    return config['{name}']\n\n\n" for name in ("host", "port", "user", "path")
    )
    long = prefix * 2 + "class Config:\n    def __init__(self, path):\n        self.path = path\n\n    def "
    config = _config(max_new_tokens=20, do_sample=False)
    expected = str(pipe.generate(long, config))
    assert len(tokenizer(prefix * 2).input_ids) >= 4 * 32  # at least four 32-token cache blocks
    paged.generate(prefix * 2, config)
    assert [str(paged.generate(long, config)) for _ in range(2)] == [expected, expected]
