"""Sparse reads and writes of a dense memory with O(1) extra space per step.

Thesis Sec. 3.2.6 and 3.3 (J. Rae): a step of SAM reads K rows per head and
writes K·H + 1 rows, so backpropagation through time needs only the sparse
modifications of each step, never a copy of the memory per step.

``SparseMemory`` holds the memory of one unroll [B, N, W] and changes it in
place. Under autograd each operation is a custom ``torch.autograd.Function``
that saves only what its backward needs:

- ``gather(rows)``: the rows' indices (the values read are returned as a
  small tensor [B, S, W]; downstream autograd keeps them, not the memory);
- ``write(rows, weights, word, erase_rows)``: indices, weights a^W and word w;
- ``overwrite(rows, values)``: indices (rows replaced by values computed from
  their old contents, e.g. the SDNC's link rows);
- ``reset(envs, initial)``: the envs' mask.

The gradient with respect to the memory, G = dL/dM_t, is non-zero only on
rows the unroll touched (plus a gradient that arrives densely on M_T from a
later chunk and passes through untouched rows unchanged). So backward keeps
G only for the touched rows, a compact [U, W] table with U <= T·S rows,
built once per backward pass from the logged row indices, and updated in
place: ``gather``'s backward scatter-adds into its rows; ``write``'s backward
reads the written rows of G (for dL/da^W and dL/dw) and zeroes the erased row
(M_t(u) does not depend on M_{t-1}(u)). Only when the initial memory itself
needs a gradient is a dense [B, N, W] gradient built, once, at the end.
Neither backward needs the memory's contents, so the memory is not rolled
back (the thesis restores M_t to recompute read gradients; here the K rows
read are kept instead, at the same O(K·W) cost per step), and the memory
returned as the new state stays valid after backward.

The operations of one unroll are chained by a zero-size token tensor, so
autograd runs their backwards strictly in reverse order of the forward,
which the shared accumulator needs. Each operation knows its position in the
chain; a backward whose position does not continue downwards starts a new
pass (a retained graph, or an ``autograd.grad`` that never reached the first
operation), so every pass starts from a clean G. Without autograd (``record=False``,
e.g. actors under ``torch.no_grad``) the same in-place operations run with
no bookkeeping.
"""
from __future__ import annotations

import torch


class SparseMemory:
    """The memory of one forward call: starts as a copy of ``memory`` [B, N, W].

    record: build the autograd chain (True when gradients may be needed).
    in_place: change ``memory`` itself instead of a copy (saves an O(N) copy
    per call; the caller gives up the input state, as with buffer donation).
    """

    def __init__(self, memory: torch.Tensor, record: bool, in_place: bool = False):
        self.record = record
        self.memory = memory.detach() if in_place else memory.detach().clone()
        self._shape = self.memory.shape  # kept for backward, which runs after final() drops the memory
        self._like = self.memory.new_empty(0)  # dtype and device, for the same reason
        if record:
            self._logged_rows: list[torch.Tensor] = []  # the rows of every gather and write, in order
            self._operations = 0  # position of the next operation in the chain
            self._last_position = None  # position of the last operation back-propagated
            self._end_backward()
            # The anchor requires grad so that the chain reaches _Open even when
            # nothing else does; _Open hands the gradient to the initial memory.
            self._anchor = torch.zeros((), dtype=memory.dtype, device=memory.device, requires_grad=True)
            self._token = _Open.apply(memory, self._anchor, self)

    # -- the operations of a step ------------------------------------------------------------
    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows M_t(s) for indices rows [B, S] (long) -> [B, S, W]."""
        if not self.record:
            return gather_rows(self.memory, rows)
        self._logged_rows.append(rows)
        values, self._token = _Gather.apply(self._token, rows, self)
        return values

    def write(self, rows: torch.Tensor, weights: torch.Tensor, word: torch.Tensor, erase_rows: torch.Tensor) -> None:
        """M_t = (1 - R_t) ⊙ M_{t-1} + a^W w^T, sparse (thesis eq. 3.2, 3.6).

        rows [B, S] (may repeat: weights add up), weights a^W [B, S], word w [B, W],
        erase_rows [B, E]: rows set to zero before the add (R_t = I^U 1^T), E <= S
        and each erased row is also in ``rows``.
        """
        if not self.record:
            write_rows(self.memory, rows, weights, word, erase_rows)
            return
        self._logged_rows.append(rows)
        self._logged_rows.append(erase_rows)
        self._token = _Write.apply(self._token, rows, weights, word, erase_rows, self)

    def overwrite(self, rows: torch.Tensor, values: torch.Tensor) -> None:
        """M_t(rows[s]) = values[s]: rows [B, S], values [B, S, W]. Repeated rows must get equal values
        (the first copy carries the gradient). Used for rows recomputed from their old contents
        (e.g. the SDNC's link rows), so no path to M_{t-1} at those rows is lost."""
        if not self.record:
            overwrite_rows(self.memory, rows, values)
            return
        self._logged_rows.append(rows)
        self._token = _Overwrite.apply(self._token, rows, values, self)

    def reset(self, envs: torch.Tensor, initial: torch.Tensor) -> None:
        """Replace the memory of envs ``envs`` (bool [B]) by ``initial`` [N, W] (selection, not 1-done)."""
        if not self.record:
            reset_rows(self.memory, envs, initial)
            return
        self._token = _Reset.apply(self._token, envs, initial, self)

    def chain(self, function, *args):
        """Run a custom operation on this memory as the next link of the chain.

        function: a ``torch.autograd.Function`` whose forward takes (token, *args, tape), changes
        ``tape.memory`` in place and returns (*outputs, token.clone()), and whose backward starts with
        ``tape._begin(position)`` (position from ``tape._position()`` in forward) and updates the
        gradient table (``_grad_at``, ``_add_grad``, ``_zero_grad``, or ``_compact_grad`` itself).
        Returns the outputs. Without autograd, call the operation's kernel directly instead.
        """
        *outputs, self._token = function.apply(self._token, *args, self)
        return outputs

    def final(self) -> torch.Tensor:
        """M_T [B, N, W]: the memory after the last operation, for the next state."""
        if not self.record:
            return self.memory
        final = _Close.apply(self._token, self)
        # The graph keeps this tape alive (ctx.tape) until backward. The tape must not keep the
        # graph in turn (the last token; the memory, whose grad_fn is now _Close): that cycle runs
        # through C++ autograd nodes that Python's collector cannot see, so every recorded unroll
        # would leak its memory and saved tensors (the SAM learner grew ~300 MiB/min).
        self._token = self.memory = None
        return final

    # -- the gradient G = dL/dM_t during a backward pass ---------------------------------------
    def _position(self) -> int:
        self._operations += 1
        return self._operations

    def _begin(self, position: int) -> None:
        """Called first by every backward: within a pass positions only go down, so a position that
        does not is the start of a new pass (e.g. a previous ``autograd.grad`` that never reached
        _Open because it asked for other inputs), and G starts afresh."""
        if self._last_position is None or position >= self._last_position:
            self._end_backward()
        self._last_position = position

    def _end_backward(self) -> None:
        self._passthrough = None  # dL/dM_T as it arrived (dense), or None
        self._forgotten = None  # bool [B]: envs reset during the unroll (no gradient reaches M_0)
        self._keys = None  # sorted env * N + row of every touched row [U]
        self._grad = None  # G at the touched rows [U, W]
        self._known = {}  # _identity(logged rows) -> their positions in G, found with _keys

    def _positions(self, rows: torch.Tensor) -> torch.Tensor:
        """Positions in the compact G of rows [B, S] -> [B, S]."""
        known = self._known.get(_identity(rows))
        if known is not None:  # a logged tensor (the operations' own rows): found when G was built
            return known
        slots = self._shape[1]
        offsets = torch.arange(rows.shape[0], device=rows.device).unsqueeze(1) * slots
        return torch.searchsorted(self._keys, rows + offsets)

    def _compact_grad(self) -> torch.Tensor:
        if self._grad is None:
            batch, slots, width = self._shape
            offsets = torch.arange(batch, device=self._like.device).unsqueeze(1) * slots
            self._keys, positions = torch.unique(torch.cat([rows + offsets for rows in self._logged_rows], 1),
                                                 return_inverse=True)
            # Each logged tensor's positions come with the keys: no search per backward operation.
            widths = [rows.shape[1] for rows in self._logged_rows]
            self._known = {_identity(rows): part for rows, part in zip(self._logged_rows, positions.split(widths, 1))}
            if self._passthrough is None:
                self._grad = self._like.new_zeros(self._keys.shape[0], width)
            else:
                self._grad = self._passthrough.reshape(batch * slots, width)[self._keys].clone()
        return self._grad

    def _grad_at(self, rows: torch.Tensor) -> torch.Tensor | None:
        """G at rows [B, S] -> [B, S, W], or None if no gradient has reached the memory yet."""
        if self._grad is None and self._passthrough is None:
            return None
        return self._compact_grad()[self._positions(rows)]

    def _add_grad(self, rows: torch.Tensor, values: torch.Tensor) -> None:
        grad = self._compact_grad()
        grad.index_add_(0, self._positions(rows).flatten(), values.flatten(0, 1))

    def _zero_grad(self, rows: torch.Tensor) -> None:
        if self._grad is not None or self._passthrough is not None:
            self._compact_grad()[self._positions(rows).flatten()] = 0.0

    def _forget(self, envs: torch.Tensor) -> None:
        if self._grad is not None or self._passthrough is not None:
            grad = self._compact_grad()  # built now: the dense gradient must not reach past the reset
            grad[envs[self._keys // self._shape[1]]] = 0.0
        self._forgotten = envs.clone() if self._forgotten is None else self._forgotten | envs

    def _initial_grad(self) -> torch.Tensor | None:
        """dL/dM_0 [B, N, W] at the end of the pass (dense: built only when M_0 needs it)."""
        if self._grad is None and self._passthrough is None:
            return None
        batch, slots, width = self._shape
        grad = self._like.new_zeros(self._shape) if self._passthrough is None else self._passthrough.clone()
        if self._forgotten is not None:
            grad.masked_fill_(self._forgotten.view(-1, 1, 1), 0.0)
        if self._grad is not None:
            grad.view(batch * slots, width)[self._keys] = self._grad
        return grad


class DenseGradientMemory(SparseMemory):
    """A SparseMemory whose backward keeps dL/dM_t as a dense [B * N, W] table, not a compact one.

    For memories with short rows, such as the SDNC's link tables (W = K_L): one zeroed table per
    backward pass, O(N W) once like the state itself (nothing more is saved per step), costs less
    than finding every touched row in a compact table at each operation. ``_compact_grad()``
    returns the table: row env * N + slot.
    """

    def _compact_grad(self) -> torch.Tensor:
        if self._grad is None:
            batch, slots, width = self._shape
            if self._passthrough is None:
                self._grad = self._like.new_zeros(batch * slots, width)
            else:
                self._grad = self._passthrough.reshape(batch * slots, width).clone()
        return self._grad

    def _positions(self, rows: torch.Tensor) -> torch.Tensor:
        slots = self._shape[1]
        return rows + torch.arange(rows.shape[0], device=rows.device).unsqueeze(1) * slots

    def _forget(self, envs: torch.Tensor) -> None:
        if self._grad is not None or self._passthrough is not None:
            self._compact_grad().view(self._shape)[envs] = 0.0  # gradients of earlier steps still add up after

    def _initial_grad(self) -> torch.Tensor | None:
        if self._grad is None and self._passthrough is None:
            return None
        return self._compact_grad().view(self._shape)


def _identity(rows: torch.Tensor) -> tuple:
    """Equal for two views of the same index data (so the same positions): the logged tensor and
    the copy backward unpacks from its saved tensors. Logged tensors stay alive until the tape goes,
    so an address is not reused within a backward pass; the version catches an in-place change."""
    return rows.data_ptr(), rows.shape, rows.stride(), rows._version


# -- in-place kernels, shared by the recorded and unrecorded paths -----------------------------


def _expand(rows: torch.Tensor, width: int) -> torch.Tensor:
    return rows.unsqueeze(-1).expand(*rows.shape, width)


def gather_rows(memory: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """memory [B, N, W], rows [B, S] -> [B, S, W]."""
    return memory.gather(1, _expand(rows, memory.shape[-1]))


def write_rows(memory, rows, weights, word, erase_rows) -> None:
    """In place: zero ``erase_rows``, then add weights[s] * word to row rows[s]."""
    width = memory.shape[-1]
    memory.scatter_(1, _expand(erase_rows, width), 0.0)
    memory.scatter_add_(1, _expand(rows, width), weights.unsqueeze(-1) * word.unsqueeze(1))


def overwrite_rows(memory, rows, values) -> None:
    memory.scatter_(1, _expand(rows, memory.shape[-1]), values)


def first_copies(rows: torch.Tensor) -> torch.Tensor:
    """bool [B, S]: True at the first occurrence of each row in rows [B, S] (sort-based)."""
    sorted_rows, order = torch.sort(rows, dim=-1, stable=True)
    first = torch.ones_like(sorted_rows, dtype=torch.bool)
    first[:, 1:] = sorted_rows[:, 1:] != sorted_rows[:, :-1]
    return torch.zeros_like(first).scatter(1, order, first)


def reset_rows(memory, envs, initial) -> None:
    memory.copy_(torch.where(envs.view(-1, 1, 1), initial.to(memory.dtype), memory))


# -- the autograd chain ---------------------------------------------------------------------------


def _no_token_grad(token: torch.Tensor) -> torch.Tensor:
    # A zero gradient (not None) for the token keeps every link of the chain live.
    return torch.zeros_like(token)


class _Open(torch.autograd.Function):
    @staticmethod
    def forward(ctx, memory, anchor, tape):
        ctx.tape = tape
        ctx.memory_needs_grad = memory.requires_grad
        return anchor.new_zeros(())

    @staticmethod
    def backward(ctx, grad_token):
        tape = ctx.tape
        grad = tape._initial_grad() if ctx.memory_needs_grad else None
        tape._end_backward()  # this pass is over; a retained graph starts afresh
        tape._last_position = None
        return grad, _no_token_grad(grad_token), None


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token, rows, tape):
        ctx.tape = tape
        ctx.position = tape._position()
        ctx.save_for_backward(rows)
        return gather_rows(tape.memory, rows), token.clone()

    @staticmethod
    def backward(ctx, grad_values, grad_token):
        ctx.tape._begin(ctx.position)
        (rows,) = ctx.saved_tensors
        ctx.tape._add_grad(rows, grad_values)
        return _no_token_grad(grad_token), None, None


class _Write(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token, rows, weights, word, erase_rows, tape):
        ctx.tape = tape
        ctx.position = tape._position()
        ctx.save_for_backward(rows, weights, word, erase_rows)
        write_rows(tape.memory, rows, weights, word, erase_rows)
        return token.clone()

    @staticmethod
    def backward(ctx, grad_token):
        ctx.tape._begin(ctx.position)
        rows, weights, word, erase_rows = ctx.saved_tensors
        written = ctx.tape._grad_at(rows)  # dL/dM_t at the written rows [B, S, W]
        if written is None:  # nothing after this step depends on the memory
            return _no_token_grad(grad_token), None, None, None, None, None
        grad_weights = (written * word.unsqueeze(1)).sum(-1)
        grad_word = (weights.unsqueeze(-1) * written).sum(1)
        ctx.tape._zero_grad(erase_rows)  # erased: no path to M_{t-1}(u)
        return _no_token_grad(grad_token), None, grad_weights, grad_word, None, None


class _Overwrite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token, rows, values, tape):
        ctx.tape = tape
        ctx.position = tape._position()
        ctx.save_for_backward(rows)
        overwrite_rows(tape.memory, rows, values)
        return token.clone()

    @staticmethod
    def backward(ctx, grad_token):
        ctx.tape._begin(ctx.position)
        (rows,) = ctx.saved_tensors
        written = ctx.tape._grad_at(rows)  # dL/dM_t at the overwritten rows [B, S, W]
        if written is None:
            return _no_token_grad(grad_token), None, None, None
        grad_values = written * first_copies(rows).unsqueeze(-1)
        ctx.tape._zero_grad(rows)  # overwritten: no path to M_{t-1} at these rows
        return _no_token_grad(grad_token), None, grad_values, None


class _Reset(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token, envs, initial, tape):
        ctx.tape = tape
        ctx.position = tape._position()
        ctx.save_for_backward(envs)
        reset_rows(tape.memory, envs, initial)
        return token.clone()

    @staticmethod
    def backward(ctx, grad_token):
        ctx.tape._begin(ctx.position)
        (envs,) = ctx.saved_tensors
        ctx.tape._forget(envs)  # a reset env's memory does not depend on its past
        return _no_token_grad(grad_token), None, None, None


class _Close(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token, tape):
        ctx.tape = tape
        ctx.position = tape._position()
        return tape.memory

    @staticmethod
    def backward(ctx, grad_memory):
        ctx.tape._begin(ctx.position)
        # Runs before every other backward of the chain (it consumes the last token).
        ctx.tape._passthrough = grad_memory
        return torch.zeros((), dtype=grad_memory.dtype, device=grad_memory.device), None
