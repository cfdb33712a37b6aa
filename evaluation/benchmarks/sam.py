"""``memrl bench sam``: speed and memory of SAM (exact, faiss) against DAM, thesis App. A.2.

Models: ``sam_exact``, ``sam_faiss`` (pure: each call copies the input
memory once, O(N), so the input state stays valid), ``sam_faiss_inplace``
(``in_place_state=True``: the memory is updated where it is, as in the
thesis), ``dam``.

Setup (thesis App. A.2): LSTM controller of 100 units, H = 4 heads, word
W = 32, K = 4 reads per head; batch 8 for time, batch 1 for memory; N from
the config's ``n_values``.

- ``ms_per_step``: wall time of one forward plus one backward over a T-step
  unroll (loss = mean of the outputs squared), divided by T; the best of
  ``repeats`` timed unrolls. Each model first runs one untimed unroll, and
  the timed unrolls start from its final state (as training does): for
  ``sam_faiss`` the index is built there and carried, not rebuilt.
- ``saved_mib``: bytes of the distinct tensors autograd saves for backward
  during one T-step unroll at batch 1 (``saved_tensors_hooks``), not counting
  tensors of the initial state. This is the per-step overhead the thesis
  plots (Fig. 3.3b, "excluding initialisation of external memory").
- ``state_mib``: bytes of the new state that are not already in the saved
  tensors: for SAM the final memory, one O(N) copy (the contract keeps the
  input state intact, so the memory cannot be rolled back in place as in the
  thesis); for DAM it is inside the saved tensors already.
- ``peak_extra_mib`` = saved_mib + state_mib: what the unroll holds beyond
  the initial state when its forward ends (backward then adds one gradient
  of the memory for SAM, and frees saved tensors as it goes).

A dense model runs only where its saved tensors are estimated to fit in
``max_dense_gib`` (2 memory copies per step: M_t and its unit rows). Beyond
that its time is extrapolated by a least-squares line through its measured
times (``dam_ms_per_step_fit``, marked ``extrapolated``), never measured.
"""
from __future__ import annotations

import gc
import os
import time
from typing import Any, Callable

import torch

import memory_cores
from memory_cores import ann_index

from . import benchmark

MODELS = {
    "sam_exact": ("sam", {"ann": "exact"}),
    "sam_faiss": ("sam", {"ann": "faiss"}),
    # The thesis' setting: one memory, changed in place (no O(N) copy of the state per call).
    "sam_faiss_inplace": ("sam", {"ann": "faiss", "in_place_state": True}),
    "dam": ("dam", {}),
}
MIB = 2**20


@benchmark("sam")
def run(cfg) -> list[dict]:
    unknown = set(cfg.models) - set(MODELS)
    if unknown:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; choose from {sorted(MODELS)}")
    rows = measure_all(cfg, measure)
    add_ratios(rows)
    return rows


def measure_all(cfg, measure: Callable[[Any, str, int], dict]) -> list[dict]:
    """``measure(cfg, model, N)`` for every N and model of ``cfg``, at ``cfg.threads`` threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(int(cfg.threads))
    try:
        return [measure(cfg, model, int(n)) for n in cfg.n_values for model in cfg.models]
    finally:
        torch.set_num_threads(threads)


def build(cfg, model: str, slots: int):
    name, extra = MODELS[model]
    sizes = dict(
        slots=slots, word_size=int(cfg.word_size), heads=int(cfg.heads),
        controller_size=int(cfg.controller_size), output_size=int(cfg.controller_size),
    )
    if name == "sam":
        extra = {**extra, "top_k": int(cfg.top_k), "ann_probes": int(cfg.ann_probes)}
    torch.manual_seed(int(cfg.seed))
    return memory_cores.build(name, int(cfg.input_size), **sizes, **extra)


def dense_fits(cfg, slots: int, batch: int) -> bool:
    copies = 2 * int(cfg.steps) * batch * slots * int(cfg.word_size) * 4
    return copies <= float(cfg.max_dense_gib) * 2**30


def measure(cfg, model: str, slots: int) -> dict:
    row = {"model": model, "slots": slots, "batch_time": int(cfg.time_batch), "steps": int(cfg.steps)}
    row["load_avg_1min"] = os.getloadavg()[0]  # the machine is shared: other jobs slow every number
    dense = model == "dam"
    if dense and not dense_fits(cfg, slots, int(cfg.time_batch)):
        row["ms_per_step"] = None
        row["note"] = f"time not measured: batch {cfg.time_batch} needs > {cfg.max_dense_gib} GiB of memory copies"
    else:
        row["ms_per_step"] = time_per_step(cfg, build(cfg, model, slots))
    if dense and not dense_fits(cfg, slots, int(cfg.memory_batch)):
        row.update(saved_mib=None, state_mib=None, peak_extra_mib=None)
        row["note"] = f"not run: > {cfg.max_dense_gib} GiB of memory copies even at batch {cfg.memory_batch}"
    else:
        row.update(memory_use(cfg, build(cfg, model, slots)))
    ann_index.clear_cache()  # free this model's memory and index before the next one
    gc.collect()
    print(f"  {model} N={slots}: {row.get('ms_per_step')} ms/step, {row.get('peak_extra_mib')} MiB", flush=True)
    return row


def inputs(cfg, batch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(int(cfg.seed))
    return torch.randn(int(cfg.steps), batch, int(cfg.input_size), generator=generator)


def time_per_step(cfg, core, steps: int | None = None) -> float:
    """Best ms per step of forward + backward over ``steps`` (default cfg.steps) at cfg.time_batch."""
    steps = steps or int(cfg.steps)
    batch = int(cfg.time_batch)
    x = inputs(cfg, batch)[:steps]
    state = core.initial_state(batch)
    with torch.no_grad():  # warm-up unroll: builds indexes, warms allocators
        _, state, _ = core(x, state, None)
    best = float("inf")
    for _ in range(int(cfg.repeats)):
        start = time.perf_counter()
        out, next_state, _ = core(x, state, None)
        out.pow(2).mean().backward()
        best = min(best, time.perf_counter() - start)
        state = next_state.detach()
        del out, next_state
    return 1e3 * best / steps


def storage_key(tensor: torch.Tensor):
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.nbytes()


def memory_use(cfg, core, steps: int | None = None) -> dict:
    """initial_mib, saved_mib, state_mib, peak_extra_mib of one unroll at the memory batch size (module doc)."""
    steps = steps or int(cfg.steps)
    batch = int(cfg.memory_batch)
    state = core.initial_state(batch)
    initial = {storage_key(t) for t in state.values(True, True)}
    initial_bytes = sum(key[1] for key in initial)
    saved: dict = {}

    def pack(tensor):
        key = storage_key(tensor)
        if key not in initial:
            saved[key] = key[1]
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out, new_state, _ = core(inputs(cfg, batch)[:steps], state, None)
    new = {storage_key(t): storage_key(t)[1] for t in new_state.values(True, True)}
    state_bytes = sum(size for key, size in new.items() if key not in saved and key not in initial)
    saved_bytes = sum(saved.values())
    del out, new_state
    return {
        "initial_mib": initial_bytes / MIB,
        "saved_mib": saved_bytes / MIB,
        "state_mib": state_bytes / MIB,
        "peak_extra_mib": (saved_bytes + state_bytes) / MIB,
    }


def add_ratios(rows: list[dict], reference: str = "dam", memory_column: str = "peak_extra_mib",
               size: Callable[[int], float] = lambda slots: slots) -> None:
    """speedup and memory ratios of each model against ``reference`` at the same N.

    Where the reference did not run, its time per step is fitted as a + b * size(N) (DAM: linear in N;
    ``bench sdnc`` passes N^2 for the DNC).
    """
    dense = {r["slots"]: r for r in rows if r["model"] == reference}
    measured = [(size(n), r["ms_per_step"]) for n, r in dense.items() if r["ms_per_step"] is not None]
    fit = line_fit(measured) if len(measured) >= 2 else None
    for row in rows:
        ref = dense.get(row["slots"])
        ref_ms = ref["ms_per_step"] if ref else None
        extrapolated = ref_ms is None and fit is not None
        if extrapolated:
            ref_ms = fit[0] + fit[1] * size(row["slots"])
        row[f"{reference}_ms_per_step_fit"] = ref_ms if extrapolated else None
        row[f"speedup_vs_{reference}"] = ref_ms / row["ms_per_step"] if ref_ms and row["ms_per_step"] else None
        row["speedup_extrapolated"] = bool(extrapolated and row[f"speedup_vs_{reference}"])
        ref_mib = ref[memory_column] if ref else None
        row[f"memory_ratio_vs_{reference}"] = ref_mib / row[memory_column] if ref_mib and row[memory_column] else None


def line_fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of y on x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / var
    return mean_y - slope * mean_x, slope
