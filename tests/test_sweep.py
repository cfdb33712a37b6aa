"""memrl sweep: a grid of runs as Ray Tune trials, interrupted and continued by the same command."""
from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training import cli
from training.run_dir import load_checkpoint, read_metrics
from training.sweep import parse

# Two trials, one after the other: a short one, then one long enough to be interrupted in the middle.
GRID = ["total_frames=1000,10000", "env=counter", "core.hidden_size=8", "agent.encoder_size=8", "actors.num_actors=0",
        "actors.envs_per_actor=2", "actors.unroll_length=5", "learner.batch_unrolls=1",
        "tensorboard=false", "checkpoint.interval_s=0", "log.interval_s=0", "sweep.max_concurrent=1"]


def sweep_command(root: Path) -> list[str]:
    return [sys.executable, "-m", "training.cli", "sweep", *GRID, f"sweep.root={root}"]


def rows(sweep_dir: Path) -> dict[str, dict[str, str]]:
    with open(sweep_dir / "sweep.csv") as f:
        return {row["total_frames"]: row for row in csv.DictReader(f)}


def test_the_grid_is_the_product_of_the_swept_values_and_names_each_trial():
    options, trials = parse(["core=lstm,feedforward", "seed=range(3)", "env=counter", "sweep.max_concurrent=2"])
    assert [t.name for t in trials][:2] == ["core=lstm,seed=0", "core=lstm,seed=1"] and len(trials) == 6
    assert trials[4].swept == {"core": "feedforward", "seed": "1"} and "env=counter" in trials[4].overrides
    assert options["max_concurrent"] == 2 and options["name"].startswith("sweep-")
    # The same grid names the same sweep folder, whatever the order of its overrides.
    assert parse(["env=counter", "sweep.max_concurrent=2", "seed=range(3)", "core=lstm,feedforward"])[0]["name"] == options["name"]


@pytest.mark.parametrize("argv, expected", [
    (["core=lstm,nope", "seed=0"], "nope"),
    (["core.hiden_size=3,4"], "hiden_size"),
    (["seed=range(0)"], "sweeps over no values"),
    (["sweep.colour=red", "seed=0,1"], "unknown sweep option"),
    (["seed=0,1", "run_root=x"], "sweep.root"),
])
def test_a_bad_grid_is_one_line_and_creates_nothing(argv, expected, tmp_path, capsys):
    assert cli.main(["sweep", *argv, f"sweep.root={tmp_path / 'sweeps'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "sweeps").exists()


def test_an_interrupted_sweep_is_continued_by_the_same_command(tmp_path):
    root = tmp_path / "sweeps"
    proc = subprocess.Popen(sweep_command(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(root.glob("sweep-*/total_frames=10000/checkpoint.pt")) and proc.poll() is None:
        time.sleep(0.1)  # trials run one at a time: the short one has finished once the long one has a checkpoint
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=300)
    (sweep_dir,) = root.iterdir()
    before = rows(sweep_dir)
    assert before["1000"]["status"] == "finished", output[-2000:]
    assert before["10000"]["status"] == "unfinished" and proc.returncode == 130, output[-2000:]
    first_metrics = (sweep_dir / "total_frames=1000" / "metrics.csv").read_text()
    interrupted_at = load_checkpoint(sweep_dir / "total_frames=10000" / "checkpoint.pt")["counters"]["frames"]

    again = subprocess.run(sweep_command(root), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    after = rows(sweep_dir)
    assert after["1000"]["status"] == after["10000"]["status"] == "finished"
    assert (sweep_dir / "total_frames=1000" / "metrics.csv").read_text() == first_metrics  # kept, not run again
    frames = read_metrics(sweep_dir / "total_frames=10000")["frames"]
    # Continued, not restarted, and rows logged after the last checkpoint were dropped before being logged again.
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    assert 0 < interrupted_at < 10000 and frames[-1] >= 10000


def test_an_interrupted_suite_part_stops_the_suite(monkeypatch, tmp_path, capsys):
    import training.sweep

    parts_run = []

    def interrupted_sweep(options, trials):
        parts_run.append(options)
        return tmp_path, [{"status": "unfinished"}]  # what sweep() returns after Ctrl-C

    monkeypatch.setattr(training.sweep, "sweep", interrupted_sweep)
    code = cli.main(["sweep", "suite=memory", "suite.parts=[tmaze,repeat_previous]", "core=lstm", "seed=0",
                     f"sweep.root={tmp_path}"])
    assert code == 130 and len(parts_run) == 1  # the second part is left for the same command
