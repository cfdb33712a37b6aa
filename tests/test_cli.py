"""The memrl CLI end to end: a real short Ray run with two actors, resume, eval, plot, bad input."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training import cli
from training.run_dir import load_checkpoint, read_metrics

TINY = ["env=counter", "core.hidden_size=16", "agent.encoder_size=16", "actors.envs_per_actor=4",
        "actors.unroll_length=10", "log.interval_s=0", "checkpoint.interval_s=0", "tensorboard=true"]


def only_run(root: Path) -> Path:
    runs = [p for p in root.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_train_two_ray_actors_then_resume_eval_plot(tmp_path, ray_session, capsys):
    assert cli.main(["train", *TINY, "actors.num_actors=2", "total_frames=1600", f"run_root={tmp_path}"]) == 0
    run = only_run(tmp_path)
    assert {"config.yaml", "metrics.csv", "checkpoint.pt"} <= {p.name for p in run.iterdir()}
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())
    first = load_checkpoint(run / "checkpoint.pt")
    assert first["counters"]["frames"] >= 1600 and first["config"]["core"]["name"] == "lstm"
    assert "frames" in capsys.readouterr().out  # progress lines

    # Resume continues the same run: counters go on, weights start from the checkpoint.
    assert cli.main(["train", f"resume={run}", "total_frames=3200"]) == 0
    assert only_run(tmp_path) == run, "resume must not create a new run folder"
    second = load_checkpoint(run / "checkpoint.pt")
    assert second["counters"]["frames"] >= 3200
    assert second["counters"]["updates"] > first["counters"]["updates"]
    frames = read_metrics(run)["frames"]
    assert frames == sorted(frames) and frames[-1] >= 3200 and min(f for f in frames if f > first["counters"]["frames"]) > first["counters"]["frames"]
    changed = [k for k in first["model"] if not torch.equal(first["model"][k], second["model"][k])]
    assert changed, "resumed training must keep updating the weights"

    assert cli.main(["eval", f"checkpoint={run}/checkpoint.pt", "episodes=5", "envs=2"]) == 0
    lines = (run / "eval.csv").read_text().strip().splitlines()
    assert len(lines) == 6 and lines[0] == "episode,return,length,success,trials"
    assert "5 episodes (sampled actions): return 7.00" in capsys.readouterr().out  # counter env: reward 1 for 7 steps

    assert cli.main(["plot", f"run_dir={run}"]) == 0
    png = run / "returns.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_in_process_training_is_deterministic(tmp_path):
    common = ["train", "env=tmaze", "env.corridor_length=3", "core.hidden_size=16", "agent.encoder_size=16",
              "actors.num_actors=0", "actors.envs_per_actor=4", "actors.unroll_length=8", "total_frames=640",
              "log.interval_s=0", "tensorboard=false"]
    for name in ("a", "b"):
        assert cli.main([*common, f"run_root={tmp_path / name}"]) == 0
    a = load_checkpoint(only_run(tmp_path / "a") / "checkpoint.pt")["model"]
    b = load_checkpoint(only_run(tmp_path / "b") / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


BAD_INPUTS = [
    (["train", "core=nope"], "core"),
    (["train", "env=nope"], "env"),
    (["train", "core.hiden_size=3"], "hiden_size"),
    (["train", "total_frames==3"], ""),
    (["train", "env.name=NoSuchEnv-v9"], "unknown env"),
    (["train", "env=cartpole", "env.name=memrl-test/TextObservation-v0"], "not supported by the encoder"),
    (["train", "env.room_size=0"], "room_size"),
    (["train", "learner.optimizer=sgdx", "total_frames=1", "actors.num_actors=0"], "optimizer"),
    (["eval", "checkpoint=does/not/exist.pt"], "does not exist"),
    (["eval"], "checkpoint="),
    (["plot"], "run_dir="),
    (["bench"], "bench needs a name"),
    (["frobnicate"], "unknown command"),
]


@pytest.mark.parametrize("argv, expected", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_nonzero_and_leaves_no_run_folder(argv, expected, tmp_path, capsys):
    argv = argv + ([f"run_root={tmp_path}"] if argv[0] == "train" else [])
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert expected in err
    assert not any(tmp_path.iterdir()), "bad input must not leave a run folder"


def test_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint at all")
    assert cli.main(["eval", f"checkpoint={bad}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "corrupt" in err
    assert bad.read_bytes() == b"not a checkpoint at all"


def test_console_script_reports_bad_input_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "training.cli", "train", "core=nope", f"run_root={tmp_path}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_non_finite_losses_are_skipped_then_stop_the_run_with_one_line(tmp_path, capsys):
    argv = ["train", "env=counter", "core.hidden_size=8", "agent.encoder_size=8", "actors.num_actors=0",
            "actors.envs_per_actor=2", "actors.unroll_length=4", "learner.loss.reward_scale=nan",
            "learner.max_nonfinite_updates=3", "total_frames=100000", f"run_root={tmp_path}", "tensorboard=false"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "3 updates in a row had a non-finite loss" in err
    assert not (only_run(tmp_path) / "checkpoint.pt").exists(), "no checkpoint may be written from bad weights"


def test_bench_throughput_smoke(tmp_path, capsys):
    out = tmp_path / "throughput.json"
    argv = ["bench", "throughput", "env=counter", "num_actors=1", "envs_per_actor=2", "unroll_length=5",
            "batch_unrolls=1", "hidden_size=8", "frames=3000", "warmup_s=0", "rllib=false", "limit_s=0.5", f"out={out}"]
    assert cli.main(argv) == 0
    import json

    rows = {row["system"]: row for row in json.loads(out.read_text())}
    assert list(rows) == ["memrl", "env_only", "model_only"] and rows["memrl"]["frames_per_s"] > 0
    assert rows["memrl"]["measured_frames"] > 0
    model = rows["model_only"]
    assert model["frames_per_s"] == min(model["inference_frames_per_s"], model["learner_frames_per_s"]) > 0
    limit = min(rows["env_only"]["frames_per_s"], model["frames_per_s"])
    assert rows["memrl"]["fraction_of_limit"] == pytest.approx(rows["memrl"]["frames_per_s"] / limit)
    assert "frames_per_s" in capsys.readouterr().out


def test_bench_throughput_variants_alternate_and_summarise(tmp_path):
    out = tmp_path / "ab.json"
    argv = ["bench", "throughput", "env=counter", "num_actors=0", "envs_per_actor=2", "unroll_length=5",
            "batch_unrolls=1", "hidden_size=8", "frames=4000", "warmup_s=0", "repeats=2", f"out={out}",
            'variants={fused:[],per_step:["actors.fused_unroll=false","learner.num_threads=1"]}']
    assert cli.main(argv) == 0
    import json

    rows = json.loads(out.read_text())
    runs = [(r["variant"], r["repeat"]) for r in rows if r["system"] == "memrl"]
    assert runs == [("fused", 0), ("per_step", 0), ("fused", 1), ("per_step", 1)]
    assert all(len(r["load_average_before"]) == 3 for r in rows if r["system"] == "memrl")
    summary = {r["variant"]: r for r in rows if r["system"] == "summary"}
    assert summary["fused"]["median_ratio_to_fused"] == 1.0
    speed = {(r["variant"], r["repeat"]): r["frames_per_s"] for r in rows if r["system"] == "memrl"}
    ratios = sorted(speed[("per_step", i)] / speed[("fused", i)] for i in range(2))
    assert summary["per_step"]["median_ratio_to_fused"] == pytest.approx(sum(ratios) / 2)
    assert (summary["per_step"]["min_ratio"], summary["per_step"]["max_ratio"]) == pytest.approx(tuple(ratios))
