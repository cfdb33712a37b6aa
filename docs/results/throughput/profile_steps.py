"""Where one actor unroll and one learner update spend their time (issue 28, item 2).

    .venv/bin/python docs/results/throughput/profile_steps.py [env] > docs/results/throughput/profile_<env>.txt

The bench's default settings (configs/bench/throughput.yaml: lstm, 16 envs per actor, T = 20, a batch
of 2 unrolls), one process, one thread, as an actor runs: cProfile over 30 actor unrolls, then over
30 learner updates on those unrolls; the top functions by their own time (tottime).
"""
from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time

import torch

from training.actor import Actor
from training.config import compose
from training.learner import learner_step
from training.prepare import prepare


def top(profiler: cProfile.Profile, n: int = 25) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(n)
    return out.getvalue()


def main(env: str = "select_nonmatching_object") -> None:
    torch.set_num_threads(1)
    cfg = compose("train", [f"env={env}", "core=lstm", "actors.envs_per_actor=16", "actors.unroll_length=20",
                            "learner.batch_unrolls=2", "core.hidden_size=128", "agent.encoder_size=128"])
    actor = Actor(cfg, actor_index=0, seed=0)
    for _ in range(3):
        actor.unroll()  # warm-up
    profiler, start = cProfile.Profile(), time.perf_counter()
    profiler.enable()
    results = [actor.unroll() for _ in range(30)]
    profiler.disable()
    actor_s = (time.perf_counter() - start) / 30
    parts = prepare(cfg)
    batches = [(torch.cat([a.unroll, b.unroll], 1), torch.cat([a.start_state, b.start_state], 0))
               for a, b in zip(results[::2], results[1::2])]
    learner_step(parts.agent, parts.optimizer, *batches[0], parts.loss, 40.0)  # warm-up
    learner, start = cProfile.Profile(), time.perf_counter()
    learner.enable()
    for unroll, state in batches + batches:
        learner_step(parts.agent, parts.optimizer, unroll, state, parts.loss, 40.0)
    learner.disable()
    learner_s = (time.perf_counter() - start) / (2 * len(batches))
    frames = 16 * 20
    print(f"env={env}: actor unroll {actor_s * 1e3:.1f} ms ({frames / actor_s:,.0f} frames/s in one process, "
          f"profiled); learner update {learner_s * 1e3:.1f} ms ({2 * frames / learner_s:,.0f} frames/s, profiled)\n")
    print("== actor unroll (16 envs x 20 steps), top functions by own time ==")
    print(top(profiler))
    print("== learner update (2 unrolls), top functions by own time ==")
    print(top(learner))


if __name__ == "__main__":
    main(*sys.argv[1:])
