"""Sparse temporal links of the Sparse DNC (thesis Sec. 3.5.1, eq. 3.15-3.20).

The DNC's link matrix L_t [N, N] (L(i, j): how much row i was written right
after row j) is kept as two sparse matrices with at most K_L entries per row:
``links`` ≈ L_t (row i: the rows written before i) and ``back`` ≈ L_t^T
(row j: the rows written after j). A sparse matrix is a pair of tensors
``(cols, values)`` [B, N, K_L]: entry k of row i is (cols[i, k], values[i, k]);
empty entries have value 0. The precedence p_t is sparse too: ``(rows,
values)`` [B, K_L].

Both matrices follow the DNC's update (thesis eq. 3.11) on their rows:

    L_t(i, j) = (1 - w(i) - w(j)) L_{t-1}(i, j) + w(i) p_{t-1}(j),  i != j

where w = w^W_t is the write weights (sparse). Only O(S K_L) rows change: the
rows written, the rows that have an entry in a written column (found through
the other matrix), and for ``back`` the rows of p_{t-1}. Each changed row
keeps its K_L largest entries. With K_L >= N nothing is dropped and the pair
equals L_t and its transpose exactly (tested against ``temporal_linkage``).

Directional read weights from a sparse a = w^r_{t-1} (rows s, weights a(s)):
forward f = L a: f(i) = Σ_s back(s, i) a(s); backward b = L^T a:
b(j) = Σ_s links(s, j) a(s): K_L entries per row of a, O(K K_L).
Unlike the thesis (which, for simplicity, passed no gradient through the
links), the links here are differentiable in the write weights and the
precedence, so the SDNC's gradient matches finite differences.
Glossary: B batch, N slots, S sparse entries, K_L entries per row.
"""
from __future__ import annotations

import torch

from .sparse_access import SparseMemory


class LinkMatrix:
    """A sparse N x N matrix within one unroll: cols [B, N, K_L] (changed in place) and values in a SparseMemory.

    cols, values: the state's tensors; record: keep the autograd chain; in_place: change the
    state's tensors themselves instead of copies.
    """

    def __init__(self, cols: torch.Tensor, values: torch.Tensor, record: bool, in_place: bool = False):
        cols = cols.long()
        self.cols = cols if in_place else cols.clone()
        self.values = SparseMemory(values, record, in_place)

    def rows(self, rows: torch.Tensor):
        """(cols, values) of rows [B, R] -> [B, R, K_L] each (values differentiable)."""
        index = rows.unsqueeze(-1).expand(-1, -1, self.cols.shape[-1])
        return self.cols.gather(1, index), self.values.gather(rows)

    def set_rows(self, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor) -> None:
        """Replace rows [B, R] by (cols, values) [B, R, K_L]; repeated rows must get equal entries."""
        self.cols.scatter_(1, rows.unsqueeze(-1).expand(-1, -1, self.cols.shape[-1]), cols)
        self.values.overwrite(rows, values)

    def final(self):
        """(cols, values) [B, N, K_L] for the next state."""
        return self.cols, self.values.final()


def empty_links(batch: int, slots: int, per_row: int, dtype=torch.float32, device=None):
    """(cols, values) [B, N, K_L] of an all-zero sparse matrix."""
    cols = torch.zeros(batch, slots, per_row, dtype=torch.long, device=device)
    return cols, torch.zeros(batch, slots, per_row, dtype=dtype, device=device)


def empty_precedence(batch: int, per_row: int, dtype=torch.float32, device=None):
    """(rows, values) [B, K_L] of p_0 = 0."""
    return (
        torch.zeros(batch, per_row, dtype=torch.long, device=device),
        torch.zeros(batch, per_row, dtype=dtype, device=device),
    )


def lookup(rows: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The summed value of each of rows [B, ...] in a sparse vector (keys, values) [B, S] -> [B, ...]."""
    flat = rows.reshape(rows.shape[0], -1)
    match = flat.unsqueeze(-1) == keys.unsqueeze(1)  # [B, M, S]
    return (match * values.unsqueeze(1)).sum(-1).view(rows.shape)


def merge_top(keys: torch.Tensor, values: torch.Tensor, keep: int):
    """Sum the values of repeated keys and keep the ``keep`` largest: [..., M] -> [..., keep].

    Sort-based (O(M log M) per row): repeats become runs, summed by a scatter into their run.
    Differentiable in ``values``. Fewer than ``keep`` distinct keys: padded with zero-valued copies.
    """
    sorted_keys, order = torch.sort(keys, dim=-1, stable=True)
    sorted_values = values.gather(-1, order)
    starts = torch.ones_like(sorted_keys, dtype=torch.bool)
    starts[..., 1:] = sorted_keys[..., 1:] != sorted_keys[..., :-1]
    run = starts.long().cumsum(-1) - 1  # run index of each sorted entry
    totals = torch.zeros_like(sorted_values).scatter_add(-1, run, sorted_values)  # [..., M], first runs filled
    run_keys = torch.zeros_like(sorted_keys).scatter(-1, run, sorted_keys)
    real = torch.arange(keys.shape[-1], device=keys.device) < starts.sum(-1, keepdim=True)
    ranked = torch.where(real, totals, torch.full_like(totals, -1.0))  # empty runs rank below every real one
    top = ranked.topk(min(keep, keys.shape[-1]), dim=-1).indices
    kept_keys, kept_values = run_keys.gather(-1, top), totals.gather(-1, top)
    kept_values = torch.where(real.expand_as(totals).gather(-1, top), kept_values, torch.zeros_like(kept_values))
    if kept_keys.shape[-1] < keep:  # fewer candidates than K_L: pad with empty entries
        pad = keep - kept_keys.shape[-1]
        kept_keys = torch.cat([kept_keys, kept_keys.new_zeros(*kept_keys.shape[:-1], pad)], -1)
        kept_values = torch.cat([kept_values, kept_values.new_zeros(*kept_values.shape[:-1], pad)], -1)
    return kept_keys, kept_values


def update_precedence(precedence, write_rows, write_weights, keep: int):
    """p_t = (1 - Σ w) p_{t-1} + w, K_L-sparse (eq. 3.9). precedence (rows, values) [B, K_L]."""
    rows, values = precedence
    values = (1 - write_weights.sum(-1, keepdim=True)) * values
    return merge_top(torch.cat([rows, write_rows], -1), torch.cat([values, write_weights], -1), keep)


def _changed_rows(matrix_rows: torch.Tensor, dual: LinkMatrix, written: torch.Tensor) -> torch.Tensor:
    """Rows to recompute: ``matrix_rows`` plus every row with an entry in a written column.

    The rows holding column c are the columns of row c of the dual matrix.
    """
    index = written.unsqueeze(-1).expand(-1, -1, dual.cols.shape[-1])
    holders = dual.cols.gather(1, index).flatten(1)  # [B, S * K_L]
    return torch.cat([matrix_rows, holders], -1)


def _recompute(matrix: LinkMatrix, rows, write, precedence, row_is_writer: bool, keep: int):
    """New entries of ``rows`` [B, R] of a link matrix from its old entries (see the module doc).

    row_is_writer: True for ``links`` (row i was written after col j: add w(i) p(j) for j in p),
    False for ``back`` (row j, col i: add w(i) p(j) for i in w).
    """
    write_rows, write_weights = write
    prec_rows, prec_values = precedence
    old_cols, old_values = matrix.rows(rows)  # [B, R, K_L]
    row_write = lookup(rows, write_rows, write_weights).unsqueeze(-1)  # w(r) [B, R, 1]
    col_write = lookup(old_cols, write_rows, write_weights)  # w(c) [B, R, K_L]
    decayed = (1 - row_write - col_write) * old_values
    if row_is_writer:  # new entries (r, j) = w(r) p(j)
        new_cols = prec_rows.unsqueeze(1).expand(-1, rows.shape[1], -1)
        new_values = row_write * prec_values.unsqueeze(1)
    else:  # new entries (r, i) = w(i) p(r)
        new_cols = write_rows.unsqueeze(1).expand(-1, rows.shape[1], -1)
        new_values = lookup(rows, prec_rows, prec_values).unsqueeze(-1) * write_weights.unsqueeze(1)
    new_values = new_values.masked_fill(new_cols == rows.unsqueeze(-1), 0.0)  # no self-links
    return merge_top(torch.cat([old_cols, new_cols], -1), torch.cat([decayed, new_values], -1), keep)


def update_links_(links: LinkMatrix, back: LinkMatrix, precedence, write_rows, write_weights) -> None:
    """In place: (links, back) from L_{t-1} to L_t, given p_{t-1} and the sparse write (rows, weights) [B, S].

    O(S K_L^2) per step whatever N is. Every input is read before anything is
    written, so both follow L_{t-1}; rows that repeat in a batch are
    recomputed identically, so scattering them is safe.
    """
    keep = links.cols.shape[-1]
    write = (write_rows, write_weights)
    links_rows = _changed_rows(write_rows, back, write_rows)
    back_rows = _changed_rows(torch.cat([write_rows, precedence[0]], -1), links, write_rows)
    new_links = _recompute(links, links_rows, write, precedence, True, keep)
    new_back = _recompute(back, back_rows, write, precedence, False, keep)
    links.set_rows(links_rows, *new_links)
    back.set_rows(back_rows, *new_back)


def directional_weights(links: LinkMatrix, back: LinkMatrix, read_rows, read_weights):
    """Sparse forward f = L a and backward b = L^T a for a = (read_rows, read_weights) [B, H, K].

    Returns (forward_rows, forward_weights, backward_rows, backward_weights), each [B, H, K * K_L];
    entries may repeat a row (their weights add up).
    """
    batch, heads, k = read_rows.shape

    def follow(matrix: LinkMatrix):
        cols, values = matrix.rows(read_rows.reshape(batch, heads * k))
        weights = (values.view(batch, heads, k, -1) * read_weights.unsqueeze(-1)).flatten(2)
        return cols.view(batch, heads, -1), weights

    forward_rows, forward_weights = follow(back)
    backward_rows, backward_weights = follow(links)
    return forward_rows, forward_weights, backward_rows, backward_weights


def densify(matrix: LinkMatrix, slots: int) -> torch.Tensor:
    """The dense [B, N, N] matrix of a sparse one (for tests and checks)."""
    cols, values = matrix.cols, matrix.values.memory
    return torch.zeros(cols.shape[0], slots, slots, dtype=values.dtype, device=values.device).scatter_add(
        2, cols, values
    )
