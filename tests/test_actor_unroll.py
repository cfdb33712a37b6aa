"""The actor's fast unroll (buffers filled in place, ``actors.fused_unroll=true``) against its slow twin.

Same seed, same config: every field of every unroll, the start states, the episodes and the actor's
state after them must be identical, bit for bit (the fast path only moves the same numbers around).
"""
from __future__ import annotations

import pytest
import torch

import tests.test_box_actions  # noqa: F401  (registers memrl-test/MatchTheTarget-v0: Box actions, one-step episodes)
from training.actor import Actor
from training.config import compose

CASES = {
    # image obs, decorrelation cuts (truncations bootstrapped from a second forward), several trials per episode
    "select_nonmatching_object": ["env=select_nonmatching_object", "actors.decorrelate_steps=30"],
    # dict obs (image, direction); short decorrelation cuts, so episodes end within the test
    "minigrid": ["env=minigrid_memory_s7", "actors.decorrelate_steps=20"],
    # vector obs, time-limit truncations
    "cartpole": ["env=gym", "env.name=CartPole-v1"],
    # Box (Gaussian) actions, every step ends an episode
    "box_actions": ["env=gym", "env.name=memrl-test/MatchTheTarget-v0", "core=feedforward"],
}


def unrolls(overrides: list[str], fused: bool, count: int = 4):
    cfg = compose("train", [*overrides, "actors.envs_per_actor=4", "actors.unroll_length=12", "core.hidden_size=16",
                            "agent.encoder_size=16", f"actors.fused_unroll={str(fused).lower()}"])
    actor = Actor(cfg, actor_index=1, seed=3)
    return actor, [actor.unroll() for _ in range(count)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_fused_unroll_equals_the_per_step_unroll(case):
    fast_actor, fast = unrolls(CASES[case], fused=True)
    slow_actor, slow = unrolls(CASES[case], fused=False)
    for i, (a, b) in enumerate(zip(fast, slow)):
        keys = set(b.unroll.keys(True, True))
        assert set(a.unroll.keys(True, True)) == keys and a.unroll.batch_size == b.unroll.batch_size
        for key in keys:
            assert a.unroll[key].dtype == b.unroll[key].dtype, (i, key)
            assert torch.equal(a.unroll[key], b.unroll[key]), f"unroll {i}: field {key!r} differs"
        for key in b.start_state.keys(True, True):
            assert torch.equal(a.start_state[key], b.start_state[key]), f"unroll {i}: start state {key!r} differs"
        assert a.episodes == b.episodes
    assert any(r.episodes for r in slow) or any(r.unroll["truncated"].any() for r in slow), "nothing ended: weak test"
    for key in slow_actor.state.keys(True, True):
        assert torch.equal(fast_actor.state[key], slow_actor.state[key])


def test_fused_unrolls_can_be_learned_from():
    """The fast path acts under inference_mode; its unroll and start state must still enter autograd."""
    from training.learner import learner_step
    from training.prepare import prepare

    cfg = compose("train", ["actors.envs_per_actor=2", "actors.unroll_length=5", "core.hidden_size=8", "agent.encoder_size=8"])
    actor = Actor(cfg, actor_index=0, seed=0)
    actor.unroll()
    result = actor.unroll()
    parts = prepare(cfg)
    loss, _, _, applied = learner_step(parts.agent, parts.optimizer, result.unroll, result.start_state, parts.loss, 40.0)
    assert applied and torch.isfinite(loss)
