"""memrl bench horizon: one whole T-maze episode per unroll, a fixed episode budget, memory vs none."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from evaluation.benchmarks import horizon
from training.config import compose

CONFIG = OmegaConf.load(horizon.Path(__file__).resolve().parents[1] / "configs" / "bench" / "horizon.yaml")


def config(**changes):
    cfg = OmegaConf.merge(CONFIG, changes)
    cfg.verbose = False
    return cfg


@pytest.mark.parametrize("length, episodes, envs", [(7, 100, 16), (40, 32, 8)])
def test_each_unroll_is_one_episode_and_the_budget_is_in_episodes(length, episodes, envs):
    train_cfg = compose("train", horizon.train_overrides(config(episodes=episodes, envs=envs), "lstm", length))
    assert train_cfg["env"] == {"name": "memrl/tmaze", "corridor_length": length}
    assert train_cfg["actors"]["unroll_length"] == length + 1  # a T-maze episode is L + 1 steps
    assert train_cfg["actors"]["envs_per_actor"] == envs and train_cfg["learner"]["batch_unrolls"] == 1
    updates = -(-episodes // envs)
    assert train_cfg["total_frames"] == updates * envs * (length + 1)


def test_core_without_a_config_file_runs_with_its_defaults(monkeypatch):
    assert horizon.has_core_config("lstm")
    monkeypatch.setattr(horizon, "has_core_config", lambda core: False)
    train_cfg = horizon.compose_train(config(), "lstm", 4)
    assert train_cfg["core"] == {"name": "lstm"} and train_cfg["env"]["corridor_length"] == 4


def test_bench_runs_the_exact_budget_and_reports_a_success_rate():
    rows = horizon.run(config(cores=["feedforward"], lengths=[3], episodes=32, eval_episodes=16))
    assert len(rows) == 1
    row = rows[0]
    # Exactly the budget: every unroll ended one episode in every env.
    assert (row["core"], row["corridor_length"], row["train_episodes"], row["train_frames"]) == ("feedforward", 3, 32, 128)
    assert row["eval_episodes"] == 16 and row["success_rate"] in {k / 16 for k in range(17)}


@pytest.mark.slow  # about a minute on a busy 2-core machine
@pytest.mark.learning
def test_bench_separates_a_memory_core_from_none(margin):
    """At L = 2 the LSTM learns the cue within the budget; feedforward stays at chance."""
    rows = horizon.run(config(cores=["feedforward", "lstm"], lengths=[2], episodes=1600, eval_episodes=160))
    by_core = {row["core"]: row for row in rows}
    for row in rows:  # exactly the budget: every unroll ended one episode in every env
        assert (row["train_episodes"], row["train_frames"], row["eval_episodes"]) == (1600, 1600 * 3, 160)
    margin("lstm success rate", by_core["lstm"]["success_rate"], above=0.9)
    margin("|feedforward success rate - 0.5|", abs(by_core["feedforward"]["success_rate"] - 0.5), below=0.15)


@pytest.mark.parametrize(
    "changes, words",
    [({"cores": ["nope"]}, ["nope", "registered"]), ({"lengths": [0]}, ["lengths", ">= 1"]), ({"episodes": 0}, ["episodes"])],
)
def test_bad_config_gives_one_line_errors(changes, words):
    with pytest.raises(ValueError) as error:
        horizon.run(config(**changes))
    assert "\n" not in str(error.value) and all(w in str(error.value) for w in words)
