"""Environments: ``envs.make(name, **kwargs)`` returns a gymnasium env.

Names:

- any registered gymnasium id (``CartPole-v1``), through ``gymnasium.make``, also in gymnasium's
  ``module:EnvId`` form (``popgym:popgym-RepeatPreviousEasy-v0`` imports ``popgym`` first);
- MiniGrid ids (``MiniGrid-MemoryS13Random-v0``): observations become a Dict of
  ``image`` and ``direction`` (the Text ``mission`` is dropped);
- memrl's own ids, registered when ``envs`` is imported (so Ray workers that
  import it see them): see ``MEMRL_IDS``;
- adapters to DeepMind Lab (``memrl/dmlab``) and the 3D Memory Maze
  (``memrl/memory_maze_3d``), which need an optional package: see ``ADAPTER_IDS``.

``make_from_config({"name": id, **kwargs})`` is the same call from a Hydra
config (``configs/env/<x>.yaml``). ``envs`` imports nothing from agents,
memory_cores, training or evaluation.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium

from .minigrid_adapter import MiniGridImageDirection, is_minigrid

# memrl id -> "module:class" entry point.
MEMRL_IDS = {
    "memrl/select_nonmatching_object": "envs.select_nonmatching_object:SelectNonmatchingObjectEnv",
    "memrl/tmaze": "envs.tmaze:PassiveTMazeEnv",
    "memrl/counter": "envs.counter:CounterEnv",
    "memrl/memory_maze": "envs.memory_maze:MemoryMazeEnv",
}

# Adapters to simulators that need an optional package (module name in OPTIONAL_MODULES);
# registered like the memrl ids, and a missing package gives a one-line ValueError on make.
ADAPTER_IDS = {
    "memrl/dmlab": "envs.dmlab:DeepMindLabEnv",
    "memrl/memory_maze_3d": "envs.memory_maze_3d:MemoryMaze3DEnv",
}
OPTIONAL_MODULES = {"memrl/dmlab": "deepmind_lab", "memrl/memory_maze_3d": "memory_maze"}
# Resident memory one built env takes, measured (envs whose footprint can exhaust a machine when an
# actor builds 16 of them): memory_maze_3d's maze plus its software-EGL render context, ~860 MiB
# each on this project's CPU box (docs/results/envs.md).
MIB_PER_ENV = {"memrl/memory_maze_3d": 900}

# Modules that register env ids, and the pip requirement that provides each (memrl's extras pin them).
PACKAGES = {"popgym": "'memrl[popgym]' (popgym==1.0.7)", "minigrid": "minigrid"}

# Id prefixes whose envs register when their package is imported.
_LAZY_PACKAGES = {"MiniGrid-": "minigrid", "BabyAI-": "minigrid"}


def _register_memrl_ids() -> None:
    for env_id, entry_point in {**MEMRL_IDS, **ADAPTER_IDS}.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point)


_register_memrl_ids()


def make(name: str, imports: Sequence[str] = (), **kwargs: Any) -> gymnasium.Env:
    """The env ``name`` built with ``kwargs``; unknown names and bad kwargs raise a one-line ValueError.

    ``name`` may be gymnasium's ``module:EnvId`` (``popgym:popgym-RepeatPreviousEasy-v0``): the module
    is imported first, which registers its ids. ``imports`` names more modules to import before
    ``make`` (packages that register ids on import). Every process that builds the env (each Ray
    actor, each RLlib env runner) goes through here, so each imports them itself.
    """
    for module in imports:
        _import_module(module, name)
    if ":" in name:
        module, env_id = name.split(":", 1)
        _import_module(module, name)
        name = env_id
    _import_package_for(name)
    if name not in gymnasium.registry:
        raise ValueError(
            f"unknown env {name!r}; memrl envs: {', '.join([*MEMRL_IDS, *ADAPTER_IDS])}; "
            "any registered gymnasium id also works (e.g. CartPole-v1, MiniGrid-MemoryS7-v0)"
        )
    if name in MEMRL_IDS or name in ADAPTER_IDS:
        _check_kwargs(name, kwargs)
    try:
        env = gymnasium.make(name, **kwargs)
    except TypeError as error:
        if "unexpected keyword argument" not in str(error):
            raise
        raise ValueError(f"bad argument for env {name!r}: {error}") from None
    if is_minigrid(env):
        env = MiniGridImageDirection(env)
    return env


# Keys an env config may hold that set up training, not the env (make_from_config leaves them out).
TRAINING_KEYS = ("unroll_length",)  # T for this env unless actors.unroll_length is set (training.unroll.resolve_unroll_length)


def make_from_config(cfg: Mapping) -> gymnasium.Env:
    """``make(cfg["name"], **rest)``; ``cfg`` is a dict or an OmegaConf DictConfig (``configs/env/<x>.yaml``);
    ``TRAINING_KEYS`` are not passed to the env."""
    if hasattr(cfg, "_metadata"):  # an OmegaConf DictConfig: plain containers for the env's kwargs
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(cfg, resolve=True)
    kwargs = {k: v for k, v in cfg.items() if k not in TRAINING_KEYS}
    if "name" not in kwargs:
        raise ValueError(f"env config has no 'name' (keys: {sorted(kwargs)}); add e.g. name: memrl/tmaze")
    return make(kwargs.pop("name"), **kwargs)


def _import_module(module: str, env_id: str) -> None:
    """Import ``module`` (which registers env ids); a one-line ValueError naming the package if it is missing."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        package = PACKAGES.get(module.split(".")[0], module.split(".")[0])
        raise ValueError(f"env {env_id!r} needs the module {module!r}, which is not installed ({error}); "
                         f"install it: pip install {package}") from None


def _import_package_for(name: str) -> None:
    for prefix, package in _LAZY_PACKAGES.items():
        if name.startswith(prefix):
            __import__(package)


def _check_kwargs(name: str, kwargs: Mapping) -> None:
    """Unknown kwargs of a memrl env raise ValueError listing the valid ones."""
    env_class = gymnasium.registry[name].entry_point
    if isinstance(env_class, str):
        module_name, class_name = env_class.split(":")
        env_class = getattr(__import__(module_name, fromlist=[class_name]), class_name)
    valid = [p for p in inspect.signature(env_class.__init__).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown} for env {name!r}; valid: {valid}")


__all__ = ["ADAPTER_IDS", "MEMRL_IDS", "MIB_PER_ENV", "OPTIONAL_MODULES", "MiniGridImageDirection", "make", "make_from_config"]
