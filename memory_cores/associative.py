"""Associative memories as pure functions: classical Hopfield, dense associative memory, softmax limit.

Source: T. R. Yang, *Large Associative Memory Problem* (slides): Hopfield 1982,
Krotov & Hopfield 2016 (dense associative memory), Ramsauer et al. 2020
(modern Hopfield networks). Shapes: K stored patterns of N neurons,
``patterns`` [K, N] with entries ±1 (classical and dense) or real (softmax);
``state`` [..., N]; leading axes of ``state`` are independent probes.

These are used by the capacity benchmark and by the ``hopfield`` core
(``softmax_retrieve`` is its read). The recall loops update one neuron at a
time for all probes at once; they are reference dynamics, not a training path.

    >>> import torch
    >>> from memory_cores import associative as am
    >>> patterns = torch.tensor([[1., -1, 1, -1, 1, -1], [1, 1, 1, -1, -1, -1]])
    >>> weights = am.hebbian_weights(patterns)
    >>> probe = torch.tensor([[1., -1, 1, -1, 1, 1]])          # pattern 0 with one flipped neuron
    >>> am.hopfield_recall(weights, probe, torch.arange(6))[0]
    tensor([[ 1., -1.,  1., -1.,  1., -1.]])
"""
from __future__ import annotations

import numpy as np
import torch

# -- classical binary Hopfield network -------------------------------------------------------


def hebbian_weights(patterns: torch.Tensor) -> torch.Tensor:
    """Hebbian storage T_ij = Σ_μ ξ^μ_i ξ^μ_j with T_ii = 0 (no autapses). [K, N] -> [N, N]."""
    weights = patterns.T @ patterns
    return weights.fill_diagonal_(0)


def hopfield_energy(weights: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """E(σ) = −Σ_ij σ_i T_ij σ_j. weights T: [N, N]; state σ: [..., N] -> [...]."""
    return -((state @ weights) * state).sum(-1)


def hopfield_recall(
    weights: torch.Tensor, state: torch.Tensor, order: torch.Tensor, max_sweeps: int = 1
) -> tuple[torch.Tensor, int]:
    """Asynchronous sign updates σ_i ← sign(Σ_j T_ij σ_j) (+1 on a tie), neuron by neuron.

    weights T: [N, N] symmetric, zero diagonal; state σ: [P, N] of ±1; order:
    [L] neurons visited in every sweep, usually a permutation of the N (the
    same for all P probes; one index gives a single update). Stops
    after a sweep with no flip or after ``max_sweeps``. Each update can only
    lower the energy: ΔE = −2 Δσ_i h_i ≤ 0. -> (state [P, N], sweeps run).

    The loop runs in NumPy on the CPU: it is one tiny operation per neuron,
    where a torch call's dispatch cost dominates (about 50x slower measured).
    """
    matrix = weights.detach().cpu().numpy()
    current = state.detach().cpu().numpy().copy()
    fields = current @ matrix  # h = σ T, kept up to date: only the probes that flip pay O(N)
    for sweep in range(1, max_sweeps + 1):
        flipped = False
        for neuron in order.tolist():
            new = np.where(fields[:, neuron] >= 0, 1.0, -1.0).astype(current.dtype)
            rows = np.flatnonzero(new != current[:, neuron])
            if rows.size:
                fields[rows] += np.outer(new[rows] - current[rows, neuron], matrix[neuron])
                current[rows, neuron] = new[rows]
                flipped = True
        if not flipped:
            break
    return torch.from_numpy(current).to(state.device), sweep


# -- dense associative memory (Krotov & Hopfield 2016) ----------------------------------------


def rectified_polynomial(x: torch.Tensor, degree: int) -> torch.Tensor:
    """F_n(x) = x^n for x ≥ 0, 0 otherwise (n = ``degree``)."""
    return x.clamp(min=0).pow(degree)


def polynomial_energy(patterns: torch.Tensor, state: torch.Tensor, degree: int) -> torch.Tensor:
    """E(σ) = −Σ_μ F_n(⟨ξ^μ, σ⟩). patterns: [K, N]; state: [..., N] -> [...]."""
    return -rectified_polynomial(state @ patterns.T, degree).sum(-1)


def dense_recall(
    patterns: torch.Tensor, state: torch.Tensor, degree: int, order: torch.Tensor, max_sweeps: int = 1
) -> tuple[torch.Tensor, int]:
    """Asynchronous updates of a dense associative memory with energy −Σ_μ F_n(⟨ξ^μ, σ⟩).

    σ_i ← sign(Σ_μ F_n(ξ^μ_i + Σ_{j≠i} ξ^μ_j σ_j) − F_n(−ξ^μ_i + Σ_{j≠i} ξ^μ_j σ_j)) (+1 on
    a tie): neuron i takes whichever sign gives the lower energy, so the
    energy never increases. patterns: [K, N] of ±1; state: [P, N]; order: [L]
    neurons visited per sweep (as in ``hopfield_recall``).
    Computed in float64 NumPy so the integer overlaps raised to the n-th power
    stay exact and the per-neuron loop stays cheap. -> (state [P, N], sweeps run).
    """
    stored = patterns.detach().cpu().double().numpy()
    current = state.detach().cpu().double().numpy().copy()
    overlaps = current @ stored.T  # m_μ = ⟨ξ^μ, σ⟩ [P, K], kept up to date
    for sweep in range(1, max_sweeps + 1):
        flipped = False
        for neuron in order.tolist():
            column = stored[:, neuron]  # ξ^μ_i [K]
            without = overlaps - current[:, neuron, None] * column  # Σ_{j≠i} ξ^μ_j σ_j
            gain = (_rectified_power(without + column, degree) - _rectified_power(without - column, degree)).sum(-1)
            new = np.where(gain >= 0, 1.0, -1.0)
            flipped = flipped or bool((new != current[:, neuron]).any())
            overlaps = without + new[:, None] * column
            current[:, neuron] = new
        if not flipped:
            break
    return torch.from_numpy(current).to(device=state.device, dtype=state.dtype), sweep


def _rectified_power(x: np.ndarray, degree: int) -> np.ndarray:
    return np.maximum(x, 0) ** degree


def one_step_errors(patterns: torch.Tensor, degree: int, probes: int, chunk: int = 8) -> torch.Tensor:
    """Which bits of the first ``probes`` stored patterns flip on their first asynchronous update.

    patterns: [K, N] of ±1 (float64) -> bool [probes, N], True where neuron i
    of pattern μ, updated from σ = ξ^μ by the ``dense_recall`` rule, changes.
    A pattern with no True entry is a fixed point. ``degree`` 2 with the
    rectified F_2 is *not* the classical net (negative overlaps are cut off);
    use ``hebbian_weights`` for that. Probes go ``chunk`` at a time to bound
    the [chunk, N, K] intermediate.
    """
    columns = patterns.T[None]  # ξ^ν_i as [1, N, K]
    flips = []
    for start in range(0, probes, chunk):
        state = patterns[start : min(start + chunk, probes)]  # [p, N]
        without = (state @ patterns.T)[:, None, :] - state[:, :, None] * columns  # Σ_{j≠i} ξ^ν_j σ_j
        gain = (rectified_polynomial(without + columns, degree) - rectified_polynomial(without - columns, degree)).sum(-1)
        flips.append(torch.where(gain >= 0, 1.0, -1.0).to(state.dtype) != state)
    return torch.cat(flips)


# -- modern Hopfield network: the softmax limit (Ramsauer et al. 2020) ------------------------


def softmax_energy(patterns: torch.Tensor, state: torch.Tensor, beta: float) -> torch.Tensor:
    """E(ξ) = ½⟨ξ, ξ⟩ − β⁻¹ log Σ_μ exp(β ⟨x^μ, ξ⟩). patterns X: [K, N]; state ξ: [..., N] -> [...]."""
    return 0.5 * (state * state).sum(-1) - torch.logsumexp(beta * state @ patterns.T, dim=-1) / beta


def softmax_update(patterns: torch.Tensor, state: torch.Tensor, beta: float) -> torch.Tensor:
    """One update ξ ← X softmax(β Xᵀ ξ). patterns X (rows are x^μ): [K, N]; state: [..., N] -> [..., N].

    The update never increases ``softmax_energy`` (it is the concave-convex
    procedure step for that energy).
    """
    return torch.softmax(beta * state @ patterns.T, dim=-1) @ patterns


def softmax_retrieve(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    valid: torch.Tensor,
    beta: torch.Tensor | float,
    steps: int = 1,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Hopfield retrieval from a masked store of key/value patterns, batched.

    query ξ: [..., B, W]; keys: [B, M, W]; values: [B, M, V]; valid: bool
    [..., B, M] (which stored patterns each query may see); beta β: scalar
    -> [..., B, V]. ``steps − 1`` updates ξ ← keysᵀ softmax(β keys ξ) move the
    query towards a stored key (the state-pattern update), then one more
    softmax reads out valuesᵀ softmax(β keys ξ). ``bias`` [..., B, M], if
    given, is added to every step's scores (e.g. a recency preference).
    Invalid patterns get zero weight; a query with no valid pattern reads zero
    (and passes no NaN to the gradient).
    """
    for step in range(steps):
        weights = retrieval_weights(query, keys, valid, beta, bias)
        patterns = keys if step < steps - 1 else values
        query = torch.einsum("...bm,bmw->...bw", weights, patterns)
    return query


def retrieval_weights(query, keys, valid, beta, bias=None) -> torch.Tensor:
    """softmax(β keys ξ + bias) over the valid patterns, [..., B, M] (shapes as ``softmax_retrieve``);
    all zero where no pattern is valid."""
    scores = beta * torch.einsum("...bw,bmw->...bm", query, keys)
    if bias is not None:
        scores = scores + bias
    # A finite floor (not −inf) keeps softmax defined when no pattern is valid.
    scores = scores.masked_fill(~valid, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) * valid.any(-1, keepdim=True)


def overlap(state: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """m = ⟨σ, ξ⟩ / N, the normalised overlap of each state with its own pattern. [P, N], [P, N] -> [P]."""
    return (state * patterns).sum(-1) / state.shape[-1]
