"""Steps per second of one env in one process, raw and as ``envs.make`` returns it.

    python -m envs.speed [name] [steps]      # defaults: memrl/select_nonmatching_object 200000

Random actions are drawn before timing, so the number is the env's own cost.
"""
from __future__ import annotations

import sys
import time

import numpy as np

import envs


def steps_per_second(env, steps: int, seed: int = 0) -> float:
    actions = np.random.default_rng(seed).integers(0, env.action_space.n, size=steps).tolist()
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main(argv: list[str]) -> None:
    name = argv[0] if argv else "memrl/select_nonmatching_object"
    steps = int(argv[1]) if len(argv) > 1 else 200_000
    wrapped = envs.make(name)
    print(f"{name}: {steps} random steps, one process")
    print(f"  unwrapped env        {steps_per_second(wrapped.unwrapped, steps):>12,.0f} steps/s")
    print(f"  envs.make (wrapped)  {steps_per_second(wrapped, steps):>12,.0f} steps/s")


if __name__ == "__main__":
    main(sys.argv[1:])
