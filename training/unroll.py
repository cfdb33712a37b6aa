"""The unroll layout shared by actors and the learner, and the one time shift.

An unroll is a TensorDict with batch_size [T+1, B]. Entry t holds the agent's
*inputs* at step t and, for t < T, what happened after it acted:

    obs[t]                 observation at step t
    reset[t]               obs[t] is the first step of an episode
    prev_action[t]         action that led to obs[t]        (0 where reset)
    prev_reward[t]         reward that came with obs[t]     (0 where reset)
    action[t]              action chosen at obs[t]          (t < T)
    behaviour_logits[t]    actor's logits at obs[t]         (t < T)
    reward[t]              reward after action[t]           (t < T)
    terminated[t]          episode ended after action[t]    (t < T): no bootstrap
    truncated[t]           episode cut after action[t]      (t < T): bootstrap
    truncation_value[t]    actor's V(final obs) where truncated[t], else 0

Entry T holds only inputs: it is entry 0 of the actor's next unroll, and the
learner uses its value to bootstrap. The transition fields at entry T are zero.
So time flows obs[t] -> action[t] -> (reward[t], obs[t+1]), and
``inputs_after_step`` / ``transitions`` are the only places that shift it.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from tensordict import TensorDict


DEFAULT_UNROLL_LENGTH = 20  # T when neither actors.unroll_length nor the env config sets one


def resolve_unroll_length(cfg: dict) -> int:
    """T of a run: ``actors.unroll_length``, or where that is null the env config's ``unroll_length``
    (configs/env/<x>.yaml sets one where its episodes need longer backprop), else 20. Written back into
    ``cfg["actors"]`` so the saved config.yaml shows the T that ran."""
    actors = cfg["actors"]
    if actors.get("unroll_length") is None:
        actors["unroll_length"] = cfg["env"].get("unroll_length") or DEFAULT_UNROLL_LENGTH
    return actors["unroll_length"]


def inputs_after_step(
    action: torch.Tensor, reward: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(reset, prev_action, prev_reward) for step t+1 from step t's outcome.

    action: [B, *action_shape] (long, or float for a Box); reward, terminated, truncated: [B]. Where the episode
    ended the next observation starts a new one: prev action and reward are zero.
    """
    reset = terminated | truncated
    prev_action = torch.where(reset[:, None], torch.zeros_like(action), action)
    prev_reward = torch.where(reset, torch.zeros_like(reward), reward)
    return reset, prev_action, prev_reward


class Transitions(NamedTuple):
    """Learner-side view, all [T, B] (actions [T, B, n])."""

    actions: torch.Tensor
    behaviour_logits: torch.Tensor
    rewards: torch.Tensor  # with gamma * V(final obs) added on truncation
    discounts: torch.Tensor  # gamma, 0 after an episode end


def transitions(unroll: TensorDict, discount: float, reward_scale: float = 1.0) -> Transitions:
    """Align an unroll for V-trace: step t's reward and discount pair with values[t] and values[t+1].

    values[t+1] belongs to the next episode after an end, so the discount is 0
    there; on truncation the actor's V(final obs) stands in for the cut-off future.
    """
    steps = unroll[:-1]
    ended = steps["terminated"] | steps["truncated"]
    rewards = steps["reward"] * reward_scale
    rewards = rewards + discount * steps["truncated"].float() * steps["truncation_value"]
    discounts = discount * (~ended).float()
    return Transitions(steps["action"], steps["behaviour_logits"], rewards, discounts)
