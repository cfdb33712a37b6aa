"""``memrl/counter``: an env that counts, for testing the actor-to-learner hand-off.

Observation: float32 [1] = the number of steps taken in this episode (0 after
reset, then 1, 2, ...). The action (Discrete(2)) is ignored; every step gives
reward 1.0. After ``length`` steps the episode ends, truncated by default or
terminated with ``terminate=True``, so a test can check both paths. Any gap,
repeat or misalignment in an unroll shows up as a break in the count.
"""
from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from .validation import check_int


class CounterEnv(gymnasium.Env):
    metadata = {"render_modes": []}

    def __init__(self, length: int = 7, terminate: bool = False):
        check_int("length", length, 1, "an episode needs at least one step")
        if not isinstance(terminate, (bool, np.bool_)):
            raise ValueError(f"terminate must be true or false (got {terminate!r})")
        self.length = length
        self.terminate = bool(terminate)
        self.action_space = spaces.Discrete(2)
        self.observation_space = spaces.Box(0.0, float(length), (1,), dtype=np.float32)
        self.count = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.count = 0
        return self._observation(), {}

    def step(self, action):
        self.count += 1
        done = self.count >= self.length
        terminated, truncated = (done, False) if self.terminate else (False, done)
        return self._observation(), 1.0, terminated, truncated, {}

    def _observation(self) -> np.ndarray:
        return np.array([self.count], dtype=np.float32)
