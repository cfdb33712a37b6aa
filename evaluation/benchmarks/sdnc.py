"""``memrl bench sdnc``: speed and memory of the Sparse DNC against the dense DNC (thesis Sec. 3.5.2, App. A.2).

Setup (App. A.2): LSTM controller of 100 units, 4 read heads, word 32; the
SDNC reads K = 4 rows per head and keeps K_L = 8 link entries per row; batch 8
for time, batch 1 for memory.

- ``ms_per_step``: forward + backward over an unroll, divided by its length
  (helpers shared with ``memrl bench sam``); ``steps`` for the SDNC,
  ``dense_steps`` for the DNC, whose per-step cost does not depend on the
  unroll length (its N x N links make a 100-step unroll at batch 8 need tens
  of GiB at N = 2048).
- ``total_mib``: the initial state plus what the unroll holds when its
  forward ends (saved for backward + new state), at batch 1, for a
  ``steps``-step unroll (thesis Fig. 3.8b: "total memory usage (including
  initialisation)"). For the DNC the unroll measured is ``dense_steps`` long
  and its per-step part is scaled to ``steps`` (``memory_scaled`` = true);
  the DNC keeps the same tensors every step, so the scaling is linear.
- A DNC point runs only where its estimated saved tensors (6 N x N float
  tensors per step) fit in ``max_dense_gib``; beyond, its time is
  extrapolated by a least-squares fit a + b N^2 through its measured times
  (``dnc_ms_per_step_fit``, ratios marked ``speedup_extrapolated``).
"""
from __future__ import annotations

import gc
import os

import torch

import memory_cores
from memory_cores import ann_index

from . import benchmark
from .sam import MIB, add_ratios, measure_all, memory_use, time_per_step

# sdnc: exact top-K (the thesis' "linear KNN"); sdnc_faiss: SAM's faiss index; sdnc_unfused: sdnc with
# its link step and read merge as PyTorch ops instead of the fused C++ ones; sam: the SDNC without its links and read
# modes (same controller, heads, K, exact top-K): the floor of the SDNC's step time here.
MODELS = ("sdnc", "sdnc_faiss", "sdnc_unfused", "dnc", "sam")


@benchmark("sdnc")
def run(cfg) -> list[dict]:
    unknown = set(cfg.models) - set(MODELS)
    if unknown:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; choose from {list(MODELS)}")
    rows = measure_all(cfg, measure)
    add_ratios(rows, "dnc", "total_mib", size=lambda slots: slots**2)  # the DNC's step is O(N^2)
    return rows


def build(cfg, model: str, slots: int):
    sizes = dict(slots=slots, word_size=int(cfg.word_size), controller_size=int(cfg.controller_size),
                 output_size=int(cfg.controller_size))
    if model.startswith("sdnc"):
        extra = dict(heads=int(cfg.heads), top_k=int(cfg.top_k), link_entries=int(cfg.link_entries))
        extra["ann"] = "faiss" if model == "sdnc_faiss" else "exact"
        extra["fused_links"] = model != "sdnc_unfused"
    elif model == "sam":
        extra = dict(heads=int(cfg.heads), top_k=int(cfg.top_k), ann="exact")
    else:
        extra = dict(read_heads=int(cfg.heads))
    torch.manual_seed(int(cfg.seed))
    return memory_cores.build(model.split("_")[0], int(cfg.input_size), **sizes, **extra)


def dnc_fits(cfg, slots: int, batch: int) -> bool:
    saved = 6 * int(cfg.dense_steps) * batch * slots * slots * 4
    return saved <= float(cfg.max_dense_gib) * 2**30


def measure(cfg, model: str, slots: int) -> dict:
    dense = model == "dnc"
    steps = int(cfg.dense_steps) if dense else int(cfg.steps)
    row = {"model": model, "slots": slots, "batch_time": int(cfg.time_batch), "steps_timed": steps}
    row["load_avg_1min"] = os.getloadavg()[0]  # the machine is shared: other jobs slow every number
    if dense and not dnc_fits(cfg, slots, int(cfg.time_batch)):
        row["ms_per_step"] = None
    else:
        row["ms_per_step"] = time_per_step(cfg, build(cfg, model, slots), steps)
    if dense and not dnc_fits(cfg, slots, int(cfg.memory_batch)):
        row.update(initial_mib=None, unroll_mib=None, total_mib=None, memory_scaled=None)
    else:
        used = memory_use(cfg, build(cfg, model, slots), steps)
        unroll = used["peak_extra_mib"] * int(cfg.steps) / steps
        row.update(initial_mib=used["initial_mib"], unroll_mib=unroll, total_mib=used["initial_mib"] + unroll)
        row["memory_scaled"] = steps != int(cfg.steps)
    ann_index.clear_cache()
    gc.collect()
    print(f"  {model} N={slots}: {row['ms_per_step']} ms/step, {row['total_mib']} MiB total", flush=True)
    return row


__all__ = ["run", "MIB"]
