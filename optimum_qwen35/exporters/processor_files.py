"""The image/video processor configs of the vision-language layout.

openvino-genai's ``VLMPipeline`` (and OVMS) read the image preprocessing from
``preprocessor_config.json`` (``patch_size``, ``temporal_patch_size``, ``merge_size``,
``image_mean``/``image_std``, ``size``) or ``processor_config.json``; without one it falls back to
a patch size of 14 and crashes on the first image. optimum-intel writes them only when transformers
can instantiate the checkpoint's processor, which needs torchvision (its video processor) on
transformers 5.5 — not a dependency of this plugin. The files are plain JSON, so they are copied
from the checkpoint; a checkpoint without any gets the Qwen3.5 hub values, derived from its
``vision_config``.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from ..checkpoint import checkpoint_folder

logger = logging.getLogger(__name__)

PROCESSOR_FILES = (
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "processor_config.json",
    "chat_template.json",
)


def default_preprocessor_config(config: dict) -> dict:
    """The hub Qwen3.5 checkpoints' image preprocessing, with the patch sizes of ``config['vision_config']``."""
    vision = config.get("vision_config") or {}
    return {
        "image_processor_type": "Qwen2VLImageProcessorFast",
        "processor_class": "Qwen3VLProcessor",
        "do_resize": True,
        "do_rescale": True,
        "do_normalize": True,
        "do_convert_rgb": True,
        "rescale_factor": 1 / 255,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "patch_size": vision.get("patch_size", 16),
        "temporal_patch_size": vision.get("temporal_patch_size", 2),
        "merge_size": vision.get("spatial_merge_size", 2),
        "size": {"shortest_edge": 65536, "longest_edge": 16777216},
    }


def write_processor_files(model_name_or_path: object, config: dict, output: Path) -> None:
    """Copy the checkpoint's processor configs into ``output`` where optimum-intel wrote none."""
    folder = checkpoint_folder(model_name_or_path)
    copied = []
    for name in PROCESSOR_FILES:
        source = folder / name if folder is not None else None
        if source is not None and source.is_file() and not (output / name).exists():
            shutil.copyfile(source, output / name)
        if (output / name).exists():
            copied.append(name)
    if not {"preprocessor_config.json", "processor_config.json"} & set(copied):
        logger.warning(
            "%s has no preprocessor_config.json: wrote the Qwen3.5 hub values (patch %s, mean/std 0.5) so that "
            "VLMPipeline preprocesses images as the hub checkpoints do. Fix: copy the checkpoint's own file into "
            "the output if it differs.",
            model_name_or_path,
            (config.get("vision_config") or {}).get("patch_size", 16),
        )
        (output / "preprocessor_config.json").write_text(json.dumps(default_preprocessor_config(config), indent=2))
