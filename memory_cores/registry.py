"""Registry of memory cores: name -> (class, typed config).

Cores register at import time (``memory_cores/__init__.py`` imports every core
module), so a Ray worker that imports ``memory_cores`` sees all of them.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from .base import MemoryCore

_REGISTRY: dict[str, tuple[type[MemoryCore], type]] = {}


def register(name: str, config_cls: type) -> Callable[[type[MemoryCore]], type[MemoryCore]]:
    """Class decorator: ``@register("lstm", LSTMConfig)``. The config is a dataclass."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config of core {name!r} must be a dataclass, got {config_cls!r}")

    def wrap(cls: type[MemoryCore]) -> type[MemoryCore]:
        if name in _REGISTRY and _REGISTRY[name][0] is not cls:
            raise ValueError(f"core name {name!r} is already registered by {_REGISTRY[name][0].__name__}")
        _REGISTRY[name] = (cls, config_cls)
        cls.core_name = name
        return cls

    return wrap


def names() -> list[str]:
    return sorted(_REGISTRY)


def config_class(name: str) -> type:
    _check_name(name)
    return _REGISTRY[name][1]


def make_config(name: str, **cfg: Any):
    """The typed config of core ``name``; unknown keys raise ValueError naming the valid ones."""
    config_cls = config_class(name)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(cfg) - fields)
    if unknown:
        raise ValueError(
            f"unknown config key(s) {unknown} for core {name!r}; valid keys: {sorted(fields)}"
        )
    return config_cls(**cfg)


def build(name: str, input_size: int, **cfg: Any) -> MemoryCore:
    """Build core ``name`` for inputs of size ``input_size`` with config overrides ``cfg``."""
    config = make_config(name, **cfg)
    return _REGISTRY[name][0](input_size, config)


def _check_name(name: str) -> None:
    if name not in _REGISTRY:
        raise ValueError(f"unknown core {name!r}; registered cores: {', '.join(names())}")
