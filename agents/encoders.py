"""Observation encoders chosen from a gymnasium observation space.

Every encoder maps a batch of observations with leading dims [*lead] to
features [*lead, output_size].

| space                       | encoder                                   |
| --------------------------- | ----------------------------------------- |
| Box, 3 dims (image)         | conv net (HWC or CHW), scaled to [0, 1]   |
| Box, any other rank         | flattened, MLP, scaled to [0, 1] where bounded |
| Discrete                    | embedding                                 |
| MultiDiscrete (1 dim)       | one embedding per component, concatenated |
| Dict or Tuple of the above  | concatenation of the sub-encoders (nested too) |

A Tuple observation reaches the encoder as a dict with keys "0", "1", ... (the actor
stacks it so; training.actor.stack_obs) or as a tuple (RLlib's batches).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

SUPPORTED = "Box (3 dims: an image; any other rank: a vector), Discrete, MultiDiscrete (1 dim), or a Dict or Tuple of these"


class UnsupportedSpaceError(ValueError):
    pass


def build_encoder(space: spaces.Space, hidden_size: int = 128) -> nn.Module:
    """The encoder for ``space``; raises UnsupportedSpaceError naming the space otherwise."""
    if isinstance(space, spaces.Dict):
        return DictEncoder(space, hidden_size)
    if isinstance(space, spaces.Tuple):
        return TupleEncoder(space, hidden_size)
    if isinstance(space, spaces.Discrete):
        return DiscreteEncoder(space, hidden_size)
    if isinstance(space, spaces.MultiDiscrete) and len(space.nvec.shape) == 1:
        return MultiDiscreteEncoder(space, hidden_size)
    if isinstance(space, spaces.Box) and len(space.shape) == 3:
        return ImageEncoder(space, hidden_size)
    if isinstance(space, spaces.Box):
        return VectorEncoder(space, hidden_size)
    one_line = " ".join(str(space).split())  # a 2-D MultiDiscrete prints its nvec over several lines
    raise UnsupportedSpaceError(f"observation space {one_line} is not supported by the encoder; supported: {SUPPORTED}")


def _scale(space: spaces.Box) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(low, range) to map a fully bounded Box to [0, 1]; None when unbounded."""
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        return None
    span = np.where(high > low, high - low, 1.0)
    return torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(span, dtype=torch.float32)


class VectorEncoder(nn.Module):
    """Box of shape S (any rank but an image's) -> flattened [F = prod S] -> MLP(F -> hidden -> hidden)."""

    def __init__(self, space: spaces.Box, hidden_size: int):
        super().__init__()
        self.rank = len(space.shape)
        scale = _scale(space)
        self.scaled = scale is not None
        if self.scaled:
            self.register_buffer("low", scale[0].flatten(), persistent=False)
            self.register_buffer("span", scale[1].flatten(), persistent=False)
        features = math.prod(space.shape)
        self.net = nn.Sequential(
            nn.Linear(features, hidden_size), nn.ReLU(), nn.Linear(hidden_size, hidden_size), nn.ReLU()
        )
        self.output_size = hidden_size

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float().reshape(*obs.shape[: obs.dim() - self.rank], -1)
        if self.scaled:
            x = (x - self.low) / self.span
        return self.net(x)


class ImageEncoder(nn.Module):
    """Box [H, W, C] or [C, H, W] -> conv net -> hidden.

    Layout: channels-first only when the first dim is strictly the smallest
    ([3, 72, 96]); otherwise channels-last (MiniGrid [7, 7, 3], DMLab [72, 96, 3],
    memrl's one-hot views [5, 5, 6]). Small images (< 32 px) get stride-1 3x3 convs, large ones
    the strided IMPALA-paper-sized stack.
    """

    def __init__(self, space: spaces.Box, hidden_size: int):
        super().__init__()
        shape = space.shape
        self.channels_last = not shape[0] < min(shape[1], shape[2])
        channels, height, width = (shape[2], shape[0], shape[1]) if self.channels_last else shape
        low, span = _scale(space) or (torch.zeros(()), torch.ones(()))
        # One scale for the whole image: per-pixel bounds are rare and would need a transpose.
        self.register_buffer("low", low.min().reshape(()), persistent=False)
        self.register_buffer("span", span.max().reshape(()), persistent=False)
        if min(height, width) < 32:
            self.conv = nn.Sequential(
                nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU()
            )
        else:
            self.conv = nn.Sequential(
                nn.Conv2d(channels, 16, 8, stride=4), nn.ReLU(), nn.Conv2d(16, 32, 4, stride=2), nn.ReLU()
            )
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, channels, height, width)).numel()
        self.head = nn.Sequential(nn.Linear(flat, hidden_size), nn.ReLU())
        self.output_size = hidden_size

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[:-3]
        x = (obs.reshape(-1, *obs.shape[-3:]).float() - self.low) / self.span
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        return self.head(self.conv(x).flatten(1)).reshape(*lead, -1)


class DiscreteEncoder(nn.Module):
    def __init__(self, space: spaces.Discrete, hidden_size: int):
        super().__init__()
        self.start = int(space.start)
        self.embedding = nn.Embedding(int(space.n), hidden_size)
        self.output_size = hidden_size

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.embedding(obs.long() - self.start)


class MultiDiscreteEncoder(nn.Module):
    def __init__(self, space: spaces.MultiDiscrete, hidden_size: int):
        super().__init__()
        size = max(8, hidden_size // len(space.nvec))
        self.embeddings = nn.ModuleList(nn.Embedding(int(n), size) for n in space.nvec)
        self.register_buffer("start", torch.as_tensor(space.start, dtype=torch.long), persistent=False)
        self.output_size = size * len(space.nvec)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        obs = obs.long() - self.start
        return torch.cat([emb(obs[..., i]) for i, emb in enumerate(self.embeddings)], dim=-1)


class DictEncoder(nn.Module):
    """Concatenate the encodings of every key, in sorted key order."""

    def __init__(self, space: spaces.Dict, hidden_size: int):
        super().__init__()
        if not space.spaces:
            raise UnsupportedSpaceError("observation space Dict() is empty; the encoder needs at least one key")
        self.keys = sorted(space.spaces)
        self.encoders = nn.ModuleDict({k: build_encoder(space[k], hidden_size) for k in self.keys})
        self.output_size = sum(e.output_size for e in self.encoders.values())

    def forward(self, obs) -> torch.Tensor:
        return torch.cat([self.encoders[k](obs[k]) for k in self.keys], dim=-1)


class TupleEncoder(nn.Module):
    """Concatenate the encodings of every element, in order."""

    def __init__(self, space: spaces.Tuple, hidden_size: int):
        super().__init__()
        if not space.spaces:
            raise UnsupportedSpaceError("observation space Tuple() is empty; the encoder needs at least one element")
        self.encoders = nn.ModuleList(build_encoder(s, hidden_size) for s in space.spaces)
        self.output_size = sum(e.output_size for e in self.encoders)

    def forward(self, obs) -> torch.Tensor:
        parts = obs if isinstance(obs, (tuple, list)) else [obs[str(i)] for i in range(len(self.encoders))]
        return torch.cat([encoder(part) for encoder, part in zip(self.encoders, parts)], dim=-1)


def action_sizes(space: spaces.Space) -> list[int]:
    """Number of choices per action component: [n] for Discrete, nvec for MultiDiscrete."""
    if isinstance(space, spaces.Discrete):
        return [int(space.n)]
    if isinstance(space, spaces.MultiDiscrete) and len(space.nvec.shape) == 1:
        return [int(n) for n in space.nvec]
    raise UnsupportedSpaceError(f"action space {space} is not supported; supported: Discrete, MultiDiscrete (1 dim)")


def env_actions(space: spaces.Space, actions: np.ndarray) -> list:
    """The agent's actions [B, *action_shape] (discrete ones from 0) as the env takes them, one per env:
    ``Discrete(n, start=k)`` an int plus k, ``MultiDiscrete`` an array plus its starts (also with one
    component: ``MultiDiscrete([5]).contains`` wants an array, not a scalar), ``Box`` the sample clipped to
    its bounds in its shape and dtype."""
    if isinstance(space, spaces.Discrete):
        return [int(a[0]) + int(space.start) for a in actions]
    if isinstance(space, spaces.Box):  # a Gaussian sample, clipped to the bounds only here
        return [np.clip(a.reshape(space.shape), space.low, space.high).astype(space.dtype) for a in actions]
    return [np.asarray(a + space.start, dtype=space.dtype) for a in actions]


def num_parameters(module: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in module.parameters())
