"""CPU time per env frame of each part of IMPALA, one process, one thread (issue 28: the arithmetic of the limit).

    .venv/bin/python docs/results/throughput/cpu_cost.py [env] [seconds]

Parts, each measured in the process's CPU time (``time.process_time``), which other processes' load stretches
far less than wall time: ``env``: the actor's envs stepped with random actions; ``actor``: an actor's whole
unroll (envs, inference, bookkeeping); ``learner``: one ``learner_step`` on a batch of two recorded unrolls. The
bench's settings (lstm, hidden 128; select_nonmatching_object: 16 envs, T = 20; MiniGrid: 8 envs, T = 50). Runs in
any checkout of the project (ab_commits.py's trees too), so two commits can be compared. Prints one JSON line.
"""
from __future__ import annotations

import json
import os
import sys
import time

import torch

from training.actor import Actor
from training.config import compose
from training.learner import learner_step
from training.prepare import prepare


def cpu_per_call(fn, seconds: float) -> float:
    """Mean CPU seconds per call of ``fn`` over about ``seconds`` of CPU time (at least 3 calls)."""
    calls, start = 0, time.process_time()
    while time.process_time() - start < seconds or calls < 3:
        fn()
        calls += 1
    return (time.process_time() - start) / calls


def main(env: str = "select_nonmatching_object", seconds: str = "5") -> None:
    torch.set_num_threads(1)
    envs, steps = (8, 50) if env.startswith("minigrid") else (16, 20)
    cfg = compose("train", [f"env={env}", "core=lstm", f"actors.envs_per_actor={envs}", f"actors.unroll_length={steps}",
                            "learner.batch_unrolls=2", "core.hidden_size=128", "agent.encoder_size=128"])
    actor = Actor(cfg, actor_index=0, seed=0)
    for _ in range(3):
        actor.unroll()  # warm-up

    def random_steps():
        for env_ in (guard.env for guard in actor.guards):  # the bare envs, as the bench's env-only rate
            _, _, terminated, truncated, _ = env_.step(env_.action_space.sample())
            if terminated or truncated:
                env_.reset()

    frames = envs * steps
    load_before = os.getloadavg()
    actor_s = cpu_per_call(actor.unroll, float(seconds)) / frames
    results = [actor.unroll() for _ in range(2)]
    parts = prepare(cfg)
    batch = (torch.cat([r.unroll for r in results], 1), torch.cat([r.start_state for r in results], 0))
    learner_s = cpu_per_call(lambda: learner_step(parts.agent, parts.optimizer, *batch, parts.loss, 40.0), float(seconds)) / (2 * frames)
    env_s = cpu_per_call(random_steps, float(seconds)) / envs
    print(json.dumps({"env": env, "envs": envs, "unroll_length": steps, "cpu_us_per_frame": {
        "env": 1e6 * env_s, "actor": 1e6 * actor_s, "learner": 1e6 * learner_s},
        "load_average_before": list(load_before), "load_average_after": list(os.getloadavg())}))


if __name__ == "__main__":
    main(*sys.argv[1:])
