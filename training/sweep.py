"""``memrl sweep``: a grid of ordinary memrl runs, run as Ray Tune trials.

    memrl sweep core=lstm,sam seed=range(5) env=tmaze total_frames=200000 sweep.max_concurrent=2

The overrides use Hydra's multirun syntax (``a,b`` lists, ``range(n)``, ``range(a,b)``); the grid is
their Cartesian product. Each trial is one ``memrl train`` run with its own run folder
(``<sweep>/<trial>/``: config.yaml, metrics.csv, checkpoints), so ``memrl eval``, ``plot`` and
``report`` work on it, and ``memrl report <sweep>`` / ``memrl plot run_dir=<sweep>`` pool the seeds.

Ray Tune schedules the trials: each reserves its learner and its actors as one placement group
(``tune.PlacementGroupFactory``: a bundle of one CPU for the learner, or its GPU with ``device=cuda``,
and one of ``actors.cpus_per_actor`` per actor), so trials pack onto the embedded cluster or an
existing one (``ray.address=auto``) without oversubscribing it; a trial with
``actors.num_actors=0`` takes one CPU, so two pack on 2 cores. ``sweep.max_concurrent`` caps the
trials running at once.

The sweep folder's name comes from the grid (``sweep-<hash>``, or ``sweep.name``), so running the same
command again (after Ctrl-C, SIGTERM or a lost node) continues it: finished trials are kept,
unfinished ones resume from their last checkpoint. ``sweep.csv`` has one row per trial: its values
of the swept keys, status, frames, final metrics and run folder.

Each trial reports its logged rows to Tune as it trains (at most one a second), so Tune's table shows
progress, and a trial stops at its next row when Tune stops it (Ctrl-C on the sweep): Tune asks a
function trainable to stop only when it reports.
"""
from __future__ import annotations

import copy
import csv
import hashlib
import itertools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import CONFIG_DIR, ConfigError, compose
from .run_dir import load_checkpoint, read_metrics, save_config

SWEEP_DEFAULTS = {"root": "runs/sweeps", "name": None, "max_concurrent": None}
TUNE_FOLDER = "tune"  # Ray Tune's experiment state inside the sweep folder
FINAL_COLUMNS = ("mean_return", "mean_success", "mean_episode_length", "fps")
REPORT_INTERVAL_S = 1.0  # each report waits for Tune's controller to take it


@dataclass
class Trial:
    name: str  # the folder name: the swept values, e.g. "core=lstm,seed=0"
    swept: dict[str, str]  # swept key -> this trial's value
    overrides: list[str]  # the train overrides of this trial
    config: dict[str, Any]  # its composed train config (checked when the grid is parsed)


def parse(argv: list[str]) -> tuple[dict[str, Any], list[Trial]]:
    """(sweep options, trials) from the command line; one-line ValueErrors for a bad grid."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    options = dict(SWEEP_DEFAULTS)
    grid: list[tuple[str, list[str]]] = []
    swept: list[str] = []  # keys given as a sweep (a,b or range), even of one value
    train_args = []
    for arg in argv:
        if arg.startswith("sweep."):
            key, _, value = arg[len("sweep."):].partition("=")
            if key not in options:
                raise ConfigError(f"unknown sweep option {key!r}; known: {', '.join('sweep.' + k for k in options)}")
            options[key] = None if value in ("", "null") else int(value) if key == "max_concurrent" else value
        else:
            train_args.append(arg)
    try:
        overrides = OverridesParser.create().parse_overrides(train_args)
    except HydraException as error:
        raise ConfigError(f"bad sweep override: {' '.join(str(error).split())}") from None
    for override in overrides:
        key = override.get_key_element()
        if key in ("resume", "run_root", "name"):
            raise ConfigError(f"{key}= is set per trial by the sweep; use sweep.root= and sweep.name= instead")
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.get_value_element_as_str()]
        if not values:
            raise ConfigError(f"{override.input_line!r} sweeps over no values; give at least one")
        grid.append((key, values))
        if override.is_sweep_override():
            swept.append(key)
    trials = []
    for combination in itertools.product(*(values for _, values in grid)):
        chosen = dict(zip((key for key, _ in grid), combination))
        name = ",".join(f"{k}={chosen[k]}" for k in swept) or "run"
        overrides = [f"{k}={v}" for k, v in chosen.items()]
        # Composing every trial's config checks it before anything is created.
        trials.append(Trial(_safe(name), {k: chosen[k] for k in swept}, overrides, compose("train", overrides)))
    if len({t.name for t in trials}) != len(trials):
        raise ConfigError("two trials of the grid have the same settings; list each value once")
    if options["name"] is None:
        digest = hashlib.sha1("\n".join(sorted(train_args)).encode()).hexdigest()[:8]
        options["name"] = f"sweep-{digest}"
    return options, trials


def expand_suite(argv: list[str]) -> list[tuple[str | None, list[str], dict[str, Any]]]:
    """``suite=<name>`` (configs/suite/<name>.yaml) as one sweep per part: (part, sweep argv, part
    settings: metric, optimum). Without ``suite=``: the command itself, one sweep."""
    suite = next((a.split("=", 1)[1] for a in argv if a.startswith("suite=")), None)
    if suite is None:
        return [(None, argv, {})]
    import yaml

    path = CONFIG_DIR / "suite" / f"{suite}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONFIG_DIR / "suite").glob("*.yaml"))
        raise ConfigError(f"unknown suite {suite!r}; known: {', '.join(known)}")
    spec = yaml.safe_load(path.read_text())
    rest = [a for a in argv if not a.startswith(("suite=", "suite.parts="))]
    chosen = next((a.split("=", 1)[1] for a in argv if a.startswith("suite.parts=")), None)
    names = [n.strip() for n in chosen.strip("[]").split(",") if n.strip()] if chosen else list(spec["parts"])
    unknown = [n for n in names if n not in spec["parts"]]
    if unknown:
        raise ConfigError(f"suite {suite!r} has no part(s) {unknown}; parts: {', '.join(spec['parts'])}")
    root = next((a.split("=", 1)[1] for a in rest if a.startswith("sweep.root=")), SWEEP_DEFAULTS["root"])
    sweeps = []
    for name in names:
        part = spec["parts"][name]
        own = [f"core={','.join(spec['cores'])}", f"seed=range({spec['seeds']})", *part["overrides"]]
        given = {a.split("=", 1)[0] for a in rest}
        merged = [a for a in own if a.split("=", 1)[0] not in given] + [a for a in rest if not a.startswith("sweep.")]
        options = [a for a in rest if a.startswith("sweep.") and not a.startswith(("sweep.root=", "sweep.name="))]
        sweeps.append((name, [*merged, *options, f"sweep.root={Path(root) / suite}", f"sweep.name={suite}-{name}"],
                       {k: v for k, v in part.items() if k != "overrides"}))
    return sweeps


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.,=" else "-" for c in name)


def resources(cfg: dict[str, Any]):
    """The placement group of one trial: the learner's bundle, then one per actor."""
    from ray import tune

    learner = {"CPU": 1}
    if str(cfg.get("device", "auto")).startswith("cuda"):
        learner["GPU"] = 1
    actors = cfg["actors"]
    return tune.PlacementGroupFactory([learner] + [{"CPU": actors["cpus_per_actor"]}] * actors["num_actors"])


def run_trial(config: dict[str, Any], run_dir: Path, on_log=None) -> dict[str, float]:
    """One trial: a new run of ``config`` in ``run_dir``, or the run there continued from its checkpoint.
    ``on_log(row, workers)`` is called after every logged row (``impala.train``'s and ``rllib_backend.train``'s)."""
    from .impala import train as train_impala
    from .prepare import prepare
    from .rllib_backend import train as train_rllib

    checkpoint = load_checkpoint(run_dir / "checkpoint.pt") if (run_dir / "checkpoint.pt").is_file() else None
    if checkpoint is not None:
        cfg = checkpoint["config"]
        if checkpoint["counters"].get("frames", 0) >= cfg["total_frames"]:
            return last_row(run_dir)
    else:
        cfg = copy.deepcopy(config)
        cfg["name"], cfg["run_root"] = run_dir.name, str(run_dir.parent)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(run_dir, cfg)
    if cfg.get("backend", "memrl") == "rllib":
        return train_rllib(cfg, run_dir, resume=checkpoint is not None, quiet=True, on_log=on_log)
    return train_impala(cfg, run_dir, checkpoint, quiet=True, parts=prepare(cfg, checkpoint), on_log=on_log)


def last_row(run_dir: Path) -> dict[str, float]:
    try:
        metrics = read_metrics(run_dir)
    except FileNotFoundError:
        return {}
    return {k: v[-1] for k, v in metrics.items() if v}


def numeric(row: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and not math.isnan(v)}


class TuneReporter:
    """``on_log`` for a trial: its rows to Tune; Tune's stop request (which ``tune.report`` delivers as
    SystemExit) becomes a KeyboardInterrupt, so the run saves its checkpoint as on Ctrl-C."""

    def __init__(self, interval_s: float = REPORT_INTERVAL_S):
        self.interval_s, self.last = interval_s, -math.inf

    def __call__(self, row: dict[str, Any], workers=None) -> None:
        from ray import tune

        if time.monotonic() - self.last < self.interval_s:
            return
        self.last = time.monotonic()
        try:
            tune.report(numeric(row))
        except SystemExit:
            raise KeyboardInterrupt from None


def make_trainable(trials: list[Trial], sweep_dir: Path):
    """Tune's function trainable: its config holds only the trial's name, the trial holds the overrides."""
    by_name = {t.name: t for t in trials}

    def trainable(config: dict[str, Any]) -> None:
        from ray import tune

        trial = by_name[config["trial"]]
        try:
            row = run_trial(trial.config, sweep_dir / trial.name, on_log=TuneReporter())
        except KeyboardInterrupt:  # stopped by Tune: the checkpoint is saved, the same command continues it
            return
        tune.report(numeric(row))

    return trainable


def sweep(options: dict[str, Any], trials: list[Trial], quiet: bool = False) -> tuple[Path, list[dict[str, Any]]]:
    """Run (or continue) the sweep that ``parse`` made; returns its folder and sweep.csv's rows."""
    import ray
    from ray import tune

    sweep_dir = (Path(options["root"]) / options["name"]).resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    first = trials[0].config
    started = not ray.is_initialized()
    if started:
        if first["ray"].get("address"):
            ray.init(address=first["ray"]["address"], log_to_driver=not quiet)
        else:
            ray.init(address="local", num_cpus=first["ray"].get("num_cpus"), include_dashboard=False,
                     log_to_driver=not quiet)
    # One resource shape per sweep: Tune takes one trainable; a grid over actor counts needs
    # separate sweeps (its trials would reserve the first trial's placement group).
    trainable = tune.with_resources(make_trainable(trials, sweep_dir), resources(first))
    errors: dict[str, str] = {}
    try:
        tune_dir = sweep_dir / TUNE_FOLDER
        if tune.Tuner.can_restore(str(tune_dir)):  # the same command again: continue the sweep
            tuner = tune.Tuner.restore(str(tune_dir), trainable, resume_unfinished=True, restart_errored=True)
        else:
            tuner = tune.Tuner(
                trainable, param_space={"trial": tune.grid_search([t.name for t in trials])},
                tune_config=tune.TuneConfig(max_concurrent_trials=options["max_concurrent"],
                                            trial_dirname_creator=lambda t: t.config["trial"]),
                run_config=tune.RunConfig(name=TUNE_FOLDER, storage_path=str(sweep_dir), verbose=0 if quiet else 1),
            )
        results = tuner.fit()
        errors = {r.config["trial"]: " ".join(str(r.error).split())[:200] for r in results if r.error}
    finally:
        rows = write_table(sweep_dir, trials, errors)
        if started:
            ray.shutdown()
    return sweep_dir, rows


def write_table(sweep_dir: Path, trials: list[Trial], errors: dict[str, str]) -> list[dict[str, Any]]:
    """sweep.csv: one row per trial (swept values, status, frames, final metrics, run folder)."""
    rows = []
    for trial in trials:
        run_dir = sweep_dir / trial.name
        counters = {}
        if (run_dir / "checkpoint.pt").is_file():
            checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
            counters, total = checkpoint["counters"], checkpoint["config"]["total_frames"]
            status = "finished" if counters.get("frames", 0) >= total else "unfinished"
        else:
            status = "not started" if not run_dir.exists() else "started"
        if trial.name in errors:
            status = "error"
        row = last_row(run_dir)
        rows.append({**trial.swept, "status": status, "frames": counters.get("frames", row.get("frames", 0)),
                     **{k: row.get(k, math.nan) for k in FINAL_COLUMNS}, "run_dir": str(run_dir),
                     "error": errors.get(trial.name, "")})
    path = sweep_dir / "sweep.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows
