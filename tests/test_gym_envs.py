"""Envs from other packages by gymnasium's ``module:EnvId``: POPGym in Ray actors, both backends, eval."""
from __future__ import annotations

import pytest

import envs
from training import cli
from training.actor import build_agent
from training.config import compose
from training.impala import RayActors, cpu_weights

popgym = pytest.importorskip("popgym", reason="the popgym extra is not installed: pip install -e '.[popgym]'")

AUTOENCODE = "popgym:popgym-AutoencodeEasy-v0"  # Tuple(Discrete(2), Discrete(4)) observations
TINY = ["core.hidden_size=8", "agent.encoder_size=8", "actors.envs_per_actor=2", "actors.unroll_length=5",
        "learner.batch_unrolls=1", "log.interval_s=0", "tensorboard=false"]


def test_module_id_is_made_inside_each_ray_actor(ray_session):
    cfg = compose("train", ["env=gym", f"env.name={AUTOENCODE}", "actors.num_actors=1", *TINY])
    agent = build_agent(envs.make_from_config(cfg["env"]), cfg)
    actors = RayActors(cfg, seed=0, weights=cpu_weights(agent), version=0)
    weights_ref = actors.publish(cpu_weights(agent))
    try:
        result = actors.next_result(weights_ref, 0)
    finally:
        actors.close()
    obs = result.unroll["obs"]  # the Tuple arrives as a dict keyed by position
    assert set(obs.keys()) == {"0", "1"} and obs["0"].shape == (6, 2) and obs["1"].shape == (6, 2)
    assert int(obs["1"].max()) < 4


@pytest.mark.parametrize("backend", ["memrl", "rllib"])
def test_train_and_eval_a_popgym_env_by_module_id(backend, tmp_path, capsys):
    name = "popgym:popgym-RepeatPreviousEasy-v0"
    assert cli.main(["train", "env=gym", f"env.name={name}", f"backend={backend}", "actors.num_actors=0",
                     "total_frames=40", f"run_root={tmp_path}", *TINY]) == 0
    (run,) = tmp_path.iterdir()
    assert cli.main(["eval", f"checkpoint={run}", "episodes=2", "envs=2"]) == 0
    assert "2 episodes" in capsys.readouterr().out


def test_env_imports_are_imported_before_make(tmp_path):
    env = envs.make_from_config({"name": "popgym-RepeatFirstEasy-v0", "imports": ["popgym"]})
    assert env.observation_space.n == 4


def test_missing_module_is_one_line_naming_the_package(tmp_path, capsys):
    assert cli.main(["train", "env=gym", "env.name=no_such_package:Env-v0", f"run_root={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install no_such_package" in err and not any(tmp_path.iterdir())
