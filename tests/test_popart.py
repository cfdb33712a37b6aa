"""PopArt (agents/popart.py): outputs preserved, statistics from the targets, and a learner whose
update does not depend on the rewards' scale (training/learner.py)."""
import pytest
import torch

from agents.popart import AdvantageRMS, PopArt
from training import cli
from training.actor import Actor
from training.config import compose
from training.learner import LossConfig, learner_step
from training.prepare import prepare
from training.run_dir import load_checkpoint


def test_update_preserves_outputs_and_sets_the_statistics_from_the_first_batch():
    torch.manual_seed(0)
    head = PopArt(5).double()
    x = torch.randn(4, 3, 5, dtype=torch.float64)
    before = head(x)
    targets = 3.0 + 7.0 * torch.randn(200, dtype=torch.float64)
    head.update(targets, step_size=3e-4)
    torch.testing.assert_close(head(x), before)
    # Bias-corrected: after one update the statistics are the batch's own (population std).
    torch.testing.assert_close(head.mean.double(), targets.mean(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(head.std.double(), targets.std(unbiased=False), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(head.normalised(x), (before - head.mean) / head.std)
    head.update(targets * 2 - 5, step_size=3e-4)
    torch.testing.assert_close(head(x), before)


def scaled(unroll, factor: float):
    """The same unroll with every reward (and the actor's values, in reward units) multiplied by ``factor``."""
    out = unroll.clone()
    for key in ("reward", "prev_reward", "truncation_value"):
        out[key] = unroll[key] * factor
    return out


def updates_with_rewards_times(factor: float, normalisation: str, advantages: str = "sigma"):
    """Weights and statistics after 3 learner steps on the same unrolls, rewards multiplied by ``factor``."""
    cfg = compose("train", ["env=tmaze", "env.corridor_length=2", "core.hidden_size=16", "agent.encoder_size=16",
                            "actors.envs_per_actor=6", "actors.unroll_length=12", "actors.num_actors=0",
                            f"learner.loss.value_normalisation={normalisation}",
                            f"learner.loss.advantage_normalisation={advantages}"])
    parts = prepare(cfg)
    actor = Actor(cfg, 0, seed=0)
    unrolls = [actor.unroll(parts.agent.state_dict(), 0) for _ in range(3)]
    agent = parts.agent
    if normalisation == "popart":
        # Statistics initialised from the same data in the rewards' units, over one head n(x): the
        # update's output-preserving rescale is undone so both runs start from the same weights.
        weight, bias = agent.baseline.weight.detach().clone(), agent.baseline.bias.detach().clone()
        agent.baseline.update(factor * torch.linspace(-1.0, 2.0, 50), parts.loss.popart_step_size)
        with torch.no_grad():
            agent.baseline.weight.copy_(weight)
            agent.baseline.bias.copy_(bias)
    if advantages == "rms":  # as PopArt's: the first step also sees a scale from the rewards' units
        agent.advantage_rms.update(factor * torch.linspace(-0.5, 0.5, 50), parts.loss.advantage_rms_step_size)
    for result in unrolls:
        learner_step(agent, parts.optimizer, scaled(result.unroll, factor), result.start_state, parts.loss,
                     cfg["learner"]["max_grad_norm"])
    return {k: v.clone() for k, v in agent.state_dict().items()}


@pytest.mark.parametrize("advantages", ["sigma", "rms"])
def test_learner_update_is_the_same_when_every_reward_is_multiplied_by_100(advantages):
    plain = updates_with_rewards_times(1.0, "popart", advantages)
    times_100 = updates_with_rewards_times(100.0, "popart", advantages)
    second_moments = ("baseline.second_moment", "advantage_rms.second_moment")
    for key in plain:
        if key == "baseline.first_moment":
            torch.testing.assert_close(times_100[key], 100 * plain[key], rtol=1e-4, atol=0)
        elif key in second_moments:
            torch.testing.assert_close(times_100[key], 1e4 * plain[key], rtol=1e-4, atol=0)
        else:
            torch.testing.assert_close(times_100[key], plain[key], rtol=1e-4, atol=1e-5, msg=key)
    assert (plain["advantage_rms.updates"] > 0) == (advantages == "rms")


def test_advantage_rms_is_the_mean_square_until_one_over_beta_batches_then_moves():
    scale = AdvantageRMS()
    assert scale.rms.item() == 1.0
    mean_squares = [12.5, 1.0, 0.0, 4.0, 8.0]  # of the batches below
    for batch in ([3.0, -4.0], [1.0, -1.0], [0.0], [2.0, 2.0], [8.0**0.5]):
        scale.update(torch.tensor(batch), step_size=0.25)
    # beta = max(0.25, 1/n): the plain mean of the first four batches, then one step of 0.25 towards the fifth.
    expected = 0.75 * sum(mean_squares[:4]) / 4 + 0.25 * mean_squares[4]
    torch.testing.assert_close(scale.rms, torch.tensor(expected).sqrt())
    scale.load_state_dict({})  # a checkpoint from before it: as before any update
    assert scale.rms.item() == 1.0


def test_without_normalisation_the_update_depends_on_the_rewards_scale():
    plain, times_100 = updates_with_rewards_times(1.0, "none"), updates_with_rewards_times(100.0, "none")
    assert max((times_100[k] - plain[k]).abs().max().item() for k in plain) > 1e-3


def test_statistics_are_saved_in_the_checkpoint_and_restored_on_resume(tmp_path):
    argv = ["train", "env=tmaze", "env.corridor_length=2", "core.hidden_size=8", "agent.encoder_size=8",
            "actors.num_actors=0", "actors.envs_per_actor=4", "actors.unroll_length=8", "total_frames=320",
            "log.interval_s=0", "tensorboard=false", f"run_root={tmp_path}"]
    assert cli.main(argv) == 0
    [run] = list(tmp_path.iterdir())
    checkpoint = load_checkpoint(run / "checkpoint.pt")
    saved = checkpoint["model"]
    assert saved["baseline.updates"].item() == checkpoint["counters"]["updates"] > 0
    parts = prepare(checkpoint["config"], checkpoint)
    for name in ("first_moment", "second_moment", "updates", "step_size"):
        assert torch.equal(getattr(parts.agent.baseline, name), saved[f"baseline.{name}"])
    assert parts.agent.baseline.std.item() != 1.0


def test_a_checkpoint_from_before_popart_loads_as_mean_0_std_1():
    head = PopArt(3)
    head.update(torch.tensor([5.0, 9.0]), 0.1)
    head.load_state_dict({"weight": torch.ones(1, 3), "bias": torch.zeros(1)})
    assert head.mean.item() == 0.0 and head.std.item() == 1.0
    assert head(torch.ones(2, 3)).tolist() == [3.0, 3.0]


def test_bad_normalisation_is_one_line():
    with pytest.raises(ValueError, match="value_normalisation"):
        LossConfig(value_normalisation="popart2")
    with pytest.raises(ValueError, match="advantage_normalisation"):
        LossConfig(advantage_normalisation="std")
    with pytest.raises(ValueError, match="advantage_rms_step_size"):
        LossConfig(advantage_rms_step_size=0)
