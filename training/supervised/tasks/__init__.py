"""Supervised tasks: a registry of name -> (Task class, typed config).

A task module registers its tasks at import time; every module of this package
is imported here, so a new task is a new file::

    @register_task("copy", CopyConfig)
    class CopyTask(AlgorithmicTask): ...

    task = build_task({"name": "copy", "bits": 8}, seed=0)
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any, Callable

from .base import Batch, Task, make_dataclass_config

_REGISTRY: dict[str, tuple[type[Task], type]] = {}


def register_task(name: str, config_cls: type) -> Callable[[type[Task]], type[Task]]:
    """Class decorator; the task's constructor is ``Task(config, seed)``."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config of task {name!r} must be a dataclass, got {config_cls!r}")

    def wrap(cls: type[Task]) -> type[Task]:
        if name in _REGISTRY and _REGISTRY[name][0] is not cls:
            raise ValueError(f"task name {name!r} is already registered by {_REGISTRY[name][0].__name__}")
        _REGISTRY[name] = (cls, config_cls)
        cls.task_name = name
        return cls

    return wrap


def names() -> list[str]:
    return sorted(_REGISTRY)


def build_task(cfg: dict[str, Any], seed: int) -> Task:
    """The task named ``cfg["name"]`` with the rest of ``cfg`` as its config."""
    name = cfg.get("name")
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; registered tasks: {', '.join(names())} (task=<name>)")
    cls, config_cls = _REGISTRY[name]
    config = make_dataclass_config(config_cls, {k: v for k, v in cfg.items() if k != "name"}, f"task {name!r}")
    return cls(config, seed)


for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Batch", "Task", "build_task", "names", "register_task"]
