"""How hard each loss term pulls on the shared network (encoder + core) of trained agents.

    python docs/results/defaults/loss_gradients.py <sweep>/seed=<n>/checkpoint.pt ... > out.txt

For each checkpoint: 15 unrolls of its own training config's actor (after 25 unrolls, so every env is
mid-episode), and per unroll the gradient norm, over the encoder's and the core's parameters, of each
loss term as the learner would weigh it: the policy gradient and the value loss (baseline_cost 0.5)
in PopArt's normalised units (``_norm``: the advantage and the targets divided by sigma) and in the
reward's units (``_raw``: what value_normalisation=none uses), and the entropy term (entropy_cost 0.01).
Printed: the means over the unrolls, PopArt's sigma, the value-to-policy ratio of each variant and the
entropy-to-policy ratio as the learner weighs them (normalised units).
Without PopArt (sigma = 1) the two variants are the same.
"""
from __future__ import annotations

import sys

import torch

from agents import vtrace
from training.actor import Actor
from training.learner import compute_baseline_loss, compute_entropy_loss, compute_policy_gradient_loss
from training.run_dir import load_checkpoint
from training.unroll import transitions

WARMUP_UNROLLS, MEASURED_UNROLLS = 25, 15


def loss_terms(agent, unroll, start_state, discount: float) -> dict[str, torch.Tensor]:
    out = agent(unroll["obs"], unroll["prev_action"], unroll["prev_reward"], unroll["reset"], start_state)
    steps = transitions(unroll, discount)
    values, bootstrap, logits = out.values[:-1], out.values[-1], out.logits[:-1]
    log_probs = agent.log_prob(logits, steps.actions)
    returns = vtrace(log_probs.detach() - agent.log_prob(steps.behaviour_logits, steps.actions),
                     steps.discounts, steps.rewards, values.detach(), bootstrap.detach(), 1.0, 1.0)
    popart = agent.baseline
    return {
        "pg_norm": compute_policy_gradient_loss(log_probs, returns.pg_advantages / popart.std),
        "value_norm": 0.5 * compute_baseline_loss(out.normalised_values[:-1], popart.normalise(returns.vs)),
        "pg_raw": compute_policy_gradient_loss(log_probs, returns.pg_advantages),
        "value_raw": 0.5 * compute_baseline_loss(values, returns.vs),
        "entropy": 0.01 * compute_entropy_loss(agent.entropy(logits)),
    }


def trained_actor(path: str) -> tuple[Actor, dict]:
    """An actor of the checkpoint's training config holding its trained agent, and that config."""
    payload = load_checkpoint(path)
    actor = Actor(payload["config"], actor_index=0, seed=12345)
    actor.agent.load_state_dict(payload["model"])
    return actor, payload["config"]


def measured_unrolls(actor: Actor):
    """The actor's unrolls after the warm-up (every env mid-episode): MEASURED_UNROLLS of them."""
    for index in range(WARMUP_UNROLLS + MEASURED_UNROLLS):
        result = actor.unroll()
        if index >= WARMUP_UNROLLS:
            yield result


def main() -> None:
    torch.manual_seed(0)
    for path in sys.argv[1:]:
        actor, cfg = trained_actor(path)
        agent = actor.agent
        shared = [p for name, p in agent.named_parameters() if name.startswith(("encoder.", "core."))]
        norms: dict[str, list[float]] = {}
        for result in measured_unrolls(actor):
            for name, loss in loss_terms(agent, result.unroll, result.start_state, cfg["learner"]["loss"]["discount"]).items():
                grads = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
                norms.setdefault(name, []).append(float(torch.sqrt(sum((g**2).sum() for g in grads if g is not None))))
        mean = {name: sum(v) / len(v) for name, v in norms.items()}
        print(path, f"sigma={float(agent.baseline.std):.3f}", " ".join(f"{k}={v:.3f}" for k, v in mean.items()),
              f"value/pg_norm={mean['value_norm'] / mean['pg_norm']:.2f} value/pg_raw={mean['value_raw'] / mean['pg_raw']:.2f}",
              f"entropy/pg_norm={mean['entropy'] / mean['pg_norm']:.3f}", flush=True)


if __name__ == "__main__":
    main()
