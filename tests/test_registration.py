"""Registration: takes precedence for Qwen3.5 text tasks, is idempotent, leaves other models alone."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import openvino as ov
import optimum.exporters.openvino.__main__ as ov_main
import optimum.exporters.openvino.convert as ov_convert
import pytest
import transformers
from optimum.exporters.tasks import TasksManager
from ov_helpers import run_optimum_cli
from packaging.version import Version

import optimum_qwen35
from optimum_qwen35 import UnsupportedEnvironmentError
from optimum_qwen35 import versions as versions_module
from optimum_qwen35.exporters.config import Qwen35TextOpenVINOConfig
from optimum_qwen35.runtime import RT_INFO_KEY


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
    assert _config_class("qwen3_5", "image-text-to-text") is not Qwen35TextOpenVINOConfig
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


#: optimum-intel 2.2's own files for a qwen3_5 image-text-to-text export (one per
#: Qwen3_5OpenVINOConfig.SUPPORTED_BEHAVIORS entry, named openvino_{behavior}_model.xml).
VLM_FILES = [
    "openvino_language_model.xml",
    "openvino_text_embeddings_model.xml",
    "openvino_vision_embeddings_model.xml",
    "openvino_vision_embeddings_merger_model.xml",
    "openvino_vision_embeddings_pos_model.xml",
]


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_image_text_to_text_keeps_optimum_intels_vlm_export(composite_checkpoint, tmp_path):
    out = tmp_path / "vlm"
    result = run_optimum_cli(
        "export", "openvino", "--model", str(composite_checkpoint), "--task", "image-text-to-text", str(out)
    )
    # The plugin's export never ran: no step bar, no staging folder, no text-LLM IR.
    assert "Qwen3.5 export:" not in result.stderr
    assert not [path.name for path in tmp_path.iterdir() if ".partial-" in path.name]
    assert not (out / "openvino_model.xml").exists()
    if Version(transformers.__version__) < Version("5.3"):
        # optimum-intel's Qwen3_5OpenVINOConfig supports transformers 5.2.x only.
        assert result.returncode == 0, result.stderr[-3000:]
        for name in VLM_FILES:
            assert (out / name).is_file(), name
        language_model = ov.Core().read_model(out / "openvino_language_model.xml")
        assert "inputs_embeds" in {port.get_any_name() for port in language_model.inputs}
        assert not language_model.has_rt_info(RT_INFO_KEY)  # not the plugin's stateful step
    else:
        # Newer transformers: optimum-intel's VLM export fails inside optimum-intel, with the very
        # error it raises without the plugin (on 5.5: its qwen3_5 patcher imports
        # Qwen3_5DynamicCache, which transformers no longer has, before any version check runs),
        # and writes no IR.
        assert result.returncode != 0
        assert not out.exists() or not list(out.glob("*.xml"))
        alone = tmp_path / "without-plugin"
        script = textwrap.dedent(f"""
            import sys
            from optimum.exporters.openvino import main_export
            assert "optimum_qwen35" not in sys.modules
            main_export({str(composite_checkpoint)!r}, {str(alone)!r}, task="image-text-to-text")
        """)
        without_plugin = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert without_plugin.returncode != 0
        assert "optimum_qwen35" not in without_plugin.stderr
        assert _last_line(result.stderr) == _last_line(without_plugin.stderr)


def test_upstream_export_puts_optimum_intels_configs_back_and_restores_ours():
    from optimum_qwen35.exporters import hooks

    def constructor():
        config = TasksManager.get_exporter_config_constructor(
            "openvino", model_type="qwen3_5_text", task="text-generation-with-past", library_name="transformers"
        )
        return getattr(config, "func", config)

    assert constructor() is Qwen35TextOpenVINOConfig and not hooks.in_upstream_export()
    upstream = optimum_qwen35.registry.UPSTREAM_CONFIGS
    with pytest.raises(RuntimeError, match="inside"):
        with hooks.upstream_export(upstream):
            assert hooks.in_upstream_export()
            assert constructor() is not Qwen35TextOpenVINOConfig  # optimum-intel's own
            raise RuntimeError("inside")
    # Restored after the failure: our config, and the hooks active again.
    assert constructor() is Qwen35TextOpenVINOConfig and not hooks.in_upstream_export()
