"""Registration: takes precedence for Qwen3.5 text tasks, is idempotent, leaves other models alone."""

from __future__ import annotations

import re

import optimum.exporters.openvino.__main__ as ov_main
import optimum.exporters.openvino.convert as ov_convert
import pytest
from optimum.exporters.tasks import TasksManager

import optimum_qwen35
from optimum_qwen35 import UnsupportedEnvironmentError
from optimum_qwen35 import versions as versions_module
from optimum_qwen35.exporters.config import Qwen35TextOpenVINOConfig


def _config_class(model_type: str, task: str):
    constructor = TasksManager.get_exporter_config_constructor(
        "openvino", model_type=model_type, task=task, library_name="transformers"
    )
    return constructor.func if hasattr(constructor, "func") else constructor


def test_qwen35_text_tasks_use_the_plugin():
    for model_type in ("qwen3_5_text", "qwen3_5"):
        for task in ("text-generation", "text-generation-with-past"):
            assert _config_class(model_type, task) is Qwen35TextOpenVINOConfig


def test_other_entries_untouched():
    assert _config_class("llama", "text-generation-with-past") is not Qwen35TextOpenVINOConfig


def test_register_is_idempotent():
    hooks = (ov_main.infer_task, ov_main.main_export, ov_convert.patch_stateful)
    optimum_qwen35.register()
    optimum_qwen35.registry._registered = False  # force a second full pass
    optimum_qwen35.register()
    assert (ov_main.infer_task, ov_main.main_export, ov_convert.patch_stateful) == hooks
    assert _config_class("qwen3_5_text", "text-generation-with-past") is Qwen35TextOpenVINOConfig


def test_every_import_of_main_export_is_the_hook():
    # `from optimum.exporters.openvino import main_export` (documented) and the binding
    # OVModelForCausalLM.from_pretrained(export=True) calls must not bypass the plugin's checks.
    import optimum.exporters.openvino as ov_exporters
    import optimum.intel.openvino.modeling_base as modeling_base
    import optimum.intel.openvino.modeling_decoder as modeling_decoder

    for module in (ov_exporters, modeling_decoder, modeling_base):
        assert module.main_export is ov_main.main_export, module.__name__
    assert ov_main.main_export.__wrapped__ is not ov_main.main_export


def test_task_inference(composite_checkpoint, hub_dense_checkpoint, hub_moe_checkpoint, tmp_path):
    for checkpoint in (composite_checkpoint, hub_dense_checkpoint, hub_moe_checkpoint):
        assert ov_main.infer_task("auto", str(checkpoint)) == "text-generation-with-past"
    # An explicit task is kept.
    assert ov_main.infer_task("image-text-to-text", str(composite_checkpoint)) == "image-text-to-text"


def test_composite_export_loads_only_the_language_model(composite_checkpoint):
    # This is the call main_export makes for the inferred task: the vision tower is never loaded.
    model = TasksManager.get_model_from_task("text-generation-with-past", str(composite_checkpoint))
    names = [name for name, _ in model.named_parameters()]
    assert names and not any("visual" in name for name in names)
    assert model.config.model_type == "qwen3_5_text"


@pytest.mark.parametrize("installed", ["2025.3.0", "2026.5.0"])
def test_unsupported_openvino_version_names_the_fix(installed, text_checkpoint, tmp_path, monkeypatch):
    real_version = versions_module.version
    monkeypatch.setattr(
        versions_module, "version", lambda name: installed if name == "openvino" else real_version(name)
    )
    low, high = versions_module.SUPPORTED["openvino"]
    message = re.escape(
        f"openvino {installed} is not supported by optimum-qwen35 (tested: >={low},<{high}). "
        f"Fix: pip install 'openvino>={low},<{high}'"
    )
    with pytest.raises(UnsupportedEnvironmentError, match=message):
        optimum_qwen35.export(text_checkpoint, tmp_path / "out")
    # optimum-cli and OVModelForCausalLM(export=True) go through main_export: checked there too.
    with pytest.raises(UnsupportedEnvironmentError, match=message):
        ov_main.main_export(str(text_checkpoint), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_image_text_to_text_is_the_plugins_vision_language_layout():
    from optimum_qwen35.exporters.vlm_config import Qwen35LanguageOpenVINOConfig, Qwen35VisionLanguageOpenVINOConfig

    for model_type in ("qwen3_5", "qwen3_5_moe"):
        assert _config_class(model_type, "image-text-to-text") is Qwen35VisionLanguageOpenVINOConfig
    # Both supported transformers releases (optimum-intel's own config stops at 5.2.99).
    assert Qwen35VisionLanguageOpenVINOConfig.MAX_TRANSFORMERS_VERSION == "5.5.99"
    assert Qwen35LanguageOpenVINOConfig._MODEL_PATCHER.__name__ == "Qwen35LanguagePatcher"
