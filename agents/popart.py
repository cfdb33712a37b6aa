"""PopArt: the value head learns normalised returns, and its outputs survive changes of the statistics.

van Hasselt et al. 2016, "Learning values across many orders of magnitude" (Pop-Art: Preserving
Outputs Precisely, while Adaptively Rescaling Targets), as Hessel et al. 2019 ("Multi-task deep
reinforcement learning with PopArt") use it with IMPALA: the head outputs a normalised value n(x);
the value in the reward's units is

    V(x) = sigma n(x) + mu

with mu and sigma the running mean and standard deviation of the value targets (V-trace's v_s).
The learner regresses n(x) on (v_s - mu) / sigma and scales the policy-gradient advantage by 1 / sigma,
so the losses (and so one ``entropy_cost``) do not depend on the rewards' scale. When the
statistics move (mu, sigma -> mu', sigma'), the head's weights are rescaled so V(x) stays the same:

    w' = w sigma / sigma'        b' = (sigma b + mu - mu') / sigma'

Statistics: exponential moving averages of the first and second moment of the targets with step size
beta, bias-corrected as Adam's moments (divided by 1 - (1 - beta)^t after t updates), so the first
update sets them from the data itself instead of creeping from (0, 1) over 1 / beta updates; sigma is
kept in [``min_std``, ``max_std``]. Before any update mu = 0 and sigma = 1: the head is a plain linear
layer, which is what an agent trained without normalisation has.

The statistics are buffers, so they travel with the weights to the actors and into checkpoints.
"""
from __future__ import annotations

import torch
from torch import nn


class PopArt(nn.Linear):
    """A linear value head ``[..., I] -> [...]`` with PopArt statistics (mu, sigma over scalar targets).

    ``forward`` returns V in the reward's units; ``normalised(x)`` returns n(x), what the loss regresses.
    """

    min_std = 1e-4  # sigma's floor: returns that never vary (no reward yet) do not blow n(x) up
    max_std = 1e6

    def __init__(self, input_size: int):
        super().__init__(input_size, 1)
        # Raw (not bias-corrected) moving averages and the number of updates folded in.
        self.register_buffer("first_moment", torch.zeros(()))
        self.register_buffer("second_moment", torch.zeros(()))
        self.register_buffer("updates", torch.zeros((), dtype=torch.float64))
        self.register_buffer("step_size", torch.zeros((), dtype=torch.float64))  # beta of the updates so far

    # -- statistics ------------------------------------------------------------------------------
    def _correction(self) -> torch.Tensor:
        return 1.0 - (1.0 - self.step_size) ** self.updates

    def statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, sigma), computed together (an agent's forward needs both): (0, 1) before any update."""
        if self.updates == 0:
            return torch.zeros((), device=self.first_moment.device), torch.ones((), device=self.first_moment.device)
        correction = self._correction()
        mean = (self.first_moment / correction).float()
        second = (self.second_moment / correction).float()
        return mean, (second - mean**2).clamp(min=self.min_std**2).sqrt().clamp(max=self.max_std)

    @property
    def mean(self) -> torch.Tensor:
        """mu: 0 before any update."""
        return self.statistics()[0]

    @property
    def std(self) -> torch.Tensor:
        """sigma: 1 before any update."""
        return self.statistics()[1]

    def normalise(self, value: torch.Tensor) -> torch.Tensor:
        """(value - mu) / sigma, for targets in the reward's units."""
        mean, std = self.statistics()
        return (value - mean) / std

    @torch.no_grad()
    def update(self, targets: torch.Tensor, step_size: float) -> None:
        """Fold ``targets`` (any shape, the reward's units) into mu and sigma and rescale the head so that
        V(x) is unchanged for every x (Pop-Art's "preserving outputs")."""
        if self.updates > 0 and float(self.step_size) != step_size:
            raise ValueError(f"PopArt step size changed from {float(self.step_size)} to {step_size}; "
                             "keep learner.loss.popart_step_size when resuming")
        old_mean, old_std = self.statistics()
        targets = targets.detach().to(self.first_moment.dtype)
        self.step_size.fill_(step_size)
        self.first_moment.mul_(1 - step_size).add_(step_size * targets.mean())
        self.second_moment.mul_(1 - step_size).add_(step_size * targets.pow(2).mean())
        self.updates.add_(1)
        new_mean, new_std = self.statistics()
        self.weight.mul_(old_std / new_std)
        self.bias.mul_(old_std).add_(old_mean - new_mean).div_(new_std)

    # -- outputs ---------------------------------------------------------------------------------
    def normalised(self, x: torch.Tensor) -> torch.Tensor:
        """n(x): [..., I] -> [...]."""
        return super().forward(x).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """V(x) = sigma n(x) + mu: [..., I] -> [...]."""
        mean, std = self.statistics()
        return self.normalised(x) * std + mean

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        # Checkpoints from before PopArt have a plain linear head: no statistics, i.e. mu = 0, sigma = 1.
        for name, buffer in self._buffers.items():
            state_dict.setdefault(prefix + name, torch.zeros_like(buffer))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
