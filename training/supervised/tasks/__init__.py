"""Supervised tasks: a registry of name -> (Task class, typed config).

``TASKS`` is a ``memory_cores.registry.Registry``, the same class that holds the cores.

A task module registers its tasks at import time; every module of this package
is imported here, so a new task is a new file::

    @register_task("copy", CopyConfig)
    class CopyTask(AlgorithmicTask): ...

    task = build_task({"name": "copy", "bits": 8}, seed=0)
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable

from memory_cores.registry import Registry

from .base import Batch, Task, make_dataclass_config

TASKS: Registry[Task] = Registry("task", hint="task=<name>")


def register_task(name: str, config_cls: type) -> Callable[[type[Task]], type[Task]]:
    """Class decorator; the task's constructor is ``Task(config, seed)``; sets ``cls.task_name``."""
    add = TASKS.register(name, config_cls)

    def wrap(cls: type[Task]) -> type[Task]:
        add(cls)  # raises on a clashing name before the class is touched
        cls.task_name = name
        return cls

    return wrap


def names() -> list[str]:
    return TASKS.names()


def build_task(cfg: dict[str, Any], seed: int) -> Task:
    """The task named ``cfg["name"]`` with the rest of ``cfg`` as its config."""
    name = cfg.get("name")
    cls, config_cls = TASKS.get(name)
    config = make_dataclass_config(config_cls, {k: v for k, v in cfg.items() if k != "name"}, f"task {name!r}")
    return cls(config, seed)


for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["TASKS", "Batch", "Task", "build_task", "names", "register_task"]
