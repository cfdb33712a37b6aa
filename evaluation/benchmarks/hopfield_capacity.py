"""``memrl bench hopfield_capacity``: how many random patterns each associative memory holds.

Three parts (``part=classical|dense|softmax|all``), each a retrieval-vs-load
curve plus summary rows (``section`` ends in ``_capacity`` or ``_scaling``):

- classical: Hebbian Hopfield net of N neurons (default 1000). Each stored
  pattern is the start state; asynchronous updates run to a fixed point; the
  pattern counts as retrieved when the final overlap is at least
  ``overlap_threshold`` (0.967: the overlap of the retrieval state at the
  critical load of Amit, Gutfreund & Sompolinsky). Capacity = the K where the
  retrieved fraction crosses 1/2; compared with 0.138 N.
- dense: rectified-polynomial energy F_n, n = 2, 3, 4. For several N, the
  fraction of bits of the stored patterns that flip on their first update
  (``one_step_errors``); capacity K_ε = the K where that rate reaches ε.
  Prediction from the slides' signal-to-noise argument, with a factor 2
  because the rectified F_n drops the half of the patterns whose overlap is
  negative: K_ε = 2 (N^n − (N−2)^n)² / (4 n² (2n−3)!! N^(n−1) z²), z = Φ⁻¹(1−ε),
  which grows as N^(n−1). The fitted exponent is the least-squares slope of
  log K_ε against log N.
- softmax: one update ξ ← X softmax(β Xᵀ ξ) from a probe with a fraction of
  its bits flipped; retrieved when sign(ξ) is the stored pattern. In the
  argmax limit retrieval fails when another pattern is at least as close to
  the probe, so P(success) = (1 − p)^(K−1) with p = P(Binomial(N, ½) ≤ flips):
  capacity grows exponentially, log2 K_½ ≈ N (1 − H₂(flip fraction)).
"""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import torch

from memory_cores import associative

from . import benchmark
from ._curves import crossing

COLUMNS = [
    "section", "model", "neurons", "patterns", "load", "success_rate", "predicted_success_rate",
    "bit_error_rate", "mean_overlap", "capacity_patterns", "predicted_capacity_patterns",
    "capacity_ratio", "exponent", "predicted_exponent", "asymptotic_exponent",
]
CLASSICAL_LOAD = 0.138  # Amit, Gutfreund & Sompolinsky 1985: α_c N


@benchmark("hopfield_capacity")
def run(cfg) -> list[dict]:
    parts = ["classical", "dense", "softmax"] if cfg.part == "all" else [cfg.part]
    unknown = set(parts) - {"classical", "dense", "softmax"}
    if unknown:
        raise ValueError(f"unknown part {cfg.part!r}; use part=classical, dense, softmax or all")
    generator = torch.Generator().manual_seed(int(cfg.seed))
    rows = []
    for part in parts:
        rows += {"classical": classical, "dense": dense, "softmax": softmax}[part](cfg[part], generator)
    # Fixed column order; empty cells are left out (JSON null would print as "None").
    return [{key: row[key] for key in COLUMNS if row.get(key) is not None} for row in rows]


# -- classical Hopfield -----------------------------------------------------------------------


def classical(cfg, generator) -> list[dict]:
    neurons = int(cfg.neurons)
    rows = []
    for load in cfg.loads:
        count = round(float(load) * neurons)
        overlaps = []
        for _ in range(int(cfg.trials)):
            patterns = random_patterns(count, neurons, generator, torch.float32)
            probes = patterns[: min(count, int(cfg.probes))]
            order = torch.randperm(neurons, generator=generator)
            final, _ = associative.hopfield_recall(
                associative.hebbian_weights(patterns), probes, order, max_sweeps=int(cfg.max_sweeps)
            )
            overlaps.append(associative.overlap(final, probes))
        overlap = torch.cat(overlaps)
        rows.append({
            "section": "classical", "model": "classical", "neurons": neurons, "patterns": count,
            "load": count / neurons,
            "success_rate": (overlap >= float(cfg.overlap_threshold)).double().mean().item(),
            "mean_overlap": overlap.mean().item(),
        })
    capacity = crossing([r["patterns"] for r in rows], [r["success_rate"] for r in rows], 0.5)
    predicted = CLASSICAL_LOAD * neurons
    rows.append({
        "section": "classical_capacity", "model": "classical", "neurons": neurons,
        "load": None if capacity is None else capacity / neurons,
        "capacity_patterns": capacity, "predicted_capacity_patterns": predicted,
        "capacity_ratio": None if capacity is None else capacity / predicted,
    })
    return rows


# -- dense associative memory -------------------------------------------------------------------


def predicted_dense_capacity(neurons: int, degree: int, error_rate: float) -> float:
    """K_ε of the rectified-polynomial memory (module docstring), at finite N."""
    z = NormalDist().inv_cdf(1 - error_rate)
    signal = neurons**degree - (neurons - 2) ** degree
    noise_per_pattern = 4 * degree**2 * double_factorial(2 * degree - 3) * neurons ** (degree - 1) / 2
    return signal**2 / (noise_per_pattern * z * z) + 1


def dense(cfg, generator) -> list[dict]:
    rows, error_rate = [], float(cfg.error_rate)
    for degree in cfg.degrees:
        summary = []
        for neurons in cfg.neurons[f"n{degree}"]:
            predicted = predicted_dense_capacity(int(neurons), int(degree), error_rate)
            curve = []
            for factor in cfg.load_factors:
                count = max(2, round(predicted * factor))
                flips = sample_one_step_errors(count, int(neurons), int(degree), int(cfg.bits), generator)
                curve.append({
                    "section": "dense", "model": f"dense_n{degree}", "neurons": int(neurons), "patterns": count,
                    "load": count / neurons ** (degree - 1),
                    "success_rate": (~flips.any(-1)).double().mean().item(),  # stored pattern is a fixed point
                    "bit_error_rate": flips.double().mean().item(),
                })
            rows += curve
            # bit_error_rate rises with K: cross 1 − rate at 1 − ε.
            capacity = crossing([r["patterns"] for r in curve], [1 - r["bit_error_rate"] for r in curve], 1 - error_rate)
            summary.append({
                "section": "dense_capacity", "model": f"dense_n{degree}", "neurons": int(neurons),
                "capacity_patterns": capacity, "predicted_capacity_patterns": predicted,
                "capacity_ratio": None if capacity is None else capacity / predicted,
            })
        rows += summary
        rows.append({
            "section": "dense_scaling", "model": f"dense_n{degree}",
            "exponent": loglog_slope(summary, "capacity_patterns"),
            # The finite-N prediction's own slope at these N, and its N → ∞ limit.
            "predicted_exponent": loglog_slope(summary, "predicted_capacity_patterns"),
            "asymptotic_exponent": float(degree - 1),
        })
    return rows


def sample_one_step_errors(count: int, neurons: int, degree: int, bits: int, generator) -> torch.Tensor:
    """Flip flags [probes, N] over fresh pattern sets until at least ``bits`` bits are checked."""
    flips, checked = [], 0
    while checked < bits:
        patterns = random_patterns(count, neurons, generator, torch.float64)
        probes = min(count, -(-(bits - checked) // neurons))
        flips.append(associative.one_step_errors(patterns, degree, probes))
        checked += probes * neurons
    return torch.cat(flips)


# -- softmax (modern Hopfield) ----------------------------------------------------------------------


def softmax(cfg, generator) -> list[dict]:
    rows, summary = [], []
    for neurons in cfg.neurons:
        flips = round(float(cfg.flip_fraction) * neurons)
        near = sum(math.comb(neurons, d) for d in range(flips + 1)) / 2**neurons  # p = P(Bin(N, ½) ≤ flips)
        curve = []
        for exponent in range(int(cfg.min_log2_patterns), int(cfg.max_log2_patterns) + 1):
            count = 2**exponent
            successes = []
            for _ in range(int(cfg.trials)):
                patterns = random_patterns(count, neurons, generator, torch.float64)
                stored = patterns[: min(count, int(cfg.probes))]
                probes = flip_bits(stored, flips, generator)
                retrieved = torch.sign(associative.softmax_update(patterns, probes, float(cfg.beta)))
                successes.append((retrieved == stored).all(-1).double())
            curve.append({
                "section": "softmax", "model": "softmax", "neurons": neurons, "patterns": count,
                "load": count / neurons,
                "success_rate": torch.cat(successes).mean().item(),
                "predicted_success_rate": (1 - near) ** (count - 1),
            })
            if len(curve) >= 2 and curve[-1]["success_rate"] == curve[-2]["success_rate"] == 0:
                break  # the curve has hit zero; larger K only costs time
        rows += curve
        capacity = crossing([r["patterns"] for r in curve], [r["success_rate"] for r in curve], 0.5)
        predicted = 1 + math.log(0.5) / math.log1p(-near)
        summary.append({
            "section": "softmax_capacity", "model": "softmax", "neurons": neurons,
            "capacity_patterns": capacity, "predicted_capacity_patterns": predicted,
            "capacity_ratio": None if capacity is None else capacity / predicted,
        })
    rows += summary
    rows.append({
        "section": "softmax_scaling", "model": "softmax",
        # log2 K per neuron: exponential growth rate, and its finite-N and asymptotic predictions.
        "exponent": linear_slope(summary, "capacity_patterns"),
        "predicted_exponent": linear_slope(summary, "predicted_capacity_patterns"),
        "asymptotic_exponent": 1 - binary_entropy(float(cfg.flip_fraction)),
    })
    return rows


# -- helpers ------------------------------------------------------------------------------------------


def random_patterns(count: int, neurons: int, generator, dtype) -> torch.Tensor:
    """[count, neurons] of independent fair ±1."""
    return torch.randint(0, 2, (count, neurons), generator=generator).to(dtype) * 2 - 1


def flip_bits(patterns: torch.Tensor, flips: int, generator) -> torch.Tensor:
    """Each row with exactly ``flips`` distinct bits negated."""
    chosen = torch.rand(patterns.shape, generator=generator).argsort(-1)[:, :flips]
    return patterns.scatter(1, chosen, -patterns.gather(1, chosen))


def loglog_slope(rows, key) -> float | None:
    points = [(math.log(r["neurons"]), math.log(r[key])) for r in rows if r[key]]
    return _slope(points)


def linear_slope(rows, key) -> float | None:
    points = [(r["neurons"], math.log2(r[key])) for r in rows if r[key]]
    return _slope(points)


def _slope(points) -> float | None:
    if len(points) < 2:
        return None
    x, y = np.array(points).T
    return float(np.polyfit(x, y, 1)[0])


def double_factorial(k: int) -> int:
    return math.prod(range(k, 0, -2)) if k > 0 else 1


def binary_entropy(p: float) -> float:
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)
