"""``memrl bench krop``: clean-up time of the krop fast transform vs the dense codebook product.

For each K (N = 2^K code vectors of size N), a noisy code vector u is cleaned
up both ways and timed (median of ``repeats`` calls, the two methods
alternating, one thread):

- krop: ``vsa.krop_cleanup`` — similarities H u by the fast transform,
  argmax, rebuild the winner: O(N log N) time, K angles of storage;
- dense: ``argmax(codebook @ u)`` and a row lookup: O(N²) time and storage,
  run only while the [N, N] codebook fits in ``dense_max_mib``.

Rows also give both codebooks' storage in bytes and whether both methods
picked the same code.
"""
from __future__ import annotations

import torch

from memory_cores import vsa

from . import benchmark
from ._curves import median_ms


@benchmark("krop")
def run(cfg) -> list[dict]:
    generator = torch.Generator().manual_seed(int(cfg.seed))
    threads = torch.get_num_threads()
    torch.set_num_threads(int(cfg.threads))
    try:
        return [measure(int(levels), cfg, generator) for levels in range(int(cfg.min_levels), int(cfg.max_levels) + 1)]
    finally:
        torch.set_num_threads(threads)


def measure(levels: int, cfg, generator) -> dict:
    size = 1 << levels
    angles = vsa.krop_angles(levels, generator=generator)
    target = int(torch.randint(size, (1,), generator=generator))
    noisy = vsa.krop_vector(angles, torch.tensor(target)) + float(cfg.noise) * torch.randn(size, generator=generator) / size**0.5
    element_bytes = angles.element_size()
    dense_bytes = size * size * element_bytes
    functions = {"krop": lambda: vsa.krop_cleanup(angles, noisy)}
    codebook = None
    if dense_bytes <= float(cfg.dense_max_mib) * 2**20:
        codebook = dense_codebook(angles)

        def dense():
            index = torch.argmax(codebook @ noisy)
            return index, codebook[index]

        functions["dense"] = dense
    times = median_ms(functions, int(cfg.repeats))
    krop_index = int(vsa.krop_cleanup(angles, noisy)[0])
    row = {
        "levels": levels,
        "codes": size,
        "krop_ms": times["krop"],
        "dense_ms": times.get("dense"),
        "speedup": times["dense"] / times["krop"] if codebook is not None else None,
        "krop_codebook_bytes": angles.numel() * element_bytes,
        "dense_codebook_bytes": dense_bytes,
        "krop_correct": krop_index == target,
        "same_code": None if codebook is None else krop_index == int(torch.argmax(codebook @ noisy)),
        "threads": torch.get_num_threads(),
    }
    del codebook  # free the [N, N] matrix before the next, larger K
    return {key: value for key, value in row.items() if value is not None}  # no dense run: empty cells


def dense_codebook(angles: torch.Tensor, rows_per_chunk: int = 1024) -> torch.Tensor:
    """The [N, N] codebook, filled a block of rows at a time so peak memory stays near N² floats."""
    size = 1 << angles.shape[0]
    codebook = torch.empty(size, size, dtype=angles.dtype)
    for start in range(0, size, rows_per_chunk):
        index = torch.arange(start, min(start + rows_per_chunk, size))
        codebook[start : start + len(index)] = vsa.krop_vector(angles, index)
    return codebook
