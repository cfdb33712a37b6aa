"""learner.loss.entropy_cost_final: the entropy bonus falls linearly from entropy_cost to it over total_frames."""
import pytest

from training import cli
from training.config import compose
from training.learner import LossConfig, at_progress
from training.run_dir import read_metrics


def test_the_cost_is_linear_in_frames_and_holds_its_final_value_past_the_end():
    cfg = LossConfig(entropy_cost=0.025, entropy_cost_final=0.005)
    assert [at_progress(cfg, p).entropy_cost for p in (0.0, 0.25, 1.0, 1.5)] == pytest.approx([0.025, 0.02, 0.005, 0.005])
    assert at_progress(cfg, 0.5).entropy_cost_final == 0.005  # the schedule itself is kept
    constant = LossConfig(entropy_cost=0.01)
    assert at_progress(constant, 0.7) is constant


def test_a_run_logs_the_cost_each_update_used(tmp_path):
    frames_per_update = 4 * 8
    argv = ["train", "env=tmaze", "env.corridor_length=2", "core.hidden_size=8", "agent.encoder_size=8",
            "actors.num_actors=0", "actors.envs_per_actor=4", "actors.unroll_length=8", "learner.batch_unrolls=1",
            f"total_frames={10 * frames_per_update}", "learner.loss.entropy_cost=0.02", "learner.loss.entropy_cost_final=0",
            "log.interval_s=0", "tensorboard=false", f"run_root={tmp_path}"]
    assert cli.main(argv) == 0
    [run] = list(tmp_path.iterdir())
    metrics = read_metrics(run)
    # Each row is logged after its update, and that update used the cost of the frames before it.
    expected = [0.02 * (1 - (frames - frames_per_update) / (10 * frames_per_update)) for frames in metrics["frames"]]
    assert metrics["entropy_cost"] == pytest.approx(expected)
    assert len(expected) == 10 and metrics["entropy_cost"][-1] == pytest.approx(0.002)


def test_rllib_gets_the_same_schedule():
    from training.rllib_backend import algorithm_config

    overrides = ["env=counter", "core=counter", "backend=rllib", "total_frames=5000"]
    scheduled = algorithm_config(compose("train", overrides + ["learner.loss.entropy_cost=0.03",
                                                                "learner.loss.entropy_cost_final=0.001"]))
    assert scheduled.entropy_coeff == [[0, 0.03], [5000, 0.001]]
    assert algorithm_config(compose("train", overrides + ["learner.loss.entropy_cost=0.02"])).entropy_coeff == 0.02


def test_a_negative_final_cost_is_a_one_line_error():
    with pytest.raises(ValueError, match="entropy_cost_final must be null or a number >= 0"):
        LossConfig(entropy_cost_final=-0.1)
