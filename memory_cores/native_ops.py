"""The C++ CPU ops of the sparse cores, built on first use by torch's extension loader.

One source file per op in ``csrc/``, each built as its own extension:

- ``link_step`` (``csrc/link_step.cpp``, with ``csrc/sparse_merge.h``): one step of
  the SDNC's sparse links and its read weights, forward and backward
  (``sparse_linkage.FusedLinks``);
- ``top_rows`` (``csrc/top_rows.cpp``): SAM's exact top-K search, scores and
  selection in one pass (``ann_index.ExactIndex``).

Where an op cannot be built (no compiler, no ninja, no headers) ``extension``
returns None with one warning, and its caller uses the PyTorch ops instead
(same results, slower). The build flags come from the platform
(``build_flags``): -O3 everywhere, and on x86-64 the request for
``top_rows``' x86-64-v3 clone (``csrc/vector_clones.h``, which also checks
that the compiler targets x86-64), so the same sources build on ARM.
"""
from __future__ import annotations

import functools
import os
import platform
import warnings
from pathlib import Path

CSRC = Path(__file__).with_name("csrc")
# op -> what it is, for the warning when it cannot be built
OPS = {
    "link_step": "the SDNC's link step; core.fused_links=false does without it and silences this",
    "top_rows": "SAM's exact top-K search",
}
X86_MACHINES = ("x86_64", "amd64")  # platform.machine() of x86-64 (Linux and macOS; Windows says AMD64)


def build_flags(machine: str) -> list[str]:
    """The C++ flags for a CPU of the kind ``machine`` (a ``platform.machine()`` value, e.g. 'x86_64',
    'aarch64', 'arm64'): -O3, and on x86-64 -DMEMRL_X86_CLONES (``csrc/vector_clones.h``)."""
    flags = ["-O3"]
    if machine.lower() in X86_MACHINES:
        flags.append("-DMEMRL_X86_CLONES")
    return flags


@functools.cache
def extension(op: str):
    """The compiled op ``op`` (a key of ``OPS``), or None (with one warning) where it cannot be built.

    torch's C++ extension loader builds it on first use (about a minute) into its cache
    (~/.cache/torch_extensions, or $TORCH_EXTENSIONS_DIR) and reuses it while the sources are unchanged.
    """
    if op not in OPS:
        raise ValueError(f"unknown C++ op {op!r}; the ops are {sorted(OPS)}")
    from torch.utils.cpp_extension import load

    try:
        import ninja  # the pip package's binary, for environments whose PATH lacks the venv's bin/

        if ninja.BIN_DIR not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass
    source = CSRC / f"{op}.cpp"
    try:
        return load(name=f"memrl_{op}", sources=[str(source)], extra_cflags=build_flags(platform.machine()),
                    verbose=False)
    except Exception as exc:  # noqa: BLE001  (no compiler, no ninja, no headers): fall back, say so once
        warnings.warn(f"memory_cores: could not build the C++ op csrc/{source.name} ({OPS[op]}) "
                      f"({str(exc).splitlines()[0][:160]}); using the PyTorch ops instead (same results, slower). "
                      "Install a C++ compiler to use it.", RuntimeWarning, stacklevel=2)
        return None
