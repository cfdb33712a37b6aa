"""How strong the entropy bonus is against the policy gradient's advantages, in trained agents.

    python docs/results/defaults/advantage_scale.py <sweep>/seed=<n>/checkpoint.pt ... > out.txt

For each checkpoint: the unrolls of loss_gradients.py (its training config's actor, 25 unrolls of
warm-up, then 15 measured) and the RMS of V-trace's policy-gradient advantages in the units the learner
sees (the rewards times ``reward_scale``). Printed: that RMS, PopArt's sigma, the run's entropy_cost,
and the entropy bonus per RMS of advantage as the run's learner weighed it: entropy_cost * sigma / RMS
with the advantage over sigma (1 without PopArt), entropy_cost itself with ``advantage_normalisation:
rms`` (which holds it there by construction).
"""
from __future__ import annotations

import sys

import torch

from agents import vtrace
from training.actor import Actor
from training.unroll import transitions

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from loss_gradients import measured_unrolls, trained_actor  # noqa: E402


@torch.no_grad()
def advantage_rms(actor: Actor, discount: float, reward_scale: float) -> float:
    agent, squares = actor.agent, []
    for result in measured_unrolls(actor):
        unroll = result.unroll
        out = agent(unroll["obs"], unroll["prev_action"], unroll["prev_reward"], unroll["reset"], result.start_state)
        steps = transitions(unroll, discount, reward_scale)
        log_probs = agent.log_prob(out.logits[:-1], steps.actions)
        returns = vtrace(log_probs - agent.log_prob(steps.behaviour_logits, steps.actions), steps.discounts,
                         steps.rewards, out.values[:-1], out.values[-1], 1.0, 1.0)
        squares.append(float(returns.pg_advantages.pow(2).mean()))
    return (sum(squares) / len(squares)) ** 0.5


def main() -> None:
    torch.manual_seed(0)
    for path in sys.argv[1:]:
        actor, cfg = trained_actor(path)
        loss = cfg["learner"]["loss"]
        sigma = float(actor.agent.baseline.std)
        rms = advantage_rms(actor, loss["discount"], loss.get("reward_scale", 1.0))
        scale = 1.0 if loss.get("advantage_normalisation", "sigma") == "rms" else sigma / rms
        print(path, f"entropy_cost={loss['entropy_cost']} sigma={sigma:.3f} advantage_rms={rms:.4f}",
              f"entropy_per_rms={loss['entropy_cost'] * scale:.4f}", flush=True)


if __name__ == "__main__":
    main()
