"""Loading a local Qwen3.5 folder with ``HF_HUB_OFFLINE=1`` behaves as it does online.

``OVBaseModel.from_pretrained`` decides whether to export by looking for OpenVINO files: online in
the folder, but offline (``local_files_only`` forced on) in the hub cache under the folder's
path taken as a hub id. The look-up fails, optimum-intel logs "Could not infer whether the model
was already converted" and keeps ``export`` as passed, so an offline
``from_pretrained(<checkpoint folder>)`` read ``openvino_model.xml`` from the checkpoint and
failed inside OpenVINO ("Could not open the file"), where online it exports. For a local Qwen3.5
folder the hook makes the decision from the folder itself, as online.
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from typing import Any

from optimum.intel.openvino.modeling_base import OVBaseModel, is_offline_mode

from .checkpoint import qwen35_checkpoint_config

logger = logging.getLogger(__name__)


def has_openvino_files(folder: Path, pattern: str) -> bool:
    """True when ``folder`` holds a file whose name matches optimum-intel's ``_search_pattern``."""
    return any(re.search(pattern, path.name) for path in folder.iterdir() if path.is_file())


def install(model_types: set[str]) -> None:
    """Hook ``OVBaseModel.from_pretrained`` (every ``OVModelFor*`` class) for local Qwen3.5 folders offline."""
    original = OVBaseModel.__dict__["from_pretrained"].__func__
    if getattr(original, "__optimum_qwen35__", False):
        return

    @functools.wraps(original)
    def from_pretrained(cls, model_id: str | Path, export: bool = False, *args: Any, **kwargs: Any):
        folder = Path(str(model_id)) / kwargs.get("subfolder", "")
        if (
            not export
            and is_offline_mode()
            and folder.is_dir()
            and qwen35_checkpoint_config(folder, model_types) is not None
            and not has_openvino_files(folder, cls._search_pattern)
        ):
            logger.warning("No OpenVINO files in %s: setting `export=True` to convert it (as online).", folder)
            export = True
        return original(cls, model_id, export, *args, **kwargs)

    from_pretrained.__optimum_qwen35__ = True
    OVBaseModel.from_pretrained = classmethod(from_pretrained)
