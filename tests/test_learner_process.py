"""The IMPALA learner's process: it replays the core in the actors' mode (so dropout never makes pi differ
from mu), and it takes the CPU threads the local actors leave free."""
from training import impala, learner
from training.config import compose


def test_learner_replays_in_eval_mode_like_the_actors(tmp_path, monkeypatch):
    modes = []
    real_loss = learner.impala_loss

    def recording_loss(agent, *args):
        modes.append(agent.training)
        return real_loss(agent, *args)

    monkeypatch.setattr(learner, "impala_loss", recording_loss)
    cfg = compose("train", ["env=counter", "core=transformer_xl", "core.d_model=16", "core.n_layers=1", "core.n_heads=2",
                            "core.mlp_size=16", "core.n_m=4", "core.dropout=0.5", "agent.encoder_size=8",
                            "actors.num_actors=0", "actors.envs_per_actor=2", "actors.unroll_length=5",
                            "learner.batch_unrolls=1", "total_frames=30", "tensorboard=false", "log.interval_s=0"])
    impala.train(cfg, tmp_path, quiet=True)
    assert modes and not any(modes)


def test_learner_threads_leave_the_local_actors_their_cores(monkeypatch):
    import os

    from training.impala import learner_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert learner_threads(compose("train", ["actors.num_actors=2"])) == 6
    assert learner_threads(compose("train", ["actors.num_actors=12"])) == 1
    assert learner_threads(compose("train", ["actors.num_actors=2", "learner.num_threads=3"])) == 3
    assert learner_threads(compose("train", ["actors.num_actors=0"])) is None  # in-process: torch's default
    assert learner_threads(compose("train", ["actors.num_actors=2", "ray.address=auto"])) is None  # actors elsewhere
