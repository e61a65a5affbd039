"""The module names of earlier releases (`purejaxdqn.devices`, `purejaxdqn.networks`, ...),
kept working after the modules moved into sub-packages: importing an old name gives the
very module object of its new home (so `monkeypatch` and `isinstance` see one module).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

OLD_NAMES = {
    "bridge": "purejaxdqn.envs.bridge",
    "buffer": "purejaxdqn.core.replay",
    "checkpoint": "purejaxdqn.run.checkpoint",
    "config": "purejaxdqn.core.config",
    "devices": "purejaxdqn.run.devices",
    "evaluate": "purejaxdqn.core.evaluate",
    "experiment": "purejaxdqn.run.experiment",
    "exploration": "purejaxdqn.core.exploration",
    "memory": "purejaxdqn.run.memory",
    "monitor": "purejaxdqn.run.monitor",
    "networks": "purejaxdqn.core.networks",
    "parallel": "purejaxdqn.run.execute",
    "plot": "purejaxdqn.outputs.plot",
    "policy": "purejaxdqn.outputs.policy",
    "presets": "purejaxdqn.core.presets",
    "probes": "purejaxdqn.envs.probes",
    "program_cache": "purejaxdqn.run.program_cache",
    "rng": "purejaxdqn.core.rng",
    "rundir": "purejaxdqn.outputs.rundir",
    "stats": "purejaxdqn.outputs.stats",
    "sweep": "purejaxdqn.run.sweep",
    "td": "purejaxdqn.core.losses",
    "tensorboard": "purejaxdqn.outputs.tensorboard",
    "train": "purejaxdqn.core.loop",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the target module was imported by `create_module`."""


class _OldNames(importlib.abc.MetaPathFinder):
    """Finds `purejaxdqn.<old name>` and loads the module it moved to."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> object:
        package, _, name = fullname.rpartition(".")
        if package != "purejaxdqn" or name not in OLD_NAMES:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(OLD_NAMES[name]))


def install() -> None:
    """Make the old module names importable (idempotent)."""
    if not any(isinstance(finder, _OldNames) for finder in sys.meta_path):
        sys.meta_path.append(_OldNames())


def old_name(name: str) -> ModuleType:
    """The module an old name refers to, imported on first use; AttributeError otherwise."""
    if name not in OLD_NAMES:
        raise AttributeError(f"module 'purejaxdqn' has no attribute {name!r}")
    return importlib.import_module(OLD_NAMES[name])
