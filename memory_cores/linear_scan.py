"""The diagonal linear recurrence h_t = a_t ⊙ h_{t−1} + b_t over T, by a parallel associative scan.

Shared by the cores whose state follows an element-wise linear recurrence
(``lru``, ``ffm``, ``mamba``). Shapes: a and b [T, B, ...] (a broadcastable
to b; real or complex), h0 [B, ...], reset bool [T, B]; h [T, B, ...].

The steps (a_t, b_t) compose with the associative operator

    (a_i, b_i) • (a_j, b_j) = (a_j a_i,  a_j b_i + b_j)

(Blelloch 1990; S5, Smith et al. 2023), so h_t is the t-th prefix of
(a_0, a_0 h0 + b_0) • (a_1, b_1) • ... and, the operator being associative,
the prefixes can be grouped in any order: in parallel, not one step at a time.

Resets (S5 in RL, Lu et al. 2023): with a reset flag r_j the operator becomes
(a_i, b_i, r_i) • (a_j, b_j, r_j) = r_j ? (a_j, b_j) : (a_j a_i, a_j b_i + b_j),
i.e. nothing before a reset reaches h_j. Every core here starts an episode
from h = 0, so "forget everything before step t" is exactly a_t := 0, and the
reset-aware operator is the plain one applied to (r_t ? 0 : a_t, b_t); that
also drops the carried-in state h0 for an env that resets at step 0.

``linear_scan`` is the two-level blocked scan ("scan, then propagate"): the
unroll is cut into about √T blocks of about √T steps; (1) every block is scanned
from a zero state, all blocks at once (√T tensor steps over [blocks, B, ...]),
keeping the prefix products A_t = a_t ⋯ a_start; (2) the block totals are
scanned (√T small steps) to give the state entering each block; (3) one
element-wise combine h_t = H_t + A_t ⊙ h_in(block). 2√T sequential steps
instead of T, O(T) work. ``linear_scan_step_by_step`` is its slow twin.
"""
from __future__ import annotations

import math

import torch


def fold_resets(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, reset: torch.Tensor | None):
    """(a with a_t = 0 where reset_t [B], broadcast to b's shape; b with the carried state in b_0)."""
    a = a.expand_as(b)
    if reset is not None:
        a = torch.where(reset.view(*reset.shape, *([1] * (b.dim() - 2))), torch.zeros((), dtype=a.dtype), a)
    # h_0 = a_0 h0 + b_0: the incoming state enters as part of the first step's input.
    b = torch.cat([(b[0] + a[0] * h0)[None], b[1:]])
    return a, b


def linear_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, reset: torch.Tensor | None = None,
                block: int | None = None) -> torch.Tensor:
    """h [T, B, ...] with h_t = a_t ⊙ h_{t−1} + b_t, h_{−1} = h0, and h_{t−1} := 0 where reset_t.

    ``block``: steps per block (default ⌊√T⌋)."""
    a, b = fold_resets(a, b, h0, reset)
    steps = b.shape[0]
    block = block or max(1, math.isqrt(steps))
    blocks = -(-steps // block)
    pad = blocks * block - steps
    if pad:  # identity steps (a = 1, b = 0) fill the last block
        a = torch.cat([a, a.new_ones(pad, *a.shape[1:])])
        b = torch.cat([b, b.new_zeros(pad, *b.shape[1:])])
    # [blocks * block, ...] -> [block, blocks, ...]: step i of every block side by side.
    a_in, b_in = (v.reshape(blocks, block, *v.shape[1:]).transpose(0, 1).contiguous() for v in (a, b))
    # (1) each block from a zero state: H_t (state) and A_t (product of a since the block start).
    state, product, states, products = torch.zeros_like(b_in[0]), None, [], []
    for a_t, b_t in zip(a_in.unbind(0), b_in.unbind(0)):
        state = a_t * state + b_t
        product = a_t if product is None else a_t * product
        states.append(state)
        products.append(product)
    # (2) the state entering block k: the same recurrence over the block totals (A, H) of blocks < k.
    carry, carries = torch.zeros_like(state[0]), []
    for total_a, total_h in zip(product.unbind(0), state.unbind(0)):
        carries.append(carry)
        carry = total_a * carry + total_h
    # (3) carry each block's incoming state through it.
    h = torch.stack(states) + torch.stack(products) * torch.stack(carries)
    return h.transpose(0, 1).reshape(blocks * block, *h.shape[2:])[:steps]


def linear_scan_step_by_step(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor,
                             reset: torch.Tensor | None = None) -> torch.Tensor:
    """Slow reference of ``linear_scan``: the recurrence one step at a time."""
    h, out = h0, []
    # unbind, not a[t]: indexing one step would give every step a full-size gradient in backward.
    for t, (a_t, b_t) in enumerate(zip(a.expand_as(b).unbind(0), b.unbind(0))):
        if reset is not None:
            h = torch.where(reset[t].view(-1, *([1] * (h.dim() - 1))), torch.zeros((), dtype=h.dtype), h)
        h = a_t * h + b_t
        out.append(h)
    return torch.stack(out)
