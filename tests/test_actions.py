"""Actions reach the env as its action space holds them: Discrete with a start, one-component MultiDiscrete."""
from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from agents import env_actions
from training.actor import Actor
from training.config import compose


class StrictActionEnv(gymnasium.Env):
    """Steps only with actions its action space contains; episodes of 4 steps."""

    observation_space = spaces.Discrete(2)

    def __init__(self, action_space: str = "discrete_start"):
        self.action_space = {"discrete_start": spaces.Discrete(3, start=5),
                             "multidiscrete_one": spaces.MultiDiscrete([5]),
                             "multidiscrete_start": spaces.MultiDiscrete([2, 3], start=[-1, 4])}[action_space]
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return 0, {}

    def step(self, action):
        assert self.action_space.contains(action), f"{action!r} is not in {self.action_space}"
        self.steps += 1
        return 1, 0.0, self.steps >= 4, False, {}


gymnasium.register("memrl-test/StrictAction-v0", entry_point=StrictActionEnv)


def test_env_actions_add_the_start_and_keep_arrays_for_multidiscrete():
    assert env_actions(spaces.Discrete(3, start=5), np.array([[0], [2]])) == [5, 7]
    one = env_actions(spaces.MultiDiscrete([5]), np.array([[3]]))
    assert spaces.MultiDiscrete([5]).contains(one[0]) and one[0].shape == (1,)
    [shifted] = env_actions(spaces.MultiDiscrete([2, 3], start=[-1, 4]), np.array([[1, 2]]))
    assert shifted.tolist() == [0, 6]


@pytest.mark.parametrize("action_space", ["discrete_start", "multidiscrete_one", "multidiscrete_start"])
def test_an_actor_steps_envs_with_actions_they_accept(action_space):
    cfg = compose("train", ["env=gym", "env.name=memrl-test/StrictAction-v0", "core.hidden_size=8",
                            "agent.encoder_size=8", "actors.envs_per_actor=3", "actors.unroll_length=10"])
    cfg["env"]["action_space"] = action_space
    result = Actor(cfg, actor_index=0, seed=0).unroll()
    assert len(result.episodes) >= 6 and result.env_errors == 0
