"""Aggregates over seeds (evaluation/aggregate.py): grouping, scores, CIs, and memrl report / plot."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml

from evaluation.aggregate import (final_score, group_runs, interval, load_runs, mmer, probability_of_improvement,
                                  report)
from training import cli


def write_run(folder, core: str, seed: int, returns: list[float], total_frames: int = 1000):
    """A run folder as memrl writes it: config.yaml and metrics.csv logged every 100 frames."""
    folder.mkdir(parents=True)
    config = {"core": {"name": core, "hidden_size": 8}, "env": {"name": "memrl/tmaze"}, "seed": seed,
              "total_frames": total_frames, "run_root": str(folder.parent), "name": f"{core}-{seed}"}
    if core == "lstm":
        config["core"]["num_layers"] = 1  # an option only this core has: implied by core.name, not a group key
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    with open(folder / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frames", "mean_return", "mean_success"])
        for i, value in enumerate(returns):
            writer.writerow([100 * (i + 1), value, "nan"])
    return folder


@pytest.fixture
def sweep(tmp_path):
    """lstm at seeds 0-3 and feedforward at seeds 0-2, 10 log rows each (frames 100..1000)."""
    for seed, last in enumerate([1.0, 2.0, 3.0, 10.0]):
        write_run(tmp_path / f"lstm-{seed}", "lstm", seed, [0.0] * 8 + [last - 1, last])
    for seed in range(3):
        write_run(tmp_path / f"ff-{seed}", "feedforward", seed, [0.0] * 4 + [0.5] + [0.0] * 5)
    return tmp_path


def test_runs_that_differ_only_in_seed_and_names_form_one_group(sweep):
    groups = group_runs(load_runs(sorted(sweep.iterdir())))
    assert sorted(groups) == ["core.name=feedforward", "core.name=lstm"]
    assert len(groups["core.name=lstm"]) == 4 and len(groups["core.name=feedforward"]) == 3


def test_runs_group_by_the_unroll_length_that_ran_not_how_the_config_named_it(tmp_path):
    runs = []
    for seed, (actors_t, env_t) in enumerate([(None, 51), (51, None), (None, None)]):
        folder = write_run(tmp_path / f"lstm-{seed}", "lstm", seed, [0.0, 1.0])
        config = yaml.safe_load((folder / "config.yaml").read_text())
        config["actors"] = {"unroll_length": actors_t}
        if env_t is not None:
            config["env"]["unroll_length"] = env_t
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
        runs.append(folder)
    groups = group_runs(load_runs(runs))
    assert {label: len(members) for label, members in groups.items()} == {"actors.unroll_length=51": 2, "actors.unroll_length=20": 1}


def test_an_option_some_runs_lack_splits_groups_unless_it_is_a_core_or_env_option(tmp_path):
    runs = [write_run(tmp_path / f"lstm-{seed}", "lstm", seed, [0.0, 1.0]) for seed in range(3)]
    config = yaml.safe_load((runs[2] / "config.yaml").read_text())
    config["agent"] = {"encoder_size": 64}  # an option the older runs' code did not have
    config["env"]["corridor_length"] = 5
    (runs[2] / "config.yaml").write_text(yaml.safe_dump(config))
    groups = group_runs(load_runs(runs))
    assert {label: len(members) for label, members in groups.items()} == {
        "agent.encoder_size=None": 2, "agent.encoder_size=64": 1}


def test_a_core_option_that_differs_between_runs_of_one_core_splits_them(tmp_path):
    runs = [write_run(tmp_path / f"lstm-{seed}", "lstm", seed, [0.0, 1.0]) for seed in range(2)]
    runs += [write_run(tmp_path / f"hopfield-{seed}", "hopfield", seed, [0.0, 1.0]) for seed in range(4)]
    for seed, folder in enumerate(runs[2:]):
        config = yaml.safe_load((folder / "config.yaml").read_text())
        config["core"]["age_embedding"] = seed >= 2  # only hopfield has it: false for seeds 0-1, true for 2-3
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
    groups = group_runs(load_runs(runs))
    assert {label: len(members) for label, members in groups.items()} == {
        "core.name=lstm": 2, "core.age_embedding=False, core.name=hopfield": 2,
        "core.age_embedding=True, core.name=hopfield": 2}


def test_runs_from_before_an_option_existed_group_with_what_they_ran(tmp_path):
    settings = [None, {"advantage_normalisation": "sigma", "advantage_rms_step_size": 0.01},
                {"advantage_normalisation": "rms", "advantage_rms_step_size": 0.01}]
    runs = []
    for seed, loss in enumerate(settings):
        folder = write_run(tmp_path / f"lstm-{seed}", "lstm", seed, [0.0, 1.0])
        config = yaml.safe_load((folder / "config.yaml").read_text())
        config["learner"] = {"loss": {"entropy_cost": 0.01, **(loss or {})}}
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
        runs.append(folder)
    groups = group_runs(load_runs(runs))
    assert {label: len(members) for label, members in groups.items()} == {
        "learner.loss.advantage_normalisation=sigma, learner.loss.advantage_rms_step_size=None": 2,
        "learner.loss.advantage_normalisation=rms, learner.loss.advantage_rms_step_size=0.01": 1}


def test_final_score_is_the_mean_over_the_last_tenth_of_frames_and_mmer_the_best_row(sweep):
    [run] = load_runs([sweep / "lstm-3"])
    assert final_score(run) == pytest.approx((9.0 + 10.0) / 2)  # rows at frames 900 and 1000
    assert mmer(run) == 10.0
    [flat] = load_runs([sweep / "ff-0"])
    assert final_score(flat) == 0.0 and mmer(flat) == 0.5


def test_interval_point_estimates_by_hand_and_bounds_around_them():
    scores = np.array([2.0, 3.0, 4.0, 20.0])
    iqm, low, high = interval(scores, "iqm", reps=500)
    assert iqm == pytest.approx(3.5)  # the middle two of four
    assert scores.min() <= low <= iqm <= high <= scores.max()
    mean, low, high = interval(scores, "mean", reps=500)
    assert mean == pytest.approx(7.25) and low < mean < high
    assert interval(np.full(5, 0.3), "mean", reps=200) == pytest.approx((0.3, 0.3, 0.3))
    # Per column, the statistics are rliable's own aggregates.
    from rliable import metrics

    columns = np.random.default_rng(0).random((5, 3))
    points, _, _ = interval(columns, "iqm", reps=50)
    assert points == pytest.approx([metrics.aggregate_iqm(columns[:, k : k + 1]) for k in range(3)])
    points, _, _ = interval(columns, "mean", reps=50)
    assert points == pytest.approx([metrics.aggregate_mean(columns[:, k : k + 1]) for k in range(3)])
    # The same seed gives the same bootstrap; numpy's global generator is left as it was.
    np.random.seed(7)
    before = np.random.random()
    np.random.seed(7)
    assert interval(scores, "iqm", reps=300) == interval(scores, "iqm", reps=300)
    assert np.random.random() == before


def test_probability_of_improvement_by_hand():
    assert probability_of_improvement(np.array([3.0, 4.0, 5.0]), np.array([0.0, 1.0, 2.0]), reps=200) == (1.0, 1.0, 1.0)
    assert probability_of_improvement(np.ones(3), np.ones(3), reps=200)[0] == pytest.approx(0.5)  # ties count half
    # x = [1, 3] against y = [2, 2]: one pair of two is a win.
    assert probability_of_improvement(np.array([1.0, 3.0]), np.array([2.0, 2.0]), reps=200)[0] == pytest.approx(0.5)


def test_report_rows_and_fraction_reaching_a_threshold(sweep):
    rows, pairs = report(sorted(sweep.iterdir()), threshold=2.5, reps=300)
    by_group = {r["group"]: r for r in rows}
    lstm = by_group["core.name=lstm"]
    assert lstm["runs"] == 4 and lstm["finished"] == 4
    assert lstm["final_iqm"] == pytest.approx((1.5 + 2.5) / 2)  # finals 0.5, 1.5, 2.5, 9.5: the middle two
    assert lstm["fraction_reaching_threshold"] == 0.5
    assert by_group["core.name=feedforward"]["mmer_iqm"] == pytest.approx(0.5)
    assert {(p["group"], p["versus"]) for p in pairs} == {("core.name=lstm", "core.name=feedforward"),
                                                         ("core.name=feedforward", "core.name=lstm")}
    win = next(p for p in pairs if p["group"] == "core.name=lstm")
    assert win["p_improvement"] == 1.0  # every lstm final (>= 0.5) beats every feedforward one (0)


def test_memrl_report_and_plot_on_a_sweep_folder(sweep, capsys):
    assert cli.main(["report", str(sweep), "threshold=2.5", "reps=200"]) == 0
    assert (sweep / "report.md").is_file() and (sweep / "report_pairs.csv").is_file()
    with open(sweep / "report.csv") as f:
        assert {row["group"] for row in csv.DictReader(f)} == {"core.name=lstm", "core.name=feedforward"}
    assert cli.main(["plot", f"run_dir={sweep}", f"out={sweep / 'bands.png'}"]) == 0
    assert (sweep / "bands.png").stat().st_size > 1000


def test_report_on_an_unknown_metric_is_one_line(sweep, capsys):
    assert cli.main(["report", str(sweep), "metric=nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'nope'" in err


def test_normalised_scores_put_the_baseline_at_0_and_the_optimum_at_1(sweep):
    rows, _ = report(sorted(sweep.iterdir()), stat="mean", reps=200, baseline="core.name=feedforward", optimum=10.0)
    by_group = {r["group"]: r for r in rows}
    assert by_group["core.name=feedforward"]["normalised_mean"] == pytest.approx(0.0)
    # lstm finals 0.5, 1.5, 2.5, 9.5 against a baseline of 0 and an optimum of 10: mean 3.5 / 10.
    assert by_group["core.name=lstm"]["normalised_mean"] == pytest.approx(0.35)
    with pytest.raises(ValueError, match="matches 0 groups"):
        report(sorted(sweep.iterdir()), reps=50, baseline="core.name=gru", optimum=1.0)


def test_a_suite_part_is_a_sweep_of_every_core_and_seed_with_the_users_overrides_on_top():
    from training.sweep import expand_suite

    [(part, argv, settings)] = expand_suite(["suite=memory", "suite.parts=[tmaze]", "total_frames=1000", "sweep.root=/x"])
    assert part == "tmaze" and settings == {"metric": "mean_success", "optimum": 1.0}
    assert "total_frames=1000" in argv and "total_frames=2000000" not in argv and "env.corridor_length=50" in argv
    assert argv[0].startswith("core=feedforward,lstm") and "seed=range(3)" in argv
    assert "sweep.root=/x/memory" in argv and "sweep.name=memory-tmaze" in argv


def test_memrl_report_compares_several_sweep_folders_as_one_set_of_runs(tmp_path, capsys):
    for seed in range(2):
        write_run(tmp_path / "a" / f"lstm-{seed}", "lstm", seed, [0.0] * 9 + [1.0])
        write_run(tmp_path / "b" / f"ff-{seed}", "feedforward", seed, [0.0] * 10)
    assert cli.main(["report", str(tmp_path / "a"), str(tmp_path / "b"), f"out={tmp_path / 'both'}", "reps=100",
                     "baseline=core.name=feedforward", "optimum=1.0"]) == 0  # as `memrl sweep suite=` prints it
    with open(tmp_path / "both.csv") as f:
        rows = {row["group"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"core.name=lstm", "core.name=feedforward"} and rows["core.name=lstm"]["runs"] == "2"
    assert float(rows["core.name=feedforward"]["normalised_iqm"]) == 0.0  # the baseline group, parsed as one label


def test_plot_lines_stay_distinct_past_ten_groups():
    from evaluation.plot import distinct_styles

    styles = distinct_styles(25)
    assert len({(style["color"], style["linestyle"]) for style in styles}) == 25
    assert styles[10]["color"] == styles[0]["color"] and styles[10]["linestyle"] != styles[0]["linestyle"]
    with pytest.raises(ValueError, match="too many lines"):
        distinct_styles(41)
