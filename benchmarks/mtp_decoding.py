"""MTP speculative decoding with openvino-genai: what it gives on the trained reference, what it costs at 0.8B.

Two measurements, each relative to a baseline taken in the same run:

1. ``reference``: the trained ``qwen35-code-vl-mtp`` exported as the vision-language layout;
   ``VLMPipeline`` greedy decoding of 8 held-out prompts without a draft and with the MTP head
   drafting ``num_assistant_tokens`` k = 1..4 (prefix caching off, as GenAI requires for the
   hybrid model). Reports GenAI's draft acceptance rate and decode tokens/s (generated tokens
   over the time after the first token) relative to the plain pipeline; checks the texts agree.
2. ``0.8b``: a random-weight checkpoint of the real Qwen3.5-0.8B composite shape (vision tower
   and MTP head included) exported as the INT4 layout; the time of one language-model
   verification step of 1..5 tokens and of one MTP draft step (bare ``InferRequest``s after a
   128-token prefill, the fastest of 31 round-robin repeats), and the decode speed-up they
   predict for k drafts at acceptance ``a``:
   ``(1 + k·a) · verify(1) / (k · draft + verify(k + 1))`` tokens per unit of plain decode time,
   at the acceptance measured in part 1 and at the ``--acceptance`` rates (default 0.33, the
   trained reference's at k = 1; 0.6; 0.88, llama.cpp's public figure for Qwen3.6-35B-A3B at one
   draft token). Compiled with the CPU plugin's defaults, as users run it.

    python benchmarks/mtp_decoding.py --work-dir /tmp/q35-mtp [--parts reference,0.8b] [--json out.json]

Writes ``mtp.png`` (speed-up against acceptance) into the work dir when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import openvino_genai

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "demo" / "qwen35-code-vl-mtp"
PROMPTS = REPO / "tests" / "data" / "heldout_python_sample.txt"
HUB_0_8B = REPO / "tests" / "data" / "hub-configs" / "Qwen3.5-0.8B" / "config.json"
F32 = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
DRAFTS = (1, 2, 3, 4)


def prompts(count: int = 8) -> list[str]:
    """The 8 held-out prompts of ``tests/test_vision_language.py`` (300 characters, evenly spaced)."""
    text = PROMPTS.read_text()
    return [text[start : start + 300] for start in np.linspace(0, len(text) - 1200, count).astype(int)]


def export_layout(checkpoint: Path, folder: Path, weight_format: str | None = None) -> Path:
    import optimum_qwen35

    if not (folder / "openvino_language_model.xml").is_file():
        optimum_qwen35.export(
            checkpoint, folder, task="image-text-to-text", weight_format=weight_format, overwrite=True
        )
    return folder


def reference_part(work: Path, max_new_tokens: int = 64) -> dict:
    """Acceptance and decode tokens/s of MTP drafting on the trained reference, vs no draft."""
    import openvino_genai

    folder = export_layout(REFERENCE, work / "reference-vl")
    plain = openvino_genai.VLMPipeline(str(folder), "CPU", **F32)
    scheduler = openvino_genai.SchedulerConfig()
    scheduler.enable_prefix_caching = False
    draft = openvino_genai.draft_model(str(folder), "CPU", **F32)
    mtp = openvino_genai.VLMPipeline(str(folder), "CPU", draft_model=draft, scheduler_config=scheduler, **F32)

    def run(pipe, prompt: str, k: int):
        result = pipe.generate(prompt, generation_config=timed_config(max_new_tokens, k))
        metrics = result.perf_metrics
        decode_s = (metrics.get_generate_duration().mean - metrics.get_ttft().mean) / 1000
        tokens = metrics.get_num_generated_tokens() - 1
        accepted = result.extended_perf_metrics.get_draft_acceptance_rate() if k else None
        return result.texts[0], tokens / decode_s, accepted

    rows = {"plain": {"tokens_per_s": [], "same_text": None}}
    rows |= {f"mtp-k{k}": {"tokens_per_s": [], "acceptance": [], "same_text": 0} for k in DRAFTS}
    for prompt in prompts():
        expected, speed, _ = run(plain, prompt, 0)
        rows["plain"]["tokens_per_s"].append(speed)
        for k in DRAFTS:
            text, speed, accepted = run(mtp, prompt, k)
            row = rows[f"mtp-k{k}"]
            row["tokens_per_s"].append(speed)
            row["acceptance"].append(accepted)
            row["same_text"] += text == expected
    base = float(np.mean(rows["plain"]["tokens_per_s"]))
    print(f"\nTrained reference, VLMPipeline, 8 prompts x {max_new_tokens} tokens (f32 inference)")
    print(f"{'run':<10}{'acceptance':>12}{'decode tok/s vs plain':>24}{'same text':>11}")
    for name, row in rows.items():
        row["speedup"] = float(np.mean(row["tokens_per_s"])) / base
        acceptance = f"{np.mean(row['acceptance']):12.3f}" if "acceptance" in row else f"{'-':>12}"
        same = f"{row['same_text']}/8" if row["same_text"] is not None else "-"
        print(f"{name:<10}{acceptance}{row['speedup']:24.3f}{same:>11}")
    return rows


#: The trained reference's tokenizer files, copied into random checkpoints so that pipelines taking
#: text (``VLMPipeline``) can run them; its 4096 ids are a subset of the real vocabulary, and the
#: detokenizer skips ids it does not know.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "preprocessor_config.json")


def timed_config(new_tokens: int, draft_tokens: int = 0) -> openvino_genai.GenerationConfig:
    """Greedy generation of exactly ``new_tokens`` (EOS ignored) from a plain prompt (no chat
    template), with ``draft_tokens`` MTP drafts per step when given: what a timed row runs."""
    import openvino_genai

    config = openvino_genai.GenerationConfig()
    config.max_new_tokens, config.apply_chat_template, config.ignore_eos = new_tokens, False, True
    if draft_tokens:
        config.num_assistant_tokens = draft_tokens
    return config


def build_0_8b_checkpoint(path: Path) -> Path:
    """A random composite checkpoint of the real Qwen3.5-0.8B config (vision tower, MTP head), bf16,
    with the trained reference's tokenizer."""
    if (path / "config.json").is_file():
        return path
    sys.path.insert(0, str(REPO / "tests"))
    import torch
    import transformers
    from hub_models import _mtp_tensors, write_hub_shards

    config_dict = json.loads(HUB_0_8B.read_text())
    config = transformers.AutoConfig.for_model(**config_dict)
    with torch.device("meta"):
        model = transformers.Qwen3_5ForConditionalGeneration(config)
    model = model.to(torch.bfloat16).to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":  # tied
            continue
        with torch.no_grad():
            tensor.normal_(0, 0.02, generator=generator) if tensor.ndim > 1 else tensor.zero_()
        tensors[name] = tensor.float() if name.endswith(("A_log", "linear_attn.norm.weight")) else tensor
    tensors |= {name: t.to(torch.bfloat16) for name, t in _mtp_tensors(config_dict["text_config"], generator).items()}
    path.mkdir(parents=True)
    write_hub_shards(path, tensors, shards=1)
    for name in TOKENIZER_FILES:
        shutil.copyfile(REFERENCE / name, path / name)
    (path / "config.json").write_text(json.dumps(config_dict, indent=2))  # last: marks the folder complete
    return path


def _timed(request, feed: dict) -> float:
    start = time.perf_counter()
    request.infer(feed)
    return time.perf_counter() - start


def lm_head_only(core, folder: Path, hidden: int):
    """The language model's ``lm_head`` MatMul (its INT4/INT8 weight subgraph included) alone, fed a
    ``[1, 1, hidden]`` parameter: openvino-genai grafts it on the MTP head, so a draft step costs
    the MTP IR plus this."""
    import openvino as ov
    import openvino.opset14 as ops

    from optimum_qwen35.runtime import lm_head

    model = core.read_model(folder / "openvino_language_model.xml")  # a fresh copy, cut below
    head = lm_head(model)
    hidden_state = ops.parameter([1, 1, hidden], ov.Type.f32, name="last_hidden_state")
    head.input(0).replace_source_output(hidden_state.output(0))
    return ov.Model([ops.result(head.output(0))], [hidden_state], "lm_head")


def shape_part(work: Path, prompt: int = 128, repeats: int = 31) -> dict:
    """Verification (1..5 tokens) and draft step times on the INT4 0.8B layout."""
    import openvino as ov

    checkpoint = build_0_8b_checkpoint(work / "qwen35-0.8b-vl-random")
    folder = export_layout(checkpoint, work / "ir-0.8b-vl-int4", "int4")
    core = ov.Core()
    hidden = json.loads((checkpoint / "config.json").read_text())["text_config"]["hidden_size"]
    language = core.compile_model(folder / "openvino_language_model.xml", "CPU").create_infer_request()
    mtp = core.compile_model(folder / "openvino_mtp_model.xml", "CPU").create_infer_request()
    head = core.compile_model(lm_head_only(core, folder, hidden), "CPU").create_infer_request()
    rng = np.random.default_rng(0)

    def lm_step(past: int, length: int) -> dict:
        positions = np.broadcast_to(np.arange(past, past + length), (4, 1, length)).astype(np.int64)
        return {
            "inputs_embeds": rng.standard_normal((1, length, hidden), dtype=np.float32) * 0.02,
            "attention_mask": np.ones((1, past + length), np.int64),
            "position_ids": np.ascontiguousarray(positions),
            "beam_idx": np.zeros(1, np.int32),
        }

    def mtp_step(past: int, length: int) -> dict:
        return {
            "hidden_states": rng.standard_normal((1, length, hidden), dtype=np.float32),
            "inputs_embeds": rng.standard_normal((1, length, hidden), dtype=np.float32) * 0.02,
            "attention_mask": np.ones((1, past + length), np.int64),
            "position_ids": np.arange(past, past + length)[None],
            "beam_idx": np.zeros(1, np.int32),
        }

    # Round-robin: each repeat prefills once, then verifies 1, 2, ... 5 tokens in turn (the context
    # grows from 128 to 138 tokens: no measurable difference), then one draft step; so load from
    # other processes on a shared machine falls on every step kind alike, not on one of them.
    head_feed = {"last_hidden_state": rng.standard_normal((1, 1, hidden), dtype=np.float32)}
    times = {n: [] for n in (*range(1, 6), "mtp", "head")}
    for _ in range(repeats):
        language.reset_state()
        language.infer(lm_step(0, prompt))
        past = prompt
        for n in range(1, 6):
            times[n].append(_timed(language, lm_step(past, n)))
            past += n
        mtp.reset_state()
        mtp.infer(mtp_step(0, prompt))
        times["mtp"].append(_timed(mtp, mtp_step(prompt, 1)))
        times["head"].append(_timed(head, head_feed))
    # The fastest of the repeats is what a step costs when the cores are free (other processes only
    # ever add time); the median is printed next to it to show how loaded the machine was.
    fastest = {kind: 1000 * min(seconds) for kind, seconds in times.items()}
    median = {kind: 1000 * float(np.median(seconds)) for kind, seconds in times.items()}
    verify = {n: fastest[n] for n in range(1, 6)}
    draft = fastest["mtp"] + fastest["head"]
    print(f"\nQwen3.5-0.8B shape, INT4 layout, after a {prompt}-token prefill (fastest and median of {repeats})")
    print(f"{'step':<22}{'fastest ms':>11}{'vs one-token decode':>21}{'median ms':>11}{'vs one-token':>14}")
    rows = {f"verify {n} token(s)": (verify[n], median[n]) for n in verify}
    rows["MTP draft + lm_head"] = (draft, median["mtp"] + median["head"])
    for name, (best, middle) in rows.items():
        print(f"{name:<22}{best:11.1f}{best / verify[1]:21.3f}{middle:11.1f}{middle / median[1]:14.3f}")
    return {"verify_ms": verify, "draft_ms": draft, "fastest_ms": fastest, "median_ms": median}


def speedup(costs: dict, k: int, acceptance: float) -> float:
    """Predicted decode speed relative to plain decoding: (1 + k·a) tokens per k drafts + one verification."""
    verify, draft = costs["verify_ms"], costs["draft_ms"]
    return (1 + k * acceptance) * verify[1] / (k * draft + verify[k + 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", default="q35-mtp")
    parser.add_argument("--parts", default="reference,0.8b")
    parser.add_argument("--json")
    parser.add_argument(
        "--acceptance",
        default="0.33,0.6,0.88",
        help="acceptance rates to predict the 0.8B speed-up at (default: the trained reference's at k = 1, "
        "a middle one, llama.cpp's public figure for Qwen3.6-35B-A3B at k = 1)",
    )
    args = parser.parse_args()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    result = {}
    if "reference" in parts:
        result["reference"] = reference_part(work)
    if "0.8b" in parts:
        costs = result["0.8b"] = shape_part(work)
        measured = {k: float(np.mean(result["reference"][f"mtp-k{k}"]["acceptance"])) for k in DRAFTS} if (
            "reference" in result
        ) else {}  # fmt: skip
        grid = [float(a) for a in args.acceptance.split(",")]
        print("\nPredicted 0.8B decode speed-up (INT4, this CPU) at acceptance a, k drafts per step")
        print(f"{'k':<4}{'a measured':>12}{'at measured':>13}" + "".join(f"{'a=' + str(a):>9}" for a in grid))
        for k in DRAFTS:
            a = measured.get(k)
            head = f"{k:<4}{a:12.3f}{speedup(costs, k, a):13.3f}" if a is not None else f"{k:<4}{'-':>12}{'-':>13}"
            print(head + "".join(f"{speedup(costs, k, g):9.3f}" for g in grid))
        result["predicted"] = {k: {str(a): speedup(costs, k, a) for a in grid} for k in DRAFTS}
        _plot(costs, measured, work)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


def _plot(costs: dict, measured: dict, work: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    acceptance = np.linspace(0, 1, 51)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for k in DRAFTS:
        line = axis.plot(acceptance, [speedup(costs, k, a) for a in acceptance], label=f"k = {k}")[0]
        if k in measured:
            axis.scatter([measured[k]], [speedup(costs, k, measured[k])], color=line.get_color(), zorder=3)
    axis.axhline(1, color="grey", linewidth=0.8)
    axis.set(
        xlabel="draft acceptance rate", ylabel="decode speed vs no draft",
        title="MTP drafting, Qwen3.5-0.8B shape INT4, CPU (dots: trained reference's acceptance)",
    )  # fmt: skip
    axis.legend()
    axis.grid(alpha=0.3)
    figure.savefig(work / "mtp.png", dpi=110, bbox_inches="tight")
    print(f"wrote {work / 'mtp.png'}")


if __name__ == "__main__":
    main()
