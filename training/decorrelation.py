"""Envs out of lockstep (``actors.decorrelate_steps``), for memrl's actors and RLlib's env runners alike.

Envs whose episodes have one fixed length L (POPGym, select_nonmatching_object) all reset on the same
steps forever when they start together, so each learner batch sees only one or two phases of the
episode. ``DecorrelationCut`` cuts the episode its env is in after c steps, counted from the wrapper's
start, once; c is drawn uniformly from [1, S] per env (``cut_steps``). After the cut the envs run at
phases c mod L.

The cut is a truncation (the learner bootstraps from V(final obs), as at a time limit) and that step's
info has ``DECORRELATION_CUT``: its partial return is no sample of the episode's return, so episode
statistics leave it out. Why a cut rather than warm-up steps before the first unroll: the agent sees
every episode from its first step (its core state always matches the episode; no random actions; no
frames thrown away), and nothing needs to know L: with S >= L the phases spread over all of L.
"""
from __future__ import annotations

import gymnasium
import numpy as np

DECORRELATION_CUT = "decorrelation_cut"  # info key on the step where the wrapper cut the episode


def cut_steps(spread: int, seed_words: list[int] | None, count: int) -> np.ndarray:
    """``count`` cut steps, uniform in [1, ``spread``], seeded by ``seed_words`` (None: fresh entropy);
    all 0 (no cut) if spread is 0 (its range is checked with the run's other settings: prepare.check_config)."""
    if not spread:
        return np.zeros(count, dtype=np.int64)
    return np.random.default_rng(np.random.SeedSequence(seed_words)).integers(1, spread + 1, size=count)


class DecorrelationCut(gymnasium.Wrapper):
    """Truncates the episode in progress at the env's ``cut_at``-th step (0: never); see the module docstring."""

    def __init__(self, env: gymnasium.Env, cut_at: int):
        super().__init__(env)
        self.cut_at, self.steps_taken = int(cut_at), 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps_taken += 1
        if self.steps_taken == self.cut_at and not (terminated or truncated):
            truncated, info = True, {**info, DECORRELATION_CUT: True}
        return obs, reward, terminated, truncated, info
