"""Loaded by ``optimum-cli`` at start-up: registers optimum-qwen35 with the OpenVINO exporter.

optimum-cli imports every module of the ``optimum.commands.register`` namespace; this one adds
no command of its own, it makes ``optimum-cli export openvino`` use the plugin for Qwen3.5.
"""

import optimum_qwen35  # noqa: F401  (registers on import)

REGISTER_COMMANDS: list = []
