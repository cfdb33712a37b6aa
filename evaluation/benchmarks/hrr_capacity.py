"""``memrl bench hrr_capacity``: HRR key-value memory with krop, sign and no clean-up.

Three memory forms (R. Liu, slides "Memory Capacity" and "Mutable Key-Value Memory"):

- krop: values are krop code vectors; clean-up = ``vsa.krop_cleanup`` (O(D log D));
- sign: values are random ±1/√D vectors; clean-up = sign(·)/√D;
- none: values are random N(0, 1/D) vectors; no clean-up.

Addresses are N(0, 1/D) vectors as in the slides (``addresses=unitary`` for
unitary ones, as the ``hrr`` core uses). Each form draws its values from a
vocabulary of D vectors; a read counts as correct when the cleaned-up read's
nearest vocabulary vector (dot product) is the stored value. For krop that
nearest vector is the clean-up's own answer; for sign and none the dense
nearest-neighbour search only scores the read.

Parts (``part=capacity|mutable|all``):

- capacity: store M pairs, M = Σ_m a_m ⊛ v_m, read every address once:
  success rate vs M for several D. ``predicted_success_rate`` (krop) assumes
  the read is the value plus *isotropic* Gaussian noise of energy M (M − 1
  with unitary addresses), so the similarities to the D codes are 1 + σz₀
  and σz_j with σ² = M/D: P(success) = ∫ φ(z) Φ(z + 1/σ)^(D−1) dz. krop code
  vectors have peaky Fourier spectra, which the binding noise inherits, so
  the measured rate falls below this reference at intermediate M
  (``spectrum_fourth_moment`` in the summary rows: 2 for a flat spectrum).
  ``capacity_pairs``: the M where success falls to ``capacity_success``.
- mutable: every one of A addresses starts with a value; then each of
  ``steps`` steps overwrites a random address with a new value by
  v_old ← clean(a ⊕ M); M ← M − a ⊛ v_old + a ⊛ v_new, and all A addresses are
  read. Retrieval rate by step (step 0 = before any overwrite), averaged over
  trials, and its mean over steps 1..``steps`` per form.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from statistics import NormalDist

from memory_cores import vsa

from . import benchmark
from ._curves import crossing

FORMS = ("krop", "sign", "none")
COLUMNS = [
    "section", "form", "dimension", "addresses_kind", "pairs", "load", "step",
    "success_rate", "predicted_success_rate", "capacity_pairs", "spectrum_fourth_moment",
]


@benchmark("hrr_capacity")
def run(cfg) -> list[dict]:
    if cfg.part not in ("capacity", "mutable", "all"):
        raise ValueError(f"unknown part {cfg.part!r}; use part=capacity, mutable or all")
    if cfg.addresses not in ("gaussian", "unitary"):
        raise ValueError(f"unknown addresses {cfg.addresses!r}; use addresses=gaussian or unitary")
    unknown = set(cfg.forms) - set(FORMS)
    if unknown:
        raise ValueError(f"unknown form(s) {sorted(unknown)}; forms are {', '.join(FORMS)}")
    generator = torch.Generator().manual_seed(int(cfg.seed))
    rows = []
    if cfg.part in ("capacity", "all"):
        rows += capacity(cfg, generator)
    if cfg.part in ("mutable", "all"):
        rows += mutable(cfg, generator)
    # Fixed column order; empty cells are left out (JSON null would print as "None").
    return [{key: row[key] for key in COLUMNS if row.get(key) is not None} for row in rows]


class Memory:
    """One memory form at dimension D: its vocabulary of D values, clean-up and scorer."""

    def __init__(self, form: str, size: int, generator: torch.Generator):
        self.form, self.size = form, size
        if form == "krop":
            self.angles = vsa.krop_angles(vsa.krop_levels(size), generator=generator, dtype=torch.float64)
        elif form == "sign":
            self.vocabulary = (torch.randint(0, 2, (size, size), generator=generator).double() * 2 - 1) / size**0.5
        else:
            self.vocabulary = torch.randn(size, size, generator=generator, dtype=torch.float64) / size**0.5

    def values(self, index: torch.Tensor) -> torch.Tensor:
        """Vocabulary vectors [..., D] for integer index [...]."""
        return vsa.krop_vector(self.angles, index) if self.form == "krop" else self.vocabulary[index]

    def spectrum_fourth_moment(self) -> float:
        """Mean over the vocabulary of (1/D) Σ_f |V_f|⁴ with |V_f|² scaled to mean 1.

        2 for random (Gaussian or ±1) vectors; larger when the energy of the
        values sits in few frequencies, which binding noise inherits.
        """
        vocabulary = self.values(torch.arange(self.size))
        power = torch.fft.fft(vocabulary).abs().square()
        power = power / power.mean(-1, keepdim=True)
        return power.square().mean().item()

    def clean(self, read: torch.Tensor) -> torch.Tensor:
        if self.form == "krop":
            return vsa.krop_cleanup(self.angles, read)[1]
        if self.form == "sign":
            return torch.sign(read) / self.size**0.5
        return read

    def decode(self, read: torch.Tensor) -> torch.Tensor:
        """Index of the vocabulary vector nearest to the cleaned-up read. [..., D] -> [...]."""
        if self.form == "krop":
            return vsa.krop_cleanup(self.angles, read)[0]
        return (self.clean(read) @ self.vocabulary.T).argmax(-1)


def random_addresses(count: int, size: int, kind: str, generator) -> torch.Tensor:
    addresses = torch.randn(count, size, generator=generator, dtype=torch.float64) / size**0.5
    return vsa.make_unitary(addresses) if kind == "unitary" else addresses


# -- capacity -------------------------------------------------------------------------------------


def capacity(cfg, generator) -> list[dict]:
    rows = []
    for size in cfg.dimensions:
        size = int(size)
        for form in cfg.forms:
            curve = []
            for load in cfg.loads:
                pairs = max(1, round(float(load) * size))
                hits = []
                for _ in range(int(cfg.trials)):
                    memory = Memory(form, size, generator)
                    addresses = random_addresses(pairs, size, cfg.addresses, generator)
                    stored = torch.randint(size, (pairs,), generator=generator)
                    trace = vsa.bundle(vsa.bind(addresses, memory.values(stored)))
                    hits.append(memory.decode(vsa.unbind(addresses, trace)) == stored)
                noise_pairs = pairs if cfg.addresses == "gaussian" else pairs - 1
                curve.append({
                    "section": "capacity", "form": form, "dimension": size, "addresses_kind": cfg.addresses,
                    "pairs": pairs, "load": pairs / size,
                    "success_rate": torch.cat(hits).double().mean().item(),
                    "predicted_success_rate": predicted_krop_success(size, noise_pairs) if form == "krop" else None,
                })
            rows += curve
            rows.append({
                "section": "capacity_summary", "form": form, "dimension": size, "addresses_kind": cfg.addresses,
                "capacity_pairs": crossing([r["pairs"] for r in curve], [r["success_rate"] for r in curve],
                                           float(cfg.capacity_success)),
                "spectrum_fourth_moment": memory.spectrum_fourth_moment(),  # of the last trial's vocabulary
            })
    return rows


def predicted_krop_success(size: int, noise_pairs: int) -> float:
    """P(1 + σz₀ > σ max_j z_j) over D − 1 rivals, σ² = noise_pairs / D (module docstring)."""
    if noise_pairs <= 0:
        return 1.0
    sigma = math.sqrt(noise_pairs / size)
    z = np.linspace(-12, 12, 4801)
    density = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    below = np.array([NormalDist().cdf(v) for v in z + 1 / sigma])
    return float(np.trapezoid(density * below ** (size - 1), z))


# -- mutable read-write ----------------------------------------------------------------------------


def mutable(cfg, generator) -> list[dict]:
    part = cfg.mutable
    size, count, steps = int(part.dimension), int(part.addresses), int(part.steps)
    rows = []
    for form in cfg.forms:
        rates = torch.zeros(int(part.trials), steps + 1)
        for trial in range(int(part.trials)):
            rates[trial] = read_write_trial(Memory(form, size, generator), count, steps, cfg.addresses, generator)
        mean = rates.mean(0)
        rows += [
            {"section": "mutable", "form": form, "dimension": size, "addresses_kind": cfg.addresses,
             "pairs": count, "step": step, "success_rate": mean[step].item()}
            for step in range(steps + 1)
        ]
        rows.append({
            "section": "mutable_summary", "form": form, "dimension": size, "addresses_kind": cfg.addresses,
            "pairs": count, "success_rate": rates[:, 1:].mean().item(),
        })
    return rows


def read_write_trial(memory: Memory, count: int, steps: int, kind: str, generator) -> torch.Tensor:
    """Retrieval rate over all addresses before and after each of ``steps`` overwrites. -> [steps + 1]."""
    addresses = random_addresses(count, memory.size, kind, generator)
    current = torch.randint(memory.size, (count,), generator=generator)
    trace = vsa.bundle(vsa.bind(addresses, memory.values(current)))
    rates = [rate(memory, addresses, trace, current)]
    for _ in range(steps):
        slot = int(torch.randint(count, (1,), generator=generator))
        new = torch.randint(memory.size, (), generator=generator)
        address = addresses[slot]
        old = memory.clean(vsa.unbind(address, trace))
        trace = trace - vsa.bind(address, old) + vsa.bind(address, memory.values(new))
        current[slot] = new
        rates.append(rate(memory, addresses, trace, current))
    return torch.tensor(rates)


def rate(memory: Memory, addresses, trace, current) -> float:
    return (memory.decode(vsa.unbind(addresses, trace)) == current).double().mean().item()
