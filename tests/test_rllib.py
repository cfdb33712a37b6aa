"""The RLlib adapter: module == Agent, RLlib's state hand-off and replay, short backend=rllib runs."""
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

pytest.importorskip("ray.rllib")

import tree  # noqa: E402
from ray.rllib.core.columns import Columns  # noqa: E402
from ray.rllib.utils.numpy import convert_to_numpy  # noqa: E402
from tensordict import TensorDict  # noqa: E402

from agents import Agent  # noqa: E402
from agents.rllib_module import MemoryCoreRLModule, PrevActionAndReward  # noqa: E402

import memory_cores  # noqa: E402

SMALL_CORES = {
    "lstm": {"hidden_size": 16},
    "sam": {"slots": 16, "word_size": 8, "heads": 2, "top_k": 2, "controller_size": 16, "output_size": 16},
}


def small_config(core):
    return SMALL_CORES.get(core) or dict(getattr(memory_cores.registry.CORES.get(core)[0], "test_config", {}))


def make_module(core, action_space, obs_space=None, reward_scale=1.0) -> MemoryCoreRLModule:
    obs_space = obs_space or spaces.Box(0.0, 1.0, (5,), np.float32)
    module_space = PrevActionAndReward()._convert_individual_space(obs_space, action_space)
    config = {"core": {"name": core, **small_config(core)}, "agent": {"encoder_size": 8}, "reward_scale": reward_scale}
    return MemoryCoreRLModule(observation_space=module_space, action_space=action_space, model_config=config)


def advanced_state(agent: Agent, batch_size: int, obs_size: int) -> TensorDict:
    """A state some steps into an episode (not the initial one), so state_in really matters."""
    generator = torch.Generator().manual_seed(1)
    steps = 3
    obs = torch.rand(steps, batch_size, obs_size, generator=generator)
    prev_action = torch.zeros(steps, batch_size, len(agent.action_sizes), dtype=torch.long)
    reset = torch.zeros(steps, batch_size, dtype=torch.bool)
    reset[0] = True
    with torch.no_grad():
        return agent(obs, prev_action, torch.ones(steps, batch_size), reset, agent.initial_state(batch_size)).state


CASES = [(core, spaces.Discrete(3)) for core in memory_cores.names()] + [
    (core, spaces.MultiDiscrete([3, 2])) for core in ("lstm", "sam")
]


@pytest.mark.parametrize("core, action_space", CASES, ids=[f"{c}-{type(a).__name__}" for c, a in CASES])
def test_module_forward_on_sequences_equals_the_agent_forward(core, action_space):
    """Any registered core: RLlib's batch-major sequences with state_in give the Agent's logits, values and state."""
    torch.manual_seed(0)
    module = make_module(core, action_space, reward_scale=0.1)
    agent = module.agent
    stateful = module.is_stateful()
    B, T, sizes = 3, (6 if stateful else 1), agent.action_sizes
    state = advanced_state(agent, B, 5)
    obs = torch.rand(B, T, 5)
    prev_action = torch.stack([torch.randint(0, n, (B, T)) for n in sizes], dim=-1)  # [B, T, n]
    one_hot = torch.cat([torch.nn.functional.one_hot(prev_action[..., i], n).float() for i, n in enumerate(sizes)], -1)
    reward = torch.randn(B, T) * 5
    observations = {"_orig_obs": obs, "prev_n_actions": one_hot[:, :, None], "prev_n_rewards": 0.1 * reward[..., None]}
    if stateful:  # state_in as RLlib stores it: numpy, int64 narrowed to int32
        state_in = tree.map_structure(torch.as_tensor, convert_to_numpy(state.to_dict()))
        batch = {Columns.OBS: observations, Columns.STATE_IN: state_in}
        restored = module._state_in(agent, state_in, B)  # the core gets its own dtypes back
        assert {k: v.dtype for k, v in restored.items(True, True)} == {k: v.dtype for k, v in state.items(True, True)}
    else:  # RLlib sends a stateless module flat batches [N, ...]
        batch = {Columns.OBS: {k: v[:, 0] for k, v in observations.items()}}
    out = module.forward_train(batch)
    with torch.no_grad():
        ref = agent(obs.transpose(0, 1), prev_action.transpose(0, 1), reward.transpose(0, 1), None, state)
    ref_logits, ref_values = ref.logits.transpose(0, 1), ref.values.transpose(0, 1)
    if not stateful:
        ref_logits, ref_values = ref_logits[:, 0], ref_values[:, 0]
    torch.testing.assert_close(out[Columns.ACTION_DIST_INPUTS], ref_logits)
    torch.testing.assert_close(module.compute_values(batch, out[Columns.EMBEDDINGS]), ref_values)
    torch.testing.assert_close(module.compute_values(batch), ref_values)
    losses = [v.mean() for k, v in ref.aux.items() if k.startswith("loss_")]
    if losses:  # the core's auxiliary losses reach RLlib's learner (training/rllib_backend.AuxLossMixin)
        torch.testing.assert_close(out["memrl_aux_loss"], sum(losses))
    if stateful:
        state_out = TensorDict(out[Columns.STATE_OUT], batch_size=[B])
        for key, value in ref.state.items(include_nested=True, leaves_only=True):
            torch.testing.assert_close(state_out[key], value)
        # The inference forward (no grad, T = 1 per env step) gives the same first step.
        first = {Columns.OBS: {k: v[:, :1] for k, v in observations.items()}, Columns.STATE_IN: state_in}
        torch.testing.assert_close(module.forward_exploration(first)[Columns.ACTION_DIST_INPUTS][:, 0], ref.logits[0])
    # RLlib's distribution over the logits is memrl's: same log-probabilities and entropy.
    logits = out[Columns.ACTION_DIST_INPUTS]
    dist = module.get_train_action_dist_cls().from_logits(logits)
    actions = dist.sample()
    agent_actions = actions[..., None] if isinstance(action_space, spaces.Discrete) else actions
    assert agent_actions.shape == (*logits.shape[:-1], len(sizes))
    torch.testing.assert_close(dist.logp(actions), agent.log_prob(logits, agent_actions))
    torch.testing.assert_close(dist.entropy(), agent.entropy(logits))


def test_episode_start_matches_memrl_conventions():
    """RLlib's zero-filled first step and initial state equal memrl's reset step (prev action 0, reward 0)."""
    torch.manual_seed(0)
    module = make_module("lstm", spaces.Discrete(4))
    agent = module.agent
    B = 2
    initial = {k: torch.stack([torch.as_tensor(v)] * B) for k, v in module.get_initial_state().items()}
    obs = torch.rand(B, 1, 5)
    batch = {
        Columns.OBS: {"_orig_obs": obs, "prev_n_actions": torch.zeros(B, 1, 1, 4), "prev_n_rewards": torch.zeros(B, 1, 1)},
        Columns.STATE_IN: initial,
    }
    garbage = advanced_state(agent, B, 5)  # memrl resets whatever state it holds at an episode start
    with torch.no_grad():
        ref = agent(obs.transpose(0, 1), torch.zeros(1, B, 1, dtype=torch.long), torch.zeros(1, B), torch.ones(1, B, dtype=torch.bool), garbage)
    torch.testing.assert_close(module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS][:, 0], ref.logits[0])


def test_bad_module_setup_is_a_one_line_error():
    with pytest.raises(ValueError, match="prev_action_and_reward_connector"):
        MemoryCoreRLModule(observation_space=spaces.Box(0, 1, (3,)), action_space=spaces.Discrete(2), model_config={})
    with pytest.raises(ValueError, match="in_place_state=false"):
        make_module("sam", spaces.Discrete(2)).__class__(
            observation_space=PrevActionAndReward()._convert_individual_space(spaces.Box(0, 1, (3,)), spaces.Discrete(2)),
            action_space=spaces.Discrete(2), model_config={"core": {"name": "sam", **SMALL_CORES["sam"], "in_place_state": True}},
        )


def rllib_run_config(core, env, algo="impala", **extra):
    from training.config import compose

    overrides = [
        "backend=rllib", f"rllib.algo={algo}", f"core={core}", f"env={env}", "actors.num_actors=0",
        "actors.envs_per_actor=3", "actors.unroll_length=5", "learner.batch_unrolls=1", "agent.encoder_size=8",
    ] + [f"{k}={v}" for k, v in extra.items()]
    return compose("train", overrides)


@pytest.mark.parametrize("core", ["counter", "lstm"])
def test_rllib_env_runner_and_learner_replay_hand_off_the_state(core):
    """Through RLlib's own env runner and learner connector (counter env: episodes of 7 steps, T = 5).

    The state each step stores is the one after it (counter: count + 1, reset at every episode
    start); each learner row starts from the state of its first step; and the learner's replay of
    the module over the rows gives the logits the env runner acted with, step for step.
    """
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from training.rllib_backend import algorithm_config

    torch.manual_seed(0)
    extra = {"core.hidden_size": 8} if core == "lstm" else {}
    config = algorithm_config(rllib_run_config(core, "counter", **extra))
    runner = SingleAgentEnvRunner(config=config)
    runner.sample(num_timesteps=12, random_actions=False)  # stops mid-episode: the next chunks continue episodes
    episodes = runner.sample(num_timesteps=45, random_actions=False)
    if core == "counter":
        for episode in episodes:
            counts = np.asarray(episode.get_observations()["_orig_obs"])[:, 0]
            state_out = np.asarray(episode.get_extra_model_outputs(Columns.STATE_OUT)["count"])[:, 0]
            np.testing.assert_array_equal(state_out, counts[:-1] + 1)
    assert any(e.t_started > 0 for e in episodes) and any(e.is_done for e in episodes)

    connector = config.build_learner_connector(
        input_observation_space=runner.env.single_observation_space, input_action_space=runner.env.single_action_space
    )
    batch = connector(rl_module=runner.module, batch={}, episodes=episodes, shared_data={}, metrics=None)
    mask = batch[Columns.LOSS_MASK]
    assert mask.shape[1] == 5 and (~mask).any()  # rows are T = 5 long, zero-padded where an episode chunk ends early
    if core == "counter":
        torch.testing.assert_close(batch[Columns.STATE_IN]["count"][:, 0], batch[Columns.OBS]["_orig_obs"][:, 0, 0])
    actor = runner.module  # inference-only on env runners; the learner has its own full module with the same weights
    learner = MemoryCoreRLModule(observation_space=actor.observation_space, action_space=actor.action_space, model_config=actor.model_config)
    learner.set_state(actor.get_state())
    with torch.no_grad():
        replay = learner.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
    torch.testing.assert_close(replay[mask], batch[Columns.ACTION_DIST_INPUTS][mask])


def train_rllib(tmp_path, core, algo, frames=160, extra=(), env=("env=select_nonmatching_object", "experiment=quickstart")):
    """``memrl train backend=rllib ...`` at a tiny size; returns the run folder."""
    from training.cli import main

    core_size = {"lstm": ["core.hidden_size=16"], "sam": [f"core.{k}={v}" for k, v in SMALL_CORES["sam"].items()]}[core]
    argv = [
        "train", "backend=rllib", f"algo={algo}", f"core={core}", *env,
        f"total_frames={frames}", "actors.num_actors=0", "actors.envs_per_actor=4", "actors.unroll_length=10",
        "learner.batch_unrolls=1", "agent.encoder_size=16", "log.interval_s=0", f"run_root={tmp_path}", *core_size, *extra,
    ]
    assert main(argv) == 0
    [run_dir] = list(tmp_path.iterdir())
    return run_dir


def check_run_folder(run_dir, core, algo, frames):
    """The folder memrl's own IMPALA writes, and a checkpoint memrl's Agent loads as it is."""
    import envs
    from training.actor import build_agent
    from training.run_dir import load_checkpoint, load_config, read_metrics

    config = load_config(run_dir)
    assert (config["backend"], config["rllib"]["algo"], config["core"]["name"]) == ("rllib", algo, core)
    metrics = read_metrics(run_dir)
    for column in ["frames", "time_s", "fps", "mean_return", "mean_success", "mean_episode_length", "updates"]:
        assert column in metrics
    assert metrics["frames"][-1] >= frames and metrics["updates"][-1] >= 1
    assert list(run_dir.glob("events.out.tfevents.*")) and (run_dir / "rllib").is_dir()
    payload = load_checkpoint(run_dir / "checkpoint.pt")
    agent = build_agent(envs.make_from_config(payload["config"]["env"]), payload["config"])
    agent.load_state_dict(payload["model"])  # strict: every Agent weight, nothing else
    return metrics


def test_short_rllib_impala_run_with_lstm_writes_the_run_folder_that_eval_and_plot_read(tmp_path):
    """Counter env: 7 steps of reward 1 per episode, cut across RLlib's 5-step fragments, rewards scaled by 0.5.

    metrics.csv must still say return 7 and length 7: whole episodes, unscaled, as memrl logs them.
    """
    from training.cli import main

    counter = ("env=counter", "learner.loss.reward_scale=0.5")
    schedule = ("learner.loss.entropy_cost=0.02", "learner.loss.entropy_cost_final=0")
    run_dir = train_rllib(tmp_path / "runs", "lstm", "impala", frames=150, env=counter, extra=("actors.unroll_length=5", *schedule))
    metrics = check_run_folder(run_dir, "lstm", "impala", 150)
    assert all(0 <= cost < 0.02 for cost in metrics["entropy_cost"])  # RLlib's schedule, logged after an update
    assert metrics["mean_return"][-1] == 7.0 and metrics["mean_episode_length"][-1] == 7.0
    assert metrics["episodes"][-1] >= 150 // 7 - 4 and math.isfinite(metrics["total_loss"][-1])
    assert main(["eval", f"checkpoint={run_dir}", "episodes=2", "envs=2"]) == 0
    assert (run_dir / "eval.csv").read_text().count("\n") == 3  # header + 2 episodes
    assert main(["plot", f"run_dir={run_dir}", f"out={tmp_path / 'curve.png'}"]) == 0
    assert (tmp_path / "curve.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("core, algo", [("lstm", "ppo"), ("sam", "impala"), ("sam", "ppo"), ("lstm", "appo")])
def test_short_rllib_runs_complete_and_write_the_run_folder(tmp_path, core, algo):
    run_dir = train_rllib(tmp_path, core, algo)
    metrics = check_run_folder(run_dir, core, algo, 160)
    assert math.isfinite(metrics["total_loss"][-1])


def test_backend_rllib_bad_input_is_a_one_line_error_and_leaves_no_folder(tmp_path, capsys):
    from training.cli import main

    assert main(["train", "backend=rllib", "algo=dqn", f"run_root={tmp_path}"]) == 2
    assert "rllib.algo='dqn' is not known" in capsys.readouterr().err
    assert main(["train", "backend=rllib", "learner.optimizer=rmsprop", f"run_root={tmp_path}"]) == 2
    assert "learner.optimizer=adam" in capsys.readouterr().err
    assert main(["train", "backend=rllib", "rllib.max_state_mib=0.001", f"run_root={tmp_path}"]) == 2
    assert "rllib.max_state_mib" in capsys.readouterr().err
    # memrl's own range checks apply to backend=rllib too
    assert main(["train", "backend=rllib", "actors.decorrelate_steps=-1", f"run_root={tmp_path}"]) == 2
    assert "actors.decorrelate_steps must be an integer >= 0" in capsys.readouterr().err
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


@pytest.mark.slow
def test_rllib_run_resumes_from_its_run_folder(tmp_path):
    """``resume=<run folder>`` restores RLlib's own checkpoint and continues the counters and metrics.csv."""
    from training.cli import main
    from training.run_dir import read_metrics

    run_dir = train_rllib(tmp_path, "lstm", "impala", frames=80)
    before = read_metrics(run_dir)
    assert main(["train", f"resume={run_dir}", "total_frames=200"]) == 0
    after = read_metrics(run_dir)
    assert len(after["frames"]) > len(before["frames"]) and after["frames"][-1] >= 200
    assert all(b >= a for a, b in zip(after["frames"], after["frames"][1:]))  # one run, counted on from the first part
    assert after["updates"][-1] > before["updates"][-1] and after["time_s"][-1] > before["time_s"][-1]


def test_rllib_episode_columns_pool_success_over_trials_as_memrl_does():
    from training.actor import episode_means

    # 3 of 3 trials won, then 0 of 1; an episode with no trials is left out.
    episodes = [(10.0, 5, 1.0, 3.0), (-2.0, 7, 0.0, 1.0), (0.0, 6, math.nan, 0.0)]
    means = episode_means([{"return": r, "length": n, "success": s, "trials": t} for r, n, s, t in episodes])
    assert means["mean_success"] == pytest.approx(0.75)  # the plain mean of fractions would say 0.5
    assert means["mean_return"] == pytest.approx(8 / 3) and means["mean_episode_length"] == pytest.approx(6.0)
