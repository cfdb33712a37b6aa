"""``prepare(cfg) -> Parts``: an IMPALA run's config checked and its parts built, once, before any file is written.

The CLI calls it before it makes a run folder (bad input leaves none behind) and hands the parts to
``impala.train``; ``train`` calls it itself when given none (benchmarks, tests, a sweep's trial).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium
import torch

import envs
from agents import Agent

from .actor import build_agent
from .config import ConfigError
from .learner import LossConfig
from .run_loop import make_optimizer, resolve_device, restore_training_state
from .unroll import resolve_unroll_length


@dataclass
class Parts:
    """What an IMPALA run is built from."""

    cfg: dict[str, Any]  # the checked run config
    observation_space: gymnasium.Space
    action_space: gymnasium.Space
    agent: Agent  # on ``device``; the checkpoint's weights when resuming
    optimizer: torch.optim.Optimizer
    loss: LossConfig
    device: torch.device


def prepare(cfg: dict[str, Any], checkpoint: dict[str, Any] | None = None) -> Parts:
    """Fill in ``actors.unroll_length`` where null (``unroll.resolve_unroll_length``), check ``cfg`` (one-line ValueErrors), seed torch, build the agent, optimiser and loss config;
    restore weights, optimiser and torch's random stream from ``checkpoint`` when given."""
    resolve_unroll_length(cfg)
    check_config(cfg)
    check_memory(cfg, available_memory_mib())
    device = resolve_device(cfg["device"])
    torch.manual_seed(cfg["seed"])
    probe_env = envs.make_from_config(cfg["env"])
    agent = build_agent(probe_env, cfg).to(device)
    probe_env.close()
    optimizer = make_optimizer(agent.parameters(), cfg["learner"], "learner.optimizer")
    try:
        loss = LossConfig(**cfg["learner"]["loss"])
    except TypeError as exc:
        raise ConfigError(f"learner.loss: {exc}") from None
    if checkpoint is not None:
        restore_training_state(checkpoint, agent, optimizer, f"checkpoint does not fit the configured {cfg['core']['name']} "
                               "agent; resume without changing core/agent sizes, or start a new run")
    return Parts(cfg, probe_env.observation_space, probe_env.action_space, agent, optimizer, loss, device)


# (section, key, smallest value, why): the run's integer settings, checked before anything starts.
_LIMITS = [
    (None, "seed", 0, "a seed is a non-negative integer"),
    (None, "total_frames", 1, "the run must train for at least one frame"),
    ("actors", "num_actors", 0, "0 runs one actor in-process"),
    ("actors", "envs_per_actor", 1, "an actor steps at least one env"),
    ("actors", "unroll_length", 1, "an unroll has at least one step"),
    ("actors", "inflight_per_actor", 1, "each actor needs a request to work on"),
    ("actors", "decorrelate_steps", 0, "0 starts every env together"),
    ("actors", "max_env_errors", 1, "1 stops at the first env error"),
    ("actors", "max_actor_restarts", 0, "0 stops at the first actor death"),
    ("learner", "batch_unrolls", 1, "an update needs at least one unroll"),
    ("learner", "max_nonfinite_updates", 1, "1 stops at the first non-finite update"),
    ("checkpoint", "keep_last", 0, "0 keeps only checkpoint.pt"),
]


def check_config(cfg: dict) -> None:
    """One-line ValueError for a setting out of range, before Ray, actors or a run folder exist."""
    for section, key, low, why in _LIMITS:
        values = cfg if section is None else cfg.get(section, {})
        if key not in values:  # configs saved before the setting existed
            continue
        value, name = values[key], key if section is None else f"{section}.{key}"
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low} (got {value!r}): {why}")
    for section, key, low, high, example in _NUMBERS:
        values = cfg
        for part in section.split("."):
            values = values.get(part, {})
        if key not in values:
            continue
        value = values[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not (value > low if high is None else low <= value <= high):
            bounds = f"> {low}" if high is None else f"in [{low}, {high}]"
            raise ValueError(f"{section}.{key} must be a number {bounds} (got {value!r}); e.g. {example}")


def available_memory_mib() -> float | None:
    """MemAvailable from /proc/meminfo in MiB, or None where there is no such file (not Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def check_memory(cfg: dict, available_mib: float | None) -> None:
    """One-line ValueError when the actors' envs would not fit in this machine's memory.

    Only for envs with a measured footprint (``envs.MIB_PER_ENV``) and actors on this machine
    (no ``ray.address``): 2 actors x 16 memory_maze_3d envs need ~28 GiB, and a box that swaps
    instead looks hung.
    """
    mib = envs.MIB_PER_ENV.get(cfg["env"]["name"])
    if mib is None or available_mib is None or (cfg.get("ray") or {}).get("address"):
        return
    actors_cfg = cfg["actors"]
    processes = max(1, actors_cfg["num_actors"])
    needed = processes * actors_cfg["envs_per_actor"] * mib
    if needed <= available_mib:
        return
    per_actor = int(available_mib // (processes * mib))
    if per_actor >= 1:
        fix = f"set actors.envs_per_actor={per_actor}"
    elif available_mib >= mib:
        fix = f"set actors.num_actors={int(available_mib // mib)} actors.envs_per_actor=1"
    else:
        fix = "free memory first: a single env needs that much"
    raise ValueError(
        f"{cfg['env']['name']} takes about {mib} MiB per env: {processes} actor(s) x {actors_cfg['envs_per_actor']} envs "
        f"need ~{needed / 1024:.1f} GiB but {available_mib / 1024:.1f} GiB is available; {fix}"
    )


_NUMBERS = [  # (section, key, low, high or None for "> low", example)
    ("actors", "cpus_per_actor", 0, None, "1 or 0.5"),
    ("learner", "learning_rate", 0, None, "6e-4"),
    ("learner", "epsilon", 0, None, "1e-5"),
    ("learner", "max_grad_norm", 0, None, "40"),
    ("learner.loss", "discount", 0, 1, "0.99"),
    ("learner.loss", "trace_lambda", 0, 1, "1.0"),
    ("learner.loss", "baseline_cost", 0, float("inf"), "0.5"),
    ("learner.loss", "entropy_cost", 0, float("inf"), "0.01"),
    ("learner.loss", "clip_rho_threshold", 0, None, "1.0"),
    ("learner.loss", "clip_c_threshold", 0, None, "1.0"),
    ("log", "interval_s", 0, float("inf"), "5 (0 logs after every update)"),
    ("checkpoint", "interval_s", 0, float("inf"), "60 (0 saves after every update)"),
]
