"""``memrl bench soak``: does a long run leak memory or slow down?

For each core, trains IMPALA (Ray actors) for ``duration_s`` seconds (from the first unrolls; actor
start-up not counted) and, at
every log interval, samples the resident set size (``VmRSS`` from
``/proc/<pid>/status``, so Linux only) of the learner process and of every
actor process, plus the run's frames/s. After ``warmup_s``, a least-squares
line through each memory series gives its slope in MiB per minute (flat memory:
near 0), and frames/s in the last quarter of the run is compared with the first
quarter (no decay: a ratio near 1). Actor RSS is the sum over the actors alive
at each sample; a replaced actor shows as a step, counted in ``actor_restarts``.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from . import benchmark


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB (nan if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def slope_per_min(seconds: list[float], values: list[float]) -> float:
    """Least-squares slope of values against time, per minute (nan with fewer than 3 finite points)."""
    t, v = np.asarray(seconds, float), np.asarray(values, float)
    keep = np.isfinite(v)
    if keep.sum() < 3:
        return float("nan")
    return float(np.polyfit(t[keep] / 60.0, v[keep], 1)[0])


def run_config(cfg, core: str) -> dict:
    """The ``memrl train`` config of one soak run: the core's own yaml sizes, the bench's actor settings."""
    from training.config import compose

    overrides = [
        f"core={core}", f"env={cfg.env}", f"actors.num_actors={cfg.num_actors}",
        f"actors.envs_per_actor={cfg.envs_per_actor}", f"actors.unroll_length={cfg.unroll_length}",
        f"learner.batch_unrolls={cfg.batch_unrolls}", "total_frames=1000000000000",
        f"log.interval_s={cfg.sample_interval_s}", "tensorboard=false", f"ray.num_cpus={cfg.num_actors + 1}",
        *cfg.overrides,
    ]
    return compose("train", overrides)


def soak_one(cfg, core: str, run_cfg: dict) -> tuple[dict, list[dict]]:
    import os

    from training import impala

    series: list[dict] = []
    start = time.time()

    def sample(row, actors) -> None:
        pids = [p["pid"] for p in actors.placement() if p] if hasattr(actors, "placement") else []
        actor_rss = [rss_mib(pid) for pid in pids]
        series.append({
            "core": core, "time_s": time.time() - start, "frames": row["frames"], "fps": row["fps"],
            "learner_rss_mib": rss_mib(os.getpid()), "actors_rss_mib": float(np.nansum(actor_rss)) if pids else float("nan"),
            "actors_sampled": int(np.isfinite(actor_rss).sum()), "actor_restarts": row.get("actor_restarts", 0),
        })

    with tempfile.TemporaryDirectory() as tmp:
        impala.train(run_cfg, Path(tmp), quiet=True, time_limit_s=cfg.duration_s, on_log=sample)
    steady = [s for s in series if s["time_s"] >= cfg.warmup_s] or series
    times = [s["time_s"] for s in steady]
    quarter = max(1, len(steady) // 4)
    fps_first = float(np.mean([s["fps"] for s in steady[:quarter]]))
    fps_last = float(np.mean([s["fps"] for s in steady[-quarter:]]))
    row = {
        "core": core, "duration_s": round(series[-1]["time_s"], 1), "samples": len(steady),
        "frames": int(series[-1]["frames"]),
        "learner_rss_start_mib": steady[0]["learner_rss_mib"], "learner_rss_end_mib": steady[-1]["learner_rss_mib"],
        "learner_rss_slope_mib_per_min": slope_per_min(times, [s["learner_rss_mib"] for s in steady]),
        "actors_rss_start_mib": steady[0]["actors_rss_mib"], "actors_rss_end_mib": steady[-1]["actors_rss_mib"],
        "actors_rss_slope_mib_per_min": slope_per_min(times, [s["actors_rss_mib"] for s in steady]),
        "fps_first_quarter": fps_first, "fps_last_quarter": fps_last,
        "fps_last_over_first": fps_last / fps_first if fps_first else float("nan"),
        "actor_restarts": series[-1]["actor_restarts"],
    }
    return row, series


@benchmark("soak")
def run(cfg) -> list[dict]:
    run_cfgs = {core: run_config(cfg, core) for core in cfg.cores}  # bad overrides fail before any run
    rows, everything = [], []
    for core in cfg.cores:
        row, series = soak_one(cfg, core, run_cfgs[core])
        rows.append(row)
        everything += series
    if cfg.series_out:
        Path(cfg.series_out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.series_out).write_text(json.dumps(everything, indent=1) + "\n")
    return rows
