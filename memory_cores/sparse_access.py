"""Sparse reads and writes of a dense memory with O(1) extra space per step.

Thesis Sec. 3.2.6 and 3.3 (J. Rae): a step of SAM reads K rows per head and
writes K·H + 1 rows, so backpropagation through time needs only the sparse
modifications of each step, never a copy of the memory per step.

``SparseMemory`` holds the memory of one unroll [B, N, W] and changes it in
place. Under autograd each operation is a custom ``torch.autograd.Function``
that saves only what its backward needs:

- ``gather(rows)``: the rows' indices (the values read are returned as a
  small tensor [B, S, W]; downstream autograd keeps them, not the memory);
- ``write(rows, weights, word, erase_rows)``: indices, weights a^W and word w.

The gradient with respect to the memory is one dense accumulator G = dL/dM_t
[B, N, W], allocated once per backward pass and updated sparsely in place:
``gather``'s backward scatter-adds into K·H rows; ``write``'s backward reads
the K·H + 1 written rows of G (for dL/da^W and dL/dw) and zeroes the erased
row (M_t(u) does not depend on M_{t-1}(u)). Neither backward needs the
memory's contents, so the memory is not rolled back (the thesis restores
M_t to recompute read gradients; here the K rows read are kept instead, at
the same O(K·W) cost per step), and the memory returned as the new state
stays valid after backward.

The operations of one unroll are chained by a zero-size token tensor, so
autograd runs their backwards strictly in reverse order of the forward,
which the shared accumulator needs. Without autograd (``record=False``,
e.g. actors under ``torch.no_grad``) the same in-place operations run with
no bookkeeping.
"""
from __future__ import annotations

import torch


class SparseMemory:
    """The memory of one forward call: starts as a copy of ``memory`` [B, N, W].

    record: build the autograd chain (True when gradients may be needed).
    """

    def __init__(self, memory: torch.Tensor, record: bool):
        self.record = record
        self.memory = memory.detach().clone()
        self.grad: torch.Tensor | None = None  # G = dL/dM_t during a backward pass
        if record:
            # The anchor requires grad so that the chain reaches _Open even when
            # nothing else does; _Open hands G to the initial memory.
            self._anchor = torch.zeros((), dtype=memory.dtype, device=memory.device, requires_grad=True)
            self._token = _Open.apply(memory, self._anchor, self)

    # -- the operations of a step ------------------------------------------------------------
    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows M_t(s) for indices rows [B, S] (long) -> [B, S, W]."""
        if not self.record:
            return gather_rows(self.memory, rows)
        values, self._token = _Gather.apply(self._token, rows, self)
        return values

    def write(self, rows: torch.Tensor, weights: torch.Tensor, word: torch.Tensor, erase_rows: torch.Tensor) -> None:
        """M_t = (1 - R_t) ⊙ M_{t-1} + a^W w^T, sparse (thesis eq. 3.2, 3.6).

        rows [B, S] (may repeat: weights add up), weights a^W [B, S], word w [B, W],
        erase_rows [B, E]: rows set to zero before the add (R_t = I^U 1^T).
        """
        if not self.record:
            write_rows(self.memory, rows, weights, word, erase_rows)
            return
        self._token = _Write.apply(self._token, rows, weights, word, erase_rows, self)

    def reset(self, envs: torch.Tensor, initial: torch.Tensor) -> None:
        """Replace the memory of envs ``envs`` (bool [B]) by ``initial`` [N, W] (selection, not 1-done)."""
        if not self.record:
            reset_rows(self.memory, envs, initial)
            return
        self._token = _Reset.apply(self._token, envs, initial, self)

    def final(self) -> torch.Tensor:
        """M_T [B, N, W]: the memory after the last operation, for the next state."""
        if not self.record:
            return self.memory
        return _Close.apply(self._token, self)

    # -- the gradient accumulator --------------------------------------------------------------
    def grad_buffer(self) -> torch.Tensor:
        if self.grad is None:
            self.grad = torch.zeros_like(self.memory)
        return self.grad


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
        grad, tape.grad = tape.grad, None  # this pass is over; a retained graph starts afresh
        return (grad if ctx.memory_needs_grad else None), _no_token_grad(grad_token), None


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token, rows, tape):
        ctx.tape = tape
        ctx.save_for_backward(rows)
        return gather_rows(tape.memory, rows), token.clone()

    @staticmethod
    def backward(ctx, grad_values, grad_token):
        (rows,) = ctx.saved_tensors
        grad = ctx.tape.grad_buffer()
        grad.scatter_add_(1, _expand(rows, grad.shape[-1]), grad_values)
        return _no_token_grad(grad_token), None, None


class _Write(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token, rows, weights, word, erase_rows, tape):
        ctx.tape = tape
        ctx.save_for_backward(rows, weights, word, erase_rows)
        write_rows(tape.memory, rows, weights, word, erase_rows)
        return token.clone()

    @staticmethod
    def backward(ctx, grad_token):
        rows, weights, word, erase_rows = ctx.saved_tensors
        grad = ctx.tape.grad
        if grad is None:  # nothing after this step depends on the memory
            return _no_token_grad(grad_token), None, None, None, None, None
        written = gather_rows(grad, rows)  # dL/dM_t at the written rows [B, S, W]
        grad_weights = (written * word.unsqueeze(1)).sum(-1)
        grad_word = (weights.unsqueeze(-1) * written).sum(1)
        grad.scatter_(1, _expand(erase_rows, grad.shape[-1]), 0.0)  # erased: no path to M_{t-1}(u)
        return _no_token_grad(grad_token), None, grad_weights, grad_word, None, None


class _Reset(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token, envs, initial, tape):
        ctx.tape = tape
        ctx.save_for_backward(envs)
        reset_rows(tape.memory, envs, initial)
        return token.clone()

    @staticmethod
    def backward(ctx, grad_token):
        (envs,) = ctx.saved_tensors
        grad = ctx.tape.grad
        if grad is not None:
            grad.masked_fill_(envs.view(-1, 1, 1), 0.0)  # a reset env's memory forgets its past
        return _no_token_grad(grad_token), None, None, None


class _Close(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token, tape):
        ctx.tape = tape
        return tape.memory

    @staticmethod
    def backward(ctx, grad_memory):
        # Runs before every other backward of the chain (it consumes the last token).
        ctx.tape.grad = grad_memory.clone()
        return torch.zeros((), dtype=grad_memory.dtype, device=grad_memory.device), None
