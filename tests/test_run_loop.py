"""The run skeleton every training loop uses (training/run_loop.py), on a toy loop without a model."""
import math
import os
import signal

import pytest
import torch

import memory_cores
from training.run_dir import load_checkpoint, read_metrics
from training.run_loop import Run, StopClock, make_optimizer


def toy_run(run_dir, counters, clock, checkpoint=None, score=None, log_interval_s=0.0):
    checkpoint = checkpoint or {"interval_s": 1000}
    return Run(run_dir, counters, clock, checkpoint, lambda: {"model": {"w": torch.ones(2)}, "config": {}},
               lambda row: f"batch {row['batches']}", log_interval_s=log_interval_s, score=score, quiet=True,
               tensorboard=False)


def train_toy(run, counters, on_step=lambda: None):
    with run:
        done = run.done()
        while not done:
            counters["batches"] += 1
            run.window.add({"items": 3})
            on_step()
            done = run.step(1)
            if run.log_due(done):
                run.log({"batches": counters["batches"], "items": run.window.sums["items"]})
            run.checkpoint_if_due(done)


def test_a_run_stops_at_its_limit_logs_each_window_and_ends_with_a_checkpoint(tmp_path):
    counters = {"batches": 0}
    train_toy(toy_run(tmp_path, counters, StopClock("batches", 5)), counters)
    metrics = read_metrics(tmp_path)
    assert metrics["batches"] == [1, 2, 3, 4, 5] and metrics["items"] == [3] * 5  # a fresh window per row
    saved = load_checkpoint(tmp_path / "checkpoint.pt")  # interval 1000 s: only the one at the end
    assert saved["counters"]["batches"] == 5 and saved["counters"]["seconds"] > 0

    resumed = dict(saved["counters"])
    train_toy(toy_run(tmp_path, resumed, StopClock("batches", 5)), resumed)  # already finished: no step
    assert read_metrics(tmp_path)["batches"] == [1, 2, 3, 4, 5] and resumed["seconds"] >= saved["counters"]["seconds"]


def test_the_seconds_limit_counts_from_the_first_step_when_asked(tmp_path):
    counters = {"batches": 0, "seconds": 1e6}  # a resumed run that trained for long already
    clock = StopClock("batches", None, max_seconds=0.2, seconds_from_first_step=True)
    train_toy(toy_run(tmp_path, counters, clock, log_interval_s=1000), counters)
    assert counters["batches"] > 1
    whole_run = {"batches": 0, "seconds": 1e6}
    (tmp_path / "b").mkdir()
    train_toy(toy_run(tmp_path / "b", whole_run, StopClock("batches", None, max_seconds=0.2)), whole_run)
    assert whole_run["batches"] == 0  # its whole training time is over the limit already


def test_keep_best_keeps_the_checkpoint_with_the_highest_score(tmp_path):
    scores = iter([1.0, 3.0, 2.0, math.nan])
    counters = {"batches": 0}
    score = {"now": math.nan}
    run = toy_run(tmp_path, counters, StopClock("batches", 4), {"interval_s": 0, "keep_last": 2, "keep_best": True},
                  score=lambda: score["now"])
    train_toy(run, counters, on_step=lambda: score.update(now=next(scores)))
    best = load_checkpoint(tmp_path / "checkpoint-best.pt")
    assert best["counters"]["batches"] == 2 and best["counters"]["best_return"] == 3.0
    assert sorted(p.name for p in tmp_path.glob("checkpoint-0*.pt")) == ["checkpoint-000000000003.pt", "checkpoint-000000000004.pt"]


def test_sigterm_saves_a_checkpoint_and_stops_as_ctrl_c_does(tmp_path):
    counters = {"batches": 0}
    previous = signal.getsignal(signal.SIGTERM)
    kill = lambda: os.kill(os.getpid(), signal.SIGTERM) if counters["batches"] == 3 else None  # noqa: E731
    with pytest.raises(KeyboardInterrupt):
        train_toy(toy_run(tmp_path, counters, StopClock("batches", None)), counters, on_step=kill)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["counters"]["batches"] == 3
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is given back


def test_make_optimizer_reads_either_config_section():
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert type(make_optimizer(params, {"optimizer": "adam", "learning_rate": 1e-3, "epsilon": 1e-5},
                               "learner.optimizer")) is torch.optim.Adam
    section = {"name": "adam", "learning_rate": 1e-3, "epsilon": 1e-8, "momentum": 0.9, "weight_decay": 0.0}
    assert type(make_optimizer(params, section)) is torch.optim.AdamW
    rmsprop = make_optimizer(params, {**section, "name": "rmsprop"})
    assert rmsprop.defaults["momentum"] == 0.9 and rmsprop.defaults["alpha"] == 0.99
    with pytest.raises(ValueError, match=r"^learner.optimizer='sgd' is not known; use adam or rmsprop$"):
        make_optimizer(params, {"optimizer": "sgd", "learning_rate": 1e-3, "epsilon": 1e-5}, "learner.optimizer")


def test_cores_build_from_their_config_section_and_aux_losses_count_as_their_means():
    core = memory_cores.build_from_config({"name": "lstm", "hidden_size": 4}, input_size=3)
    assert core.output_size == 4 and core.input_size == 3
    with pytest.raises(ValueError, match="no name"):
        memory_cores.build_from_config({"hidden_size": 4}, input_size=3)
    aux = {"loss_a": torch.tensor([1.0, 3.0]), "loss_b": torch.tensor(0.5), "read_weights": torch.ones(3)}
    assert {k: v.item() for k, v in memory_cores.auxiliary_losses(aux).items()} == {"loss_a": 2.0, "loss_b": 0.5}
    assert memory_cores.auxiliary_loss(aux).item() == 2.5 and memory_cores.auxiliary_loss({"x": torch.ones(1)}) is None


def test_a_resumed_run_drops_the_rows_logged_after_its_checkpoint(tmp_path):
    counters = {"batches": 0}
    train_toy(toy_run(tmp_path, counters, StopClock("batches", 5)), counters)  # rows 1..5, checkpoint at 5
    stopped_after_row_5 = {**counters, "batches": 3}  # as if the last checkpoint was at batch 3
    train_toy(toy_run(tmp_path, stopped_after_row_5, StopClock("batches", 6)), stopped_after_row_5)
    assert read_metrics(tmp_path)["batches"] == [1, 2, 3, 4, 5, 6]  # 4 and 5 logged once, by the resumed run
