"""``memrl/tmaze``: the passive T-maze, a probe of memory horizon.

The first observation shows a cue, up or down (drawn at random). The agent is
then carried along a corridor of ``corridor_length`` L steps whatever it does
(passive: its actions are ignored). After L steps it is at the junction, and
its next action chooses a branch: Discrete(2) = {up, down}. The branch the cue
named gives +1, the other -1, and the choice ends the episode
(``terminated=True``). An episode is L + 1 steps; remembering the cue over L
steps is the whole task, so a memoryless policy succeeds half of the time.

Observation: float32 [cue_up, cue_down, in_corridor, at_junction].
"""
from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from .validation import check_int

UP, DOWN = 0, 1


class PassiveTMazeEnv(gymnasium.Env):
    """Passive T-maze. ``cue`` (UP or DOWN) and ``position`` (0 .. L) are readable state."""

    metadata = {"render_modes": []}

    def __init__(self, corridor_length: int = 10):
        check_int("corridor_length", corridor_length, 1, "the cue and the junction are different steps")
        self.corridor_length = corridor_length
        self.action_space = spaces.Discrete(2)
        self.observation_space = spaces.Box(0.0, 1.0, (4,), dtype=np.float32)
        self.cue = UP
        self.position = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.cue = int(self.np_random.random() < 0.5)
        self.position = 0
        return self._observation(), {}

    def step(self, action):
        if self.position < self.corridor_length:
            self.position += 1  # carried along; the action is ignored
            return self._observation(), 0.0, False, False, {}
        correct = int(action) == self.cue
        observation = np.zeros(4, dtype=np.float32)  # past the junction: nothing to see
        return observation, 1.0 if correct else -1.0, True, False, {"success": float(correct)}

    def _observation(self) -> np.ndarray:
        observation = np.zeros(4, dtype=np.float32)
        if self.position == 0:
            observation[0 if self.cue == UP else 1] = 1.0
        if self.position < self.corridor_length:
            observation[2] = 1.0
        else:
            observation[3] = 1.0
        return observation
