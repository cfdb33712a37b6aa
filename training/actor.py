"""An actor: steps a batch of envs with a CPU copy of the policy and returns unrolls.

The same class runs in-process (``num_actors=0``, deterministic) and as a Ray
actor (``ray.remote(Actor)``); nothing in it knows about Ray.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

import envs
from agents import Agent, env_actions

from .decorrelation import DECORRELATION_CUT, DecorrelationCut, cut_steps
from .env_guard import GuardedEnv
from .unroll import inputs_after_step, resolve_unroll_length


@dataclass
class ActorResult:
    unroll: TensorDict  # [T+1, B], see training/unroll.py
    start_state: TensorDict  # core state before unroll step 0, [B]
    episodes: list[dict[str, float]]  # completed episodes: return, length, success
    weights_version: int  # learner update count of the weights that acted
    actor_index: int
    env_errors: int = 0  # env exceptions survived during this unroll (training/env_guard.py)


def pooled_success(episodes: list[dict[str, float]]) -> float:
    """Success rate over trials: each episode's success fraction weighted by its trial count.

    The plain mean of per-episode fractions is biased and gameable: a policy that
    dawdles after a failure completes fewer trials in bad episodes and lifts the
    mean of ratios above what its choices earn. Episodes without a trial count
    weigh 1; episodes without a success value (or with zero trials) are left out.
    """
    total = weight = 0.0
    for episode in episodes:
        success, trials = episode["success"], episode.get("trials", math.nan)
        w = trials if not math.isnan(trials) else 1.0
        if math.isnan(success) or w <= 0:
            continue
        total += success * w
        weight += w
    return total / weight if weight else math.nan


def episode_means(episodes: list[dict[str, float]]) -> dict[str, float]:
    """The episode columns of a metrics row over finished ``episodes`` (NaN when there are none)."""
    def mean(key: str) -> float:
        values = [e[key] for e in episodes if not math.isnan(e[key])]
        return float(np.mean(values)) if values else math.nan

    return {"mean_return": mean("return"), "mean_success": pooled_success(episodes), "mean_episode_length": mean("length")}


def stack_obs(observations: list[Any]):
    """List of B env observations -> tensor [B, ...] (or a dict of them; a tuple becomes a dict keyed "0", "1", ...)."""
    first = observations[0]
    if isinstance(first, dict):
        return {k: stack_obs([o[k] for o in observations]) for k in first}
    if isinstance(first, tuple):
        return {str(i): stack_obs([o[i] for o in observations]) for i in range(len(first))}
    return torch.as_tensor(np.stack(observations))


def build_agent(env, cfg) -> Agent:
    """The agent for ``env`` from the run config (core, agent sections).

    Options missing from the ``agent`` section (runs saved before they existed) take ``AgentConfig``'s defaults.
    """
    return Agent(env.observation_space, env.action_space, core=cfg["core"], **cfg["agent"])


class Actor:
    """Steps ``num_envs`` envs for ``unroll_length`` steps per call to ``unroll``.

    Decorrelation (``actors.decorrelate_steps`` = S > 0): env b cuts the episode it is in after c_b
    steps, c_b drawn uniformly from [1, S] with the actor's seed, counted from the actor's start
    (training/decorrelation.py: why, and how the cut is counted).

    Args:
        cfg: the run config as a plain dict (env, core, agent, actors sections).
        actor_index: this actor's number; env seeds derive from (seed, actor_index, env index).
        seed: the run seed.
        greedy: take each step's most probable action instead of sampling (evaluation only).
    """

    def __init__(self, cfg: dict, actor_index: int, seed: int, greedy: bool = False):
        torch.set_num_threads(1)  # many actors share few cores
        self.actor_index = actor_index
        self.greedy = greedy
        self.fused_unroll = cfg["actors"].get("fused_unroll", True)  # runs saved before the option: the fast path
        self.unroll_length = resolve_unroll_length(cfg)
        num_envs = cfg["actors"]["envs_per_actor"]
        max_errors = cfg["actors"].get("max_env_errors", 10)  # runs saved before the option had no limit key
        make_env = lambda: envs.make_from_config(cfg["env"])  # noqa: E731
        self.guards = [GuardedEnv(make_env, max_errors, cfg["env"]["name"]) for _ in range(num_envs)]
        # runs saved before the option: all envs start together
        cuts = cut_steps(cfg["actors"].get("decorrelate_steps", 0), [seed, actor_index, 1], num_envs)
        self.envs = [DecorrelationCut(guard, cut) for guard, cut in zip(self.guards, cuts)]
        self.env_errors_reported = 0
        env_seeds = np.random.SeedSequence([seed, actor_index]).generate_state(num_envs + 1)
        self.generator = torch.Generator().manual_seed(int(env_seeds[-1]))
        torch.manual_seed(int(env_seeds[-1]))  # for cores that draw random numbers
        self.agent = build_agent(self.envs[0], cfg)
        self.agent.eval()
        self.weights_version = -1

        obs = [env.reset(seed=int(s))[0] for env, s in zip(self.envs, env_seeds[:-1])]
        self.obs = stack_obs(obs)
        self.reset = torch.ones(num_envs, dtype=torch.bool)
        self.prev_action = self.agent.no_action(num_envs)
        self.prev_reward = torch.zeros(num_envs)
        self.state = self.agent.initial_state(num_envs)
        self.episode_return = np.zeros(num_envs)
        self.episode_length = np.zeros(num_envs, dtype=np.int64)

    def set_weights(self, weights: dict[str, torch.Tensor], version: int) -> None:
        if version != self.weights_version:
            self.agent.load_state_dict(weights)
            self.weights_version = version

    def _inputs(self) -> TensorDict:
        return TensorDict(
            {"obs": self.obs, "reset": self.reset, "prev_action": self.prev_action, "prev_reward": self.prev_reward},
            batch_size=[len(self.envs)],
        )

    def unroll(self, weights: dict[str, torch.Tensor] | None = None, version: int = -1) -> ActorResult:
        """Step every env ``unroll_length`` times; the unroll [T+1, B] (training/unroll.py) and what came with it."""
        if weights is not None:
            self.set_weights(weights, version)
        return self._unroll_in_place() if self.fused_unroll else self._unroll_per_step()

    def _unroll_in_place(self) -> ActorResult:
        """The fast path: every step writes into unroll buffers allocated once per unroll, under
        ``torch.inference_mode``; no TensorDict per step. ``_unroll_per_step`` is its slow twin (same
        unroll, episodes and state for the same seed: tests/test_actor_unroll.py)."""
        T = self.unroll_length
        start_state = self.state.clone()
        buffers = self._unroll_buffers(T)
        obs, reset, prev_action, prev_reward = (buffers[k] for k in ("obs", "reset", "prev_action", "prev_reward"))
        action, logits, reward = buffers["action"], buffers["behaviour_logits"], buffers["reward"]
        terminated, truncated, truncation_value = buffers["terminated"], buffers["truncated"], buffers["truncation_value"]
        episodes: list[dict[str, float]] = []
        write_obs(obs, 0, self.obs)
        reset[0], prev_action[0], prev_reward[0] = self.reset, self.prev_action, self.prev_reward
        with torch.inference_mode():
            for t in range(T):
                out = self.agent(add_time_dim(obs_at(obs, t)), prev_action[t : t + 1], prev_reward[t : t + 1],
                                 reset[t : t + 1], self.state)
                logits[t] = out.logits[0]
                action[t] = self.agent.greedy(logits[t]) if self.greedy else self.agent.sample(logits[t], self.generator)
                self.state = out.state
                next_obs, step_reward, step_terminated, step_truncated, final_obs = self._step_envs(action[t], episodes)
                write_obs(obs, t + 1, next_obs)
                reward[t], terminated[t], truncated[t] = (torch.from_numpy(step_reward), torch.from_numpy(step_terminated),
                                                          torch.from_numpy(step_truncated))
                truncation_value[t] = self._truncation_values(final_obs, action[t], reward[t], truncated[t])
                reset[t + 1], prev_action[t + 1], prev_reward[t + 1] = inputs_after_step(
                    action[t], reward[t], terminated[t], truncated[t])
        # Clones: the next unroll's inputs must not alias this unroll's buffers.
        self.obs = clone_obs(obs_at(obs, T))
        self.reset, self.prev_action, self.prev_reward = reset[T].clone(), prev_action[T].clone(), prev_reward[T].clone()
        return ActorResult(TensorDict(buffers, batch_size=[T + 1, len(self.envs)]), start_state, episodes,
                           self.weights_version, self.actor_index, self._new_env_errors())

    def _unroll_buffers(self, T: int) -> dict:
        """Zeroed unroll fields [T+1, B, ...] (training/unroll.py), from the current inputs' shapes and dtypes."""
        def zeros(like: torch.Tensor) -> torch.Tensor:
            return torch.zeros(T + 1, *like.shape, dtype=like.dtype)

        def obs_zeros(obs):
            return {k: obs_zeros(v) for k, v in obs.items()} if isinstance(obs, dict) else zeros(obs)

        B = len(self.envs)
        return {
            "obs": obs_zeros(self.obs), "reset": zeros(self.reset), "prev_action": zeros(self.prev_action),
            "prev_reward": zeros(self.prev_reward), "action": zeros(self.prev_action),
            "behaviour_logits": torch.zeros(T + 1, B, self.agent.distribution.param_size),
            "reward": zeros(self.prev_reward), "terminated": zeros(self.reset), "truncated": zeros(self.reset),
            "truncation_value": torch.zeros(T + 1, B),
        }

    @torch.no_grad()
    def _unroll_per_step(self) -> ActorResult:
        """The slow twin of ``_unroll_in_place`` (``actors.fused_unroll=false``): a TensorDict per step, stacked."""
        T, B = self.unroll_length, len(self.envs)
        start_state = self.state.clone()
        steps, episodes = [], []
        for _ in range(T):
            inputs = self._inputs()
            out = self.agent(
                add_time_dim(inputs["obs"]), inputs["prev_action"][None], inputs["prev_reward"][None],
                inputs["reset"][None], self.state,
            )
            logits = out.logits[0]
            action = self.agent.greedy(logits) if self.greedy else self.agent.sample(logits, self.generator)
            self.state = out.state
            next_obs, reward, terminated, truncated, final_obs = self._step_envs(action, episodes)
            next_obs, reward, terminated, truncated = (stack_obs(next_obs), torch.from_numpy(reward),
                                                       torch.from_numpy(terminated), torch.from_numpy(truncated))
            truncation_value = self._truncation_values(final_obs, action, reward, truncated)
            inputs.update(
                {
                    "action": action, "behaviour_logits": logits, "reward": reward,
                    "terminated": terminated, "truncated": truncated, "truncation_value": truncation_value,
                }
            )
            steps.append(inputs)
            self.obs = next_obs
            self.reset, self.prev_action, self.prev_reward = inputs_after_step(action, reward, terminated, truncated)
        last = self._inputs()
        # Entry T carries inputs only; its transition fields are zero padding.
        last.update({k: torch.zeros_like(v) for k, v in steps[-1].items() if k not in last.keys()})
        steps.append(last)
        return ActorResult(torch.stack(steps), start_state, episodes, self.weights_version, self.actor_index,
                           self._new_env_errors())

    def _new_env_errors(self) -> int:
        """Env exceptions survived since the last call (training/env_guard.py)."""
        env_errors = sum(guard.errors for guard in self.guards) - self.env_errors_reported
        self.env_errors_reported += env_errors
        return env_errors

    def _step_envs(self, action: torch.Tensor, episodes: list[dict[str, float]]):
        """Step every env; auto-reset ended ones. Returns the next observations (a list of B), reward, terminated
        and truncated (numpy [B]) and each ended env's final obs."""
        B = len(self.envs)
        reward = np.zeros(B, dtype=np.float32)
        terminated = np.zeros(B, dtype=bool)
        truncated = np.zeros(B, dtype=bool)
        next_obs, final_obs = [], {}
        for b, (env, act) in enumerate(zip(self.envs, env_actions(self.envs[0].action_space, action.numpy()))):
            obs, r, term, trunc, info = env.step(act)
            reward[b], terminated[b], truncated[b] = r, term, trunc
            self.episode_return[b] += r
            self.episode_length[b] += 1
            # An episode cut by an env error or by the decorrelation is no sample of returns.
            if (term or trunc) and "env_error" not in info and DECORRELATION_CUT not in info:
                episodes.append(
                    {
                        "return": float(self.episode_return[b]),
                        "length": int(self.episode_length[b]),
                        "success": float(info.get("success", math.nan)),
                        # Envs with several trials per episode report how many; success pools over them.
                        "trials": float(info.get("trials", math.nan)),
                    }
                )
            if term or trunc:
                self.episode_return[b] = 0.0
                self.episode_length[b] = 0
                if trunc and not term:
                    final_obs[b] = obs
                obs, _ = env.reset()
            next_obs.append(obs)
        return next_obs, reward, terminated, truncated, final_obs

    def _truncation_values(self, final_obs: dict[int, Any], action, reward, truncated) -> torch.Tensor:
        """V(final obs) for envs cut off by a time limit, with the state after this step."""
        values = torch.zeros(len(self.envs))
        if not final_obs:
            return values
        index = torch.tensor(sorted(final_obs))
        obs = stack_obs([final_obs[b] for b in index.tolist()])
        out = self.agent(
            add_time_dim(obs), action[index][None], reward[index][None],
            torch.zeros(1, len(index), dtype=torch.bool), self.state[index],
        )
        values[index] = out.values[0]
        return values


def write_obs(buffer, t: int, observations) -> None:
    """Write a batch of observations into ``buffer[t]`` ([T+1, B, ...], or a dict of them): ``observations`` is
    a list of B env observations (as ``stack_obs`` takes them) or an already stacked batch."""
    if isinstance(buffer, dict):
        for key, part in buffer.items():
            if isinstance(observations, dict):
                write_obs(part, t, observations[key])
            else:  # a list of dicts or tuples, keyed as stack_obs keys them
                index = int(key) if isinstance(observations[0], tuple) else key
                write_obs(part, t, [o[index] for o in observations])
    elif isinstance(observations, torch.Tensor):
        buffer[t] = observations
    else:
        np.stack(observations, out=buffer[t].numpy())


def obs_at(obs, t: int):
    """Step t of a [T+1, B, ...] observation buffer (or a dict of them): [B, ...]."""
    if isinstance(obs, dict):
        return {k: obs_at(v, t) for k, v in obs.items()}
    return obs[t]


def clone_obs(obs):
    return {k: clone_obs(v) for k, v in obs.items()} if isinstance(obs, dict) else obs.clone()


def add_time_dim(obs):
    """Add a leading time dim of 1 to a batch of observations."""
    if isinstance(obs, dict):
        return {k: add_time_dim(v) for k, v in obs.items()}
    return obs[None]
