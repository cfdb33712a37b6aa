"""``memrl bench throughput``: env frames/s of the whole training loop, memrl vs RLlib's IMPALA.

Rows (``rllib=true``): memrl's IMPALA runtime; RLlib's IMPALA training the same
memrl Agent and core through ``agents.rllib_module`` (``backend=rllib``, system
``rllib+memrl_module``); and, for core=lstm, RLlib's IMPALA with its own LSTM
model (system ``rllib``; Dict/Tuple observations flattened by RLlib's FlattenObservations connector). All train the same env with the same actor count,
envs per actor, unroll length, batch and hidden size, one after the other in
this process, each on a fresh embedded Ray cluster with the same logical CPUs.
Frames/s is measured after a warm-up (Ray start, actor start and the first
updates are excluded) as env steps sampled per wall-clock second; updates/s as
learner optimizer steps per second.

The machine's limit for these settings (``limits=true``), in the same process layout:

- ``env_only``: ``num_actors`` Ray actors each step ``envs_per_actor`` envs with random actions
  for ``limit_s`` seconds: env frames/s with no model at all;
- ``model_only``: the two halves of the model's work on their own, each for ``limit_s``:
  ``num_actors`` Ray actors each running the agent's one-step inference over ``envs_per_actor``
  envs (state carried, no env step), and the learner's update (``learner.learner_step``: loss, backward, optimiser
  step) at its batch on one recorded unroll replayed; the lower of the two in frames/s.

Every row then gives memrl's frames/s as a fraction of the lower limit (``fraction_of_limit``).

An A/B of memrl's own code paths (``variants``: a name for each, with its train overrides, e.g. the
actor's per-step path ``actors.fused_unroll=false``): each variant trains ``repeats`` times, the
variants alternating, so a machine whose load drifts weighs on both alike; every row records the load
average before and after it, and a summary row per variant gives the median of its frames/s over the
repeats and of its ratio to the first variant's run of the same repeat.
"""
from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

from . import benchmark

RLLIB_ENV = "memrl_bench_env"


def _train_config(cfg, *extra: str) -> dict:
    """The train config of the bench's settings (core, env, actors, batch, sizes), plus ``extra`` overrides."""
    from training.config import compose

    return compose("train", [
        f"core={cfg.core}", f"env={cfg.env}", f"actors.num_actors={cfg.num_actors}",
        f"actors.envs_per_actor={cfg.envs_per_actor}", f"actors.unroll_length={cfg.unroll_length}",
        f"learner.batch_unrolls={cfg.batch_unrolls}", f"core.hidden_size={cfg.hidden_size}",
        f"agent.encoder_size={cfg.hidden_size}", *extra,
    ])


def _memrl_rows(cfg, backend: str = "memrl", extra: tuple[str, ...] = ()) -> dict:
    """memrl's runtime (backend=memrl) or RLlib's IMPALA with the memrl RLModule (backend=rllib), same settings;
    ``extra``: more train overrides (a variant's)."""
    from agents import num_parameters
    import envs
    from training import impala, rllib_backend
    from training.actor import build_agent
    from training.run_dir import read_metrics

    run_cfg = _train_config(cfg, f"total_frames={cfg.frames}", "log.interval_s=1", "tensorboard=false",
                            "checkpoint.interval_s=100000", f"ray.num_cpus={cfg.num_actors + 1}",
                            f"backend={backend}", "rllib.algo=impala", *extra)
    train = impala.train if backend == "memrl" else rllib_backend.train
    params = num_parameters(build_agent(envs.make_from_config(run_cfg["env"]), run_cfg))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        train(run_cfg, Path(tmp), quiet=True)
        metrics = read_metrics(tmp)
    frames, seconds, updates = metrics["frames"], metrics["time_s"], metrics["updates"]
    start = _first_after(seconds, cfg.warmup_s)
    elapsed = seconds[-1] - seconds[start]
    return {
        "system": "memrl" if backend == "memrl" else "rllib+memrl_module", "core": cfg.core, "parameters": params,
        "frames_per_s": (frames[-1] - frames[start]) / elapsed,
        "updates_per_s": (updates[-1] - updates[start]) / elapsed,
        "measured_frames": int(frames[-1] - frames[start]), "measured_s": elapsed,
        "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
    }


def _variant_rows(cfg) -> list[dict]:
    """The A/B of ``cfg.variants`` (module docstring): ``repeats`` rounds of every variant in turn, then a summary
    row per variant (median frames/s, and the median, min and max over rounds of its ratio to the first variant)."""
    variants = {name: tuple(overrides or ()) for name, overrides in cfg.variants.items()}
    rows = []
    for repeat in range(cfg.repeats):
        for name, overrides in variants.items():
            rows.append({"variant": name, "repeat": repeat, "overrides": " ".join(overrides), **_memrl_rows(cfg, extra=overrides)})
    first = next(iter(variants))
    summary = []
    for name in variants:
        runs = [r for r in rows if r["variant"] == name]
        ratios = [r["frames_per_s"] / b["frames_per_s"] for r in runs for b in rows
                  if b["variant"] == first and b["repeat"] == r["repeat"]]
        summary.append({"variant": name, "system": "summary", "runs": len(runs),
                        "median_frames_per_s": statistics.median(r["frames_per_s"] for r in runs),
                        f"median_ratio_to_{first}": statistics.median(ratios), "min_ratio": min(ratios), "max_ratio": max(ratios)})
    return rows + summary


def _rllib_rows(cfg) -> dict:
    import gymnasium
    import ray
    from ray.rllib.algorithms.impala import IMPALAConfig
    from ray.rllib.connectors.env_to_module import FlattenObservations
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.tune.registry import register_env

    import envs
    from training.config import compose

    env_cfg = compose("train", [f"env={cfg.env}"])["env"]
    register_env(RLLIB_ENV, lambda _: _float_observations(envs.make_from_config(copy.deepcopy(env_cfg))))
    probe = envs.make_from_config(env_cfg)
    # RLlib's catalog has no encoder for Dict/Tuple observations (MiniGrid's image + direction): flatten
    # them to one vector (one-hot for discrete parts) with RLlib's own connector, as RLlib users do.
    structured = isinstance(probe.observation_space, (gymnasium.spaces.Dict, gymnasium.spaces.Tuple))
    image = len(getattr(probe.observation_space, "shape", ()) or ()) == 3
    model = DefaultModelConfig(
        use_lstm=True, lstm_cell_size=cfg.hidden_size, max_seq_len=cfg.unroll_length, vf_share_layers=True,
        fcnet_hiddens=[cfg.hidden_size] if image else [cfg.hidden_size, cfg.hidden_size],
        # Same conv stack as memrl's small-image encoder (two 3x3, 32 channels, stride 1).
        conv_filters=[[32, 3, 1], [32, 3, 1]] if image else None,
    )
    batch = cfg.batch_unrolls * cfg.envs_per_actor * cfg.unroll_length
    algo_cfg = (
        IMPALAConfig()
        .environment(RLLIB_ENV)
        .framework("torch")
        .env_runners(num_env_runners=cfg.num_actors, num_envs_per_env_runner=cfg.envs_per_actor,
                     rollout_fragment_length=cfg.unroll_length, num_cpus_per_env_runner=1,
                     env_to_module_connector=(lambda env, spaces=None, device=None: FlattenObservations())
                     if structured else None)
        .learners(num_learners=0)
        .training(train_batch_size_per_learner=batch, lr=6e-4, grad_clip=40.0)
        .rl_module(model_config=model)
        .reporting(min_time_s_per_iteration=1)
    )
    ray.init(address="local", num_cpus=cfg.num_actors + 1, include_dashboard=False, log_to_driver=cfg.get("verbose", False))
    try:
        algo = algo_cfg.build_algo()
        params = sum(p.numel() for p in algo.get_module().parameters())
        start_time, samples = time.time(), []
        while True:
            result = algo.train()
            now = time.time() - start_time
            runners = result.get("env_runners", {})
            learners = result.get("learners", {}).get("__all_modules__", {})
            steps = runners.get("num_env_steps_sampled_lifetime", 0)
            updates = learners.get("num_module_steps_trained_lifetime", 0) / max(batch, 1)
            samples.append((now, steps, updates))
            if steps >= cfg.frames:
                break
        algo.stop()
    finally:
        ray.shutdown()
    times = [s[0] for s in samples]
    start = _first_after(times, cfg.warmup_s)
    elapsed = times[-1] - times[start]
    return {
        "system": "rllib", "core": "lstm", "parameters": params,
        "frames_per_s": (samples[-1][1] - samples[start][1]) / elapsed,
        "updates_per_s": (samples[-1][2] - samples[start][2]) / elapsed,
        "measured_frames": int(samples[-1][1] - samples[start][1]), "measured_s": elapsed,
    }


def _float_observations(env):
    """RLlib's CNN does not cast uint8 images; give it float32 (memrl's encoder casts on its own)."""
    import gymnasium
    import numpy as np

    space = env.observation_space
    if isinstance(space, gymnasium.spaces.Box) and space.dtype != np.float32:
        env = gymnasium.wrappers.DtypeObservation(env, np.float32)
    return env


def _env_steps(run_cfg: dict, seconds: float, seed: int) -> float:
    """Env frames/s of one process stepping ``envs_per_actor`` envs with random actions."""
    import envs

    batch = [envs.make_from_config(run_cfg["env"]) for _ in range(run_cfg["actors"]["envs_per_actor"])]
    for i, env in enumerate(batch):
        env.reset(seed=seed + i)
        env.action_space.seed(seed + i)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for env in batch:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        steps += len(batch)
    return steps / (time.perf_counter() - start)


def _inference_steps(run_cfg: dict, seconds: float, seed: int) -> float:
    """Frames/s of one actor's inference alone: the agent's one-step forward over its envs, state carried."""
    import torch

    from training.actor import Actor, add_time_dim

    actor = Actor(run_cfg, actor_index=0, seed=seed)
    state, steps = actor.state, 0
    with torch.no_grad():
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            out = actor.agent(add_time_dim(actor.obs), actor.prev_action[None], actor.prev_reward[None],
                              actor.reset[None], state)
            actor.agent.sample(out.logits[0], actor.generator)
            state = out.state
            steps += len(actor.envs)
    return steps / (time.perf_counter() - start)


def _limit_rows(cfg) -> list[dict]:
    """The env-only and model-only rates for the bench's settings (see the module docstring)."""
    import ray
    import torch

    from training.actor import Actor
    from training.learner import learner_step
    from training.prepare import prepare

    run_cfg = _train_config(cfg)
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=cfg.num_actors + 1, include_dashboard=False, log_to_driver=cfg.get("verbose", False))
    try:
        env_rates = ray.get([ray.remote(num_cpus=1)(_env_steps).remote(run_cfg, cfg.limit_s, 1000 * i)
                             for i in range(cfg.num_actors)])
        inference_rates = ray.get([ray.remote(num_cpus=1)(_inference_steps).remote(run_cfg, cfg.limit_s, i)
                                   for i in range(cfg.num_actors)])
    finally:
        if started:
            ray.shutdown()
    parts = prepare(run_cfg)
    actor = Actor(run_cfg, actor_index=0, seed=0)
    recorded = [actor.unroll() for _ in range(cfg.batch_unrolls)]
    unroll = torch.cat([r.unroll for r in recorded], dim=1)
    start_state = torch.cat([r.start_state for r in recorded], dim=0)
    frames_per_update = cfg.batch_unrolls * cfg.envs_per_actor * cfg.unroll_length
    updates, start = 0, time.perf_counter()
    while time.perf_counter() - start < cfg.limit_s or updates < 2:  # the learner's own step, as impala.train takes it
        learner_step(parts.agent, parts.optimizer, unroll, start_state, parts.loss, run_cfg["learner"]["max_grad_norm"])
        updates += 1
    learner_rate = updates * frames_per_update / (time.perf_counter() - start)
    inference_rate = sum(inference_rates)
    return [
        {"system": "env_only", "core": "-", "frames_per_s": sum(env_rates), "actors": cfg.num_actors},
        {"system": "model_only", "core": cfg.core, "frames_per_s": min(inference_rate, learner_rate),
         "inference_frames_per_s": inference_rate, "learner_frames_per_s": learner_rate,
         "learner_updates_per_s": learner_rate / frames_per_update},
    ]


def _first_after(times: list[float], warmup_s: float) -> int:
    """Index of the first sample after the warm-up, leaving at least two samples to measure."""
    for i, t in enumerate(times[:-1]):
        if t >= warmup_s:
            return i
    return max(0, len(times) - 2)


@benchmark("throughput")
def throughput(cfg) -> list[dict]:
    if cfg.get("variants"):
        return _variant_rows(cfg)
    rows = [_memrl_rows(cfg)]
    if cfg.get("limits", True):
        limits = _limit_rows(cfg)
        limit = min(row["frames_per_s"] for row in limits)
        rows[0]["fraction_of_limit"] = rows[0]["frames_per_s"] / limit
    if cfg.rllib:
        rows.append(_memrl_rows(cfg, backend="rllib"))
        if cfg.core == "lstm":  # RLlib's own model is an LSTM: only comparable with core=lstm
            rows.append(_rllib_rows(cfg))
        for row in rows:
            row["frames_per_s_vs_memrl"] = row["frames_per_s"] / rows[0]["frames_per_s"]
            row["updates_per_s_vs_memrl"] = row["updates_per_s"] / rows[0]["updates_per_s"]
    if cfg.get("limits", True):
        for row in rows:
            row["fraction_of_limit"] = row["frames_per_s"] / limit
        rows += limits
    return rows
