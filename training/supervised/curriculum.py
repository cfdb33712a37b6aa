"""The exponential curriculum of the thesis (Rae, Sec. 3.4.3).

The difficulty level h doubles whenever the average training loss has stayed
under a threshold for a window of minibatches; each minibatch samples its own
level uniformly from {0, ..., h}, so easy cases keep being rehearsed. Doubling
(rather than adding) keeps the total cost of reaching length T at O(T) when a
forward-backward pass costs O(T).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class CurriculumConfig:
    start_level: int = 1  # h at the start (>= 1, since doubling 0 stays 0)
    threshold: float = 1.0  # h doubles when the mean training loss (bits per sequence) over the window is below this
    window: int = 50  # minibatches in that mean; the window restarts after each doubling
    max_level: int | None = None  # h stops doubling here (null: no limit)

    def __post_init__(self):
        if self.start_level < 1:
            raise ValueError(f"curriculum.start_level={self.start_level} must be >= 1 (doubling 0 stays 0)")
        if not self.threshold > 0:
            raise ValueError(f"curriculum.threshold={self.threshold} must be positive")
        if self.window < 1:
            raise ValueError(f"curriculum.window={self.window} must be >= 1")
        if self.max_level is not None and self.max_level < self.start_level:
            raise ValueError(f"curriculum.max_level={self.max_level} is below start_level={self.start_level}")


class ExponentialCurriculum:
    """Level h; ``sample`` draws a minibatch's level from U{0..h}, ``observe`` may double h."""

    def __init__(self, config: CurriculumConfig):
        self.config = config
        self.level = config.start_level
        self.recent: deque[float] = deque(maxlen=config.window)

    def sample(self, generator: torch.Generator) -> int:
        return int(torch.randint(0, self.level + 1, (), generator=generator))

    def observe(self, loss: float) -> bool:
        """Record one minibatch's training loss; True when h doubled."""
        self.recent.append(loss)
        full = len(self.recent) == self.config.window
        if not full or sum(self.recent) / len(self.recent) >= self.config.threshold:
            return False
        if self.config.max_level is not None and self.level >= self.config.max_level:
            return False
        self.level = min(2 * self.level, self.config.max_level or 2 * self.level)
        self.recent.clear()
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"level": self.level, "recent": list(self.recent)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.level = int(state["level"])
        self.recent = deque((float(x) for x in state["recent"]), maxlen=self.config.window)
