"""Loaded by ``optimum-cli`` at start-up: registers optimum-qwen35 with the OpenVINO exporter.

optimum-cli imports every module of the ``optimum.commands.register`` namespace; this one adds
no command of its own, it makes ``optimum-cli export openvino`` use the plugin for Qwen3.5 and
report the plugin's errors as one line.
"""

import optimum_qwen35
from optimum_qwen35.exporters.command import install_error_report

# `import optimum_qwen35` registers only once optimum-intel's modules are imported (in optimum-cli,
# by its own register module, before or after this one). Registering here does not depend on that
# order: the plugin is registered before optimum-cli builds the `export openvino` parser.
optimum_qwen35.register()

# The plugin's user errors print as one line in optimum-cli (a Python caller gets the exception).
install_error_report()

REGISTER_COMMANDS: list = []
