"""The supervised trainer end to end: learning, curriculum, truncated BPTT, streams, resume, eval, bad input."""
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from memory_cores import auxiliary_loss
from training import cli
from training.config import compose
from training.run_dir import load_checkpoint, read_metrics
from training.supervised import report, trainer
from training.supervised.tasks import Batch, Task, register_task
from training.supervised.trainer import run_model, setup, train, train_on_batch

QUIET = ["progress=false", "tensorboard=false", "log.interval_s=0", "checkpoint.interval_s=0", "eval.at_end=false"]
TOY_COPY = ["task=copy", "task.bits=4", "core.hidden_size=32", "optimizer.name=adam", "optimizer.learning_rate=3e-3",
            "batch_size=16", *QUIET]


def only_run(root: Path) -> Path:
    runs = [p for p in root.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.learning
def test_curriculum_advances_on_a_toy_copy_run(tmp_path, margin):
    # Seeds 0-3 reach level 4 after 167-219 batches (docs/testing.md).
    overrides = [*TOY_COPY, "task.curriculum.window=10", "task.curriculum.threshold=3.0", "max_batches=400",
                 "validation.interval_batches=100", f"run_root={tmp_path}"]
    assert cli.main(["supervised", *overrides]) == 0
    metrics = read_metrics(only_run(tmp_path))
    assert metrics["level"][0] == 1
    assert metrics["level"] == sorted(metrics["level"])  # h only ever doubles
    assert {1, 2} <= set(metrics["level"])
    margin("batches to reach level 4 (of 400)", next((b for b, level in zip(metrics["batches"], metrics["level"]) if level >= 4), 401), below=400)
    [row] = report.curriculum_rows([str(only_run(tmp_path))])
    assert row["level_reached"] == metrics["level"][-1] and row["batches"] == 400
    assert row["max_length_steps"] == 2 * (row["level_reached"] + 1) + 1  # copy: T = 2n + 1
    assert 0 < row["s_to_level_2"] <= row["s_to_level_4"] <= row["time_s"]


@pytest.mark.learning
# Batches and learning rate chosen so that seeds 0-3 end at 0.17-0.44 of the first loss (docs/testing.md).
@pytest.mark.parametrize("name, level, batches", [("copy", 2, 300), ("associative_recall", 1, 300), ("priority_sort", 2, 600)])
def test_short_algorithmic_run_lowers_validation_loss(tmp_path, name, level, batches, margin):
    # The curriculum is held at one level so that validation measures one fixed distribution.
    overrides = [f"task={name}", "task.bits=3", f"task.curriculum.start_level={level}", f"task.curriculum.max_level={level}",
                 "core.hidden_size=32", "optimizer.name=adam", "optimizer.learning_rate=1e-2", f"max_batches={batches}",
                 "validation.interval_batches=10", *QUIET, f"run_root={tmp_path}"]
    assert cli.main(["supervised", *overrides]) == 0
    val = [v for v in read_metrics(only_run(tmp_path))["val_loss_bits_per_seq"] if v == v]  # NaN before the first
    margin("final / first validation loss", val[-1] / val[0], below=0.7)


def write_toy_babi(folder: Path, seed: int = 0) -> Path:
    """Two tiny tasks in the bAbI format: where is X (qa1), and a two-word answer (qa8)."""
    generator = torch.Generator().manual_seed(seed)
    pick = lambda items: items[int(torch.randint(len(items), (), generator=generator))]  # noqa: E731
    people, places, things = ["Mary", "John", "Sandra"], ["kitchen", "garden", "office", "hallway"], ["milk", "apple"]
    folder.mkdir(parents=True)
    for split, stories in (("train", 120), ("test", 40)):
        one, eight = [], []
        for _ in range(stories):
            a, b, p, q = pick(people), pick(people), pick(places), pick(places)
            one.append(f"1 {a} went to the {p}.\n2 {b} moved to the {q}.\n3 Where is {b}? \t{q}\t2\n")
            t, u = pick(things), pick(things)
            eight.append(f"1 {a} took the {t}.\n2 {a} got the {u}.\n3 What is {a} carrying?\t{t},{u}\t1 2\n")
        (folder / f"qa1_single-supporting-fact_{split}.txt").write_text("".join(one))
        (folder / f"qa8_lists-sets_{split}.txt").write_text("".join(eight))
    return folder


@pytest.mark.learning
def test_short_babi_run_lowers_loss_and_writes_the_test_table(tmp_path, margin):
    data = write_toy_babi(tmp_path / "data")
    # The lstm finds qa1's retrieval after 300-800 batches depending on the seed and the CPU's kernels
    # (seeds 0-5, three kernel settings: docs/testing.md); 1,500 leaves room for any of them.
    overrides = ["task=babi", f"task.path={data}", "task.validation_fraction=0.1", "core.hidden_size=32",
                 "optimizer.name=adam", "optimizer.learning_rate=1e-2", "batch_size=16", "max_batches=1500",
                 "validation.interval_batches=300", *QUIET, "eval.at_end=true", f"run_root={tmp_path / 'runs'}"]
    untrained = trainer.validate(setup(compose("supervised", overrides)), 32)  # the same seed gives the same weights
    assert cli.main(["supervised", *overrides]) == 0
    run = only_run(tmp_path / "runs")
    metrics = {k: [x for x in v if x == x] for k, v in read_metrics(run).items()}  # rows with a validation
    assert len(metrics["val_loss"]) == 5
    margin("final / untrained validation loss", metrics["val_loss"][-1] / untrained["val_loss"], below=0.5)
    result = json.loads((run / "eval.json").read_text())
    assert [r["task"] for r in result["rows"]] == [1, 8] and [r["questions"] for r in result["rows"]] == [40, 40]
    # qa1 needs memory: answering from the answer-word prior alone leaves 75% error (4 places); judged
    # on the 40 test questions, not the 12 validation ones.
    margin("qa1 test error (%)", next(r for r in result["rows"] if r["task"] == 1)["error_pct"], below=25)
    assert result["summary"]["failed_tasks"] == len(result["summary"]["failed"])
    table = (run / "eval.md").read_text()
    assert "| 1: single-supporting-fact |" in table and "**mean error (%)**" in table

    # memrl eval on the checkpoint gives the same table.
    assert cli.main(["eval", f"checkpoint={run}", f"eval.out={tmp_path / 'again'}"]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["rows"] == result["rows"]
    assert report.main(["babi", f"lstm={run / 'eval.json'}", f"again={tmp_path / 'again.json'}"]) == 0


@pytest.mark.learning
def test_sentence_encoded_babi_trains_and_evaluates_from_its_checkpoint(tmp_path, margin):
    data = write_toy_babi(tmp_path / "data")
    overrides = ["task=babi", f"task.path={data}", "task.encoding=sentence", "task.validation_fraction=0.1",
                 "core=sam", "core.slots=16", "core.controller_size=32", "core.output_size=32", "optimizer.name=adam",
                 "optimizer.learning_rate=1e-2", "batch_size=16", "max_batches=30", "validation.interval_batches=15",
                 *QUIET, "eval.at_end=true", f"run_root={tmp_path / 'runs'}"]
    untrained = trainer.validate(setup(compose("supervised", overrides)), 32)
    assert cli.main(["supervised", *overrides]) == 0
    run = only_run(tmp_path / "runs")
    val_loss = [x for x in read_metrics(run)["val_loss"] if x == x]
    margin("final / untrained validation loss", val_loss[-1] / untrained["val_loss"], below=1)
    result = json.loads((run / "eval.json").read_text())
    assert [r["questions"] for r in result["rows"]] == [40, 40]
    # The checkpoint rebuilds the same sentence-encoded task (input size from the saved word positions).
    assert cli.main(["eval", f"checkpoint={run}", f"eval.out={tmp_path / 'again'}"]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["rows"] == result["rows"]


def test_resume_continues_counters_and_matches_an_uninterrupted_run(tmp_path):
    common = [*TOY_COPY, "task.curriculum.window=5", "task.curriculum.threshold=20", "validation.interval_batches=4"]
    assert cli.main(["supervised", *common, "max_batches=12", f"run_root={tmp_path / 'straight'}"]) == 0
    assert cli.main(["supervised", *common, "max_batches=7", f"run_root={tmp_path / 'split'}"]) == 0
    run = only_run(tmp_path / "split")
    first = load_checkpoint(run / "checkpoint.pt")
    assert first["counters"]["batches"] == 7
    assert cli.main(["supervised", f"resume={run}", "max_batches=12"]) == 0
    assert only_run(tmp_path / "split") == run, "resume must not create a new run folder"
    resumed = load_checkpoint(run / "checkpoint.pt")
    straight = load_checkpoint(only_run(tmp_path / "straight") / "checkpoint.pt")
    assert resumed["counters"]["batches"] == 12 and resumed["counters"]["sequences"] == 12 * 16
    assert resumed["task"] == straight["task"]  # curriculum level and loss window carried over
    assert all(torch.equal(resumed["model"][k], straight["model"][k]) for k in straight["model"])
    assert read_metrics(run)["batches"] == list(range(1, 13))


def test_truncated_bptt_steps_once_per_segment_and_sees_the_whole_sequence():
    cfg = compose("supervised", ["task=copy", "task.bits=3", "core.hidden_size=8", "optimizer.learning_rate=1e-9"])
    parts = setup(cfg)
    batch = parts.task.sample(6, 4, torch.Generator().manual_seed(0))  # T = 2 * 7 + 1 = 15
    whole = run_model(parts.model, batch, parts.device)
    state = parts.model.initial_state(4)
    logits, _, stats = train_on_batch(parts.model, parts.optimizer, parts.task, batch, state, 4, None)
    assert stats["updates"] == 2  # segments [0,4) [4,8) have no answer steps; [8,12) [12,15) do
    assert torch.allclose(logits, whole, atol=1e-5)  # state carried across segments (learning rate ~ 0)


@dataclass
class EchoConfig:
    width: int = 3  # input bits per step


@register_task("test_echo_stream", EchoConfig)
class EchoStream(Task):
    """A stream: each batch continues the last; the target is the previous step's input."""

    stream = True

    def __init__(self, config, seed):
        self.input_size = self.output_size = config.width

    def train_batch(self, generator, batch_size):
        x = torch.randint(0, 2, (5, batch_size, self.input_size), generator=generator).float()
        return Batch(x, torch.zeros_like(x), torch.ones(5, batch_size, dtype=torch.bool))

    def validation_batches(self, batch_size):
        return iter([self.train_batch(torch.Generator().manual_seed(0), batch_size)])


def test_stream_tasks_carry_the_state_between_batches(tmp_path, monkeypatch):
    seen = []
    original = trainer.train_on_batch

    def spy(model, optimizer, task, batch, state, bptt, max_grad_norm):
        seen.append(state.clone())
        out = original(model, optimizer, task, batch, state, bptt, max_grad_norm)
        seen.append(out[1].clone())
        return out

    monkeypatch.setattr(trainer, "train_on_batch", spy)
    for stream in (True, False):
        seen.clear()
        monkeypatch.setattr(EchoStream, "stream", stream)
        cfg = compose("supervised", ["task=copy", "core.hidden_size=8", "max_batches=3", *QUIET])
        cfg["task"] = {"name": "test_echo_stream"}
        train(cfg, tmp_path, setup(cfg), quiet=True)
        starts, ends = seen[0::2], seen[1::2]
        assert (starts[0]["h"] == 0).all()
        for end, start in zip(ends, starts[1:]):
            carried = torch.equal(start["h"], end["h"]) and (start["h"] != 0).any()
            assert carried == stream and ((start["h"] == 0).all() or stream)


def test_the_cores_auxiliary_loss_trains_through_the_trainer(monkeypatch):
    cfg = compose("supervised", ["task=copy", "core=compressive_transformer", "core.d_model=16", "core.n_layers=1",
                                 "core.n_heads=2", "core.mlp_size=16", "core.n_m=4", "core.n_cm=4", "core.compression_rate=2"])
    parts = setup(cfg)
    batch = parts.task.sample(5, 4, torch.Generator().manual_seed(0))
    monkeypatch.setattr(trainer, "loss", lambda task, logits, part: logits.sum() * 0.0)  # only loss_compression is left
    train_on_batch(parts.model, parts.optimizer, parts.task, batch, parts.model.initial_state(4), 0, None)
    with_grad = {n for n, p in parts.model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad and all(n.startswith("core.") for n in with_grad)


def test_auxiliary_losses_are_added_and_diagnostics_are_not():
    aux = {"loss_compression": torch.tensor([1.0, 3.0]), "loss_other": torch.tensor(0.5), "read_weights": torch.ones(3)}
    assert auxiliary_loss(aux).item() == pytest.approx(2.5)
    assert auxiliary_loss({"read_weights": torch.ones(3)}) is None


def test_eval_measures_generalisation_beyond_the_trained_level(tmp_path, capsys):
    assert cli.main(["supervised", *TOY_COPY, "max_batches=3", f"run_root={tmp_path}"]) == 0
    run = only_run(tmp_path)
    assert cli.main(["eval", f"checkpoint={run / 'checkpoint.pt'}", "eval.levels=[1,8]", "eval.batches=2"]) == 0
    rows = json.loads((run / "eval.json").read_text())["rows"]
    assert [(r["level"], r["size"], r["steps"]) for r in rows] == [(1, 2, 5), (8, 9, 19)]
    assert rows[1]["chance_bit_errors_per_seq"] == 9 * 4 / 2 and rows[1]["trained_level"] == 1
    assert "| level | size | steps |" in capsys.readouterr().out


BAD_INPUTS = [
    (["supervised", "task=nope"], "task"),
    (["supervised", "core=nope"], "core"),
    (["supervised", "task.bits=0"], "task.bits=0 must be >= 1"),
    (["supervised", "task.curriculum.start_level=0"], "start_level"),
    (["supervised", "task.curriculum.windw=3"], "windw"),
    (["supervised", "task=babi"], "task=babi needs its data: pass task.path="),
    (["supervised", "task=babi", "task.path=/no/such/dir"], "is not a folder"),
    (["supervised", "optimizer.name=sgdx"], "optimizer.name"),
    (["supervised", "bptt=-1"], "bptt"),
    (["supervised", "optimizer.weight_decay=-1"], "optimizer.weight_decay=-1 must be >= 0"),
    (["supervised", "optimizer.plateau.patience=-2"], "optimizer.plateau.patience"),
    (["supervised", "optimizer.ema_decay=1.5"], "optimizer.ema_decay=1.5 must be a number in (0, 1)"),
    (["supervised", "optimizer.plateau.patience=2", "optimizer.plateau.factor=1.5"], "optimizer.plateau.factor"),
    (["supervised", "eval.weights=first"], "eval.weights"),
    (["supervised", "max_batches=null"], "max_batches"),
    (["supervised", "device=cuda:7"] if not torch.cuda.is_available() else ["supervised", "device=tpu"], "device"),
    (["supervised", "core.hidden_size=0"], ""),
    (["supervised", "resume=/no/such/run"], "does not exist"),
]


@pytest.mark.parametrize("argv, expected", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_leaves_no_run_folder(argv, expected, tmp_path, capsys):
    assert cli.main([*argv, f"run_root={tmp_path}", *QUIET]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("memrl supervised: error:") and expected in err and "\n" not in err, err
    assert not any(tmp_path.iterdir())


def test_resume_and_eval_reject_what_they_cannot_continue(tmp_path, capsys):
    assert cli.main(["supervised", *TOY_COPY, "max_batches=2", f"run_root={tmp_path}"]) == 0
    run = only_run(tmp_path)
    assert cli.main(["supervised", f"resume={run}", "core=sam"]) == 2
    assert "resume continues the run's own core and task" in capsys.readouterr().err
    (run / "broken.pt").write_bytes(b"not a checkpoint")
    assert cli.main(["supervised", f"resume={run / 'broken.pt'}"]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert cli.main(["eval", f"checkpoint={run}", "eval.levels=[1]", "eval.nope=1"]) == 2
    assert "nope" in capsys.readouterr().err


def test_plateau_decays_the_rate_and_best_weights_are_kept_and_evaluated(tmp_path, capsys):
    data = write_toy_babi(tmp_path / "data")
    overrides = ["task=babi", f"task.path={data}", "task.validation_fraction=0.1", "core.hidden_size=16",
                 "optimizer.name=adam", "optimizer.learning_rate=1e-2", "optimizer.weight_decay=0.01",
                 "optimizer.plateau.patience=0", "optimizer.plateau.factor=0.5", "optimizer.plateau.min_learning_rate=1e-4",
                 "batch_size=8", "max_batches=40", "validation.interval_batches=5", *QUIET, "eval.at_end=true",
                 "eval.weights=best", f"run_root={tmp_path / 'runs'}"]
    assert cli.main(["supervised", *overrides]) == 0
    run = only_run(tmp_path / "runs")
    metrics = read_metrics(run)
    rates = [r for r, v in zip(metrics["learning_rate"], metrics["val_accuracy"]) if v == v]
    accuracies = [v for v in metrics["val_accuracy"] if v == v]
    # patience 0: the rate halves after every validation that sets no new best, never below the floor.
    expected, rate, best = [], 1e-2, float("-inf")
    for accuracy in accuracies:
        if accuracy > best:
            best = accuracy
        else:
            rate = max(rate * 0.5, 1e-4)
        expected.append(rate)
    assert rates == pytest.approx(expected)
    saved = load_checkpoint(run / "checkpoint.pt")
    assert saved["best"]["value"] == pytest.approx(max(accuracies), abs=1e-6)  # metrics.csv rounds
    assert saved["best"]["batches"] == 5 * (accuracies.index(max(accuracies)) + 1)
    result = json.loads((run / "eval.json").read_text())
    assert result["weights"] == {k: v for k, v in saved["best"].items() if k != "model"}
    # memrl eval with the best weights reproduces the table; the last weights are another model.
    assert cli.main(["eval", f"checkpoint={run}", f"eval.out={tmp_path / 'again'}"]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["rows"] == result["rows"]
    parts = setup(compose("supervised", overrides), saved)
    assert any(not torch.equal(saved["model"][k], saved["best"]["model"][k]) for k in saved["model"]) or \
        saved["best"]["batches"] == 40
    assert parts.scheduler is not None and parts.scheduler.state_dict() == saved["scheduler"]


def test_best_weights_need_a_run_that_kept_them(tmp_path, capsys):
    assert cli.main(["supervised", *TOY_COPY, "max_batches=2", f"run_root={tmp_path}"]) == 0
    run = only_run(tmp_path)
    assert cli.main(["eval", f"checkpoint={run}", "eval.weights=best"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no best-validation weights" in err and "\n" not in err


def test_weight_average_is_what_validation_and_evaluation_use_and_resume_continues_it(tmp_path):
    data = write_toy_babi(tmp_path / "data")
    common = ["task=babi", f"task.path={data}", "task.validation_fraction=0.1", "core.hidden_size=16",
              "optimizer.name=adam", "optimizer.learning_rate=1e-2", "optimizer.ema_decay=0.8", "batch_size=8",
              "validation.interval_batches=3", *QUIET, "eval.weights=best"]
    assert cli.main(["supervised", *common, "max_batches=9", f"run_root={tmp_path / 'straight'}"]) == 0
    assert cli.main(["supervised", *common, "max_batches=5", f"run_root={tmp_path / 'split'}"]) == 0
    run = only_run(tmp_path / "split")
    assert cli.main(["supervised", f"resume={run}", "max_batches=9", "eval.at_end=true"]) == 0
    straight, resumed = (load_checkpoint(only_run(tmp_path / r) / "checkpoint.pt") for r in ("straight", "split"))
    # The average after 9 batches is the same whether or not the run was interrupted, and differs from the weights.
    assert all(torch.equal(resumed["averaged"][k], straight["averaged"][k]) for k in straight["averaged"])
    assert int(resumed["averaged"]["n_averaged"]) == 9
    average = {k[len("module."):]: v for k, v in resumed["averaged"].items() if k.startswith("module.")}
    assert average.keys() == resumed["model"].keys()
    assert any(not torch.equal(average[k], resumed["model"][k]) for k in average)
    # Validation scores the average: re-validating the checkpoint's average gives the logged last validation,
    # and the weights as trained would not.
    parts = setup(compose("supervised", common), resumed)
    assert all(torch.equal(parts.evaluated.state_dict()[k], average[k]) for k in average)
    metrics = read_metrics(run)
    logged = [v for v in metrics["val_accuracy"] if v == v]
    last_loss = [v for v in metrics["val_loss"] if v == v][-1]
    assert trainer.validate(parts, 32)["val_loss"] == pytest.approx(last_loss, rel=1e-3)
    parts.averaged = None  # now `evaluated` is the model as trained
    assert trainer.validate(parts, 32)["val_loss"] != pytest.approx(last_loss, rel=1e-3)
    # The best weights kept are the average's at that validation; the evaluation says it used an average.
    assert resumed["best"]["value"] == pytest.approx(max(logged), abs=1e-4)
    result = json.loads((run / "eval.json").read_text())
    assert result["ema_decay"] == 0.8 and "moving average" in (run / "eval.md").read_text()


def test_bench_supervised_throughput_smoke(tmp_path):
    from omegaconf import OmegaConf

    from evaluation import benchmarks

    data = write_toy_babi(tmp_path / "data")
    cfg = OmegaConf.merge(OmegaConf.load(Path(__file__).resolve().parents[1] / "configs/bench/supervised_throughput.yaml"),
                          {"task_options": {"path": str(data)}, "models": [{"core": "lstm", "hidden_size": 16},
                                                                          {"core": "sam", "slots": 16, "controller_size": 16},
                                                                          {"core": "lstm", "hidden_size": 16,
                                                                           "model.embedding_size": 8}],
                           "batch_size": 4, "warmup": 1, "rounds": 2, "threads": 1})
    rows = benchmarks.get("supervised_throughput")(cfg)
    assert [r["core"] for r in rows] == ["lstm", "sam", "lstm"] and rows[0]["vs_lstm"] == 1.0
    assert all(r["stories_per_s"] == pytest.approx(4 / r["s_per_batch"]) for r in rows)
    # A dotted key reaches the run config as it is, so the embedding layer is built. An lstm of H = 16 on I
    # inputs has 4H(I + H) + 8H parameters; with the embedding 8I + 8 + 4H(8 + H) + 8H: 56I - 520 fewer.
    assert rows[2]["options"] == "hidden_size=16,model.embedding_size=8"
    inputs, remainder = divmod(rows[0]["parameters"] - rows[2]["parameters"] + 520, 56)
    assert remainder == 0 and inputs > 8
