"""``import optimum_qwen35`` loads no torch, transformers or optimum-intel; the plugin is registered
as soon as optimum-intel is imported, in either order (each case in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import optimum_qwen35

HEAVY = ("torch", "transformers", "optimum.intel", "optimum.exporters")

# What register() changes, read from sys.modules so that reading it imports nothing (an import of
# optimum-intel here would register the plugin by itself and hide a missing registration).
REGISTRATION = """
import json, sys
tasks = sys.modules["optimum.exporters.tasks"].TasksManager
config = tasks.get_exporter_config_constructor(
    "openvino", model_type="qwen3_5_text", task="text-generation-with-past", library_name="transformers"
)
runtime = sys.modules["optimum.intel.openvino.modeling_decoder"].OVModelForCausalLM
command = sys.modules["optimum.commands.export.openvino"].OVExportCommand
main = sys.modules["optimum.exporters.openvino.__main__"]
print(json.dumps({
    "config": getattr(config, "func", config).__qualname__,
    "runtime": getattr(runtime._from_pretrained.__func__, "__optimum_qwen35__", False),
    "command": hasattr(command.run, "__optimum_qwen35_original__"),
    "main_export": hasattr(main.main_export, "__optimum_qwen35_original__"),
}))
"""


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_import_loads_no_torch_transformers_or_optimum_intel():
    names = ", ".join(optimum_qwen35.__all__)
    loaded = _run(f"""
        import json, sys
        import optimum_qwen35
        from optimum_qwen35 import {names}
        print(json.dumps(sorted(name for name in {HEAVY!r} if name in sys.modules)))
    """)
    assert json.loads(loaded) == []


@pytest.mark.parametrize(
    "imports",
    [
        "import optimum_qwen35\nfrom optimum.intel import OVModelForCausalLM",
        "from optimum.intel import OVModelForCausalLM\nimport optimum_qwen35",
        "import optimum_qwen35\nfrom optimum.exporters.openvino import main_export",
        "import optimum_qwen35\nimport optimum.intel.openvino.modeling_decoder",
        "import optimum_qwen35\nfrom optimum.commands.export.openvino import OVExportCommand",
        # A submodule that imports optimum-intel from its first lines: registered once it is defined.
        "from optimum_qwen35.runtime import OVQwen35ForCausalLM",
    ],
)
def test_registered_once_optimum_intel_is_imported(imports):
    registration = json.loads(_run(imports + "\n" + REGISTRATION))
    assert registration == {
        "config": "Qwen35TextOpenVINOConfig",
        "runtime": True,
        "command": True,
        "main_export": True,
    }


@pytest.mark.parametrize("plugin_first", [True, False])
def test_ov_model_for_causal_lm_loads_the_plugin_ir_with_the_plugins_runtime(text_export, plugin_first):
    imports = ["import optimum_qwen35", "from optimum.intel import OVModelForCausalLM"]
    loaded = _run(
        "\n".join(imports if plugin_first else imports[::-1])
        + f"\nmodel = OVModelForCausalLM.from_pretrained({str(text_export)!r}, compile=False)"
        + "\nprint(type(model).__name__)"
    )
    assert loaded == "OVQwen35ForCausalLM"


def test_export_true_after_a_light_import_goes_through_the_plugin(text_checkpoint, tmp_path):
    exported = _run(f"""
        import optimum_qwen35
        from optimum.intel import OVModelForCausalLM
        model = OVModelForCausalLM.from_pretrained({str(text_checkpoint)!r}, export=True, compile=False)
        print(type(model).__name__, model.model.has_rt_info(["optimum_qwen35", "version"]))
    """)
    assert exported == "OVQwen35ForCausalLM True"
