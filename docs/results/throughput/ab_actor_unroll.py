"""A/B of the actor's unroll alone: the fused path (``actors.fused_unroll=true``) against the per-step one.

    .venv/bin/python docs/results/throughput/ab_actor_unroll.py [env] [rounds] > docs/results/throughput/ab_actor_unroll_<env>.json

One process, one thread, as an actor runs; the bench's settings (lstm, hidden 128; select_nonmatching_object: 16
envs, T = 20; MiniGrid: 8 envs, T = 50). Two actors with the same seed, one per path, take turns: each round times
one unroll of each, so a load that drifts weighs on both alike. Both produce the same unrolls
(tests/test_actor_unroll.py). Prints the per-round times and the median, min and max of old / new, in wall-clock
time and in the process's CPU time (``time.process_time``: what the unroll costs the cores, which other
processes' load does not stretch as it stretches wall time).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

import torch

from training.actor import Actor
from training.config import compose


def main(env: str = "select_nonmatching_object", rounds: str = "60") -> None:
    torch.set_num_threads(1)
    envs, steps = (8, 50) if env.startswith("minigrid") else (16, 20)
    actors = {}
    for name, fused in (("fused", True), ("per_step", False)):
        cfg = compose("train", [f"env={env}", "core=lstm", f"actors.envs_per_actor={envs}", f"actors.unroll_length={steps}",
                                "core.hidden_size=128", "agent.encoder_size=128", f"actors.fused_unroll={str(fused).lower()}"])
        actors[name] = Actor(cfg, actor_index=0, seed=0)
        for _ in range(3):
            actors[name].unroll()  # warm-up
    load_before = os.getloadavg()
    times, cpu_times = {name: [] for name in actors}, {name: [] for name in actors}
    for _ in range(int(rounds)):
        for name, actor in actors.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            actor.unroll()
            times[name].append(time.perf_counter() - start)
            cpu_times[name].append(time.process_time() - cpu_start)
    ratios = [old / new for new, old in zip(times["fused"], times["per_step"])]
    cpu_ratios = [old / new for new, old in zip(cpu_times["fused"], cpu_times["per_step"])]
    frames = envs * steps
    print(json.dumps({
        "env": env, "envs": envs, "unroll_length": steps, "rounds": int(rounds),
        "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
        "median_ms": {name: 1e3 * statistics.median(t) for name, t in times.items()},
        "median_frames_per_s": {name: frames / statistics.median(t) for name, t in times.items()},
        "median_per_step_over_fused": statistics.median(ratios), "min_ratio": min(ratios), "max_ratio": max(ratios),
        "median_cpu_ms": {name: 1e3 * statistics.median(t) for name, t in cpu_times.items()},
        "median_cpu_per_step_over_fused": statistics.median(cpu_ratios), "min_cpu_ratio": min(cpu_ratios),
        "max_cpu_ratio": max(cpu_ratios),
        "seconds": times, "cpu_seconds": cpu_times,
    }, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
