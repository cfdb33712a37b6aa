"""``memrl plot``: return curves of one or several runs in one PNG (x: env frames).

Runs that differ only in their seed (a sweep's trials) are drawn as one band per setting: the IQM
or mean over seeds with its 95% bootstrap confidence band (evaluation/aggregate.py); otherwise one
line per run."""
from __future__ import annotations

import textwrap
from pathlib import Path



def expand_run_dirs(paths: list[str]) -> list[Path]:
    """Run folders, where a folder holding several runs (no config.yaml of its own) stands for all of them."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise FileNotFoundError(f"run folder {path} does not exist")
        if (path / "config.yaml").is_file():
            found.append(path)
        else:
            children = sorted(p for p in path.iterdir() if (p / "config.yaml").is_file())
            if not children:
                raise FileNotFoundError(f"{path} is neither a run folder nor a folder of runs (no config.yaml)")
            found += children
    return found


LINE_STYLES = ("-", "--", ":", "-.")
LONG_LABEL = 60  # characters: a legend with a longer label goes below the axes, wrapped


def distinct_styles(count: int) -> list[dict[str, str]]:
    """A colour and a dash per line, no two alike for up to 40 lines: tab10's ten colours solid, then dashed,
    dotted and dash-dotted (matplotlib's default cycle repeats its ten colours, so an 11th group looks like the 1st)."""
    if count > 10 * len(LINE_STYLES):
        raise ValueError(f"{count} groups of runs are too many lines for one plot (at most {10 * len(LINE_STYLES)}); "
                         "plot fewer run folders at a time")
    from matplotlib import colormaps

    colors = colormaps["tab10"].colors
    return [{"color": colors[i % 10], "linestyle": LINE_STYLES[i // 10]} for i in range(count)]


def plot_runs(run_dirs: list[str], out: str | None = None, metric: str = "mean_return", title: str | None = None,
              statistic: str = "iqm") -> Path:
    """One line per run, labelled by its core (and run name where cores repeat), or one band per group
    of runs that differ only in their seed; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .aggregate import curves, group_runs, interval, load_runs

    runs = load_runs(expand_run_dirs(run_dirs))
    for run in runs:
        if metric not in run.metrics:
            raise ValueError(f"metric {metric!r} is not in {run.path}/metrics.csv; columns: {', '.join(run.metrics)}")
    groups = group_runs(runs)
    banded = max(len(group) for group in groups.values()) > 1
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = distinct_styles(len(groups) if banded else len(runs))
    if banded:
        for style, (label, group) in zip(styles, groups.items()):
            grid, values = curves(group, metric)
            point, low, high = interval(values, statistic, reps=1000)
            ax.plot(grid, point, label=f"{label} ({statistic} of {len(group)})", **style)
            ax.fill_between(grid, low, high, color=style["color"], alpha=0.2, linewidth=0)
    else:
        cores = [run.config["core"]["name"] for run in runs]
        for style, run, core in zip(styles, runs, cores):
            name = run.config.get("name") or run.path.name
            label = core if cores.count(core) == 1 else name if name.startswith(core) else f"{core} ({name})"
            ax.plot(run.metrics["frames"], run.metrics[metric], label=label, **style)
    ax.set_xlabel("env frames")
    ax.set_ylabel(metric.replace("_", " ") + (" (95% CI band)" if banded else ""))
    envs_seen = sorted({run.config["env"]["name"] for run in runs})
    ax.set_title(title or ", ".join(envs_seen))
    ax.grid(alpha=0.3)
    lines = ax.get_lines()
    if any(len(line.get_label()) > LONG_LABEL for line in lines):
        # Group labels that name several settings: below the axes, wrapped at the settings' commas.
        for line in lines:
            line.set_label(textwrap.fill(line.get_label(), 2 * LONG_LABEL, break_long_words=False))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize="small")
    elif len(lines) > 3:  # outside the axes, where it cannot hide the curves
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
        fig.set_size_inches(9.5, 4.5)
    else:
        ax.legend()
    fig.tight_layout()
    one_folder = Path(run_dirs[0]) if len(run_dirs) == 1 else None  # a run, or a sweep's folder of runs
    out_path = Path(out) if out else (one_folder or runs[0].path) / "returns.png"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=120, bbox_inches="tight")  # the whole legend, wherever it sits
    plt.close(fig)
    return out_path
