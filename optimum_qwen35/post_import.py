"""Call a function right after a module is imported, without importing that module.

``import optimum_qwen35`` must not import optimum-intel: it loads torch and transformers (0.42 GB
of RSS), and a process that runs an IR with openvino-genai wants only
``optimum_qwen35.released_weight_pages`` from the plugin (``docs/performance.md``, "Runtime
memory"). Yet ``import optimum_qwen35`` followed by ``from optimum.intel import
OVModelForCausalLM`` must find the plugin registered. So registration waits for optimum-intel's
own import: :func:`call_after_import` puts a finder at the front of ``sys.meta_path`` that, for
each watched module, wraps its loader's ``exec_module`` and runs the function once the module's
code has run (``wrapt``'s post-import hooks do the same).

The function runs only when no watched module is still executing: ``optimum.exporters.openvino``
imports ``optimum.intel`` half-way through its own code, and registering at that point would
find optimum-intel's export configs not yet registered. The plugin's own submodules count as
watched for this too: ``import optimum_qwen35.runtime`` imports ``optimum.intel`` from its first
lines, and registering then would call into ``runtime`` before it is defined. The count is the
process's: if threads import watched modules at the same time, the call comes at the end of the
last of them, never while one is still executing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finder that runs ``callback`` once one of ``triggers`` is imported and no watched module is executing."""

    def __init__(self, callback: Callable[[], None], triggers: Sequence[str], package: str) -> None:
        self.callback, self.triggers, self.package = callback, tuple(triggers), package
        self.executing = 0  # watched modules whose code is running now (nested imports)

    def watches(self, name: str) -> bool:
        return name in self.triggers or name.startswith(self.package + ".")

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not self.watches(fullname):
            return None
        # The finders behind this one locate the module as if it were not here.
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    self.wrap(spec.loader)
                return spec
        return None

    def wrap(self, loader: importlib.abc.Loader) -> None:
        """Count ``loader``'s module as executing while its code runs; fire when the outermost one returns.

        The wrapper is set on this loader instance only (path-based finders make one per module), so
        the module's ``__loader__`` keeps its type for ``importlib.resources`` and the like."""
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            self.executing += 1
            try:
                original(module)
            finally:
                self.executing -= 1
            # A module that failed to import raised above: nothing to call for it.
            if self.executing == 0 and any(name in sys.modules for name in self.triggers):
                self.fire()

        loader.exec_module = exec_module  # type: ignore[method-assign]

    def fire(self) -> None:
        self.cancel()  # before the call: the callback's own imports must not fire it again
        self.callback()

    def cancel(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def call_after_import(callback: Callable[[], None], triggers: Sequence[str], package: str) -> Callable[[], None]:
    """Call ``callback`` once, right after the first of the modules ``triggers`` is imported.

    At once if one of them is imported already. The submodules of ``package`` (the caller's) delay the
    call until they have finished executing, like the triggers themselves. Returns a function that
    cancels the call if it has not happened (safe to call any number of times).
    """
    hook = _AfterImport(callback, triggers, package)
    if any(name in sys.modules for name in triggers):
        callback()
    else:
        sys.meta_path.insert(0, hook)
    return hook.cancel
