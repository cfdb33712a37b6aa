"""``memrl train backend=rllib``: RLlib's IMPALA, APPO or PPO train a memrl Agent (any core).

The run config is the same as memrl's IMPALA (``configs/train.yaml``); the
``rllib:`` section picks the algorithm and its few extra settings. The run
folder is the same too: config.yaml, metrics.csv, TensorBoard events and a
memrl ``checkpoint.pt`` (the Agent's weights and the config), so ``memrl eval``
and ``memrl plot`` work on it; RLlib's own checkpoint goes to ``rllib/`` for
``resume``.

How memrl settings map onto RLlib:

| memrl                                   | RLlib                                             |
| --------------------------------------- | ------------------------------------------------- |
| actors.num_actors / envs_per_actor      | num_env_runners / num_envs_per_env_runner         |
| actors.unroll_length                    | rollout_fragment_length and max_seq_len           |
| learner.batch_unrolls                   | train_batch_size_per_learner = batch_unrolls * envs_per_actor * unroll_length |
| learner.learning_rate, max_grad_norm    | lr, grad_clip (RLlib's Adam; its epsilon is Adam's default 1e-8) |
| loss.discount / baseline_cost / entropy_cost | gamma / vf_loss_coeff / entropy_coeff        |
| loss.clip_rho_threshold                 | vtrace_clip_rho_threshold and vtrace_clip_pg_rho_threshold (impala, appo) |
| loss.trace_lambda                       | lambda_ (ppo; Ray 2.60's APPO and IMPALA ignore it: lambda = 1) |
| loss.entropy_cost_final                 | entropy_coeff as RLlib's schedule [[0, entropy_cost], [total_frames, final]] |
| loss.reward_scale                       | an env wrapper scales rewards; the module divides the previous reward back |
| actors.decorrelate_steps                | an env wrapper cuts each env's first episode at its own step (training/decorrelation.py) |

Not mapped: ``learner.loss.value_normalisation`` and ``advantage_normalisation`` (RLlib's losses use the raw
returns: no PopArt, so set ``loss.reward_scale`` for envs whose rewards are far from 1; a run with either says so once),
``learner.loss.clip_c_threshold`` (RLlib's V-trace fixes c-bar = 1), ``learner.optimizer`` (must be
adam), ``device`` (RLlib picks the learner's device).
"""
from __future__ import annotations

import collections
import functools
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

import envs

from .actor import episode_means
from .decorrelation import DECORRELATION_CUT, DecorrelationCut, cut_steps
from .impala import init_ray, progress_line, rl_row
from .run_dir import CHECKPOINT
from .run_loop import Run, StopClock
from .unroll import resolve_unroll_length

ALGOS = ("impala", "appo", "ppo")
RLLIB_ENV = "memrl_rllib_env"
RLLIB_CHECKPOINT = "rllib"  # RLlib's own checkpoint folder inside the run folder, for resume
EPISODES_KEY = "memrl_episodes"  # env-runner metric: one (return, length, success, trials) per finished episode


def check_config(cfg: dict) -> None:
    """One-line ValueErrors for settings out of range (memrl's own checks) or that backend=rllib cannot honour."""
    from .prepare import check_config as check_ranges

    resolve_unroll_length(cfg)
    check_ranges(cfg)
    algo = cfg["rllib"]["algo"]
    if algo not in ALGOS:
        raise ValueError(f"rllib.algo={algo!r} is not known; use one of {', '.join(ALGOS)}")
    if cfg["learner"]["optimizer"] != "adam":
        raise ValueError(f"backend=rllib trains with RLlib's Adam; set learner.optimizer=adam (got {cfg['learner']['optimizer']})")
    if cfg["ray"].get("address"):
        raise ValueError("backend=rllib starts its own local Ray cluster here; drop ray.address or use backend=memrl")


_ENVS_MADE = itertools.count()  # envs made in this process: an env runner's envs are made one by one


def make_env(env_config: dict):
    """RLlib's env creator: a memrl env, its rewards multiplied by ``reward_scale``, out of lockstep with the
    runner's other envs (``actors.decorrelate_steps``: the k-th env made in env runner w cuts at the step
    memrl's actor w would draw for its env k)."""
    import gymnasium

    env = envs.make_from_config(dict(env_config["env"]))
    scale = float(env_config["reward_scale"])
    if scale != 1.0:
        env = gymnasium.wrappers.TransformReward(env, functools.partial(_scale_reward, scale=scale))
    index, runner, seed = next(_ENVS_MADE), getattr(env_config, "worker_index", None) or 0, env_config.get("seed")
    seed_words = None if seed is None else [seed, runner, 1]  # seed=null: fresh entropy, as RLlib's own seeding
    cut = cut_steps(env_config.get("decorrelate_steps", 0), seed_words, index + 1)[index]
    return DecorrelationCut(env, cut)


def _scale_reward(reward: float, scale: float) -> float:
    return reward * scale


def log_episode(*, episode, metrics_logger, prev_episode_chunks=(), **kwargs) -> None:
    """on_episode_end: the finished episode's return (of scaled rewards), length, info["success"] and info["trials"].

    An item series reaches the driver as the list of episodes finished since the last
    ``algo.train()``, so the driver averages the last ``log.episodes_window`` episodes
    itself, exactly as memrl's IMPALA does (RLlib's own episode_return_mean is a
    mean over a different, per-iteration window).
    """
    chunks = [*(prev_episode_chunks or []), episode]  # an episode cut across sample() calls comes in chunks
    info = episode.get_infos(-1)
    if DECORRELATION_CUT in info:  # its partial return is no sample of the episode's (training/decorrelation.py)
        return
    success, trials = (float(v) if v is not None else math.nan for v in (info.get("success"), info.get("trials")))
    episode_return = float(sum(chunk.get_return() for chunk in chunks))
    metrics_logger.log_value(EPISODES_KEY, (episode_return, sum(map(len, chunks)), success, trials), reduce="item_series")


def batch_frames(cfg: dict) -> int:
    actors = cfg["actors"]
    return cfg["learner"]["batch_unrolls"] * actors["envs_per_actor"] * resolve_unroll_length(cfg)


def model_config(cfg: dict) -> dict[str, Any]:
    """The RLModule's model_config (see agents.rllib_module.MODEL_CONFIG_DEFAULTS)."""
    return {
        "core": cfg["core"],
        "agent": cfg["agent"],
        "reward_scale": cfg["learner"]["loss"]["reward_scale"],
        "max_seq_len": resolve_unroll_length(cfg),
    }


def algorithm_config(cfg: dict):
    """The RLlib AlgorithmConfig for a memrl run config (see the table in the module docstring)."""
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.tune.registry import register_env

    from agents.rllib_module import MemoryCoreRLModule, prev_action_and_reward_connector

    check_config(cfg)
    rllib, actors, learner = cfg["rllib"], cfg["actors"], cfg["learner"]
    loss = learner["loss"]
    algo = rllib["algo"]
    register_env(RLLIB_ENV, make_env)
    config = _config_class(algo)()
    config = (
        config.environment(RLLIB_ENV, env_config={"env": cfg["env"], "reward_scale": loss["reward_scale"], "seed": cfg["seed"],
                                                  "decorrelate_steps": actors.get("decorrelate_steps", 0)})
        .framework("torch")
        .env_runners(
            num_env_runners=actors["num_actors"], num_envs_per_env_runner=actors["envs_per_actor"],
            rollout_fragment_length=resolve_unroll_length(cfg), num_cpus_per_env_runner=actors["cpus_per_actor"],
            env_to_module_connector=prev_action_and_reward_connector,
        )
        .learners(num_learners=0, learner_class=_learner_class(algo))
        .rl_module(rl_module_spec=RLModuleSpec(module_class=MemoryCoreRLModule, model_config=model_config(cfg)))
        .callbacks(on_episode_end=log_episode)
        .reporting(
            min_time_s_per_iteration=min(1.0, cfg["log"]["interval_s"]),
        )
        .debugging(seed=cfg["seed"])
    )
    common = {
        "lr": learner["learning_rate"], "grad_clip": learner["max_grad_norm"], "gamma": loss["discount"],
        "train_batch_size_per_learner": batch_frames(cfg), "vf_loss_coeff": loss["baseline_cost"],
        "entropy_coeff": entropy_coeff(loss, cfg["total_frames"]),
    }
    if algo in ("impala", "appo"):
        common["vtrace_clip_rho_threshold"] = loss["clip_rho_threshold"]
        common["vtrace_clip_pg_rho_threshold"] = loss["clip_rho_threshold"]
    if algo in ("appo", "ppo"):
        common["lambda_"] = loss["trace_lambda"]
        common["clip_param"] = rllib["clip_param"]
    if algo == "ppo":
        common["num_epochs"] = rllib["num_epochs"]
        common["minibatch_size"] = rllib["minibatch_size"] or batch_frames(cfg)
    return config.training(**common)


def entropy_coeff(loss: dict, total_frames: int):
    """RLlib's ``entropy_coeff``: the constant, or the linear schedule memrl's ``entropy_cost_final`` sets
    (RLlib interpolates [env steps, value] pairs and holds the last value)."""
    if loss.get("entropy_cost_final") is None:
        return loss["entropy_cost"]
    return [[0, loss["entropy_cost"]], [total_frames, loss["entropy_cost_final"]]]


def _config_class(algo: str):
    if algo == "impala":
        from ray.rllib.algorithms.impala import IMPALAConfig

        return IMPALAConfig
    if algo == "appo":
        from ray.rllib.algorithms.appo import APPOConfig

        return APPOConfig
    from ray.rllib.algorithms.ppo import PPOConfig

    return PPOConfig


def _learner_class(algo: str):
    """RLlib's torch learner for ``algo`` plus the core's loss_* aux losses."""
    if algo == "impala":
        from ray.rllib.algorithms.impala.torch.impala_torch_learner import IMPALATorchLearner as base
    elif algo == "appo":
        from ray.rllib.algorithms.appo.torch.appo_torch_learner import APPOTorchLearner as base
    else:
        from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner as base
    return type(f"Memrl{base.__name__}", (AuxLossMixin, base), {})


class AuxLossMixin:
    """Adds the module's ``AUX_LOSS`` (the core's loss_* entries) to the algorithm's loss and
    counts optimizer steps in ``memrl_updates`` (RLlib's new stack reports no such count)."""

    memrl_updates = 0

    def apply_gradients(self, gradients_dict) -> None:
        super().apply_gradients(gradients_dict)
        self.memrl_updates += 1

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        from agents.rllib_module import AUX_LOSS

        loss = super().compute_loss_for_module(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)
        return loss + fwd_out[AUX_LOSS] if AUX_LOSS in fwd_out else loss


def state_bytes_per_step(cfg: dict) -> int:
    """Bytes of one env's core state: what RLlib stores with every timestep."""
    from .actor import build_agent

    env = envs.make_from_config(cfg["env"])
    state = build_agent(env, cfg).initial_state(1)
    env.close()
    return sum(t.numel() * t.element_size() for t in state.values(include_nested=True, leaves_only=True))


def check_state_memory(cfg: dict) -> float:
    """MiB of core states in one learner batch; a one-line ValueError above ``rllib.max_state_mib``."""
    mib = batch_frames(cfg) * state_bytes_per_step(cfg) / 2**20
    limit = cfg["rllib"]["max_state_mib"]
    if limit and mib > limit:
        raise ValueError(
            f"core {cfg['core']['name']} keeps {mib:.0f} MiB of state per learner batch under RLlib (it stores the state "
            f"with every step; limit rllib.max_state_mib={limit}); use backend=memrl (state once per unroll), a smaller "
            "memory, or fewer learner.batch_unrolls / actors.envs_per_actor"
        )
    return mib


def agent_weights(algo) -> dict[str, torch.Tensor]:
    """The learner's Agent weights as a memrl ``Agent.state_dict()``."""
    from ray.rllib.core import DEFAULT_MODULE_ID

    weights = algo.learner_group.get_weights()[DEFAULT_MODULE_ID]
    prefix = "agent."
    return {k[len(prefix):]: torch.as_tensor(np.asarray(v)) for k, v in weights.items() if k.startswith(prefix)}


def train(cfg: dict, run_dir: Path, resume: bool = False, quiet: bool = False, on_log=None) -> dict[str, float]:
    """Call ``algo.train()`` until ``total_frames`` env frames; the run (``run_loop.Run``) logs and checkpoints.
    Returns the last logged metrics row. ``on_log(row, algo)``, if given, is called after every logged row."""
    import ray

    check_state_memory(cfg)
    started_ray = init_ray(cfg["ray"], cfg["actors"]["num_actors"], cfg["actors"]["cpus_per_actor"])
    algo = None
    counters = {"frames": 0, "updates": 0, "episodes": 0, "seconds": 0.0}
    stats = dict.fromkeys(LEARNER_COLUMNS, math.nan)
    recent = collections.deque(maxlen=cfg["log"]["episodes_window"])  # the last episodes, as memrl's actors report them
    scale = cfg["learner"]["loss"]["reward_scale"]

    def payload() -> dict[str, Any]:
        algo.save_to_path(str((Path(run_dir) / RLLIB_CHECKPOINT).resolve()))  # RLlib's own, for resume
        return {"model": agent_weights(algo), "config": cfg, "backend": "rllib"}

    try:
        algo = algorithm_config(cfg).build_algo()
        if resume:
            algo.restore_from_path(str((Path(run_dir) / RLLIB_CHECKPOINT).resolve()))
            counters.update(torch.load(Path(run_dir) / CHECKPOINT, weights_only=True)["counters"])
        frames_before = counters["frames"]  # RLlib's lifetime counters restart at 0 on resume
        updates_before, episodes_before = counters["updates"], counters["episodes"]
        run = Run(run_dir, counters, StopClock("frames", cfg["total_frames"]), cfg["checkpoint"], payload, progress_line,
                  log_interval_s=cfg["log"]["interval_s"], quiet=quiet, score=lambda: episode_means(recent)["mean_return"],
                  tensorboard=cfg.get("tensorboard", True))
        with run:
            done = run.done()
            while not done:
                result = algo.train()
                runners = result.get("env_runners", {})
                # One entry per finished episode; the env wrapper's reward scale is undone here.
                episodes = runners.get(EPISODES_KEY, [])  # RLlib reports NaN, not [], for an iteration with none
                recent.extend({"return": ret / scale, "length": length, "success": success, "trials": trials}
                              for ret, length, success, trials in (episodes if isinstance(episodes, list) else []))
                _update_learner_stats(stats, result)
                frames = counters["frames"]
                # max(): an iteration that sampled or trained nothing may leave a lifetime counter out.
                counters["frames"] = max(frames, frames_before + int(runners.get("num_env_steps_sampled_lifetime", 0)))
                counters["episodes"] = max(counters["episodes"], episodes_before + int(runners.get("num_episodes_lifetime", 0)))
                counters["updates"] = max(counters["updates"], updates_before + _updates(algo))
                run.window.add({"frames": counters["frames"] - frames})
                done = run.step(counters["frames"] - frames)
                if run.log_due(done):
                    run.log({**rl_row(counters, run, recent), **stats})
                    if on_log is not None:
                        on_log(run.last_row, algo)
                run.checkpoint_if_due(done)
        return run.last_row
    finally:
        if algo is not None:
            algo.stop()
        if started_ray:
            ray.shutdown()


def _updates(algo) -> int:
    """Optimizer steps so far, summed over learners (PPO takes num_epochs * minibatches per batch)."""
    results = algo.learner_group.foreach_learner(lambda learner: learner.memrl_updates)
    return int(sum(r.get() for r in results.ignore_errors()))


LEARNER_COLUMNS = {  # metrics.csv column -> RLlib learner metric (first found)
    "total_loss": ("total_loss",),
    "policy_loss": ("mean_pi_loss", "policy_loss"),
    "baseline_loss": ("mean_vf_loss", "vf_loss"),
    "entropy": ("entropy",),
    "entropy_cost": ("curr_entropy_coeff",),  # the scheduled coefficient (entropy_cost_final)
    "grad_norm": ("gradients_default_optimizer_global_norm",),
    "policy_lag": ("diff_num_grad_updates_vs_sampler_policy",),  # learner updates ahead of the acting weights
}


def _update_learner_stats(stats: dict, result: dict) -> None:
    """RLlib reports learner metrics only for iterations where an update ran; like memrl, keep the latest."""
    from ray.rllib.core import DEFAULT_MODULE_ID

    module = result.get("learners", {}).get(DEFAULT_MODULE_ID, {})
    for column, keys in LEARNER_COLUMNS.items():
        value = next((_float(module[k]) for k in keys if k in module), math.nan)
        if math.isfinite(value):
            stats[column] = value


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def train_from_cli(cfg: dict, run_dir: Path | None = None) -> int:
    """``memrl train backend=rllib ...``: check, create the run folder (or resume ``run_dir``), train."""
    from .run_dir import new_run_dir

    if cfg["backend"] != "rllib":
        raise ValueError(f"backend={cfg['backend']!r} is not known; use backend=memrl or backend=rllib")
    if cfg.get("algo"):  # top-level alias: `memrl train backend=rllib algo=ppo`
        cfg["rllib"]["algo"] = cfg["algo"]
    check_config(cfg)
    check_state_memory(cfg)  # also builds the Agent once: a bad core or env stops here, before any folder exists
    if run_dir is not None and not (Path(run_dir) / RLLIB_CHECKPOINT).is_dir():
        raise ValueError(f"{run_dir} has no {RLLIB_CHECKPOINT}/ folder to resume RLlib from; start a new run")
    resume = run_dir is not None
    env_name = cfg["env"]["name"].split("/")[-1]
    run_dir = run_dir or new_run_dir(cfg, f"{cfg['core']['name']}-{env_name}-rllib-{cfg['rllib']['algo']}")
    print(f"run folder: {run_dir}", flush=True)
    loss = cfg["learner"]["loss"]
    unapplied = [f"{key}={loss[key]}" for key, plain in (("value_normalisation", "none"), ("advantage_normalisation", "sigma"))
                 if loss.get(key, plain) != plain]
    if unapplied:
        print(f"note: backend=rllib does not apply learner.loss.{' or '.join(unapplied)} (RLlib's losses use the raw "
              "returns, and entropy_cost weighs against the raw advantages); set learner.loss.reward_scale for envs "
              "whose rewards are far from 1", flush=True)
    train(cfg, Path(run_dir), resume=resume)
    print(f"done; checkpoint: {Path(run_dir) / CHECKPOINT}")
    return 0
