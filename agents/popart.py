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


class StatisticsFromZero:
    """Loads checkpoints saved before the module's statistics existed: missing buffers load as zeros,
    which every statistics module here reads as "no update yet"."""

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        for name, buffer in self._buffers.items():
            state_dict.setdefault(prefix + name, torch.zeros_like(buffer))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)


class PopArt(StatisticsFromZero, nn.Linear):
    """A linear value head ``[..., I] -> [...]`` with PopArt statistics (mu, sigma over scalar targets).

    ``forward`` returns V in the reward's units; ``normalised(x)`` returns n(x), what the loss regresses.
    A checkpoint from before PopArt (a plain linear head) loads as mu = 0, sigma = 1.
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


class AdvantageRMS(StatisticsFromZero, nn.Module):
    """The running root mean square of the policy-gradient advantages (``advantage_normalisation: rms``).

    PopArt divides the advantage by sigma, the spread of the value *targets*; how hard the policy
    gradient pulls against the entropy bonus then still depends on the env: a task whose returns barely
    vary between states but whose advantages are large (a +1 at each of many goals) gets a weak bonus,
    one with small per-step rewards a strong one. Dividing by the advantages' own RMS fixes their scale
    at 1, so ``entropy_cost`` is measured against one RMS of advantage on every task (the idea of PPO's
    advantage normalisation, kept as a moving average so that a batch without reward is not blown up).
    The mean of the squared advantages over the first 1 / beta batches, then a moving average with
    step size beta; 1 before any update. A buffer, so it travels into checkpoints. An option: the
    defaults keep sigma, since with it the quickstart learned later (docs/results/defaults.md).
    """

    min_rms = 1e-4  # a run that has never seen a reward keeps its (near-zero) advantages near zero

    def __init__(self):
        super().__init__()
        self.register_buffer("second_moment", torch.zeros(()))
        self.register_buffer("updates", torch.zeros((), dtype=torch.float64))

    @property
    def rms(self) -> torch.Tensor:
        if self.updates == 0:
            return torch.ones((), device=self.second_moment.device)
        return self.second_moment.float().clamp(min=self.min_rms**2).sqrt()

    @torch.no_grad()
    def update(self, advantages: torch.Tensor, step_size: float) -> None:
        """Fold a batch of advantages (any shape) into the RMS (the first batch sets it)."""
        beta = max(step_size, 1.0 / float(self.updates + 1))  # bias correction: the plain mean until 1 / beta updates
        self.second_moment.mul_(1 - beta).add_(beta * advantages.detach().float().pow(2).mean())
        self.updates.add_(1)
