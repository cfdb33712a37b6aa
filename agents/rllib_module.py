"""memrl's Agent (any registered core) as an RLlib new-API-stack ``RLModule``.

The adapter is thin: it owns one plain ``agents.Agent`` and only converts
between RLlib's batch layout and the Agent's. The Agent's ``state_dict`` is
exactly memrl's, so a module trained by RLlib saves a memrl checkpoint.

Layouts
    RLlib batch (batch-major)           Agent (time-major)
    obs [B, T, ...]                     obs [T, B, ...]
    state_in: nested dict [B, ...]      TensorDict [B]
    action_dist_inputs [B, T, A]        logits [T, B, A],  A = sum of action sizes

Previous action and reward: the env-to-module pipeline must contain
``PrevActionAndReward`` (RLlib's ``PrevActionsPrevRewards`` connector, one step
each, extended to MultiDiscrete). It turns the observation into a dict of the
env's observation, the one-hot previous action and the previous reward. RLlib
fills the first step of an episode with zeros (an all-zero one-hot); the module
maps one-hots back to indices (argmax), so that step becomes action 0, as
memrl's own actor feeds it: a checkpoint behaves the same under ``memrl eval``.

Resets: RLlib never puts two episodes in one sequence row. A row that starts an
episode gets ``get_initial_state()`` as its state_in (its
``AddStatesFromEpisodesToBatch`` connector checks ``episode.t_started == 0``);
every other row continues from the previous chunk's last state_out. So the
core is called with ``reset=None``: by the core contract, starting from the
initial state is the same as resetting at step 0. A core with an empty state
(feedforward) makes the module stateless; RLlib then sends flat batches.

Value function: ``compute_values`` (ValueFunctionAPI) for IMPALA, APPO and PPO;
the train forward hands its values to the learners under ``embeddings``.
APPO's target network (TargetNetworkAPI) is a frozen copy of the whole Agent.
The core's ``loss_*`` aux losses (``memory_cores.auxiliary_loss``) are summed under ``AUX_LOSS`` for the learner
mixin in ``training/rllib_backend.py``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.connectors.env_to_module.prev_actions_prev_rewards import PrevActionsPrevRewards
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchDiagGaussian, TorchMultiCategorical
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import (
    TARGET_NETWORK_ACTION_DIST_INPUTS,
    InferenceOnlyAPI,
    TargetNetworkAPI,
    ValueFunctionAPI,
)
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.core.rl_module.torch import TorchRLModule
from tensordict import TensorDict

from memory_cores import auxiliary_loss

from .encoders import action_sizes
from .network import DEFAULT_CORE, Agent

ORIG_OBS = PrevActionsPrevRewards.ORIG_OBS_KEY
PREV_ACTIONS = PrevActionsPrevRewards.PREV_ACTIONS_KEY
PREV_REWARDS = PrevActionsPrevRewards.PREV_REWARDS_KEY
AUX_LOSS = "memrl_aux_loss"  # fwd_out key: sum of the core's loss_* aux entries (scalar)

# model_config keys the module reads, each with its default.
MODEL_CONFIG_DEFAULTS = {
    "core": DEFAULT_CORE,  # the core section: {"name": <registered core>, **its options}
    "agent": {},  # the Agent's options (agents.AgentConfig; unset ones take its defaults)
    "reward_scale": 1.0,  # the env's rewards were multiplied by this; prev rewards are divided back
    "max_seq_len": 20,  # T of the learner's sequences (RLlib reads this key)
}

RLLIB_DEFAULT_MODEL_KEYS = {f.name for f in dataclasses.fields(DefaultModelConfig)}


class PrevActionAndReward(PrevActionsPrevRewards):
    """RLlib's previous-action/reward connector (one step each), for Discrete, MultiDiscrete and Box actions.

    RLlib's own piece sizes the one-hot by ``action_space.n`` only; episodes
    already one-hot MultiDiscrete actions component-wise (concatenated).
    """

    def __init__(self, input_observation_space=None, input_action_space=None, **kwargs):
        super().__init__(input_observation_space, input_action_space, n_prev_actions=1, n_prev_rewards=1, **kwargs)

    def _convert_individual_space(self, obs_space, act_space):
        if isinstance(act_space, gym.spaces.Box):  # RLlib passes a Box action on as it is
            prev_actions = gym.spaces.Box(-np.inf, np.inf, (int(np.prod(act_space.shape)),), np.float32)
        else:
            prev_actions = gym.spaces.Box(0.0, 1.0, (sum(action_sizes(act_space)),), np.float32)
        return gym.spaces.Dict(
            {
                ORIG_OBS: obs_space,
                PREV_ACTIONS: prev_actions,
                PREV_REWARDS: gym.spaces.Box(-np.inf, np.inf, (1,), np.float32),
            }
        )


def prev_action_and_reward_connector(env=None, spaces=None, device=None) -> PrevActionAndReward:
    """For ``config.env_runners(env_to_module_connector=...)``."""
    return PrevActionAndReward()


class MemoryCoreRLModule(TorchRLModule, ValueFunctionAPI, TargetNetworkAPI, InferenceOnlyAPI):
    """A stateful RLModule around ``agents.Agent``; ``model_config`` keys: ``MODEL_CONFIG_DEFAULTS``."""

    def setup(self):
        config = {**MODEL_CONFIG_DEFAULTS, **(self.model_config or {})}
        # Algorithms add their default-model keys (PPO: vf_share_layers); those are not ours to check.
        unknown = sorted(set(config) - set(MODEL_CONFIG_DEFAULTS) - RLLIB_DEFAULT_MODEL_KEYS)
        if unknown:
            raise ValueError(f"MemoryCoreRLModule model_config has unknown keys {unknown}; known: {sorted(MODEL_CONFIG_DEFAULTS)}")
        space = self.observation_space
        if not (isinstance(space, gym.spaces.Dict) and {ORIG_OBS, PREV_ACTIONS, PREV_REWARDS} <= set(space.spaces)):
            raise ValueError(
                "MemoryCoreRLModule needs previous actions and rewards in its observations; add "
                "env_to_module_connector=agents.rllib_module.prev_action_and_reward_connector to config.env_runners()"
            )
        if dict(config["core"]).get("in_place_state"):
            raise ValueError("core in_place_state=true would overwrite the states RLlib keeps in its episodes; set core.in_place_state=false")
        self.reward_scale = float(config["reward_scale"])
        self._state_dtypes = None  # the core's state dtypes, read on first use
        self.agent = Agent(space[ORIG_OBS], self.action_space, core=dict(config["core"]), **dict(config["agent"]))

    # -- state -------------------------------------------------------------------------
    def get_initial_state(self) -> dict[str, Any]:
        """The core's initial state for one env, without the batch dim, as a nested dict of tensors."""
        return self.agent.initial_state(1)[0].to_dict()

    # -- forward passes ----------------------------------------------------------------
    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        logits, values, state, _ = self._unroll(self.agent, batch)
        return {Columns.ACTION_DIST_INPUTS: logits, **state}

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        logits, values, state, aux = self._unroll(self.agent, batch)
        out = {Columns.ACTION_DIST_INPUTS: logits, Columns.EMBEDDINGS: values, **state}
        extra = auxiliary_loss(aux)
        if extra is not None:
            out[AUX_LOSS] = extra
        return out

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        """V(obs) [B, T]; ``embeddings`` are the values of a train forward on the same batch."""
        if embeddings is not None:
            return embeddings
        return self._unroll(self.agent, batch)[1]

    def _unroll(self, agent: Agent, batch: dict[str, Any]):
        """Run ``agent`` over batch-major sequences.

        Returns logits [B, T, A], values [B, T], {STATE_OUT: state} (empty for a stateless core), aux.
        A stateless core (feedforward: empty state) makes the module stateless; RLlib then sends
        flat batches [N, ...] without a time dim, run here as N sequences of one step.
        """
        stateful = Columns.STATE_IN in batch
        obs = batch[Columns.OBS] if stateful else _map(lambda x: x[:, None], batch[Columns.OBS])
        if agent.action_sizes:
            one_hots = obs[PREV_ACTIONS].flatten(2).split(agent.action_sizes, dim=-1)  # [B, T, (1,) A]: n_prev = 1
            prev_action = torch.stack([part.argmax(-1) for part in one_hots], dim=-1)  # all-zero fill -> action 0
        else:  # a Box action, as it was sampled
            prev_action = obs[PREV_ACTIONS].flatten(2).float()
        prev_reward = obs[PREV_REWARDS].flatten(2)[..., 0] / self.reward_scale
        batch_size = prev_reward.shape[0]
        state = self._state_in(agent, batch[Columns.STATE_IN], batch_size) if stateful else agent.initial_state(batch_size)
        out = agent(
            _map(lambda x: x.transpose(0, 1), obs[ORIG_OBS]), prev_action.transpose(0, 1),
            prev_reward.transpose(0, 1), None, state,
        )
        logits, values = out.logits.transpose(0, 1), out.values.transpose(0, 1)
        if not stateful:
            return logits[:, 0], values[:, 0], {}, out.aux
        return logits, values, {Columns.STATE_OUT: out.state.to_dict()}, out.aux

    def _state_in(self, agent: Agent, state_in: dict[str, Any], batch_size: int) -> TensorDict:
        """RLlib's state_in as the core's TensorDict [B], in the core's own dtypes.

        RLlib's numpy conversion narrows int64 to int32 and float64 to float32 in the
        states it stores; indices go back to int64 here (float64 precision is lost).
        """
        state = TensorDict(state_in, batch_size=[batch_size])
        if self._state_dtypes is None:
            template = agent.initial_state(1)
            self._state_dtypes = {k: v.dtype for k, v in template.items(include_nested=True, leaves_only=True)}
        for key, dtype in self._state_dtypes.items():
            if state[key].dtype != dtype:
                state[key] = state[key].to(dtype)
        return state

    # -- action distributions ------------------------------------------------------------
    def get_inference_action_dist_cls(self):
        if isinstance(self.action_space, gym.spaces.Discrete):
            return TorchCategorical
        if isinstance(self.action_space, gym.spaces.Box):  # [mean, log std], as agents.distributions.DiagonalGaussian
            return TorchDiagGaussian
        return TorchMultiCategorical.get_partial_dist_cls(space=self.action_space, input_lens=action_sizes(self.action_space))

    def get_exploration_action_dist_cls(self):
        return self.get_inference_action_dist_cls()

    def get_train_action_dist_cls(self):
        return self.get_inference_action_dist_cls()

    # -- APPO: target network ----------------------------------------------------------
    def make_target_networks(self) -> None:
        self._target_agent = make_target_network(self.agent)

    def get_target_network_pairs(self):
        return [(self.agent, self._target_agent)]

    def forward_target(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {TARGET_NETWORK_ACTION_DIST_INPUTS: self._unroll(self._target_agent, batch)[0]}

    def get_non_inference_attributes(self) -> list[str]:
        return ["_target_agent"]  # env runners need no target network


def _map(fn, obs):
    """``fn`` on a tensor or on every tensor of a (nested) dict or tuple of them; a tuple becomes a
    dict keyed "0", "1", ... as the actor stacks it (agents.encoders takes both)."""
    if isinstance(obs, dict):
        return {k: _map(fn, v) for k, v in obs.items()}
    if isinstance(obs, (tuple, list)):
        return {str(i): _map(fn, v) for i, v in enumerate(obs)}
    return fn(obs)
