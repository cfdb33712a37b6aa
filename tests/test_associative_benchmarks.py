"""Smoke runs of the krop, hrr_capacity and hopfield_capacity benchmarks at tiny sizes,
with checks on what they must show even there."""
from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from evaluation import benchmarks

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "bench"


def run(name, **overrides):
    cfg = OmegaConf.merge(OmegaConf.load(CONFIGS / f"{name}.yaml"), OmegaConf.create(overrides))
    return benchmarks.get(name)(cfg)


def test_krop_bench_agrees_with_dense_and_stores_k_angles():
    rows = run("krop", min_levels=6, max_levels=8, repeats=2, dense_max_mib=0.1)
    assert [r["levels"] for r in rows] == [6, 7, 8]
    assert all(r["krop_correct"] for r in rows)
    assert rows[0]["same_code"] and rows[0]["speedup"] > 0  # 64 x 64 floats fit in 0.1 MiB
    assert "dense_ms" not in rows[2]  # 256 x 256 floats do not: no dense run
    assert [r["krop_codebook_bytes"] for r in rows] == [24, 28, 32]
    assert rows[2]["dense_codebook_bytes"] == 256 * 256 * 4


@pytest.mark.learning
def test_hrr_bench_mutable_memory_keeps_krop_and_loses_no_cleanup(margin):
    rows = run("hrr_capacity", part="all", dimensions=[64], loads=[0.02, 0.5], trials=1,
               mutable={"dimension": 256, "addresses": 8, "steps": 6, "trials": 2})
    summary = {r["form"]: r["success_rate"] for r in rows if r["section"] == "mutable_summary"}
    margin("krop cleanup success rate", summary["krop"], above=0.8)
    margin("no-cleanup success rate", summary["none"], below=0.3)
    capacity = [r for r in rows if r["section"] == "capacity" and r["form"] == "krop"]
    assert capacity[0]["success_rate"] == 1.0
    margin("krop success rate at load 0.5", capacity[1]["success_rate"], below=0.6)
    assert all(0 <= r["predicted_success_rate"] <= 1 for r in capacity)


@pytest.mark.learning
def test_hopfield_bench_parts_run_and_find_their_crossings(margin):
    rows = run("hopfield_capacity", part="all",
               classical={"neurons": 200, "loads": [0.05, 0.3], "trials": 1, "probes": 20,
                          "max_sweeps": 20, "overlap_threshold": 0.967},
               dense={"degrees": [3], "neurons": {"n3": [16, 24]}, "error_rate": 0.01,
                      "load_factors": [0.25, 4.0], "bits": 2000},
               softmax={"neurons": [12], "min_log2_patterns": 1, "max_log2_patterns": 10,
                        "flip_fraction": 0.125, "beta": 1.0, "trials": 1, "probes": 50})
    by_section = {}
    for r in rows:
        by_section.setdefault(r["section"], []).append(r)
    classical = by_section["classical"]
    margin("classical success rate at load 0.05", classical[0]["success_rate"], above=0.9)
    margin("classical success rate at load 0.3", classical[1]["success_rate"], below=0.1)
    margin("classical capacity (patterns; 0.138 x 200 = 28)", by_section["classical_capacity"][0]["capacity_patterns"], above=10)
    margin("classical capacity (patterns; 0.138 x 200 = 28)", by_section["classical_capacity"][0]["capacity_patterns"], below=60)
    assert len(by_section["dense_capacity"]) == 2 and "exponent" in by_section["dense_scaling"][0]
    assert by_section["softmax"][0]["success_rate"] == 1.0
