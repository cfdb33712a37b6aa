"""``memrl bench zoo``: forward + backward time per unroll of the RL cores (gru, ffm, lru,
linear_attention, mamba) beside lstm, and of each fast form against its own step loop.

For every unroll length T in ``lengths`` and every core in ``cores`` (all built
with the same ``hidden_size``, inputs of size ``input_size``, batch
``batch_size``): one forward over a T-step unroll from a carried (non-zero)
state with resets where an episode starts (each env's episodes last
``episode_length`` steps, staggered across envs), loss = mean of the outputs
squared, one backward. Systems:

- ``<core>``: ``core(x, state, reset)``, the fast form (nn.LSTM / nn.GRU over
  the stretches between resets; the parallel scan or chunked form otherwise);
- ``<variant>``: a core with other config values (``variants``), e.g. mamba's
  parallel scan;
- ``<core>:step_loop``: ``core.forward_per_step``, the same core one step at
  a time (its slow twin), for every core that has one (``step_loops``).

All systems of one T run interleaved, round after round (``repeats`` rounds
after one untimed warm-up round), so machine load hits them alike; a row
reports the median and the best round in ms, ``vs_lstm`` (median over lstm's
median) and, for a fast form of a core with a timed step loop,
``speedup_vs_step_loop`` (the step loop's median over this row's median: > 1
means the fast form is faster).
"""
from __future__ import annotations

import statistics
import time

import torch

import memory_cores

from . import benchmark


@benchmark("zoo")
def run(cfg) -> list[dict]:
    unknown = sorted(set(cfg.cores) - set(memory_cores.names()))
    if unknown:
        raise ValueError(f"unknown core(s) {unknown}; registered cores: {', '.join(memory_cores.names())}")
    threads = torch.get_num_threads()
    torch.set_num_threads(int(cfg.threads))
    try:
        return [row for length in cfg.lengths for row in measure_length(cfg, int(length))]
    finally:
        torch.set_num_threads(threads)


def build(cfg, name: str, **variant):
    torch.manual_seed(int(cfg.seed))
    extra = {**(cfg.core_overrides or {}).get(name, {}), **variant}
    return memory_cores.build(name, int(cfg.input_size), hidden_size=int(cfg.hidden_size), **extra)


def measure_length(cfg, steps: int) -> list[dict]:
    batch = int(cfg.batch_size)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    x = torch.randn(steps, batch, int(cfg.input_size), generator=generator)
    # Episodes of episode_length steps, each env's boundaries shifted by its index.
    time_index = torch.arange(steps)[:, None] + torch.arange(batch)[None, :] * 7
    reset = time_index % int(cfg.episode_length) == 0
    builds = [(name, name, {}) for name in cfg.cores]
    builds += [(system, values["core"], {k: v for k, v in values.items() if k != "core"})
               for system, values in (cfg.variants or {}).items()]
    systems, core_of = {}, {}
    for system, name, variant in builds:
        core = build(cfg, name, **variant)
        with torch.no_grad():  # a carried state, as from an earlier unroll
            _, state, _ = core(x[: min(steps, 8)], core.initial_state(batch), None)
        systems[system], core_of[system] = (core, core.forward, state), name
        if system == name and name in cfg.step_loops and hasattr(core, "forward_per_step"):
            systems[f"{name}:step_loop"] = (core, core.forward_per_step, state)
    times: dict[str, list[float]] = {system: [] for system in systems}
    for round_index in range(int(cfg.repeats) + 1):
        for system, (core, forward, state) in systems.items():
            seconds = time_unroll(core, forward, x, state, reset)
            if round_index:  # round 0 warms up
                times[system].append(seconds)
    rows = []
    for system, samples in times.items():
        rows.append({
            "T": steps, "B": batch, "system": system,
            "parameters": sum(p.numel() for p in systems[system][0].parameters()),
            "ms_median": 1000 * statistics.median(samples), "ms_best": 1000 * min(samples),
        })
    medians = {row["system"]: row["ms_median"] for row in rows}
    for row in rows:
        if "lstm" in medians:
            row["vs_lstm"] = row["ms_median"] / medians["lstm"]
        step_loop = f"{core_of.get(row['system'])}:step_loop"
        if step_loop in medians:
            row["speedup_vs_step_loop"] = medians[step_loop] / row["ms_median"]
    return rows


def time_unroll(core, forward, x, state, reset) -> float:
    core.zero_grad(set_to_none=True)
    start = time.perf_counter()
    out, _, _ = forward(x, state, reset)
    out.pow(2).mean().backward()
    return time.perf_counter() - start
