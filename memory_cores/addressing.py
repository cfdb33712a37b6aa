"""Content addressing and usage tracking shared by SAM, DAM and the DNC family.

Pure functions over batched tensors, plus ``LeastRecentlyUsed``, an index of
the least recently accessed row that a forward call rebuilds from the state.
Glossary: B batch, N slots, W word, H heads, K sparse reads, S touched rows.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Added to squared norms before the square root: keeps the cosine and its
# gradient finite for (near-)empty rows, as in the DNC.
NORM_EPSILON = 1e-6

# Rows of the initial memory are drawn from N(0, scale^2) with this seed, so
# every episode (and every env) starts from the same fixed memory.
INITIAL_MEMORY_SEED = 20160901


def unit(vectors: torch.Tensor) -> torch.Tensor:
    """v / sqrt(|v|^2 + eps) along the last axis. [..., W] -> [..., W]."""
    return vectors * torch.rsqrt(vectors.pow(2).sum(-1, keepdim=True) + NORM_EPSILON)


def cosine_similarity(queries: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """Cosine similarity d(q, M(i)) of each query with each word.

    queries [B, H, W]; words [B, N, W] (shared by the heads) or [B, H, N, W]
    (one set per head, e.g. the K rows a head selected) -> [B, H, N].
    """
    q = unit(queries)
    if words.dim() == 3:
        return torch.einsum("bhw,bnw->bhn", q, unit(words))
    return torch.einsum("bhw,bhnw->bhn", q, unit(words))


def oneplus(raw: torch.Tensor) -> torch.Tensor:
    """1 + softplus(x): a sharpness (key strength) β >= 1."""
    return 1 + F.softplus(raw)


def initial_memory(
    slots: int, word_size: int, scale: float, dtype: torch.dtype = torch.float32, device=None
) -> torch.Tensor:
    """The memory every episode starts from: [N, W], i.i.d. N(0, scale^2) with a fixed seed.

    A tiny random pattern instead of zeros: empty rows then have distinct,
    near-zero cosine scores, so top-K has no ties (exact and ANN search agree),
    and an ANN index over the initial memory is balanced.
    """
    generator = torch.Generator().manual_seed(INITIAL_MEMORY_SEED)
    pattern = torch.randn(slots, word_size, generator=generator, dtype=torch.float64) * scale
    return pattern.to(dtype=dtype, device=device)


def accessed_rows(rows: torch.Tensor, weights: torch.Tensor, threshold: float) -> torch.Tensor:
    """Which entries of a sparse access touch their row by more than δ.

    rows [B, S] (may repeat), weights [B, S] -> bool [B, S]: for each entry,
    whether the summed weight of its row, a^W(i) + Σ_h a^R_h(i), exceeds δ.
    Entries of the same row get the same answer.
    """
    same_row = rows.unsqueeze(2) == rows.unsqueeze(1)  # [B, S, S]
    totals = (same_row * weights.unsqueeze(1)).sum(-1)
    return totals > threshold


class LeastRecentlyUsed:
    """argmin over N of the last-access step, in O(sqrt N) per query and update.

    (``min``, not ``amin``: amin of int64 over a short axis is 20x slower on CPU.)
    The N rows are cut into blocks of b rows (the last may be shorter) with
    each block's minimum kept, so a query is an argmin over N/b block minima
    and then within one block, and touching S rows recomputes only their
    blocks (S·b). b = sqrt(N/S) balances the two: O(sqrt(N S)) per step.
    Ties go to the lowest row index (the same as ``last_access.argmin(-1)``),
    so never-used rows come in order 0, 1, 2, ...

    Built once per forward call from the state's ``last_access`` [B, N]
    (copied, or updated in place with ``in_place=True``); ``touches``: the
    rows S touched per step. (``min``, not ``amin``: amin of int64 over a
    short axis is 20x slower on CPU.)
    """

    def __init__(self, last_access: torch.Tensor, touches: int = 1, in_place: bool = False):
        reuse = in_place and last_access.dtype == torch.long and last_access.is_contiguous()
        self._last = last_access if reuse else last_access.to(torch.long, copy=True)
        self.slots = self._last.shape[1]
        self.block = max(1, math.isqrt(max(1, self.slots // max(1, touches))))
        self._offsets = torch.arange(self.block, device=last_access.device)
        self._block_min = self._all_block_minima()

    def last_access(self) -> torch.Tensor:
        """The current last-access steps [B, N]."""
        return self._last

    def least_recent(self) -> torch.Tensor:
        """Index of the least recently accessed row, I^U_t: [B] (long)."""
        block = self._block_min.argmin(-1)
        within = self._block_values(block.unsqueeze(1))[:, 0].argmin(-1)
        return block * self.block + within

    def touch(self, rows: torch.Tensor, accessed: torch.Tensor, step: torch.Tensor) -> None:
        """Set last_access[rows] = step where ``accessed``. rows, accessed [B, S]; step [B]."""
        old = self._last.gather(1, rows)
        self._last.scatter_(1, rows, torch.where(accessed, step.unsqueeze(1), old))
        blocks = rows // self.block
        self._block_min.scatter_(1, blocks, self._block_values(blocks).min(-1).values)

    def reset(self, envs: torch.Tensor, last_access: torch.Tensor) -> None:
        """Replace the rows of envs ``envs`` (bool [B]) by ``last_access`` [N] or [B, N]."""
        self._last.copy_(torch.where(envs.unsqueeze(1), last_access.long(), self._last))
        self._block_min = self._all_block_minima()

    def _block_values(self, blocks: torch.Tensor) -> torch.Tensor:
        """last_access of the rows of blocks [B, S] -> [B, S, block]; rows past N read as +inf."""
        rows = blocks.unsqueeze(-1) * self.block + self._offsets
        values = self._last.gather(1, rows.clamp(max=self.slots - 1).flatten(1)).view(rows.shape)
        return values.masked_fill(rows >= self.slots, torch.iinfo(torch.long).max)

    def _all_block_minima(self) -> torch.Tensor:
        batch = self._last.shape[0]
        full = self.slots // self.block
        minima = [self._last[:, : full * self.block].view(batch, full, self.block).min(-1).values]
        if full * self.block < self.slots:
            minima.append(self._last[:, full * self.block :].min(-1, keepdim=True).values)
        return torch.cat(minima, 1)
