"""A random bf16 checkpoint of Qwen3.5-35B-A3B's text model at full width, cut to a few layers.

The real text config (``tests/data/hub-configs/Qwen3.5-35B-A3B``: hidden 2048, 256 experts of
width 512, top-8, a shared expert of 512) with ``--layers`` layers of the given ``--layer-types``
and, by default, a 4096-token vocabulary: the real 248k vocabulary would add 2 GB of embedding and
``lm_head`` that say nothing about the MoE block. One layer holds 0.81 B parameters (1.6 GB).
Built on the meta device and filled in bf16, so no float32 copy is ever held.

    python benchmarks/moe_shape.py /tmp/q35-moe-1l --layers 1 --layer-types full_attention
    optimum-cli export openvino --model /tmp/q35-moe-1l /tmp/q35-moe-1l-ov
    python benchmarks/profile_ops.py /tmp/q35-moe-1l-ov --prompt 128 --steps 16
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HUB_CONFIG = Path(__file__).resolve().parents[1] / "tests" / "data" / "hub-configs" / "Qwen3.5-35B-A3B" / "config.json"


def build(path: Path, layer_types: list[str], vocab_size: int) -> Path:
    """Write the checkpoint to ``path`` (config, safetensors) and return it."""
    import torch
    from transformers import Qwen3_5MoeForCausalLM, Qwen3_5MoeTextConfig

    text = json.loads(HUB_CONFIG.read_text())["text_config"]
    text |= {"num_hidden_layers": len(layer_types), "layer_types": layer_types, "vocab_size": vocab_size}
    text |= {"eos_token_id": vocab_size - 1}
    config = Qwen3_5MoeTextConfig(**text)
    with torch.device("meta"):
        model = Qwen3_5MoeForCausalLM(config)
    model = model.to(torch.bfloat16).to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.zero_()  # Qwen3.5 norms scale by (1 + weight)
            elif name.endswith("A_log"):
                parameter.uniform_(0.0, 2.0, generator=generator)
            else:
                parameter.normal_(0.0, 0.02, generator=generator)
    model.save_pretrained(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path, help="output folder")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--layer-types", default="full_attention", help="comma-separated, cycled over the layers")
    parser.add_argument("--vocab-size", type=int, default=4096)
    args = parser.parse_args()
    kinds = args.layer_types.split(",")
    build(args.path, [kinds[i % len(kinds)] for i in range(args.layers)], args.vocab_size)


if __name__ == "__main__":
    main()
