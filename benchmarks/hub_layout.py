"""Random full-width Qwen3.5 checkpoints in the hub's layout, written one tensor at a time.

The tensor names and shapes come from transformers' own model of the real hub config
(``tests/data/hub-configs/Qwen3.5-<size>/config.json``) built on the meta device, plus the MTP
head transformers does not model, so they are what ``Qwen/Qwen3.5-<size>`` stores:
``model.language_model.*``, ``model.visual.*`` (the full vision tower), ``mtp.*`` (15 tensors for a
dense model; for the MoE its experts one tensor per expert), language-model experts fused
(``mlp.experts.gate_up_proj [E, 2I, H]``, ``mlp.experts.down_proj [E, H, I]``), ``lm_head.weight``
only when untied, ``linear_attn.A_log`` and ``linear_attn.norm.weight`` float32 and the rest
bfloat16 (``tests/hub_models.py`` writes miniatures of the same layout; the MTP name list is
repeated here so that benchmarks do not import tests).

``--layers N`` keeps the full width and cuts the depth to the first ``N`` entries of the real
``layer_types`` (the hub's period is 4: three linear-attention layers, then a full-attention one,
so ``N`` < 4 has no full-attention layer). Each tensor is generated and written in chunks straight
into a safetensors file, never the whole checkpoint in memory. Shards are one per decoder layer
plus the embedding/norm/head, the vision tower and the MTP head; they are written once into a pool
per size and hard-linked into each depth's folder as ``model.safetensors-0000K-of-0000N.safetensors``
beside ``model.safetensors.index.json``, so a 2-layer and a 4-layer checkpoint share their files.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import struct
import zlib
from pathlib import Path

HUB_CONFIGS = Path(__file__).resolve().parent.parent / "tests" / "data" / "hub-configs"
#: Hub sizes this module builds at full width (``Qwen/Qwen3.5-<size>``).
HUB_SHAPES = ("27B", "35B-A3B")
_FLOAT32 = ("linear_attn.A_log", "linear_attn.norm.weight")
_SAFETENSORS_DTYPE = {"bfloat16": "BF16", "float32": "F32"}
_ITEM_SIZE = {"bfloat16": 2, "float32": 4}
#: Elements generated at once: bounds the writer's memory (~0.25 GB of float32) whatever the tensor.
_CHUNK = 1 << 26

Spec = tuple[str, tuple[int, ...], str]  # name, shape, dtype name


def hub_config(size: str) -> dict:
    """The real ``config.json`` of ``Qwen/Qwen3.5-<size>``."""
    return json.loads((HUB_CONFIGS / f"Qwen3.5-{size}" / "config.json").read_text())


def cut(config: dict, layers: int) -> dict:
    """A copy of ``config`` with its text depth cut to ``layers``: the first entries of ``layer_types``."""
    config = copy.deepcopy(config)
    text = config["text_config"]
    if not 1 <= layers <= text["num_hidden_layers"]:
        raise ValueError(f"{layers} layers: the model has 1 to {text['num_hidden_layers']}")
    text.update(num_hidden_layers=layers, layer_types=text["layer_types"][:layers])
    return config


def _mtp_specs(text: dict) -> dict[str, tuple[int, ...]]:
    """The hub's ``mtp.*`` shapes: fc, three norms, one full-attention decoder layer (dense or MoE MLP)."""
    hidden, head_dim = text["hidden_size"], text["head_dim"]
    heads, kv_heads = text["num_attention_heads"], text["num_key_value_heads"]
    layer = "mtp.layers.0."
    shapes = {
        "mtp.fc.weight": (hidden, 2 * hidden),
        "mtp.pre_fc_norm_embedding.weight": (hidden,),
        "mtp.pre_fc_norm_hidden.weight": (hidden,),
        "mtp.norm.weight": (hidden,),
        layer + "input_layernorm.weight": (hidden,),
        layer + "post_attention_layernorm.weight": (hidden,),
        layer + "self_attn.q_proj.weight": (2 * heads * head_dim, hidden),  # query and output gate
        layer + "self_attn.k_proj.weight": (kv_heads * head_dim, hidden),
        layer + "self_attn.v_proj.weight": (kv_heads * head_dim, hidden),
        layer + "self_attn.o_proj.weight": (hidden, heads * head_dim),
        layer + "self_attn.q_norm.weight": (head_dim,),
        layer + "self_attn.k_norm.weight": (head_dim,),
    }
    mlp = layer + "mlp."
    if "num_experts" not in text:
        inner = text["intermediate_size"]
        projections = {"gate_proj": (inner, hidden), "up_proj": (inner, hidden), "down_proj": (hidden, inner)}
        return shapes | {f"{mlp}{name}.weight": shape for name, shape in projections.items()}
    inner, shared = text["moe_intermediate_size"], text["shared_expert_intermediate_size"]
    for expert in range(text["num_experts"]):  # the hub stores MTP experts one tensor per expert
        prefix = f"{mlp}experts.{expert}."
        shapes |= {
            prefix + "gate_proj.weight": (inner, hidden),
            prefix + "up_proj.weight": (inner, hidden),
            prefix + "down_proj.weight": (hidden, inner),
        }
    return shapes | {
        mlp + "gate.weight": (text["num_experts"], hidden),
        mlp + "shared_expert.gate_proj.weight": (shared, hidden),
        mlp + "shared_expert.up_proj.weight": (shared, hidden),
        mlp + "shared_expert.down_proj.weight": (hidden, shared),
        mlp + "shared_expert_gate.weight": (1, hidden),
    }


def tensor_specs(config: dict) -> list[Spec]:
    """Every tensor of the hub checkpoint for ``config``: transformers' model on the meta device + MTP."""
    import torch
    import transformers

    model_config = transformers.AutoConfig.for_model(**copy.deepcopy(config))
    with torch.device("meta"):
        model = getattr(transformers, config["architectures"][0])(model_config)
    shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    if config["tie_word_embeddings"]:
        del shapes["lm_head.weight"]  # the hub stores a tied vocabulary table once
    shapes |= _mtp_specs(config["text_config"])
    return [(name, shape, "float32" if name.endswith(_FLOAT32) else "bfloat16") for name, shape in shapes.items()]


def spec_bytes(specs: list[Spec]) -> int:
    return sum(math.prod(shape) * _ITEM_SIZE[dtype] for _, shape, dtype in specs)


def _shard_group(name: str) -> str:
    """The pool shard a tensor goes to: ``layer-<i>``, ``visual``, ``mtp`` or ``base`` (embedding, norm, head)."""
    prefix = "model.language_model.layers."
    if name.startswith(prefix):
        return f"layer-{int(name[len(prefix) :].split('.')[0]):03d}"
    if name.startswith("model.visual."):
        return "visual"
    return "mtp" if name.startswith("mtp.") else "base"


def write_safetensors(path: Path, specs: list[Spec]) -> None:
    """A safetensors file of random N(0, 0.02) tensors, each generated and written in chunks.

    The header is known from the shapes alone, so the file is streamed: at most ``_CHUNK``
    elements are in memory at once. Each tensor's values depend only on its name (seeded by it).
    """
    import torch

    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, dtype in specs:
        size = math.prod(shape) * _ITEM_SIZE[dtype]
        header[name] = {
            "dtype": _SAFETENSORS_DTYPE[dtype],
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as stream:
        stream.write(struct.pack("<Q", len(encoded)) + encoded)
        for name, shape, dtype in specs:
            generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            rows = max(1, _CHUNK // max(1, math.prod(shape[1:])))
            for start in range(0, shape[0] if shape else 1, rows):
                chunk_shape = (min(rows, shape[0] - start), *shape[1:]) if shape else ()
                chunk = torch.empty(chunk_shape).normal_(0.0, 0.02, generator=generator)
                stream.write(chunk.to(getattr(torch, dtype)).reshape(-1).view(torch.uint8).numpy().tobytes())
    partial.rename(path)


def build_hub_checkpoint(size: str, layers: int, path: Path, pool: Path, config: dict | None = None) -> Path:
    """``path``: a random ``Qwen/Qwen3.5-<size>`` checkpoint cut to ``layers``, in the hub's layout.

    Missing shards are written into ``pool`` (shared by every depth of ``size``) and hard-linked
    into ``path``; an existing ``path/config.json`` means the checkpoint is complete. ``config``
    replaces the hub config (a miniature of it, in tests); it is cut to ``layers`` all the same.
    """
    if (path / "config.json").is_file():
        return path
    config = cut(config or hub_config(size), layers)
    groups: dict[str, list[Spec]] = {}
    for spec in tensor_specs(config):
        groups.setdefault(_shard_group(spec[0]), []).append(spec)
    order = ["base", *(f"layer-{index:03d}" for index in range(layers)), "visual", "mtp"]
    pool.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    weight_map = {}
    for index, group in enumerate(order):
        pooled = pool / f"{group}.safetensors"
        if not pooled.is_file():
            write_safetensors(pooled, groups[group])
        shard = f"model.safetensors-{index + 1:05d}-of-{len(order):05d}.safetensors"
        os.link(pooled, path / shard)
        weight_map |= dict.fromkeys((name for name, _, _ in groups[group]), shard)
    total = sum(spec_bytes(specs) for specs in groups.values())
    index_file = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (path / "model.safetensors.index.json").write_text(json.dumps(index_file, indent=2))
    generation = HUB_CONFIGS / f"Qwen3.5-{size}" / "generation_config.json"
    if generation.is_file():
        shutil.copyfile(generation, path / "generation_config.json")
    (path / "config.json").write_text(json.dumps(config, indent=2))  # last: marks the folder complete
    return path
