"""The IMPALA learner step: replay the core over a batch of unrolls, V-trace, losses, update."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict

from agents import Agent, vtrace
from memory_cores import auxiliary_losses

from .unroll import transitions


@dataclass
class LossConfig:
    discount: float = 0.99
    reward_scale: float = 1.0
    baseline_cost: float = 0.5
    entropy_cost: float = 0.01
    clip_rho_threshold: float = 1.0
    clip_c_threshold: float = 1.0
    trace_lambda: float = 1.0


def compute_policy_gradient_loss(log_probs: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    return -(log_probs * advantages.detach()).sum(0).mean()


def compute_baseline_loss(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return 0.5 * (targets.detach() - values).pow(2).sum(0).mean()


def compute_entropy_loss(entropy: torch.Tensor) -> torch.Tensor:
    return -entropy.sum(0).mean()


def impala_loss(agent: Agent, unroll: TensorDict, start_state: TensorDict, cfg: LossConfig):
    """Total loss and its parts for one batch. ``unroll`` is [T+1, B], ``start_state`` [B].

    Losses are summed over time and averaged over the batch, as in IMPALA; the
    core's ``loss_*`` aux terms are added, each as its mean (``memory_cores.auxiliary_losses``).
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
    parts = {
        "pg_loss": compute_policy_gradient_loss(target_log_probs, returns.pg_advantages),
        "baseline_loss": cfg.baseline_cost * compute_baseline_loss(values, returns.vs),
        "entropy_loss": cfg.entropy_cost * compute_entropy_loss(agent.entropy(logits)),
    }
    parts.update(auxiliary_losses(out.aux))
    total = sum(parts.values())
    return total, {k: v.detach() for k, v in parts.items()}
