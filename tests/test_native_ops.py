"""The C++ ops' build: one source per op, flags chosen from the platform, the x86-only attribute guarded.

The ops themselves are tested against their PyTorch twins in test_sam.py (top_rows) and test_sdnc.py
(link_step).
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from memory_cores import native_ops

COMPILER = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
CLONES = "-DMEMRL_X86_CLONES"


@pytest.mark.parametrize("machine", ["x86_64", "AMD64"])
def test_x86_builds_ask_for_the_x86_64_v3_clones(machine):
    flags = native_ops.build_flags(machine)
    assert "-O3" in flags and CLONES in flags


@pytest.mark.parametrize("machine", ["aarch64", "arm64", "ppc64le"])
def test_other_builds_do_not(machine):
    flags = native_ops.build_flags(machine)
    assert "-O3" in flags and CLONES not in flags
    assert not any(flag.startswith(("-march=x86", "-mavx", "-mfma")) for flag in flags)


def expanded_attribute(flags: list[str]) -> str:
    """What MEMRL_VECTOR_CLONES becomes after the preprocessor, given these flags."""
    result = subprocess.run(
        [COMPILER, "-E", "-P", "-x", "c++", "-I", str(native_ops.CSRC), *flags, "-"],
        input='#include "vector_clones.h"\nMEMRL_VECTOR_CLONES\n', capture_output=True, text=True, check=True,
    )
    return result.stdout.strip()


@pytest.mark.skipif(COMPILER is None, reason="needs a C++ compiler")
@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
@pytest.mark.parametrize("target", ["x86_64", "other"])
def test_the_attribute_reaches_only_x86_builds_for_x86(machine, target):
    """build_flags(machine) for a compiler targeting x86-64 or not (a universal build passes one set of flags
    to both halves): target_clones only when both are x86."""
    arch = ["-U__x86_64__", "-D__x86_64__=1"] if target == "x86_64" else ["-U__x86_64__"]
    expanded = expanded_attribute(native_ops.build_flags(machine) + arch)
    assert ("target_clones" in expanded) == (machine == "x86_64" and target == "x86_64"), expanded


def test_one_source_per_op_and_only_the_guard_names_the_x86_attribute():
    sources = {path.name: path.read_text() for path in native_ops.CSRC.iterdir() if path.suffix in (".cpp", ".h")}
    for op in native_ops.OPS:
        assert "PYBIND11_MODULE" in sources[f"{op}.cpp"], op
    assert [name for name, text in sources.items() if "target_clones" in text] == ["vector_clones.h"]
    assert "MEMRL_VECTOR_CLONES" in sources["top_rows.cpp"]


def test_an_unknown_op_is_named_in_the_error():
    with pytest.raises(ValueError, match=re.escape("unknown C++ op 'top_row'; the ops are")):
        native_ops.extension("top_row")
