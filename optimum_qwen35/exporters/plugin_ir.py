"""What every IR of a plugin export gets right after conversion, whatever route the export took.

optimum-intel saves each converted part of an export (the text LLM, each part of the
vision-language layout, the MTP head) through ``convert._save_model``, stateful or stateless,
from ``optimum-cli``, ``optimum_qwen35.export`` or ``from_pretrained(export=True)``; the export
hooks call :func:`finish` there for the parts the plugin's export configs produced. It

* makes the state inputs/outputs and ``logits`` f32 (:func:`.stateful.normalise_dtypes`; a
  stateful IR has no state inputs/outputs left by then, its step did this before hiding them);
* gives the 16-bit MoE experts' ``Convert``s the decompression mark (:mod:`.weight_dtypes`);
* marks the IR: the plugin's version (what the runtime and the compression hooks look for) and
  the text-config values the compression policy is derived from, so that compressing the IR
  later (``OVQuantizer``, ``quantization_config`` on load of an exported folder) applies the same
  policy as compressing during the export.

The stateful step (:mod:`.stateful`) is optional (``--disable-stateful``) and marks nothing.
"""

from __future__ import annotations

import json
from typing import Any

import openvino as ov

from .. import __version__
from ..compression.policy import POLICY_CONFIG_KEYS
from ..runtime import RT_INFO_KEY
from .stateful import normalise_dtypes
from .weight_dtypes import mark_expert_decompression

#: rt_info path of the text-config values the compression policy reads (JSON).
POLICY_CONFIG_RT_INFO_KEY = ["optimum_qwen35", "text_config"]

#: Attribute set by :func:`claim` on the export configs whose IRs are the plugin's.
PLUGIN_EXPORT_ATTRIBUTE = "optimum_qwen35_export"


def claim(export_config: Any) -> Any:
    """Mark an export config class (as a decorator) or instance as the plugin's; returns it.

    The plugin's own config classes are claimed; so is the optimum-intel text-embeddings config the
    plugin's vision-language config hands out. optimum-intel's configs for other models are not.
    """
    setattr(export_config, PLUGIN_EXPORT_ATTRIBUTE, True)
    return export_config


def is_plugin_export(export_config: Any) -> bool:
    """True for the export config of a part of a plugin export."""
    return bool(getattr(export_config, PLUGIN_EXPORT_ATTRIBUTE, False))


def policy_config(text_config: Any) -> dict[str, Any]:
    """The values of :data:`POLICY_CONFIG_KEYS` a transformers text config has."""
    values = {key: getattr(text_config, key, None) for key in POLICY_CONFIG_KEYS}
    return {key: value for key, value in values.items() if value is not None}


def finish(model: ov.Model, export_config: Any) -> None:
    """On a converted part of a plugin export: f32 state and logits ports, the MoE experts'
    decompression marks, the plugin's marks."""
    normalise_dtypes(model)
    mark_expert_decompression(model)
    hf_config = getattr(export_config, "_orig_config", None) or export_config._config
    model.set_rt_info(json.dumps(policy_config(hf_config.get_text_config())), POLICY_CONFIG_RT_INFO_KEY)
    model.set_rt_info(__version__, RT_INFO_KEY)


def marked_policy_config(model: ov.Model) -> dict[str, Any] | None:
    """The policy's text-config values written by :func:`finish`, or None (an IR of an older plugin release)."""
    if not model.has_rt_info(POLICY_CONFIG_RT_INFO_KEY):
        return None
    return json.loads(model.get_rt_info(POLICY_CONFIG_RT_INFO_KEY).astype(str))
