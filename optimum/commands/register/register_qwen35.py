"""Loaded by ``optimum-cli`` at start-up: registers optimum-qwen35 with the OpenVINO exporter.

optimum-cli imports every module of the ``optimum.commands.register`` namespace; this one adds
no command of its own, it makes ``optimum-cli export openvino`` use the plugin for Qwen3.5 and
report the plugin's errors as one line.
"""

import optimum_qwen35  # noqa: F401  (registers on import)
from optimum_qwen35.exporters.command import install_error_report

# The plugin's user errors print as one line in optimum-cli (a Python caller gets the exception).
install_error_report()

REGISTER_COMMANDS: list = []
