"""Memory cores: every core, its registry, and the shared ops they build on.

>>> import memory_cores, torch
>>> core = memory_cores.build("lstm", input_size=8, hidden_size=16)
>>> state = core.initial_state(batch_size=4)
>>> out, state, aux = core(torch.zeros(5, 4, 8), state, reset=None)
>>> out.shape
torch.Size([5, 4, 16])
"""
from .base import MemoryCore, auxiliary_loss, auxiliary_losses, select_state, stack_aux
from .registry import build, build_from_config, config_class, make_config, names, register

# Importing a core module registers it, so every module of this package is
# imported here (Ray workers import this package too). A new core is a new file.
import importlib as _importlib
import pkgutil as _pkgutil

for _module in _pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["MemoryCore", "auxiliary_loss", "auxiliary_losses", "build", "build_from_config", "config_class", "make_config",
           "names", "register", "select_state", "stack_aux"]
