"""Benchmarks: ``memrl bench <name> key=value ...``.

A benchmark is a module in this package with a function decorated by
``@benchmark("<name>")`` that takes the composed config (``configs/bench/<name>.yaml``
plus overrides, an OmegaConf DictConfig) and returns a list of rows, one dict per
row, with units in the key names (``ms_per_step``, ``peak_mib``). The CLI prints
the rows as a table and writes them as JSON. Every module here is imported on
first use, so a new benchmark is a new file plus its yaml.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable

Rows = list[dict[str, Any]]
_BENCHMARKS: dict[str, Callable[[Any], Rows]] = {}


def benchmark(name: str):
    def wrap(fn: Callable[[Any], Rows]) -> Callable[[Any], Rows]:
        _BENCHMARKS[name] = fn
        return fn

    return wrap


def _load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def names() -> list[str]:
    _load_all()
    return sorted(_BENCHMARKS)


def get(name: str) -> Callable[[Any], Rows]:
    _load_all()
    if name not in _BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; available: {', '.join(sorted(_BENCHMARKS)) or 'none'}")
    return _BENCHMARKS[name]
