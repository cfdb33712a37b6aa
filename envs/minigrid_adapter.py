"""MiniGrid adapter: keep the image and the direction, drop the mission text; report success.

MiniGrid observations are a Dict of ``image`` (7x7x3 uint8: object, colour,
state per cell), ``direction`` (Discrete(4)) and ``mission`` (a Text space).
Our encoders handle Box and Discrete but not Text, and the memory tasks'
missions carry no information, so the wrapper drops ``mission``.

MiniGrid pays a reward (1 - 0.9 * steps / max_steps) only when an episode ends
at its goal, so the last step's ``info["success"]`` is 1 for a terminated step
with a positive reward and 0 otherwise (the wrong object, lava, the time limit):
the ``mean_success`` that memrl logs for its own memory tasks.
"""
from __future__ import annotations

import gymnasium
from gymnasium import spaces


class MiniGridImageDirection(gymnasium.ObservationWrapper):
    """Observation: Dict(image: Box uint8 [7, 7, 3], direction: Discrete(4))."""

    def __init__(self, env: gymnasium.Env):
        super().__init__(env)
        self.observation_space = spaces.Dict(
            {"image": env.observation_space["image"], "direction": env.observation_space["direction"]}
        )

    def observation(self, observation):
        return {"image": observation["image"], "direction": observation["direction"]}

    def step(self, action):
        observation, reward, terminated, truncated, info = super().step(action)
        if terminated or truncated:
            info = {**info, "success": float(terminated and reward > 0)}
        return observation, reward, terminated, truncated, info


def is_minigrid(env: gymnasium.Env) -> bool:
    """True when the innermost env is a MiniGrid env (imports minigrid only if it is loaded)."""
    import sys

    module = sys.modules.get("minigrid.minigrid_env")
    return module is not None and isinstance(env.unwrapped, module.MiniGridEnv)
