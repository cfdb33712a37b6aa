"""The agent: encoder -> memory core -> policy and value heads (IMPALA's shape).

The core's input at step t is [encode(obs_t), features(prev_action_t), prev_reward_t / sigma],
where prev_* is what led to obs_t (zero at an episode's first step) and sigma is the value head's
PopArt scale (agents/popart.py; 1 unless the learner normalises returns), so the core sees rewards
in the same units whatever the env's reward scale. Either prev_* input
can be left out: a feedforward agent that sees its own last action has a one-step memory
(it can carry a bit forward by choosing its moves), which a memoryless baseline must not have.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from gymnasium import spaces
from tensordict import TensorDict
from torch import nn
from torch.nn import functional as F

import memory_cores

from .distributions import Categorical, make_distribution
from .encoders import build_encoder
from .popart import AdvantageRMS, PopArt

DEFAULT_CORE = {"name": "lstm"}  # the core section an Agent gets when none is given


@dataclass
class AgentOutput:
    logits: torch.Tensor  # [T, B, P] the action distribution's parameters (agents/distributions.py): logits, or mean and log std
    values: torch.Tensor  # [T, B] V in the reward's units
    state: TensorDict  # core state after the last step
    aux: dict[str, torch.Tensor]  # the core's aux: loss_* entries and diagnostics
    normalised_values: torch.Tensor | None = None  # [T, B] PopArt's n = (V - mu) / sigma, what the learner regresses


@dataclass
class AgentConfig:
    """The agent's own options: the run config's ``agent`` section (``memrl train agent.encoder_size=64``)."""

    encoder_size: int = 128  # width of the observation encoder's output
    reward_clip: float = 1.0  # the previous reward fed to the core (divided by PopArt's sigma) is clipped to [-reward_clip, reward_clip]
    prev_action_input: bool = True  # feed the previous action (one-hot; a Box action scaled to [-1, 1]) to the core
    prev_reward_input: bool = True  # feed the previous (clipped) reward to the core


class Agent(nn.Module):
    """Recurrent actor-critic over a registered memory core.

    Args:
        observation_space, action_space: gymnasium spaces (Discrete, MultiDiscrete or Box actions).
        core: the core section, ``{"name": <registered core>, **its options}`` (``memory_cores.names()``).
        options: ``AgentConfig`` fields (encoder_size, reward_clip, prev_action_input, prev_reward_input).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 core: Mapping[str, Any] = DEFAULT_CORE, **options: Any):
        super().__init__()
        known = {f.name for f in dataclasses.fields(AgentConfig)}
        if set(options) - known:
            raise ValueError(f"unknown agent option(s) {sorted(set(options) - known)}; valid: {sorted(known)}")
        config = AgentConfig(**options)
        self.distribution = make_distribution(action_space)
        # Sizes of the discrete components (RLlib's connectors one-hot them); a Box has none.
        self.action_sizes = self.distribution.sizes if isinstance(self.distribution, Categorical) else []
        self.encoder = build_encoder(observation_space, config.encoder_size)
        self.reward_clip = config.reward_clip
        self.prev_action_input = config.prev_action_input
        self.prev_reward_input = config.prev_reward_input
        core_input = self.encoder.output_size + self.prev_action_input * self.distribution.input_size + self.prev_reward_input
        self.core = memory_cores.build_from_config(core, core_input)
        self.policy = nn.Linear(self.core.output_size, self.distribution.param_size)
        self.baseline = PopArt(self.core.output_size)  # V = sigma n + mu; a plain linear head until the learner updates mu, sigma
        self.advantage_rms = AdvantageRMS()  # the learner's advantage scale with advantage_normalisation: rms

    def initial_state(self, batch_size: int, device=None) -> TensorDict:
        return self.core.initial_state(batch_size, device)

    def forward(self, obs, prev_action: torch.Tensor, prev_reward: torch.Tensor, reset: torch.Tensor, state: TensorDict) -> AgentOutput:
        """obs: [T, B, *obs_shape] (or a dict of such); prev_action: [T, B, *action_shape] (``no_action``);
        prev_reward: [T, B]; reset: bool [T, B] (obs_t starts an episode); state: core state."""
        mean, std = self.baseline.statistics()  # PopArt's mu, sigma (0, 1 unless the learner normalises returns)
        parts = [self.encoder(obs)]
        if self.prev_action_input:
            parts.append(self.distribution.features(prev_action))
        if self.prev_reward_input:
            reward = prev_reward.float() / std  # the returns' scale, so the input does not depend on the env's
            parts.append(reward.clamp(-self.reward_clip, self.reward_clip).unsqueeze(-1))
        core_in = torch.cat(parts, dim=-1)
        out, state, aux = self.core(core_in, state, reset)
        normalised = self.baseline.normalised(out)
        values = normalised * std + mean
        return AgentOutput(self.policy(out), values, state, aux, normalised)

    # -- the action distribution (agents/distributions.py) ---------------------------------
    def no_action(self, batch_size: int) -> torch.Tensor:
        """The previous action before an episode's first step: zeros [B, *action_shape]."""
        return torch.zeros(batch_size, *self.distribution.action_shape, dtype=self.distribution.action_dtype)

    def sample(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample actions: params [..., P] -> [..., *action_shape]."""
        return self.distribution.sample(logits, generator)

    def greedy(self, logits: torch.Tensor) -> torch.Tensor:
        """The most probable action (each component's arg-max, or the Gaussian's mean)."""
        return self.distribution.greedy(logits)

    def log_prob(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log pi(a) (summed over components or dimensions): [..., P], [..., *action_shape] -> [...]."""
        return self.distribution.log_prob(logits, actions)

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        return self.distribution.entropy(logits)

    def split_logits(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """Per-component logits of a discrete action: [..., sum sizes] -> list of [..., size]."""
        return self.distribution.split(logits)
