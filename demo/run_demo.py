"""Offline demo: export the bundled tiny Qwen3.5 checkpoint and generate with both runtimes.

    python demo/run_demo.py [--output demo-output] [--prompt "def main():\\n"]

The checkpoint (demo/qwen35-code-vl-mtp) is a small composite (vision-language) Qwen3.5 trained on
Python source, laid out exactly like a hub checkpoint (``model.language_model.*``, ``model.visual.*``,
``mtp.*``, sharded ``model.safetensors-0000K-of-0000N``, float32 ``A_log`` and gated norm, the real
0.8B/2B chat template); the text export drops its vision tower and MTP head.

It prints the export's steps (stderr), then the export folder and its size, then the text each
runtime generates (greedy, so both give the same continuation).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import openvino_genai

import optimum_qwen35

HERE = Path(__file__).parent


def folder_size(folder: Path) -> int:
    """Bytes of the files in ``folder`` and below."""
    return sum(file.stat().st_size for file in folder.rglob("*") if file.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=HERE / "qwen35-code-vl-mtp")
    parser.add_argument("--output", type=Path, default=Path("demo-output"))
    parser.add_argument("--prompt", default="def read_lines(path):\n")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--verbose", action="store_true", help="Show every message of the libraries underneath.")
    args = parser.parse_args()

    optimum_qwen35.export(args.checkpoint, args.output, overwrite=True, verbose=args.verbose)
    print(f"Exported {args.checkpoint} to {args.output} ({folder_size(args.output) / 2**20:.1f} MiB)")

    pipe = openvino_genai.LLMPipeline(str(args.output), "CPU")
    config = openvino_genai.GenerationConfig(max_new_tokens=args.max_new_tokens)
    config.apply_chat_template = False
    print("\n--- openvino_genai.LLMPipeline ---")
    print(args.prompt + pipe.generate(args.prompt, config))

    from optimum.intel import OVModelForCausalLM
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.output)
    model = OVModelForCausalLM.from_pretrained(args.output)
    inputs = tokenizer(args.prompt, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=args.max_new_tokens, do_sample=False)
    print(f"\n--- optimum.intel.{type(model).__name__} ---")
    print(tokenizer.decode(output[0], skip_special_tokens=True))


if __name__ == "__main__":
    main()
