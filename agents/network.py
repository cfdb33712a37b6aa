"""The agent: encoder -> memory core -> policy and value heads (IMPALA's shape).

The core's input at step t is [encode(obs_t), one_hot(prev_action_t), prev_reward_t / sigma],
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

from .encoders import action_sizes, build_encoder
from .popart import PopArt

DEFAULT_CORE = {"name": "lstm"}  # the core section an Agent gets when none is given


@dataclass
class AgentOutput:
    logits: torch.Tensor  # [T, B, sum(action sizes)] concatenated per-component logits
    values: torch.Tensor  # [T, B] V in the reward's units
    state: TensorDict  # core state after the last step
    aux: dict[str, torch.Tensor]  # the core's aux: loss_* entries and diagnostics
    normalised_values: torch.Tensor | None = None  # [T, B] PopArt's n = (V - mu) / sigma, what the learner regresses


@dataclass
class AgentConfig:
    """The agent's own options: the run config's ``agent`` section (``memrl train agent.encoder_size=64``)."""

    encoder_size: int = 128  # width of the observation encoder's output
    reward_clip: float = 1.0  # the previous reward fed to the core (divided by PopArt's sigma) is clipped to [-reward_clip, reward_clip]
    prev_action_input: bool = True  # feed the previous action (one-hot) to the core
    prev_reward_input: bool = True  # feed the previous (clipped) reward to the core


class Agent(nn.Module):
    """Recurrent actor-critic over a registered memory core.

    Args:
        observation_space, action_space: gymnasium spaces (Discrete or MultiDiscrete actions).
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
        self.action_sizes = action_sizes(action_space)
        self.encoder = build_encoder(observation_space, config.encoder_size)
        self.reward_clip = config.reward_clip
        self.prev_action_input = config.prev_action_input
        self.prev_reward_input = config.prev_reward_input
        core_input = self.encoder.output_size + self.prev_action_input * sum(self.action_sizes) + self.prev_reward_input
        self.core = memory_cores.build_from_config(core, core_input)
        self.policy = nn.Linear(self.core.output_size, sum(self.action_sizes))
        self.baseline = PopArt(self.core.output_size)  # V = sigma n + mu; a plain linear head until the learner updates mu, sigma

    def initial_state(self, batch_size: int, device=None) -> TensorDict:
        return self.core.initial_state(batch_size, device)

    def forward(self, obs, prev_action: torch.Tensor, prev_reward: torch.Tensor, reset: torch.Tensor, state: TensorDict) -> AgentOutput:
        """obs: [T, B, *obs_shape] (or a dict of such); prev_action: long [T, B, n_components];
        prev_reward: [T, B]; reset: bool [T, B] (obs_t starts an episode); state: core state."""
        std = self.baseline.std  # PopArt's sigma (1 unless the learner normalises returns)
        parts = [self.encoder(obs)]
        if self.prev_action_input:
            parts += [F.one_hot(prev_action[..., i], n).float() for i, n in enumerate(self.action_sizes)]
        if self.prev_reward_input:
            reward = prev_reward.float() / std  # the returns' scale, so the input does not depend on the env's
            parts.append(reward.clamp(-self.reward_clip, self.reward_clip).unsqueeze(-1))
        core_in = torch.cat(parts, dim=-1)
        out, state, aux = self.core(core_in, state, reset)
        normalised = self.baseline.normalised(out)
        values = normalised * std + self.baseline.mean
        return AgentOutput(self.policy(out), values, state, aux, normalised)

    # -- action distribution over (possibly several) discrete components ----------------
    def split_logits(self, logits: torch.Tensor) -> list[torch.Tensor]:
        return list(logits.split(self.action_sizes, dim=-1))

    def sample(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample actions: logits [..., sum sizes] -> long [..., n_components]."""
        samples = []
        for part in self.split_logits(logits):
            probs = F.softmax(part.reshape(-1, part.shape[-1]), dim=-1)
            samples.append(torch.multinomial(probs, 1, generator=generator).reshape(part.shape[:-1]))
        return torch.stack(samples, dim=-1)

    def greedy(self, logits: torch.Tensor) -> torch.Tensor:
        """The most probable action of each component: logits [..., sum sizes] -> long [..., n_components]."""
        return torch.stack([part.argmax(-1) for part in self.split_logits(logits)], dim=-1)

    def log_prob(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Sum over components of log pi(a_i): [..., sum sizes], [..., n] -> [...]."""
        return sum(
            F.log_softmax(part, -1).gather(-1, actions[..., i : i + 1]).squeeze(-1)
            for i, part in enumerate(self.split_logits(logits))
        )

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for part in self.split_logits(logits):
            log_p = F.log_softmax(part, -1)
            total = total - (log_p.exp() * log_p).sum(-1)
        return total
