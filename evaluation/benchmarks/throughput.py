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
"""
from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

from . import benchmark

RLLIB_ENV = "memrl_bench_env"


def _memrl_rows(cfg, backend: str = "memrl") -> dict:
    """memrl's runtime (backend=memrl) or RLlib's IMPALA with the memrl RLModule (backend=rllib), same settings."""
    from agents import num_parameters
    import envs
    from training import impala, rllib_backend
    from training.actor import build_agent
    from training.config import compose
    from training.run_dir import read_metrics

    overrides = [
        f"core={cfg.core}", f"env={cfg.env}", f"actors.num_actors={cfg.num_actors}",
        f"actors.envs_per_actor={cfg.envs_per_actor}", f"actors.unroll_length={cfg.unroll_length}",
        f"learner.batch_unrolls={cfg.batch_unrolls}", f"total_frames={cfg.frames}", "log.interval_s=1",
        "tensorboard=false", "checkpoint.interval_s=100000", f"ray.num_cpus={cfg.num_actors + 1}",
        f"core.hidden_size={cfg.hidden_size}", f"agent.encoder_size={cfg.hidden_size}",
        f"backend={backend}", "rllib.algo=impala",
    ]
    run_cfg = compose("train", overrides)
    train = impala.train if backend == "memrl" else rllib_backend.train
    params = num_parameters(build_agent(envs.make_from_config(run_cfg["env"]), run_cfg))
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
    }


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


def _first_after(times: list[float], warmup_s: float) -> int:
    """Index of the first sample after the warm-up, leaving at least two samples to measure."""
    for i, t in enumerate(times[:-1]):
        if t >= warmup_s:
            return i
    return max(0, len(times) - 2)


@benchmark("throughput")
def throughput(cfg) -> list[dict]:
    rows = [_memrl_rows(cfg)]
    if cfg.rllib:
        rows.append(_memrl_rows(cfg, backend="rllib"))
        if cfg.core == "lstm":  # RLlib's own model is an LSTM: only comparable with core=lstm
            rows.append(_rllib_rows(cfg))
        for row in rows:
            row["frames_per_s_vs_memrl"] = row["frames_per_s"] / rows[0]["frames_per_s"]
            row["updates_per_s_vs_memrl"] = row["updates_per_s"] / rows[0]["updates_per_s"]
    return rows
