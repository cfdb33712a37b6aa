"""``memrl plot``: return curves of one or several runs in one PNG (x: env frames)."""
from __future__ import annotations

from pathlib import Path

from training.run_dir import load_config, read_metrics


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


def plot_runs(run_dirs: list[str], out: str | None = None, metric: str = "mean_return", title: str | None = None) -> Path:
    """One line per run, labelled by its core (and run name where cores repeat); returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = []
    for run_dir in expand_run_dirs(run_dirs):
        config, metrics = load_config(Path(run_dir)), read_metrics(run_dir)
        if metric not in metrics:
            raise ValueError(f"metric {metric!r} is not in {run_dir}/metrics.csv; columns: {', '.join(metrics)}")
        runs.append((run_dir, config, metrics))
    cores = [config["core"]["name"] for _, config, _ in runs]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (run_dir, config, metrics), core in zip(runs, cores):
        name = config.get("name") or Path(run_dir).name
        label = core if cores.count(core) == 1 else name if name.startswith(core) else f"{core} ({name})"
        ax.plot(metrics["frames"], metrics[metric], label=label)
    ax.set_xlabel("env frames")
    ax.set_ylabel(metric.replace("_", " "))
    envs_seen = sorted({config["env"]["name"] for _, config, _ in runs})
    ax.set_title(title or ", ".join(envs_seen))
    ax.grid(alpha=0.3)
    if len(runs) > 3:  # outside the axes, where it cannot hide the curves
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
        fig.set_size_inches(9.5, 4.5)
    else:
        ax.legend()
    fig.tight_layout()
    out_path = Path(out) if out else runs[0][0] / "returns.png"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path
