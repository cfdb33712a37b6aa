"""An actor's envs do not run in lockstep: each cuts one episode at its own seeded step (training/actor.py)."""
import torch

from training.actor import Actor
from training.config import compose

LENGTH, ENVS, T = 7, 8, 50


def reset_steps(cfg, steps: int) -> torch.Tensor:
    """reset [steps, ENVS] (obs starts an episode) from an actor's unrolls, and its finished episodes."""
    actor = Actor(cfg, actor_index=0, seed=0)
    resets, episodes = [], []
    while sum(r.shape[0] for r in resets) < steps:
        result = actor.unroll()
        resets.append(result.unroll["reset"][:-1])
        episodes += result.episodes
    return torch.cat(resets), episodes


def test_fixed_length_envs_of_one_actor_do_not_all_reset_on_the_same_step():
    cfg = compose("train", ["env=counter", f"env.length={LENGTH}", "core=counter", f"actors.envs_per_actor={ENVS}",
                            f"actors.unroll_length={T}"])
    spread = cfg["actors"]["decorrelate_steps"]
    assert spread > 0, "decorrelation must be on by default"
    resets, episodes = reset_steps(cfg, spread + 4 * LENGTH)
    late = resets[spread + 1:]  # every env has made its cut by now
    phases = {tuple(late[:, b].nonzero().flatten().remainder(LENGTH).tolist()) for b in range(ENVS)}
    assert len(phases) > 1, "all envs reset on the same steps: the actor's envs run in lockstep"
    assert all(len(p) > 0 for p in phases), "every env must keep finishing episodes"
    # The cut episodes are left out of the episode statistics: every counted episode ran its full length.
    assert episodes and all(e["length"] == LENGTH and e["return"] == LENGTH for e in episodes)


def test_decorrelation_off_starts_every_env_together():
    cfg = compose("train", ["env=counter", f"env.length={LENGTH}", "core=counter", f"actors.envs_per_actor={ENVS}",
                            f"actors.unroll_length={T}", "actors.decorrelate_steps=0"])
    resets, _ = reset_steps(cfg, 4 * LENGTH)
    assert (resets == resets[:, :1]).all()


def test_the_cut_truncates_the_episode_in_progress_once_and_says_so():
    from envs.counter import CounterEnv
    from training.decorrelation import DECORRELATION_CUT, DecorrelationCut

    env = DecorrelationCut(CounterEnv(length=LENGTH), cut_at=10)
    env.reset(seed=0)
    ends = []
    for step in range(1, 4 * LENGTH):
        _, _, terminated, truncated, info = env.step(0)
        if terminated or truncated:
            ends.append((step, DECORRELATION_CUT in info))
            env.reset()
    # step 7: the episode's own end; step 10: the cut (3 steps in); then every 7 steps from there
    assert ends == [(LENGTH, False), (10, True), (10 + LENGTH, False), (10 + 2 * LENGTH, False)]


def test_rllib_env_runner_envs_are_cut_where_memrls_actor_cuts_them(monkeypatch):
    """backend=rllib: the k-th env an env runner makes cuts at the step memrl's actor draws for its env k."""
    import itertools

    from ray.rllib.env.env_context import EnvContext

    from training import rllib_backend

    cfg = compose("train", ["env=counter", f"env.length={LENGTH}", "core=counter", f"actors.envs_per_actor={ENVS}",
                            "actors.decorrelate_steps=30", "seed=3", "backend=rllib"])
    monkeypatch.setattr(rllib_backend, "_ENVS_MADE", itertools.count())  # as in a fresh env runner process
    env_config = rllib_backend.algorithm_config(cfg).env_config
    made = [rllib_backend.make_env(EnvContext(env_config, worker_index=2)) for _ in range(ENVS)]
    actor = Actor(cfg, actor_index=2, seed=3)
    assert [env.cut_at for env in made] == [env.cut_at for env in actor.envs]
    assert len({env.cut_at for env in made}) > 1 and all(1 <= env.cut_at <= 30 for env in made)


def test_rllib_episode_statistics_leave_out_the_cut_episode():
    import numpy as np
    from gymnasium import spaces
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode
    from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

    from training.decorrelation import DECORRELATION_CUT
    from training.rllib_backend import EPISODES_KEY, log_episode

    def episode(last_info):
        return SingleAgentEpisode(observations=[np.zeros(1, np.float32)] * 3, infos=[{}, {}, last_info], actions=[0, 0],
                                  rewards=[1.0, 1.0], truncated=True, observation_space=spaces.Box(0, 1, (1,)),
                                  action_space=spaces.Discrete(2), len_lookback_buffer=0)

    logger = MetricsLogger()
    log_episode(episode=episode({DECORRELATION_CUT: True}), metrics_logger=logger)
    log_episode(episode=episode({}), metrics_logger=logger)
    assert [tuple(e[:2]) for e in logger.peek(EPISODES_KEY)] == [(2.0, 2)]
