"""Where an SDNC forward+backward step spends its time (sdnc.md, "against the thesis' figures").

    .venv/bin/python docs/results/sdnc_profile.py [N]      # default N = 2048, the bench's setup (batch 8, 100 steps)

Prints ms per step, Python-level calls per step, the share of the backward's compact-gradient build
(SparseMemory._compact_grad) and cProfile's top functions by own time. One thread.
"""
from __future__ import annotations

import cProfile
import pstats
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import memory_cores  # noqa: E402
from memory_cores import sparse_access  # noqa: E402

STEPS, BATCH = 100, 8


def main(slots: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    core = memory_cores.build("sdnc", 32, slots=slots, word_size=32, controller_size=100, output_size=100,
                              heads=4, top_k=4, link_entries=8, ann="exact")
    x = torch.randn(STEPS, BATCH, 32)
    state = core.initial_state(BATCH)
    with torch.no_grad():
        _, state, _ = core(x, state, None)

    compact = {"s": 0.0}
    original = sparse_access.SparseMemory._compact_grad

    def timed(self):
        start = time.perf_counter()
        try:
            return original(self)
        finally:
            compact["s"] += time.perf_counter() - start

    def step():
        nonlocal state
        out, new_state, _ = core(x, state, None)
        out.pow(2).mean().backward()
        state = new_state.detach()

    step()  # warm-up
    sparse_access.SparseMemory._compact_grad = timed
    start = time.perf_counter()
    step()
    total = time.perf_counter() - start
    sparse_access.SparseMemory._compact_grad = original
    print(f"N={slots}: {1e3 * total / STEPS:.2f} ms per step; compact-gradient build {100 * compact['s'] / total:.1f}%")
    profile = cProfile.Profile()
    profile.runcall(step)
    stats = pstats.Stats(profile)
    print(f"Python-level calls per step: {stats.total_calls / STEPS:.0f}")
    stats.sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2048)
