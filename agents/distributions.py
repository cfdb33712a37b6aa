"""Action distributions: what the policy head outputs for an action space, and how actions are drawn,
scored and fed back to the core.

| action space                | distribution                   | head outputs (params)      | action tensor            |
| --------------------------- | ------------------------------ | -------------------------- | ------------------------ |
| Discrete, MultiDiscrete     | one categorical per component  | logits, sum of the sizes   | long [..., components]   |
| Box                         | diagonal Gaussian              | mean and log std, 2 x dims | float [..., dims]        |

The Gaussian's actions are unbounded samples: their log-probabilities (V-trace's pi/mu) are of
the sampled value, and only the env receives them clipped to the Box's bounds
(``agents.encoders.env_actions``), as in CleanRL's and RLlib's continuous policies. Its log std
is an output of the head, clamped to [LOG_STD_MIN, LOG_STD_MAX], so the behaviour policy's
``params`` in an unroll carry everything its log-probability needs.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces
from torch.nn import functional as F

from .encoders import UnsupportedSpaceError, action_sizes

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class Categorical:
    """Independent categoricals, one per component of a Discrete or MultiDiscrete action."""

    def __init__(self, sizes: list[int]):
        self.sizes = sizes
        self.param_size = sum(sizes)  # logits of every component, concatenated
        self.input_size = sum(sizes)  # the previous action as one-hots
        self.action_shape, self.action_dtype = (len(sizes),), torch.long

    def split(self, params: torch.Tensor) -> list[torch.Tensor]:
        return list(params.split(self.sizes, dim=-1))

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        samples = []
        for part in self.split(params):
            probs = F.softmax(part.reshape(-1, part.shape[-1]), dim=-1)
            samples.append(torch.multinomial(probs, 1, generator=generator).reshape(part.shape[:-1]))
        return torch.stack(samples, dim=-1)

    def greedy(self, params: torch.Tensor) -> torch.Tensor:
        return torch.stack([part.argmax(-1) for part in self.split(params)], dim=-1)

    def log_prob(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return sum(F.log_softmax(part, -1).gather(-1, actions[..., i : i + 1]).squeeze(-1)
                   for i, part in enumerate(self.split(params)))

    def entropy(self, params: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for part in self.split(params):
            log_p = F.log_softmax(part, -1)
            total = total - (log_p.exp() * log_p).sum(-1)
        return total

    def features(self, actions: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.one_hot(actions[..., i], n).float() for i, n in enumerate(self.sizes)], dim=-1)


class DiagonalGaussian:
    """N(mean, diag(std^2)) over a Box action of D = prod(shape) dimensions."""

    def __init__(self, space: spaces.Box):
        self.dims = int(np.prod(space.shape))
        self.param_size = 2 * self.dims  # [mean, log std]
        self.input_size = self.dims
        self.action_shape, self.action_dtype = (self.dims,), torch.float32
        low, high = (np.asarray(b, np.float64).reshape(-1) for b in (space.low, space.high))
        bounded = np.isfinite(low) & np.isfinite(high)
        # The previous action as a feature: scaled to [-1, 1] where the Box is bounded.
        self.centre = torch.as_tensor(np.where(bounded, (low + high) / 2, 0.0), dtype=torch.float32)
        self.half_range = torch.as_tensor(np.where(bounded, np.maximum(high - low, 1e-8) / 2, 1.0), dtype=torch.float32)

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = params.split(self.dims, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mean, log_std = self.split(params)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + log_std.exp() * noise

    def greedy(self, params: torch.Tensor) -> torch.Tensor:
        return self.split(params)[0]

    def log_prob(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        mean, log_std = self.split(params)
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self, params: torch.Tensor) -> torch.Tensor:
        _, log_std = self.split(params)
        return (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)

    def features(self, actions: torch.Tensor) -> torch.Tensor:
        centre, half = self.centre.to(actions.device), self.half_range.to(actions.device)
        return ((actions.float() - centre) / half).clamp(-1.0, 1.0)


def make_distribution(space: spaces.Space) -> Categorical | DiagonalGaussian:
    """The distribution of ``space``'s actions; a one-line UnsupportedSpaceError otherwise."""
    if isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating):
        return DiagonalGaussian(space)
    try:
        return Categorical(action_sizes(space))
    except UnsupportedSpaceError:
        one_line = " ".join(str(space).split())
        raise UnsupportedSpaceError(f"action space {one_line} is not supported; supported: Discrete, "
                                    "MultiDiscrete (1 dim), Box (float)") from None
