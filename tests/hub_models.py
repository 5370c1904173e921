"""Miniatures of the real hub checkpoints, written the way the hub stores them.

``tests/data/hub-configs/`` holds byte-exact copies of the public ``config.json`` files. A
miniature keeps everything of its config but the sizes: model types, architectures, the dtype only
inside ``text_config``, ``mtp_num_hidden_layers``, ``mrope_interleaved``, ``mlp_only_layers``, the
real head counts (so head ratios and untied heads stay), and ``transformers_version``. The weights
are written with ``safetensors`` directly, not with ``save_pretrained``, so that no transformers
release decides their layout: ``model.language_model.*``, ``model.visual.*``, ``mtp.*`` (15 tensors
for a dense model; for the MoE its experts one tensor per expert), language-model MoE experts fused
(``mlp.experts.gate_up_proj [E, 2I, H]``, ``mlp.experts.down_proj [E, H, I]``, no ``.weight``),
``lm_head.weight`` only when untied, ``linear_attn.A_log`` and ``linear_attn.norm.weight`` float32
and everything else bfloat16, in shards named ``model.safetensors-0000K-of-0000N.safetensors``.
No tokenizer files, like a checkpoint folder holding only the model.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from tiny_models import _decisive

HUB_CONFIGS = Path(__file__).parent / "data" / "hub-configs"
#: Every public Qwen3.5 size (the -Base checkpoints share these configs).
HUB_SIZES = ("0.8B", "2B", "4B", "9B", "27B", "35B-A3B")
#: The real chat templates: 0.8B/2B think only when asked, 4B and larger unless told not to.
CHAT_TEMPLATES = {
    "no-thinking-default": HUB_CONFIGS / "chat_template.0.8B-2B.jinja",
    "thinking-default": HUB_CONFIGS / "chat_template.4B-9B-27B-35B-A3B.jinja",
}

VOCAB = 1024
#: Token ids above this are special (vision, EOS, pad); they keep their distance to the vocabulary's end.
_REAL_VOCAB = 248320
_TOKEN_ID_KEYS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
_FLOAT32 = ("linear_attn.A_log", "linear_attn.norm.weight")


def hub_config(size: str) -> dict:
    """The real ``config.json`` of ``Qwen/Qwen3.5-<size>``."""
    return json.loads((HUB_CONFIGS / f"Qwen3.5-{size}" / "config.json").read_text())


def _token_id(real: int | list | None) -> int | list | None:
    if isinstance(real, list):
        return [_token_id(value) for value in real]
    return None if real is None else real - _REAL_VOCAB + VOCAB


def miniature_config(size: str) -> dict:
    """The hub config with every size shrunk and every other field kept."""
    config = copy.deepcopy(hub_config(size))
    text, vision = config["text_config"], config["vision_config"]
    layers = 8  # two full-attention layers at the hub's period of 4
    text.update(
        hidden_size=64,
        head_dim=64,
        num_hidden_layers=layers,
        layer_types=text["layer_types"][:layers],
        linear_key_head_dim=16,
        linear_value_head_dim=16,
        vocab_size=VOCAB,
        eos_token_id=_token_id(text["eos_token_id"]),
    )
    text["rope_parameters"]["mrope_section"] = [3, 3, 2]  # 64 * 0.25 / 2 = 8 rotary pairs, split as the hub's 11/11/10
    if "num_experts" in text:
        text.update(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, shared_expert_intermediate_size=32)
    else:
        text["intermediate_size"] = 128
    vision.update(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64)
    vision["num_position_embeddings"] = 64
    for key in _TOKEN_ID_KEYS:
        config[key] = _token_id(config[key])
    return config


def _mtp_tensors(text: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random ``mtp.*`` tensors shaped as the hub's: fc, three norms, one full-attention decoder layer."""
    hidden, head_dim = text["hidden_size"], text["head_dim"]
    heads, kv_heads = text["num_attention_heads"], text["num_key_value_heads"]

    def weight(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator) * (0.1 if len(shape) == 1 else 0.08)

    layer = "mtp.layers.0."
    tensors = {
        "mtp.fc.weight": weight(hidden, 2 * hidden),
        "mtp.pre_fc_norm_embedding.weight": weight(hidden),
        "mtp.pre_fc_norm_hidden.weight": weight(hidden),
        "mtp.norm.weight": weight(hidden),
        layer + "input_layernorm.weight": weight(hidden),
        layer + "post_attention_layernorm.weight": weight(hidden),
        layer + "self_attn.q_proj.weight": weight(2 * heads * head_dim, hidden),  # query and output gate
        layer + "self_attn.k_proj.weight": weight(kv_heads * head_dim, hidden),
        layer + "self_attn.v_proj.weight": weight(kv_heads * head_dim, hidden),
        layer + "self_attn.o_proj.weight": weight(hidden, heads * head_dim),
        layer + "self_attn.q_norm.weight": weight(head_dim),
        layer + "self_attn.k_norm.weight": weight(head_dim),
    }
    mlp = layer + "mlp."
    if "num_experts" not in text:
        inner = text["intermediate_size"]
        tensors |= {
            mlp + "gate_proj.weight": weight(inner, hidden),
            mlp + "up_proj.weight": weight(inner, hidden),
            mlp + "down_proj.weight": weight(hidden, inner),
        }
        return tensors
    inner, shared = text["moe_intermediate_size"], text["shared_expert_intermediate_size"]
    for expert in range(text["num_experts"]):  # the hub stores MTP experts one tensor per expert
        prefix = f"{mlp}experts.{expert}."
        tensors |= {
            prefix + "gate_proj.weight": weight(inner, hidden),
            prefix + "up_proj.weight": weight(inner, hidden),
            prefix + "down_proj.weight": weight(hidden, inner),
        }
    tensors |= {
        mlp + "gate.weight": weight(text["num_experts"], hidden),
        mlp + "shared_expert.gate_proj.weight": weight(shared, hidden),
        mlp + "shared_expert.up_proj.weight": weight(shared, hidden),
        mlp + "shared_expert.down_proj.weight": weight(hidden, shared),
        mlp + "shared_expert_gate.weight": weight(1, hidden),
    }
    return tensors


def _hub_dtype(name: str, tensor: torch.Tensor) -> torch.Tensor:
    dtype = torch.float32 if name.endswith(_FLOAT32) else torch.bfloat16
    return tensor.detach().to(dtype).contiguous()


def write_hub_shards(folder: Path, tensors: dict[str, torch.Tensor], shards: int = 2) -> None:
    """Write ``tensors`` as the hub's ``model.safetensors-0000K-of-0000N.safetensors`` shards + index."""
    names = sorted(tensors)
    per_shard = -(-len(names) // shards)
    weight_map = {}
    for index in range(shards):
        shard = f"model.safetensors-{index + 1:05d}-of-{shards:05d}.safetensors"
        part = {name: tensors[name] for name in names[index * per_shard : (index + 1) * per_shard]}
        save_file(part, folder / shard, metadata={"format": "pt"})
        weight_map |= dict.fromkeys(part, shard)
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def make_hub_checkpoint(path: Path, size: str, seed: int = 0) -> Path:
    """Write a random miniature of ``Qwen/Qwen3.5-<size>`` under ``path`` in the hub's layout."""
    config_dict = miniature_config(size)
    torch.manual_seed(seed)
    config = transformers.AutoConfig.for_model(**config_dict)
    model = getattr(transformers, config_dict["architectures"][0])(config)
    _decisive(model, seed)
    tensors = dict(model.state_dict())
    if config_dict["tie_word_embeddings"]:
        del tensors["lm_head.weight"]  # the hub stores a tied vocabulary table once
    tensors |= _mtp_tensors(config_dict["text_config"], torch.Generator().manual_seed(seed + 1))
    path.mkdir(parents=True)
    write_hub_shards(path, {name: _hub_dtype(name, tensor) for name, tensor in tensors.items()})
    (path / "config.json").write_text(json.dumps(config_dict, indent=4))
    generation = HUB_CONFIGS / f"Qwen3.5-{size}" / "generation_config.json"
    if generation.is_file():
        real = json.loads(generation.read_text())
        for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
            real[key] = _token_id(real[key])
        (path / "generation_config.json").write_text(json.dumps(real, indent=4))
    return path
