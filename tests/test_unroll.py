"""The one time-shift helper: obs[t] -> action[t] -> (reward[t], obs[t+1])."""
import torch
from tensordict import TensorDict

from training.unroll import inputs_after_step, transitions


def test_inputs_after_step_zero_prev_action_and_reward_at_episode_start():
    action = torch.tensor([[1], [2], [3]])
    reward = torch.tensor([0.5, -1.0, 2.0])
    terminated = torch.tensor([False, True, False])
    truncated = torch.tensor([False, False, True])
    reset, prev_action, prev_reward = inputs_after_step(action, reward, terminated, truncated)
    assert reset.tolist() == [False, True, True]
    assert prev_action.flatten().tolist() == [1, 0, 0]
    assert prev_reward.tolist() == [0.5, 0.0, 0.0]


def test_transitions_bootstrap_on_truncation_not_termination():
    T, B, gamma = 3, 3, 0.9
    fields = {
        "reward": torch.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [3.0, 3.0, 3.0], [0, 0, 0]]),
        # env 0 runs on, env 1 terminates after step 1, env 2 is truncated after step 1.
        "terminated": torch.tensor([[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=torch.bool),
        "truncated": torch.tensor([[0, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]], dtype=torch.bool),
        "truncation_value": torch.tensor([[0, 0, 0], [0, 0, 5.0], [0, 0, 0], [0, 0, 0]]),
        "action": torch.arange(4 * B).reshape(4, B, 1),
        "behaviour_logits": torch.zeros(4, B, 2),
    }
    steps = transitions(TensorDict(fields, batch_size=[T + 1, B]), gamma, reward_scale=0.5)
    assert steps.rewards.shape == (T, B)
    # Entry T (inputs only) is dropped; rewards are scaled.
    torch.testing.assert_close(steps.rewards[:, 0], torch.tensor([0.5, 1.0, 1.5]))
    # Termination: no bootstrap into the next episode, nothing added.
    assert steps.discounts[1, 1] == 0 and steps.rewards[1, 1] == 1.0
    # Truncation: no bootstrap into the next episode either, but gamma * V(final obs) is added.
    assert steps.discounts[1, 2] == 0
    torch.testing.assert_close(steps.rewards[1, 2], torch.tensor(1.0 + gamma * 5.0))
    assert (steps.discounts[[0, 2]] == gamma).all() and steps.discounts[1, 0] == gamma
    assert steps.actions[:, 0, 0].tolist() == [0, 3, 6]


def test_pooled_success_weights_episodes_by_trials():
    import math

    from training.actor import pooled_success

    # One lucky 1-trial episode and one 9-trial episode at 50%: 5.5 successes in 10 trials.
    assert pooled_success([{"success": 1.0, "trials": 1.0}, {"success": 0.5, "trials": 9.0}]) == 0.55
    # Without trial counts every episode weighs 1; episodes with no success value are left out.
    assert pooled_success([{"success": 1.0}, {"success": 0.0}, {"success": math.nan}]) == 0.5
    assert math.isnan(pooled_success([{"success": math.nan, "trials": 0.0}]))
