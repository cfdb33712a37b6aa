"""The ``memrl`` command line: one sub-command per job, each taking Hydra overrides.

    memrl train      core=sam env=select_nonmatching_object   # IMPALA on Ray
    memrl eval       checkpoint=runs/<run>/checkpoint.pt episodes=100
    memrl plot       run_dir=[runs/a,runs/b]                   # seeds of one setting: a band per setting
    memrl sweep      core=lstm,sam seed=range(5) env=tmaze      # the grid's runs as Ray Tune trials
    memrl report     runs/<sweep> threshold=0.9                 # scores over seeds with 95% CIs
    memrl supervised task=babi core=sdnc
    memrl bench      <name> key=value ...

Bad input stops with one line on stderr and exit status 2.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

USAGE = __doc__.split("\n\n")[1]


def cmd_train(overrides: list[str]) -> int:
    from agents import Agent  # noqa: F401  (imports torch once, before Ray workers fork)

    from .config import compose_or_resume
    from .run_dir import new_run_dir
    from .unroll import resolve_unroll_length

    cfg, run_dir, checkpoint = compose_or_resume(overrides, "train", ("core", "env", "agent"), "core/env/agent")
    resolve_unroll_length(cfg)  # null: the env config's T (both backends)
    if cfg.get("backend", "memrl") != "memrl":
        from .rllib_backend import train_from_cli

        return train_from_cli(cfg, run_dir)
    from .impala import train
    from .prepare import prepare

    parts = prepare(cfg, checkpoint)  # bad input stops here and leaves no run folder behind
    run_dir = run_dir or new_run_dir(cfg, f"{cfg['core']['name']}-{cfg['env']['name'].split('/')[-1]}")
    print(f"run folder: {run_dir}", flush=True)
    train(cfg, run_dir, checkpoint, parts=parts)
    print(f"done; checkpoint: {run_dir / 'checkpoint.pt'}")
    return 0


def cmd_eval(overrides: list[str]) -> int:
    from evaluation.evaluate import evaluate

    from .config import compose, override_value
    from .supervised.cli import evaluate_checkpoint, is_supervised_checkpoint

    if is_supervised_checkpoint(override_value(overrides, "checkpoint")):
        return evaluate_checkpoint(overrides)

    cfg = compose("eval", overrides)
    if not cfg["checkpoint"]:
        raise ValueError("eval needs checkpoint=runs/<run>/checkpoint.pt")
    summary = evaluate(
        cfg["checkpoint"], cfg["episodes"], cfg["seed"], cfg["out"], cfg["envs"],
        record=cfg["record"], record_path=cfg["record_path"], record_max_steps=cfg["record_max_steps"],
        greedy=cfg["greedy"],
    )
    print(
        f"{summary['episodes']} episodes ({summary['policy']} actions): return {summary['mean_return']:.2f} ± {summary['std_return']:.2f}, "
        f"success rate {summary['success_rate']:.3f}; per-episode CSV: {summary['csv']}"
    )
    if "gif" in summary:
        print(f"recorded episode (return {summary['gif_return']:.2f}, {summary['gif_frames']} frames): {summary['gif']}")
    return 0


def cmd_supervised(overrides: list[str]) -> int:
    from .supervised.cli import run_supervised

    return run_supervised(overrides)


def cmd_plot(overrides: list[str]) -> int:
    from evaluation.plot import plot_runs

    from .config import compose

    cfg = compose("plot", overrides)
    run_dirs = cfg["run_dir"]
    if not run_dirs:
        raise ValueError("plot needs run_dir=runs/<run> (or run_dir=[runs/a,runs/b])")
    run_dirs = [run_dirs] if isinstance(run_dirs, str) else list(run_dirs)
    out = plot_runs(run_dirs, cfg["out"], cfg["metric"], cfg["title"], cfg["statistic"])
    print(f"wrote {out}")
    return 0


def cmd_sweep(overrides: list[str]) -> int:
    """``memrl sweep core=lstm,sam seed=range(5) ...``: the grid's runs as Ray Tune trials (training/sweep.py)."""
    from .sweep import expand_suite, parse, sweep

    if not overrides:
        raise ValueError("sweep needs a grid, e.g. memrl sweep core=lstm,sam seed=range(3) env=tmaze")
    parts = [(part, parse(argv), settings) for part, argv, settings in expand_suite(overrides)]  # all checked first
    rows = []
    for part, (options, trials), settings in parts:
        sweep_dir, part_rows = sweep(options, trials)
        rows += part_rows
        print(f"sweep folder: {sweep_dir}; one row per trial: {sweep_dir / 'sweep.csv'}")
        if part is not None:
            print(f"part {part}: memrl report {sweep_dir} metric={settings.get('metric', 'mean_return')} "
                  f"baseline=core.name=feedforward optimum={settings.get('optimum')}")
        if any(r["status"] not in ("finished", "error") for r in part_rows):
            break  # interrupted (Ctrl-C, SIGTERM): the suite's later parts wait for the same command too
    failed = [r for r in rows if r["status"] == "error"]
    unfinished = [r for r in rows if r["status"] != "finished"]
    if failed:
        print(f"memrl sweep: error: {len(failed)} of {len(rows)} trials failed (first: {failed[0]['error']}); "
              "see sweep.csv; the same command retries them", file=sys.stderr)
        return 1
    if unfinished:
        print(f"memrl sweep: interrupted: {len(unfinished)} of {len(rows)} trials unfinished; "
              "run the same command to continue", file=sys.stderr)
        return 130
    print(f"all {len(rows)} trials finished; scores with CIs: memrl report <sweep folder>")
    return 0


def cmd_report(overrides: list[str]) -> int:
    """``memrl report <sweep> [<sweep> ...] [key=value ...]``: grouped final scores and MMER with CIs -> markdown + CSV."""
    import csv

    from evaluation.aggregate import report
    from evaluation.plot import expand_run_dirs

    from .config import compose
    from .supervised.tasks.base import markdown_table

    paths = [a for a in overrides if "=" not in a]  # `memrl report <sweep> [<sweep> ...]`: compared as one set of runs
    if paths:
        overrides = [f"run_dir=[{','.join(paths)}]", *(a for a in overrides if "=" in a)]
    # A baseline names a group, e.g. baseline=core.name=feedforward: quoted, so Hydra takes its "=" as text.
    overrides = [f"baseline='{a.split('=', 1)[1]}'" if a.startswith("baseline=") and a.count("=") > 1 and "'" not in a
                 else a for a in overrides]
    cfg = compose("report", overrides)
    run_dirs = cfg["run_dir"]
    if not run_dirs:
        raise ValueError("report needs a sweep or a folder of runs: memrl report runs/<sweep>")
    run_dirs = [run_dirs] if isinstance(run_dirs, str) else list(run_dirs)
    rows, pairs = report(expand_run_dirs(run_dirs), cfg["metric"], cfg["statistic"], cfg["threshold"], cfg["reps"],
                         cfg["baseline"], cfg["optimum"])
    out = Path(cfg["out"] or Path(run_dirs[0]) / "report")
    out.parent.mkdir(parents=True, exist_ok=True)
    text = (f"Final score: {cfg['statistic']} over runs of the mean `{cfg['metric']}` in the last 10% of frames; "
            f"MMER: {cfg['statistic']} of each run's best logged `{cfg['metric']}`; 95% stratified bootstrap CIs "
            f"({cfg['reps']} resamples, rliable).\n\n" + markdown_table(rows) + "\n")
    if pairs:
        text += "\nProbability that a run of `group` ends above a run of `versus` (final score):\n\n" + markdown_table(pairs) + "\n"
    (out.parent / f"{out.name}.md").write_text(text)
    for suffix, table in (("", rows), ("_pairs", pairs)):
        if table:
            with open(out.parent / f"{out.name}{suffix}.csv", "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(table[0]))
                writer.writeheader()
                writer.writerows(table)
    print(text)
    print(f"wrote {out}.md and {out}.csv")
    return 0


def cmd_bench(overrides: list[str]) -> int:
    from evaluation import benchmarks

    from .config import compose
    from .supervised.tasks.base import markdown_table

    if not overrides or "=" in overrides[0]:
        raise ValueError(f"bench needs a name: memrl bench <name>; available: {', '.join(benchmarks.names())}")
    name, overrides = overrides[0], overrides[1:]
    run = benchmarks.get(name)
    # configs/bench/<name>.yaml composes under the package "bench"; users write plain key=value.
    cfg = compose(f"bench/{name}", [f"bench.{o}" for o in overrides])["bench"]
    from omegaconf import OmegaConf

    rows = run(OmegaConf.create(cfg))
    print(markdown_table(rows) or "(no rows)")
    out = Path(cfg.get("out") or f"bench-{name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "train": cmd_train,
    "eval": cmd_eval,
    "supervised": cmd_supervised,
    "plot": cmd_plot,
    "report": cmd_report,
    "sweep": cmd_sweep,
    "bench": cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(f"usage:\n{USAGE}\n\ncommands: {', '.join(COMMANDS)}")
        return 0
    command, overrides = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"memrl: error: unknown command {command!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    from agents.encoders import UnsupportedSpaceError  # noqa: F401  (a ValueError)

    from .run_dir import CheckpointError  # noqa: F401  (a ValueError)
    from .run_loop import stop_on_signals

    try:
        with stop_on_signals():
            return COMMANDS[command](overrides)
    except (ValueError, FileNotFoundError, NotADirectoryError, ImportError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"memrl {command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"memrl {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
