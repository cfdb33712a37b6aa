"""Registries: name -> (class, typed config dataclass), with unknown names and keys rejected.

``CORES`` holds every memory core. Cores register at import time
(``memory_cores/__init__.py`` imports every core module), so a Ray worker that
imports ``memory_cores`` sees all of them. The same ``Registry`` class serves
other pluggable parts (e.g. the supervised tasks).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Generic, Mapping, TypeVar

from .base import MemoryCore

T = TypeVar("T")


class Registry(Generic[T]):
    """Named classes, each with a dataclass config. ``kind`` names them in error messages;
    ``hint`` (e.g. ``"task=<name>"``) is added to the unknown-name error to say how to pick one."""

    def __init__(self, kind: str, hint: str = ""):
        self.kind = kind
        self.hint = hint
        self._entries: dict[str, tuple[type[T], type]] = {}

    def register(self, name: str, config_cls: type) -> Callable[[type[T]], type[T]]:
        """Class decorator: ``@CORES.register("lstm", LSTMConfig)``."""
        if not dataclasses.is_dataclass(config_cls):
            raise TypeError(f"config of {self.kind} {name!r} must be a dataclass, got {config_cls!r}")

        def wrap(cls: type[T]) -> type[T]:
            if name in self._entries and self._entries[name][0] is not cls:
                raise ValueError(f"{self.kind} name {name!r} is already registered by {self._entries[name][0].__name__}")
            self._entries[name] = (cls, config_cls)
            return cls

        return wrap

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> tuple[type[T], type]:
        """(class, config class); an unknown name raises ValueError listing the registered ones."""
        if name not in self._entries:
            hint = f" ({self.hint})" if self.hint else ""
            raise ValueError(f"unknown {self.kind} {name!r}; registered {self.kind}s: {', '.join(self.names())}{hint}")
        return self._entries[name]

    def make_config(self, name: str, values: dict[str, Any]):
        """The typed config of ``name`` from ``values``; unknown keys raise ValueError naming the valid ones."""
        config_cls = self.get(name)[1]
        fields = {f.name for f in dataclasses.fields(config_cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(
                f"unknown config key(s) {unknown} for {self.kind} {name!r}; valid keys: {sorted(fields)}"
            )
        return config_cls(**values)


CORES: Registry[MemoryCore] = Registry("core")


def register(name: str, config_cls: type) -> Callable[[type[MemoryCore]], type[MemoryCore]]:
    """Class decorator for cores: ``@register("lstm", LSTMConfig)``; sets ``cls.core_name``."""
    add = CORES.register(name, config_cls)

    def wrap(cls: type[MemoryCore]) -> type[MemoryCore]:
        cls.core_name = name
        return add(cls)

    return wrap


def names() -> list[str]:
    return CORES.names()


def config_class(name: str) -> type:
    return CORES.get(name)[1]


def make_config(name: str, **cfg: Any):
    """The typed config of core ``name``; unknown keys raise ValueError naming the valid ones."""
    return CORES.make_config(name, cfg)


def build(name: str, input_size: int, **cfg: Any) -> MemoryCore:
    """Build core ``name`` for inputs of size ``input_size`` with config overrides ``cfg``."""
    config = CORES.make_config(name, cfg)
    return CORES.get(name)[0](input_size, config)


def build_from_config(section: Mapping[str, Any], input_size: int, **overrides: Any) -> MemoryCore:
    """Build the core a config's ``core`` section names: ``{"name": <core>, **its options}``.

    ``overrides`` are options the caller sets on top (e.g. the Bloom task's encoder fields).
    """
    if "name" not in section:
        raise ValueError(f"the core section has no name ({dict(section)}); set core=<name>, one of {', '.join(names())}")
    options = {key: value for key, value in section.items() if key != "name"}
    return build(section["name"], input_size, **{**options, **overrides})
