"""Holographic reduced representations (HRR) and the krop codebook, as pure functions.

Every function works on plain batched tensors whose last axis is the
hypervector axis of size D; leading axes are batch axes and broadcast.
Sources: Plate 1995 (HRR); R. Liu, *Scalable External Memories for Neural
Networks*, slides (krop: Kronecker rotation products, linearithmic clean-up).

HRR key-value store::

    >>> import torch
    >>> from memory_cores import vsa
    >>> g = torch.Generator().manual_seed(0)
    >>> key = vsa.make_unitary(torch.randn(256, generator=g))
    >>> value = torch.randn(256, generator=g) / 16
    >>> trace = vsa.bind(key, value)
    >>> torch.allclose(vsa.unbind(key, trace), value, atol=1e-5)   # unitary keys invert exactly
    True

krop codebook of N = 2^K code vectors, stored as K angles::

    >>> angles = vsa.krop_angles(8, generator=g)                   # N = 256
    >>> code = vsa.krop_vector(angles, torch.tensor(37))           # O(N)
    >>> noisy = code + 0.05 * torch.randn(256, generator=g)
    >>> int(vsa.krop_cleanup(angles, noisy)[0])                    # O(N log N), no dense codebook
    37
"""
from __future__ import annotations

import math

import torch

# -- HRR operations ------------------------------------------------------------------------


def bind(key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Circular convolution ``key ⊛ value``: out[j] = Σ_k key[k] value[(j − k) mod D].

    key, value: [..., D] -> [..., D]. Computed as irfft(rfft(key) · rfft(value)), O(D log D).
    """
    size = key.shape[-1]
    return torch.fft.irfft(torch.fft.rfft(key) * torch.fft.rfft(value), n=size)


def unbind(key: torch.Tensor, trace: torch.Tensor) -> torch.Tensor:
    """Circular correlation ``key ⊕ trace``: out[j] = Σ_k key[k] trace[(j + k) mod D].

    key, trace: [..., D] -> [..., D]. The approximate inverse of ``bind``
    (exact when ``key`` is unitary): irfft(conj(rfft(key)) · rfft(trace)).
    """
    size = key.shape[-1]
    return torch.fft.irfft(torch.fft.rfft(key).conj() * torch.fft.rfft(trace), n=size)


def make_unitary(vector: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Project [..., D] onto unitary vectors: every Fourier coefficient gets modulus 1.

    For a unitary key, convolution with it is an orthogonal map, so
    ``unbind(key, bind(key, v)) == v`` and the cross-talk of other pairs keeps
    the variance of the stored values (no extra key noise).
    ``eps`` keeps the gradient finite where a coefficient is near zero.
    """
    spectrum = torch.fft.rfft(vector)
    modulus = (spectrum.real.square() + spectrum.imag.square() + eps * eps).sqrt()
    return torch.fft.irfft(spectrum / modulus, n=vector.shape[-1])


def bundle(vectors: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Superposition: the element-wise sum of ``vectors`` along ``dim``."""
    return vectors.sum(dim)


def similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dot-product similarity: [..., D], [..., D] -> [...]."""
    return (a * b).sum(-1)


# -- krop: Kronecker rotation products ---------------------------------------------------------

STAGE_LEVELS = 4  # levels fused per step of the fast transform (radix 16); any value >= 1 is exact
Stages = list[tuple[int, torch.Tensor]]  # krop_stages(angles): (first level, [2^g, 2^g] block) per stage


def krop_angles(levels: int, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
    """K angles θ_k ~ U(0, 2π): the whole codebook of N = 2^K code vectors. -> [K]."""
    if levels < 1:
        raise ValueError(f"krop needs at least one level (N = 2^K >= 2), got K={levels}")
    return torch.rand(levels, generator=generator, dtype=dtype) * (2 * math.pi)


def krop_levels(size: int) -> int:
    """K such that 2^K == size; ValueError naming the fix when size is not a power of two."""
    levels = size.bit_length() - 1
    if size < 2 or (1 << levels) != size:
        raise ValueError(f"krop needs a power-of-two dimension, got {size}; use e.g. {1 << max(levels, 1)}")
    return levels


def krop_codebook(angles: torch.Tensor) -> torch.Tensor:
    """The dense codebook H = R_{K−1} ⊗ … ⊗ R_0 with R_k = [[cos θ_k, sin θ_k], [sin θ_k, −cos θ_k]].

    angles: [K] -> [N, N], N = 2^K; row i is code vector i. O(N²) time and
    memory: the slow reference that the fast functions below are tested against.
    H is symmetric and orthogonal, so H = Hᵀ = H⁻¹.
    """
    codebook = torch.ones(1, 1, dtype=angles.dtype, device=angles.device)
    for angle in angles:
        codebook = torch.kron(_rotation(angle), codebook)
    return codebook


def krop_vector(angles: torch.Tensor, index: torch.Tensor, stages: Stages | None = None) -> torch.Tensor:
    """Code vector ``index`` rebuilt from the angles in O(N) (the slides' reconstruction).

    angles: [K]; index: integer [...] -> [..., N]. Bit k of the index picks
    row 0 (cos θ_k, sin θ_k) or row 1 (sin θ_k, −cos θ_k) of the level-k
    rotation; the code vector is the Kronecker product of the picked rows,
    highest level first. Built one stage of levels at a time (see
    ``krop_transform``): O(N) work. ``stages``: ``krop_stages(angles)``, if
    the caller already has it.
    """
    return _vector_from_stages(stages or krop_stages(angles), index)


def _vector_from_stages(stages: Stages, index: torch.Tensor) -> torch.Tensor:
    stage0 = stages[0][1]
    vector = torch.ones(*index.shape, 1, dtype=stage0.dtype, device=stage0.device)
    for first, stage in stages:
        rows = stage[(index >> first) & (stage.shape[0] - 1)]  # [..., 2^g]
        vector = (rows.unsqueeze(-1) * vector.unsqueeze(-2)).flatten(-2)
    return vector


def krop_transform(angles: torch.Tensor, vector: torch.Tensor, stages: Stages | None = None) -> torch.Tensor:
    """Similarities to all N code vectors, H u, by divide and conquer in O(N log N).

    angles: [K]; vector u: [..., N] -> [..., N]. Each level k maps every pair
    (û, ǔ) of entries whose indices differ only in bit k to
    (c_k û + s_k ǔ, s_k û − c_k ǔ) (the slides' butterfly); no dense codebook
    is formed. The levels act on different bits, so they commute; we apply
    them ``STAGE_LEVELS`` at a time as one small [2^g, 2^g] Kronecker block
    (radix 2^g, like a radix-16 FFT) because one tensor op per level costs
    more in dispatch than in arithmetic. Work is N · 2^g per stage, still
    O(N log N). Since H is symmetric and orthogonal this is also the
    synthesis map (weights over codes -> vector). Differentiable in
    ``vector`` and ``angles``. ``stages``: ``krop_stages(angles)``, to reuse.
    """
    _check_size(angles, vector)
    return _transform_with_stages(stages or krop_stages(angles), vector)


def _transform_with_stages(stages: Stages, vector: torch.Tensor) -> torch.Tensor:
    size = vector.shape[-1]
    rows = vector.reshape(-1, size)
    batch = rows.shape[0]
    for first, stage in stages:
        width, stride = stage.shape[0], 1 << first
        if stride == 1:  # the bits of this stage are the fastest-moving: a plain product on the last axis
            rows = torch.matmul(rows.reshape(batch, size // width, width), stage.T)
        else:
            rows = torch.matmul(stage, rows.reshape(batch, size // (width * stride), width, stride))
    return rows.reshape(vector.shape)


def krop_cleanup(
    angles: torch.Tensor, vector: torch.Tensor, stages: Stages | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard clean-up: the nearest code vector by dot product, i* = argmax_i (H u)_i.

    angles: [K]; vector: [..., N] -> (index [...] int64, code vector [..., N]).
    O(N log N) for the similarities plus O(N) to rebuild the winner. No
    gradient passes through the argmax.
    """
    _check_size(angles, vector)
    stages = stages or krop_stages(angles)
    index = _transform_with_stages(stages, vector).argmax(-1)
    return index, _vector_from_stages(stages, index)


def krop_soft_cleanup(
    angles: torch.Tensor, vector: torch.Tensor, beta: float | torch.Tensor, stages: Stages | None = None
) -> torch.Tensor:
    """Soft clean-up: Hᵀ softmax(β H u), the softmax-weighted mixture of code vectors.

    angles: [K]; vector: [..., N]; beta: inverse temperature -> [..., N].
    Two fast transforms, O(N log N); gradients pass through. As β → ∞ it
    tends to the hard clean-up's code vector.
    """
    _check_size(angles, vector)
    stages = stages or krop_stages(angles)
    weights = torch.softmax(beta * _transform_with_stages(stages, vector), dim=-1)
    return _transform_with_stages(stages, weights)


def _check_size(angles: torch.Tensor, vector: torch.Tensor) -> None:
    levels, size = angles.shape[0], vector.shape[-1]
    if size != 1 << levels:
        raise ValueError(f"krop with K={levels} levels needs vectors of size {1 << levels}, got {size}")


def krop_stages(angles: torch.Tensor) -> Stages:
    """(first level k, R_{k+g−1} ⊗ … ⊗ R_k [2^g, 2^g]) for each stage of g = STAGE_LEVELS levels.

    What the fast functions compute from the angles first; a caller that
    cleans up many times with one codebook (a core, per unroll) passes it in
    as ``stages=`` to skip rebuilding it.

    Entry (i, j) of a stage is Π_l R_{k+l}[bit l of i, bit l of j]: one gather
    and one product for all full stages at once, so building them costs a
    handful of tensor ops whatever K is.
    """
    levels = angles.shape[0]
    cos, sin = angles.cos(), angles.sin()
    rotations = torch.stack([torch.stack([cos, sin], -1), torch.stack([sin, -cos], -1)], -2)  # [K, 2, 2]
    full = levels // STAGE_LEVELS
    groups = [(0, full, STAGE_LEVELS)] if full else []
    if levels % STAGE_LEVELS:
        groups.append((full * STAGE_LEVELS, 1, levels % STAGE_LEVELS))
    stages = []
    for first, count, width in groups:
        bits = _bit_table(width, angles.device)  # [2^g, g]
        picked = rotations[first : first + count * width].reshape(count, width, 2, 2)
        # [count, g, 2^g, 2^g]: R_l[bit_l(i), bit_l(j)]
        factors = picked[:, torch.arange(width, device=angles.device)[:, None, None], bits.T[:, :, None], bits.T[:, None, :]]
        matrices = factors.prod(1)
        stages += [(first + n * width, matrices[n]) for n in range(count)]
    return stages


def _bit_table(width: int, device) -> torch.Tensor:
    """[2^width, width] int64: bit l of row index i."""
    return (torch.arange(1 << width, device=device)[:, None] >> torch.arange(width, device=device)) & 1


def _rotation(angle: torch.Tensor) -> torch.Tensor:
    """R = [[cos θ, sin θ], [sin θ, −cos θ]]: a symmetric reflection, R = Rᵀ = R⁻¹. -> [2, 2]."""
    cos, sin = angle.cos(), angle.sin()
    return torch.stack([torch.stack([cos, sin]), torch.stack([sin, -cos])])
