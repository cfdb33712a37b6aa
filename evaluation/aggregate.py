"""Aggregates over seeds: runs grouped by their config, curves and scores with bootstrap confidence intervals.

A sweep (or any folder of runs) is grouped by every config value that differs between its runs,
except the ones that only name or seed a run (``IGNORED``). Within a group the runs are seeds of one
setting. Statistics come from ``rliable`` (Agarwal et al. 2021, "Deep RL at the Edge of the
Statistical Precipice"): the interquartile mean (IQM) or the mean over runs, and 95% stratified
bootstrap confidence intervals (with one task, the runs are the only stratum).

Scores per run, from its ``metrics.csv`` (one row per log interval; ``metric`` is a column, by
default ``mean_return``, the mean return of the episodes in the logging window):

- final score: the mean of ``metric`` over the rows in the last 10% of the run's frames;
- MMER (POPGym's "max-mean episodic reward"): the largest value of ``metric`` over the run.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from training.run_dir import load_config, read_metrics
from training.unroll import resolve_unroll_length

# Config keys that say where a run is written or which seed it drew: never a group difference.
IGNORED = ("seed", "name", "run_root", "resume", "checkpoint", "log", "tensorboard", "ray.address",
           # how a run executes, not what it learns (fused_unroll: the same unrolls, tested)
           "actors.fused_unroll", "learner.num_threads", "actors.max_actor_restarts", "actors.max_env_errors")
CONFIDENCE = 0.95
FINAL_FRACTION = 0.1  # the final score averages the last 10% of a run's frames


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    metrics: dict[str, list[float]]


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"core.name": "lstm", ...} with lists as tuples (hashable)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = tuple(value) if isinstance(value, list) else value
    return flat


COMPONENT_OPTIONS = ("core.", "env.")  # options of the named core / env: implied by its name


def _ignored(key: str) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in IGNORED)


# What a run saved before an option existed ran with (the option's first default), so such runs group
# with newer runs of the same setting instead of as "None".
BEFORE_OPTIONS_EXISTED = {"learner.loss.advantage_normalisation": "sigma"}


def load_runs(paths: list[Path]) -> list[Run]:
    return [Run(Path(p), with_settings_that_ran(load_config(Path(p))), read_metrics(p)) for p in paths]


def with_settings_that_ran(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as the run ran it: ``actors.unroll_length`` resolved as training resolves it (null: the env
    config's, else 20; the env's suggestion dropped), so a run saved with null and one saved with the same T
    written out group together; options newer than the run filled in from ``BEFORE_OPTIONS_EXISTED``; and
    ``advantage_rms_step_size`` dropped where the advantage is not normalised by its RMS (it does nothing there)."""
    if isinstance(config.get("actors"), dict) and isinstance(config.get("env"), dict):
        resolve_unroll_length(config)
        config["env"].pop("unroll_length", None)
    for key, value in BEFORE_OPTIONS_EXISTED.items():
        *sections, name = key.split(".")
        section = config
        for part in sections:
            section = section.get(part) if isinstance(section, dict) else None
        if isinstance(section, dict):
            section.setdefault(name, value)
    loss = config.get("learner", {}).get("loss", {}) if isinstance(config.get("learner"), dict) else {}
    if loss.get("advantage_normalisation") != "rms" and "advantage_rms_step_size" in loss:
        loss["advantage_rms_step_size"] = None
    return config


def group_runs(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs grouped by the config values that differ between them (seed and bookkeeping excluded).

    The label names the differing values, e.g. ``core.name=lstm, env.name=memrl/tmaze``; with no
    difference at all every run is one group labelled by its core. An option only some runs' core or
    env has (``core.num_layers`` of the lstm) is implied by ``core.name`` / ``env.name`` unless it
    differs between runs of the same core / env (``core.age_embedding`` true and false for hopfield);
    then it counts, and only runs that have it name it. Any other key that some runs lack (an option
    added after they ran) counts, as None where it is missing, so runs of a new option never pool with
    older ones.
    """
    flats = [flatten(r.config) for r in runs]
    every = set.union(*(set(f) for f in flats))
    own = {k for k in every - set.intersection(*(set(f) for f in flats)) if k.startswith(COMPONENT_OPTIONS)}
    keys = sorted(k for k in every if not _ignored(k) and (k not in own or _differs_within_component(k, flats)))
    differing = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]
    groups: dict[str, list[Run]] = {}
    for run, flat in zip(runs, flats):
        label = ", ".join(f"{k}={flat.get(k)}" for k in differing if k in flat or k not in own)
        groups.setdefault(label or str(flat.get("core.name", "runs")), []).append(run)
    return groups


def _differs_within_component(key: str, flats: list[dict[str, Any]]) -> bool:
    """Whether a core (env) option takes more than one value among runs of the same core (env)."""
    component = "core.name" if key.startswith("core.") else "env.name"
    values: dict[Any, set[str]] = {}
    for flat in flats:
        if key in flat:
            values.setdefault(flat.get(component), set()).add(repr(flat[key]))
    return any(len(v) > 1 for v in values.values())


def _column(run: Run, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(frames, values) of ``metric`` with the rows where it is NaN (no episode yet) left out."""
    if metric not in run.metrics:
        raise ValueError(f"metric {metric!r} is not in {run.path}/metrics.csv; columns: {', '.join(run.metrics)}")
    frames, values = np.asarray(run.metrics["frames"], float), np.asarray(run.metrics[metric], float)
    keep = ~np.isnan(values)
    return frames[keep], values[keep]


def final_score(run: Run, metric: str = "mean_return") -> float:
    """Mean of ``metric`` over the rows in the last ``FINAL_FRACTION`` of the run's frames (NaN if none)."""
    frames, values = _column(run, metric)
    if not len(values):
        return math.nan
    return float(values[frames >= (1 - FINAL_FRACTION) * frames[-1]].mean())


def mmer(run: Run, metric: str = "mean_return") -> float:
    """POPGym's max-mean episodic reward: the best logged mean of ``metric`` over the run (NaN if none)."""
    _, values = _column(run, metric)
    return float(values.max()) if len(values) else math.nan


def statistic(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The aggregate over runs of each column of a [runs, K] score matrix: 'iqm' or 'mean'.

    With one task these are rliable's ``aggregate_iqm`` and ``aggregate_mean`` of each column (IQM:
    scipy's 25%-trimmed mean), computed for all K columns in one call (a curve has K = 50 points)."""
    from scipy.stats import trim_mean

    stats = {"iqm": lambda x: trim_mean(x, 0.25, axis=0), "mean": lambda x: x.mean(0)}
    if name not in stats:
        raise ValueError(f"statistic={name!r} is not known; use iqm or mean")
    return stats[name]


def interval(scores: np.ndarray, stat: str = "iqm", reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(point estimate, CI low, CI high) of ``stat`` over runs; ``scores`` [runs] or [runs, K] for K
    quantities at once (then each is a [K] array). Stratified bootstrap with ``reps`` resamples."""
    from rliable import library

    scores = np.asarray(scores, float)
    columns = scores[:, None] if scores.ndim == 1 else scores
    # rliable resamples runs within each column (its strata); the statistic is taken per column.
    with seeded_numpy(seed):
        point, bounds = library.get_interval_estimates({"g": columns}, statistic(stat), reps=reps,
                                                       confidence_interval_size=CONFIDENCE)
    low, high = bounds["g"]
    if scores.ndim == 1:
        return float(point["g"][0]), float(low[0]), float(high[0])
    return point["g"], low, high


@contextlib.contextmanager
def seeded_numpy(seed: int):
    """rliable draws its bootstrap resamples from numpy's global generator: seed it, then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def curves(group: list[Run], metric: str, points: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(frames [F], values [runs, F]): each run's curve interpolated onto a common frame grid, from the
    latest first logged frame to the earliest last one (where every run has data)."""
    columns = [_column(run, metric) for run in group]
    if any(len(f) == 0 for f, _ in columns):
        raise ValueError(f"a run of the group has no {metric!r} value yet: {[str(r.path) for r in group]}")
    start, stop = max(f[0] for f, _ in columns), min(f[-1] for f, _ in columns)
    grid = np.linspace(start, stop, points) if stop > start else np.array([stop])
    return grid, np.stack([np.interp(grid, f, v) for f, v in columns])


def probability_of_improvement(x: np.ndarray, y: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """P(X > Y) for a run of X against a run of Y (ties count half), with its 95% bootstrap CI (rliable)."""
    from rliable import library, metrics

    pairs = {"xy": (np.asarray(x, float)[:, None], np.asarray(y, float)[:, None])}
    with seeded_numpy(seed):
        point, bounds = library.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=reps,
                                                       confidence_interval_size=CONFIDENCE)
    low, high = np.ravel(bounds["xy"])
    return float(point["xy"]), float(low), float(high)


def report(run_dirs: list[Path], metric: str = "mean_return", stat: str = "iqm", threshold: float | None = None,
           reps: int = 2000, baseline: str | None = None, optimum: float | None = None
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one row per group, one row per ordered pair of groups) for ``memrl report``.

    Group rows: runs, runs finished (reached their ``total_frames``), final score and MMER each as
    ``stat`` over runs with a 95% CI, and with ``threshold`` the fraction of runs whose final score
    reached it. Pair rows: the probability that a run of one group has a higher final score than a
    run of the other, with its CI.

    With ``baseline`` (a group's label, or a part of exactly one label, e.g. ``core.name=feedforward``)
    and ``optimum``, each run's final score is also normalised, (final - b) / (optimum - b) with b the
    baseline group's mean final score (0 = the baseline, 1 = the optimum; b's own spread is not
    carried into the CI).
    """
    groups = group_runs(load_runs(run_dirs))
    base = None
    if baseline is not None:
        if optimum is None:
            raise ValueError("baseline= needs optimum= (the score that normalises to 1)")
        matches = [label for label in groups if baseline == label or baseline in label.split(", ")]
        if len(matches) != 1:
            raise ValueError(f"baseline={baseline!r} matches {len(matches)} groups; groups: {'; '.join(groups)}")
        base = float(np.mean([final_score(r, metric) for r in groups[matches[0]]]))
        if optimum == base:
            raise ValueError(f"optimum={optimum} equals the baseline's score; nothing to normalise by")
    rows, finals = [], {}
    for label, group in groups.items():
        final = np.array([final_score(r, metric) for r in group])
        best = np.array([mmer(r, metric) for r in group])
        if np.isnan(final).any():
            raise ValueError(f"group {label!r} has runs with no {metric!r} value yet: "
                             f"{[str(r.path) for r, f in zip(group, final) if np.isnan(f)]}")
        finals[label] = final
        (f, f_low, f_high), (m, m_low, m_high) = (interval(x, stat, reps) for x in (final, best))
        row = {"group": label, "runs": len(group),
               "finished": sum(r.metrics["frames"][-1] >= r.config.get("total_frames", math.inf) for r in group),
               f"final_{stat}": f, "final_ci_low": f_low, "final_ci_high": f_high,
               f"mmer_{stat}": m, "mmer_ci_low": m_low, "mmer_ci_high": m_high}
        if threshold is not None:
            row["fraction_reaching_threshold"] = float((final >= threshold).mean())
        if base is not None:
            row[f"normalised_{stat}"], row["normalised_ci_low"], row["normalised_ci_high"] = interval(
                (final - base) / (optimum - base), stat, reps)
        rows.append(row)
    pairs = [{"group": a, "versus": b, **dict(zip(("p_improvement", "ci_low", "ci_high"),
                                                   probability_of_improvement(finals[a], finals[b], reps)))}
             for a in finals for b in finals if a != b]
    return rows, pairs

