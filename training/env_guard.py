"""An env that survives its own exceptions, so one flaky simulator does not end a days-long run.

``GuardedEnv`` wraps the env an actor steps. When the inner env raises in
``step``, the episode is cut there: the step returns the last good observation
as a truncation with reward 0 and ``info["env_error"]``, so the learner
bootstraps from V(last good observation) instead of learning from a made-up
outcome. The next ``reset`` builds a fresh env (the old one may be in any
state) and resets it; a reset or rebuild that raises is retried the same way.

Every error is printed as one line and counted (``errors``). A rare fault never
stops training, but an env that fails ``max_errors`` times without finishing an
episode in between is broken, and ``EnvFaultError`` stops the run.
"""
from __future__ import annotations

from typing import Any, Callable

import gymnasium
import numpy as np


class EnvFaultError(ValueError):
    """An env kept raising: ``max_errors`` errors without a finished episode in between."""


class GuardedEnv(gymnasium.Wrapper):
    """``make_env()`` wrapped so that its exceptions in ``step``/``reset`` are survived and counted.

    Args:
        make_env: builds the inner env; called again to replace it after an error.
        max_errors: errors without a finished episode in between that stop the run.
        name: the env's name, for messages.
    """

    def __init__(self, make_env: Callable[[], gymnasium.Env], max_errors: int, name: str = "env"):
        if max_errors < 1:
            raise ValueError(f"actors.max_env_errors must be at least 1 (got {max_errors}); use e.g. 10")
        super().__init__(make_env())
        self.make_env, self.max_errors, self.name = make_env, max_errors, name
        self.errors = 0  # all errors so far
        self.errors_in_a_row = 0  # since the last finished episode
        self.broken = False
        self.last_obs: Any = None
        self.seeds: np.random.Generator | None = None  # seeds for rebuilt envs, from the first reset's seed

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.seeds = np.random.default_rng(seed)
        while True:
            try:
                if self.broken:
                    self._rebuild()
                    if self.seeds is not None:  # a rebuilt env is seeded too, so in-process runs stay reproducible
                        seed = int(self.seeds.integers(2**31))
                obs, info = self.env.reset(seed=seed, options=options)
            except Exception as exc:  # noqa: BLE001  (any env error; KeyboardInterrupt still stops)
                self._record(exc, "reset")
                continue
            self.broken = False
            self.last_obs = obs
            return obs, info

    def step(self, action):
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
        except Exception as exc:  # noqa: BLE001
            message = self._record(exc, "step")
            return self.last_obs, 0.0, False, True, {"env_error": message}
        if terminated or truncated:
            self.errors_in_a_row = 0
        self.last_obs = obs
        return obs, reward, terminated, truncated, info

    def _rebuild(self) -> None:
        try:
            self.env.close()
        except Exception:  # noqa: BLE001  (a broken env may not close cleanly; it is dropped either way)
            pass
        self.env = self.make_env()

    def _record(self, exc: Exception, where: str) -> str:
        self.errors += 1
        self.errors_in_a_row += 1
        self.broken = True
        text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        if self.errors_in_a_row >= self.max_errors:
            raise EnvFaultError(
                f"env {self.name} raised {self.errors_in_a_row} times without finishing an episode "
                f"(last, in {where}: {message}); fix the env or raise actors.max_env_errors"
            ) from None
        print(f"env {self.name} raised in {where} ({message}); replacing it "
              f"({self.errors} errors so far, {self.errors_in_a_row} in a row)", flush=True)
        return message
