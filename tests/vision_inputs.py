"""What ``Qwen3VLProcessor`` returns for a prompt with images, built without torchvision or PIL.

transformers' Qwen3.5 image processors need torchvision (5.2, and 5.5's default) or PIL (5.5's
alternative); neither is a dependency here. These helpers do what the processor does for an
image whose size its ``smart_resize`` keeps (sides multiples of ``patch_size * merge_size``,
pixel count within ``size``), so no resampling is involved: rescale, normalise, repeat the frame
to ``temporal_patch_size``, cut patches in the merge-window order of ``Qwen2VLImageProcessor``;
then expand each ``<|image_pad|>`` to one token per merged patch and add ``mm_token_type_ids``
when the installed release's processor returns them (5.3 and later).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessorKwargs


def processor_returns_mm_token_type_ids() -> bool:
    """True when the installed ``Qwen3VLProcessor`` adds ``mm_token_type_ids`` by default (transformers ≥ 5.3)."""
    return bool(Qwen3VLProcessorKwargs._defaults["text_kwargs"].get("return_mm_token_type_ids"))


def sample_image(height: int, width: int, seed: int) -> np.ndarray:
    """A uint8 RGB image ``[H, W, 3]``: smooth gradients plus noise, different per seed."""
    rng = np.random.default_rng(seed)
    rows, cols = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    base = np.stack([rows, cols, (rows + cols) / 2], axis=-1) * rng.uniform(60, 200, 3)
    return np.clip(base + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)


def image_patches(image: np.ndarray, preprocessor: dict) -> tuple[np.ndarray, list[int]]:
    """``(pixel_values [t·h·w, C·T·P·P] float32, [t, h, w])`` of one ``[H, W, 3]`` uint8 image, as
    ``Qwen2VLImageProcessor._preprocess`` computes them (transformers 5.2 and 5.5 share the layout)."""
    patch, temporal, merge = preprocessor["patch_size"], preprocessor["temporal_patch_size"], preprocessor["merge_size"]
    height, width, _ = image.shape
    factor = patch * merge
    size = preprocessor["size"]
    # Only sizes smart_resize returns unchanged: no resampling to reproduce.
    assert height % factor == 0 and width % factor == 0, (height, width, factor)
    assert size["shortest_edge"] <= height * width <= size["longest_edge"], (height, width, size)
    pixels = image.astype(np.float32) * preprocessor["rescale_factor"]
    mean, std = (np.array(preprocessor[key], np.float32) for key in ("image_mean", "image_std"))
    pixels = (pixels - mean) / std
    frames = np.repeat(pixels.transpose(2, 0, 1)[None], temporal, axis=0)  # [T, C, H, W]: one frame, repeated
    grid_h, grid_w = height // patch, width // patch
    patches = frames.reshape(1, temporal, 3, grid_h // merge, merge, patch, grid_w // merge, merge, patch)
    patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return patches.reshape(grid_h * grid_w, 3 * temporal * patch * patch), [1, grid_h, grid_w]


def processor_inputs(folder: Path, pieces: list[list[int] | np.ndarray]) -> dict[str, torch.Tensor]:
    """``processor(text=..., images=..., return_tensors="pt")`` for one prompt given as ``pieces``:
    token-id lists (what the tokenizer makes of the text) and images, each image written as the chat
    template writes it, ``<|vision_start|><|image_pad|><|vision_end|>``, with the pad expanded."""
    config = json.loads((folder / "config.json").read_text())
    preprocessor = json.loads((folder / "preprocessor_config.json").read_text())
    ids, pixels, grids = [], [], []
    for piece in pieces:
        if isinstance(piece, np.ndarray):
            values, grid = image_patches(piece, preprocessor)
            pixels.append(values)
            grids.append(grid)
            tokens = int(np.prod(grid)) // preprocessor["merge_size"] ** 2
            pad = [config["image_token_id"]] * tokens
            ids += [config["vision_start_token_id"], *pad, config["vision_end_token_id"]]
        else:
            ids += list(piece)
    inputs = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.int64)}
    if processor_returns_mm_token_type_ids():
        inputs["mm_token_type_ids"] = (inputs["input_ids"] == config["image_token_id"]).long()
    if pixels:
        inputs["pixel_values"] = torch.from_numpy(np.concatenate(pixels))
        inputs["image_grid_thw"] = torch.tensor(grids)
    return inputs
