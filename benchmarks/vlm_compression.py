"""What ``--weight-format int4|int8`` does to the vision-language layout's vision and embedding models.

optimum-intel compresses the language model and the MTP head with the requested config (the
Qwen3.5 policy) and every other part to INT8 (symmetric, per channel). This script exports a
checkpoint uncompressed and with each weight format, then reports per part the IR size and the
output error against the uncompressed export: the vision tower's merged embeddings (patch
embedding, position interpolation, blocks, merger, through ``OVModelForVisualCausalLM``) on random
pixels of a 448 x 448 image, and the text embeddings of every token id.

    python benchmarks/vlm_compression.py CHECKPOINT --work-dir /tmp/q35-vlm [--formats int8,int4]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import openvino as ov
import torch

import optimum_qwen35

F32 = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
PARTS = ("language", "mtp", "text_embeddings", "vision_embeddings", "vision_embeddings_merger", "vision_embeddings_pos")


def export(checkpoint: Path, folder: Path, weight_format: str | None) -> Path:
    if not (folder / "openvino_language_model.xml").is_file():
        optimum_qwen35.export(
            checkpoint, folder, task="image-text-to-text", weight_format=weight_format, overwrite=True
        )
    return folder


def outputs(folder: Path, config: dict) -> dict[str, np.ndarray]:
    from optimum.intel import OVModelForVisualCausalLM

    vision = config["vision_config"]
    patches = 448 // vision["patch_size"]
    grid = torch.tensor([[1, patches, patches]])
    width = vision["in_channels"] * vision["temporal_patch_size"] * vision["patch_size"] ** 2
    pixels = torch.randn(patches * patches, width, generator=torch.Generator().manual_seed(0))
    model = OVModelForVisualCausalLM.from_pretrained(folder, ov_config=F32)
    ids = np.arange(config["text_config"]["vocab_size"])[None]
    embeddings = ov.Core().compile_model(folder / "openvino_text_embeddings_model.xml", "CPU", F32)(ids)[0]
    return {"vision": np.asarray(model.get_vision_embeddings(pixels, grid)), "text_embeddings": embeddings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--work-dir", default="q35-vlm")
    parser.add_argument("--formats", default="int8,int4")
    parser.add_argument("--json")
    args = parser.parse_args()
    work = Path(args.work_dir)
    config = json.loads((args.checkpoint / "config.json").read_text())
    base = export(args.checkpoint, work / "uncompressed", None)
    reference = outputs(base, config)
    result = {}
    for weight_format in args.formats.split(","):
        folder = export(args.checkpoint, work / weight_format, weight_format)
        got = outputs(folder, config)
        sizes = {part: (folder / f"openvino_{part}_model.bin").stat().st_size / 1e6 for part in PARTS}
        base_sizes = {part: (base / f"openvino_{part}_model.bin").stat().st_size / 1e6 for part in PARTS}
        errors = {
            name: float(np.abs(got[name] - reference[name]).max() / np.abs(reference[name]).max()) for name in got
        }
        cosine = {
            name: float(
                np.mean(
                    np.sum(got[name] * reference[name], -1)
                    / (np.linalg.norm(got[name], axis=-1) * np.linalg.norm(reference[name], axis=-1))
                )
            )
            for name in got
        }
        result[weight_format] = {
            "size_mb": sizes,
            "uncompressed_mb": base_sizes,
            "max_rel_error": errors,
            "cosine": cosine,
        }
        print(f"\n--weight-format {weight_format} vs uncompressed ({args.checkpoint.name})")
        print(f"{'part':<28}{'MB':>9}{'uncompressed MB':>17}")
        for part in PARTS:
            print(f"{part:<28}{sizes[part]:9.2f}{base_sizes[part]:17.2f}")
        for name in got:
            print(f"{name} output: max error / max |value| {errors[name]:.2e}, mean cosine {cosine[name]:.6f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
