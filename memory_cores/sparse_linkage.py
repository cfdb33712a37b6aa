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

Two implementations of one step (update, p_t, and the read weights: the
directional weights mixed with the content weights by the read modes,
``mix_merge``) share the interface of ``open_links``: ``TorchLinks`` (PyTorch
ops; the reference, and what runs on CUDA) and ``FusedLinks`` (CPU: one C++
call each way, ``csrc/link_step.cpp``, built by ``native_ops``).
Glossary: B batch, N slots, S sparse entries, K_L entries per row.
"""
from __future__ import annotations

import torch

from . import native_ops
from .sparse_access import DenseGradientMemory, SparseMemory, _no_token_grad


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
    """The summed value of each of rows [B, ...] in a sparse vector (keys, values) [B, S] -> [B, ...].

    Repeated keys are summed into runs of the sorted keys, then each row is found by binary
    search: backward keeps indices, not a [rows x S] comparison.
    """
    flat = rows.reshape(rows.shape[0], -1)
    run_keys, totals, runs, _ = _runs(keys, values)
    never = torch.iinfo(torch.long).max  # past the last run: keeps run_keys sorted for the search
    run_keys = torch.where(torch.arange(keys.shape[-1], device=keys.device) < runs, run_keys, never)
    position = torch.searchsorted(run_keys, flat).clamp(max=keys.shape[-1] - 1)
    found = run_keys.gather(-1, position) == flat
    return torch.where(found, totals.gather(-1, position), torch.zeros_like(totals[..., :1])).view(rows.shape)


def _runs(keys: torch.Tensor, values: torch.Tensor):
    """Distinct keys of [..., M] in order with their summed values, left-aligned.

    Returns (run_keys, totals, count [..., 1], run_of [..., M]: the run of each entry of ``keys``).
    """
    sorted_keys, order = torch.sort(keys, dim=-1, stable=True)
    sorted_values = values.gather(-1, order)
    starts = torch.ones_like(sorted_keys, dtype=torch.bool)
    starts[..., 1:] = sorted_keys[..., 1:] != sorted_keys[..., :-1]
    run = starts.long().cumsum(-1) - 1  # run index of each sorted entry
    totals = torch.zeros_like(sorted_values).scatter_add(-1, run, sorted_values)
    run_keys = torch.zeros_like(sorted_keys).scatter(-1, run, sorted_keys)
    run_of = torch.empty_like(run).scatter(-1, order, run)
    return run_keys, totals, starts.sum(-1, keepdim=True), run_of


def merge_top(keys: torch.Tensor, values: torch.Tensor, keep: int):
    """Sum the values of repeated keys and keep the ``keep`` largest: [..., M] -> [..., keep].

    The structure (which keys survive, in which slot; equal totals: the smaller key first) is found
    without autograd by sorting (O(M log M) per row); the values are then one scatter-add of each
    candidate into its slot, so backward keeps a single index tensor. Fewer than ``keep`` distinct keys: the remaining slots
    are empty (value 0).
    """
    slots = min(keep, keys.shape[-1])
    with torch.no_grad():
        run_keys, totals, runs, run_of = _runs(keys, values.detach())
        real = torch.arange(keys.shape[-1], device=keys.device) < runs
        ranked = torch.where(real, totals, torch.full_like(totals, -1.0))  # empty runs rank below every real one
        # The runs kept, best first; ties to the smaller key (a stable sort, not topk, whose tie order is
        # unspecified): equal totals, e.g. the zero-valued entries of a first step, sit as in the C++ merge.
        top = ranked.sort(dim=-1, descending=True, stable=True).indices[..., :slots]
        kept_keys = torch.where(real.gather(-1, top), run_keys.gather(-1, top), torch.zeros_like(top))
        slot_of_run = torch.full_like(run_keys, slots).scatter(-1, top, torch.arange(slots, device=keys.device).expand_as(top))
        destination = slot_of_run.gather(-1, run_of)  # dropped candidates go to the extra slot
    kept_values = values.new_zeros(*values.shape[:-1], slots + 1).scatter_add(-1, destination, values)[..., :slots]
    if slots < keep:  # fewer candidates than K_L: pad with empty entries
        pad = keep - slots
        kept_keys = torch.cat([kept_keys, kept_keys.new_zeros(*kept_keys.shape[:-1], pad)], -1)
        kept_values = torch.cat([kept_values, kept_values.new_zeros(*kept_values.shape[:-1], pad)], -1)
    return kept_keys, kept_values


def mix_merge(parts, modes: torch.Tensor, keep: int):
    """Σ_g modes[..., g] * part g, as sparse vectors: parts [(rows, weights) [..., M_g]], modes [..., G];
    repeated rows summed and the ``keep`` largest kept (``merge_top``) -> (rows, weights) [..., keep].

    The SDNC's read weights from its backward, content and forward weights and read modes.
    """
    rows = torch.cat([part_rows for part_rows, _ in parts], -1)
    weights = torch.cat([modes[..., g : g + 1] * part_weights for g, (_, part_weights) in enumerate(parts)], -1)
    return merge_top(rows, weights, keep)


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


def _decayed(matrix: LinkMatrix, rows, write):
    """Rows [B, R] with every entry (r, c) scaled by 1 - w(r) - w(c): the decay of L_{t-1}."""
    write_rows, write_weights = write
    cols, values = matrix.rows(rows)  # [B, R, K_L]
    decay = 1 - lookup(rows, write_rows, write_weights).unsqueeze(-1) - lookup(cols, write_rows, write_weights)
    return cols, decay * values


def _with_new_entries(matrix: LinkMatrix, rows, new_cols, new_values, keep: int):
    """Rows [B, R] plus entries (new_cols, new_values) [B, R, M] (no self-links), the K_L largest kept."""
    cols, values = matrix.rows(rows)
    new_values = new_values.masked_fill(new_cols == rows.unsqueeze(-1), 0.0)
    return merge_top(torch.cat([cols, new_cols], -1), torch.cat([values, new_values], -1), keep)


def update_links_(links: LinkMatrix, back: LinkMatrix, precedence, write_rows, write_weights) -> None:
    """In place: (links, back) from L_{t-1} to L_t, given p_{t-1} and the sparse write (rows, weights) [B, S].

    Two phases, each reading only what the previous one wrote: (1) decay, by 1 - w(i) - w(j), the
    written rows and every row with an entry in a written column (found through the other matrix);
    (2) add w(i) p(j): to the written rows of ``links`` (cols from p) and to the rows of p in
    ``back`` (cols from w), keeping the K_L largest. O(S K_L^2) per step whatever N is; rows that
    repeat are recomputed identically, so scattering them is safe.
    """
    keep = links.cols.shape[-1]
    write = (write_rows, write_weights)
    prec_rows, prec_values = precedence
    links_rows = _changed_rows(write_rows, back, write_rows)
    back_rows = _changed_rows(write_rows, links, write_rows)
    links_decayed, back_decayed = _decayed(links, links_rows, write), _decayed(back, back_rows, write)
    links.set_rows(links_rows, *links_decayed)
    back.set_rows(back_rows, *back_decayed)
    batch, writes = write_rows.shape
    row_write = lookup(write_rows, write_rows, write_weights).unsqueeze(-1)  # w(i) of each written row
    links.set_rows(write_rows, *_with_new_entries(
        links, write_rows, prec_rows.unsqueeze(1).expand(-1, writes, -1), row_write * prec_values.unsqueeze(1), keep
    ))
    back.set_rows(prec_rows, *_with_new_entries(
        back, prec_rows, write_rows.unsqueeze(1).expand(-1, prec_rows.shape[1], -1),
        lookup(prec_rows, prec_rows, prec_values).unsqueeze(-1) * write_weights.unsqueeze(1), keep,
    ))


class TorchLinks:
    """Both link matrices of one unroll as two ``LinkMatrix``, stepped by PyTorch ops (any device).

    The reference implementation; ``FusedLinks`` is the same function on CPU in one C++ call per step.
    """

    def __init__(self, links, back, record: bool, in_place: bool = False):
        self.links = LinkMatrix(*links, record, in_place)
        self.back = LinkMatrix(*back, record, in_place)

    def read(self, precedence, write_rows, write_weights, read_rows, read_weights, content, modes, keep: int):
        """One step: L_{t-1} -> L_t (``update_links_``, with p_{t-1} = precedence (rows, values) [B, K_L] and
        the write (rows, weights) [B, S]); the directional weights of the previous read (read_rows,
        read_weights) [B, H, K] through L_t (``directional_weights``); the read weights, π_b b + π_c c + π_f f
        with content = (rows, weights) [B, H, K_c] and modes π [B, H, 3], ``keep`` largest (``mix_merge``);
        p_t (``update_precedence``). Returns (rows, weights) [B, H, keep] and p_t."""
        update_links_(self.links, self.back, precedence, write_rows, write_weights)
        forward_rows, forward, backward_rows, backward = directional_weights(self.links, self.back, read_rows, read_weights)
        read = mix_merge([(backward_rows, backward), content, (forward_rows, forward)], modes, keep)
        return *read, update_precedence(precedence, write_rows, write_weights, self.links.cols.shape[-1])

    def reset(self, envs: torch.Tensor) -> None:
        """Empty both matrices of envs ``envs`` (bool [B])."""
        slots, per_row = self.links.cols.shape[1:]
        empty = torch.zeros(slots, per_row, dtype=self.links.values.memory.dtype, device=envs.device)
        for matrix in (self.links, self.back):
            matrix.cols.masked_fill_(envs.view(-1, 1, 1), 0)
            matrix.values.reset(envs, empty)

    def final(self):
        """((links_cols, links_values), (back_cols, back_values)) [B, N, K_L] for the next state."""
        return self.links.final(), self.back.final()

    def dense(self):
        """(L, L^T) as dense [B, N, N] matrices (for tests and checks)."""
        slots = self.links.cols.shape[1]
        return densify(self.links.cols, self.links.values.memory, slots), densify(self.back.cols, self.back.values.memory, slots)


class FusedLinks:
    """Both link matrices of one unroll as one table [B, 2N, K_L] (rows [0, N): L; [N, 2N): L^T),
    stepped by one C++ call each way (``csrc/link_step.cpp``, CPU only).

    A step (update of both matrices, p_t, the rows the previous read follows, and the read merge with
    the content weights) is one operation on a ``DenseGradientMemory`` of the values: forward saves the
    changed rows' old entries (O(S K_L^2), whatever N is); backward hands their gradient on in the dense
    gradient table. The two matrices are copied into the table once per call, so ``in_place_state``
    does not apply to them.
    """

    def __init__(self, links, back, record: bool):
        self.slots = links[0].shape[1]
        self.record = record
        self.cols = torch.cat([links[0], back[0]], 1).long()
        self.values = DenseGradientMemory(torch.cat([links[1], back[1]], 1), record, in_place=True)  # cat copied

    def read(self, precedence, write_rows, write_weights, read_rows, read_weights, content, modes, keep: int):
        """As ``TorchLinks.read``."""
        batch, heads, k = read_rows.shape
        previous = (read_rows.reshape(batch, heads * k), read_weights.reshape(batch, heads * k))
        args = (self.cols, write_rows, write_weights, *precedence, *previous, *content, modes, keep)
        if self.record:
            rows, weights, prec_rows, prec_values = self.values.chain(_LinkStep, *args)
        else:
            step = native_ops.extension("link_step").link_step_forward
            rows, weights, prec_rows, prec_values = step(self.cols, self.values.memory, *args[1:])[5:]
        return rows, weights, (prec_rows, prec_values)

    def reset(self, envs: torch.Tensor) -> None:
        self.cols.masked_fill_(envs.view(-1, 1, 1), 0)
        self.values.reset(envs, torch.zeros(self.cols.shape[1:], dtype=self.values.memory.dtype, device=envs.device))

    def final(self):
        values, slots = self.values.final(), self.slots
        return (self.cols[:, :slots], values[:, :slots]), (self.cols[:, slots:], values[:, slots:])

    def dense(self):
        slots, cols, values = self.slots, self.cols, self.values.memory
        return (densify(cols[:, :slots], values[:, :slots], slots), densify(cols[:, slots:], values[:, slots:], slots))


def open_links(links, back, record: bool, in_place: bool = False, fused: bool = True):
    """The link matrices of one unroll from the state's (cols, values) pairs [B, N, K_L]: ``FusedLinks``
    where ``fused`` and the tensors are on CPU and the C++ op builds, else ``TorchLinks``."""
    if fused and links[1].device.type == "cpu" and native_ops.extension("link_step") is not None:
        return FusedLinks(links, back, record)
    return TorchLinks(links, back, record, in_place)


class _LinkStep(torch.autograd.Function):
    """(token, cols, write_rows, write_weights, prec_rows, prec_values, read_rows, read_weights, content_rows,
    content_weights, modes, keep, tape) -> (read rows, read weights [B, H, keep], p_t rows, p_t values [B, K_L],
    token): ``FusedLinks.read``'s operation on its values (``tape``); ``csrc/link_step.cpp``'s
    link_step_forward/backward."""

    @staticmethod
    def forward(ctx, token, cols, write_rows, write_weights, prec_rows, prec_values, read_rows, read_weights,
                content_rows, content_weights, modes, keep, tape):
        ctx.tape, ctx.position = tape, tape._position()
        changed, old_cols, old_values, read_values, slot, rows, weights, new_prec_rows, new_prec_values = (
            native_ops.extension("link_step").link_step_forward(
                cols, tape.memory, write_rows, write_weights, prec_rows, prec_values, read_rows, read_weights,
                content_rows, content_weights, modes, keep,
            )
        )
        ctx.save_for_backward(read_rows, read_weights, read_values, slot, content_weights, modes, changed, old_cols,
                              old_values, write_rows, write_weights, prec_rows, prec_values)
        ctx.mark_non_differentiable(rows, new_prec_rows)
        return rows, weights, new_prec_rows, new_prec_values, token.clone()

    @staticmethod
    def backward(ctx, _grad_rows, grad_weights, _grad_prec_rows, grad_prec_values, grad_token):
        tape = ctx.tape
        tape._begin(ctx.position)
        table = tape._compact_grad().view(tape._shape)  # dL/d values after the step -> before it, in place
        grad_write, grad_prec, grad_read, grad_content, grad_modes = native_ops.extension("link_step").link_step_backward(
            table, grad_weights, grad_prec_values, *ctx.saved_tensors
        )
        return (_no_token_grad(grad_token), None, None, grad_write, None, grad_prec, None, grad_read, None, grad_content,
                grad_modes, None, None)


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


def densify(cols: torch.Tensor, values: torch.Tensor, slots: int) -> torch.Tensor:
    """The dense [B, N, N] matrix of a sparse one given as (cols, values) [B, N, K_L] (for tests and checks)."""
    return torch.zeros(cols.shape[0], slots, slots, dtype=values.dtype, device=values.device).scatter_add(2, cols, values)
