"""The IMPALA learner step: replay the core over a batch of unrolls, V-trace, losses, update.

With ``value_normalisation: popart`` (train.yaml's default) the value loss is PopArt-IMPALA's (Hessel et al.
2019; agents/popart.py): the value head regresses (v_s - mu) / sigma, where mu, sigma are the running
statistics of the V-trace targets. The policy-gradient advantage is divided by the advantages' own
running RMS (``advantage_normalisation: rms``, train.yaml's default; agents/popart.py ``AdvantageRMS``)
or by sigma (``sigma``, PopArt-IMPALA's choice and this dataclass's; 1 without PopArt). Either way, multiplying
every reward by c multiplies V, v_s, mu, sigma and the RMS by c and leaves every loss, gradient and
update the same, so one ``entropy_cost`` means the same on +-1/51 rewards (POPGym) and +-10 ones. With
``rms`` the bonus is also weighed against the advantages' own size, which sigma (the spread of the
values) is not: in trained agents sigma is 1.3-1.7 RMS of advantage on memory_maze, 2 on
RepeatPreviousEasy, 4 on CountRecallEasy (docs/results/defaults.md).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from tensordict import TensorDict

from agents import Agent, vtrace
from memory_cores import auxiliary_losses

from .unroll import transitions


VALUE_NORMALISATIONS = ("popart", "none")
ADVANTAGE_NORMALISATIONS = ("sigma", "rms")


@dataclass
class LossConfig:
    """The run config's ``learner.loss`` section (documented in configs/train.yaml)."""

    discount: float = 0.99
    reward_scale: float = 1.0
    baseline_cost: float = 0.5
    entropy_cost: float = 0.01
    entropy_cost_final: float | None = None  # None: entropy_cost throughout; else linear to this at total_frames
    clip_rho_threshold: float = 1.0
    clip_c_threshold: float = 1.0
    trace_lambda: float = 1.0
    value_normalisation: str = "none"  # popart: mu, sigma follow the targets; none: they stay 0, 1 (plain IMPALA)
    popart_step_size: float = 3e-4  # beta of PopArt's moving averages (bias-corrected)
    advantage_normalisation: str = "sigma"  # sigma: advantage / PopArt's sigma; rms: / the advantages' running RMS
    advantage_rms_step_size: float = 0.01  # beta of that RMS's moving average

    def __post_init__(self):
        if self.value_normalisation not in VALUE_NORMALISATIONS:
            raise ValueError(f"learner.loss.value_normalisation must be one of {list(VALUE_NORMALISATIONS)} "
                             f"(got {self.value_normalisation!r})")
        if self.advantage_normalisation not in ADVANTAGE_NORMALISATIONS:
            raise ValueError(f"learner.loss.advantage_normalisation must be one of {list(ADVANTAGE_NORMALISATIONS)} "
                             f"(got {self.advantage_normalisation!r})")
        if not 0 < self.advantage_rms_step_size <= 1:
            raise ValueError(f"learner.loss.advantage_rms_step_size must be in (0, 1] (got {self.advantage_rms_step_size!r}); e.g. 0.01")
        if self.entropy_cost_final is not None and not 0 <= self.entropy_cost_final < float("inf"):
            raise ValueError(f"learner.loss.entropy_cost_final must be null or a number >= 0 (got {self.entropy_cost_final!r}); e.g. 0")
        if not 0 < self.popart_step_size <= 1:
            raise ValueError(f"learner.loss.popart_step_size must be in (0, 1] (got {self.popart_step_size!r}); e.g. 3e-4")


def at_progress(cfg: LossConfig, progress: float) -> LossConfig:
    """``cfg`` with the entropy cost of this point of the run (``progress`` = frames / total_frames): linear
    from ``entropy_cost`` to ``entropy_cost_final``, which it keeps past the end; ``cfg`` itself when no schedule."""
    if cfg.entropy_cost_final is None:
        return cfg
    fraction = min(max(progress, 0.0), 1.0)
    return replace(cfg, entropy_cost=cfg.entropy_cost + fraction * (cfg.entropy_cost_final - cfg.entropy_cost))


def compute_policy_gradient_loss(log_probs: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    return -(log_probs * advantages.detach()).sum(0).mean()


def compute_baseline_loss(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return 0.5 * (targets.detach() - values).pow(2).sum(0).mean()


def compute_entropy_loss(entropy: torch.Tensor) -> torch.Tensor:
    return -entropy.sum(0).mean()


def advantage_scale(agent: Agent, cfg: LossConfig) -> torch.Tensor:
    """What the policy-gradient advantage is divided by (``advantage_normalisation``)."""
    return agent.advantage_rms.rms if cfg.advantage_normalisation == "rms" else agent.baseline.std


def impala_loss(agent: Agent, unroll: TensorDict, start_state: TensorDict, cfg: LossConfig):
    """(total loss, its parts, V-trace's returns (v_s, pg_advantages: [T, B])) for one batch. ``unroll`` is [T+1, B], ``start_state`` [B].

    Losses are summed over time and averaged over the batch, as in IMPALA; the
    core's ``loss_*`` aux terms are added, each as its mean (``memory_cores.auxiliary_losses``).
    Value and advantage are measured in units of the value head's sigma, around its mu (both 0, 1
    unless the statistics are updated: ``update_statistics``).
    """
    out = agent(unroll["obs"], unroll["prev_action"], unroll["prev_reward"], unroll["reset"], start_state)
    steps = transitions(unroll, cfg.discount, cfg.reward_scale)
    values, bootstrap = out.values[:-1], out.values[-1]
    logits = out.logits[:-1]
    target_log_probs = agent.log_prob(logits, steps.actions)
    behaviour_log_probs = agent.log_prob(steps.behaviour_logits, steps.actions)
    returns = vtrace(
        target_log_probs.detach() - behaviour_log_probs,
        steps.discounts, steps.rewards, values.detach(), bootstrap.detach(),
        cfg.clip_rho_threshold, cfg.clip_c_threshold, trace_lambda=cfg.trace_lambda,
    )
    popart = agent.baseline
    parts = {
        "pg_loss": compute_policy_gradient_loss(target_log_probs, returns.pg_advantages / advantage_scale(agent, cfg)),
        "baseline_loss": cfg.baseline_cost * compute_baseline_loss(out.normalised_values[:-1], popart.normalise(returns.vs)),
        "entropy_loss": cfg.entropy_cost * compute_entropy_loss(agent.entropy(logits)),
    }
    parts.update(auxiliary_losses(out.aux))
    total = sum(parts.values())
    return total, {k: v.detach() for k, v in parts.items()}, returns


def update_statistics(agent: Agent, returns, cfg: LossConfig) -> None:
    """After a gradient step: fold this batch's targets into PopArt's mu, sigma (outputs preserved)
    and its advantages into their RMS."""
    if cfg.value_normalisation == "popart":
        agent.baseline.update(returns.vs, cfg.popart_step_size)
    if cfg.advantage_normalisation == "rms":
        agent.advantage_rms.update(returns.pg_advantages, cfg.advantage_rms_step_size)


def learner_step(agent: Agent, optimizer: torch.optim.Optimizer, unroll: TensorDict, start_state: TensorDict,
                 cfg: LossConfig, max_grad_norm: float):
    """One update from a batch: loss, gradient (clipped to ``max_grad_norm``), optimiser step, statistics.

    Returns (loss, its parts, grad norm, applied); a non-finite loss or gradient is not applied
    (weights and statistics stay as they were). The agent replays in the actors' mode (eval):
    dropout off, so V-trace's pi and mu compare one function.
    """
    agent.eval()
    loss, losses, returns = impala_loss(agent, unroll, start_state, cfg)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(agent.parameters(), max_grad_norm)
    applied = bool(torch.isfinite(loss) and torch.isfinite(grad_norm))
    if applied:
        optimizer.step()
        update_statistics(agent, returns, cfg)
    return loss, losses, grad_norm, applied
