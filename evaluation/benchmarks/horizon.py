"""``memrl bench horizon``: how far back each core remembers, on the passive T-maze.

For every core and every corridor length L, train a fresh agent on
``memrl/tmaze`` (cue, L passive steps, then a choice) with ``memrl train``'s
own loop (``training.impala.train``, in-process and deterministic) for a fixed
budget of episodes, then measure its success rate on fresh episodes with
``memrl eval``'s loop. 0.5 is chance (no memory of the cue); 1.0 is a core that
carried the cue over all L steps.

The budget is a number of episodes (= learner updates x envs), the same for
every L, so a longer corridor is not also a shorter training run. Each unroll
holds exactly one episode (unroll length L + 1, and every T-maze episode has
L + 1 steps), so the learner backpropagates from the choice to the cue for
every L: the table measures the core, not a truncated-BPTT window.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

from . import benchmark


def train_overrides(cfg, core: str, length: int) -> list[str]:
    """``memrl train`` overrides for one (core, L) run."""
    episodes_per_update = cfg.envs
    updates = -(-cfg.episodes // episodes_per_update)
    return [
        f"core={core}",
        "env=tmaze",
        f"env.corridor_length={length}",
        f"total_frames={updates * episodes_per_update * (length + 1)}",
        "actors.num_actors=0",  # in-process: deterministic, and no Ray start per run
        f"actors.envs_per_actor={cfg.envs}",
        f"actors.unroll_length={length + 1}",  # one whole episode per unroll
        "learner.batch_unrolls=1",
        f"learner.learning_rate={cfg.learning_rate}",
        f"seed={cfg.seed}",
        "tensorboard=false",
        f"log.episodes_window={cfg.envs * 10}",
        "checkpoint.interval_s=1000000000",  # one checkpoint, at the end
        *OmegaConf.to_container(cfg.overrides),
    ]


def has_core_config(core: str) -> bool:
    from training.config import CONFIG_DIR

    return (CONFIG_DIR / "core" / f"{core}.yaml").is_file()


def compose_train(cfg, core: str, length: int) -> dict:
    """The run config; a core without ``configs/core/<core>.yaml`` runs with its config dataclass's defaults."""
    from training.config import compose

    if has_core_config(core):
        return compose("train", train_overrides(cfg, core, length))
    train_cfg = compose("train", train_overrides(cfg, "feedforward", length))
    train_cfg["core"] = {"name": core}
    return train_cfg


def run_one(cfg, core: str, length: int, root: Path) -> dict:
    from evaluation.evaluate import evaluate
    from training.impala import train

    train_cfg = compose_train(cfg, core, length)
    run_dir = root / f"{core}-L{length}"
    run_dir.mkdir(parents=True)
    start = time.perf_counter()
    last = train(train_cfg, run_dir, quiet=True)
    train_s = time.perf_counter() - start
    summary = evaluate(str(run_dir), cfg.eval_episodes, cfg.eval_seed, str(run_dir / "eval.csv"), cfg.envs)
    return {
        "core": core,
        "corridor_length": length,
        "train_episodes": int(last["episodes"]),
        "train_frames": int(last["frames"]),
        "train_s": round(train_s, 1),
        "train_success_last": last["mean_success"],  # mean over the last log.episodes_window episodes
        "eval_episodes": summary["episodes"],
        "success_rate": summary["success_rate"],
    }


@benchmark("horizon")
def run(cfg) -> list[dict]:
    _check(cfg)
    rows = []
    with tempfile.TemporaryDirectory(prefix="memrl-horizon-") as tmp:
        for core in cfg.cores:
            for length in cfg.lengths:
                row = run_one(cfg, core, int(length), Path(tmp))
                if cfg.verbose:
                    print(f"{core:>24} L={length:<5} success {row['success_rate']:.3f} ({row['train_s']:.0f} s)", flush=True)
                rows.append(row)
    return rows


def _check(cfg) -> None:
    import memory_cores

    unknown = [core for core in cfg.cores if core not in memory_cores.registry.names()]
    if unknown:
        raise ValueError(f"unknown core(s) {unknown}; registered: {', '.join(memory_cores.registry.names())}")
    if not cfg.lengths or any(int(length) < 1 for length in cfg.lengths):
        raise ValueError(f"lengths={list(cfg.lengths)} must be corridor lengths >= 1, e.g. lengths=[5,10,20,40]")
    for field in ("episodes", "envs", "eval_episodes"):
        if int(cfg[field]) < 1:
            raise ValueError(f"{field}={cfg[field]} must be >= 1")
