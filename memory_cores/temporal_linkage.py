"""Dense temporal links and dynamic allocation of the DNC (Graves et al. 2016; thesis Sec. 3.5).

Pure functions over batched tensors. Glossary: B batch, N slots, R read heads.

- precedence p_t = (1 - Σ_i w^w_t(i)) p_{t-1} + w^w_t                     (thesis eq. 3.9)
- links L_t(i, j) = (1 - w^w_t(i) - w^w_t(j)) L_{t-1}(i, j) + w^w_t(i) p_{t-1}(j),
  L_t(i, i) = 0                                                            (eq. 3.11)
- forward f_t = L_t w^r_{t-1}, backward b_t = L_t^T w^r_{t-1}             (eq. 3.13-3.14)
- retention ψ_t = Π_r (1 - f^r_t w^r_{t-1}); usage
  u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} ⊙ w^w_{t-1}) ⊙ ψ_t
- allocation: with φ the rows sorted by increasing usage,
  a_t(φ_j) = (1 - u_t(φ_j)) Π_{i<j} u_t(φ_i)
"""
from __future__ import annotations

import torch

# Usage is kept in [eps, 1]: the allocation's cumulative product then never
# multiplies by an exact zero, whose gradient would be undefined in the sort.
USAGE_EPSILON = 1e-6


def update_precedence(precedence: torch.Tensor, write_weights: torch.Tensor) -> torch.Tensor:
    """p_t from p_{t-1} [B, N] and w^w_t [B, N]."""
    return (1 - write_weights.sum(-1, keepdim=True)) * precedence + write_weights


def update_links(links: torch.Tensor, precedence: torch.Tensor, write_weights: torch.Tensor) -> torch.Tensor:
    """L_t from L_{t-1} [B, N, N], p_{t-1} [B, N] and w^w_t [B, N]; the diagonal stays zero."""
    write_i = write_weights.unsqueeze(2)
    write_j = write_weights.unsqueeze(1)
    links = (1 - write_i - write_j) * links + write_i * precedence.unsqueeze(1)
    eye = torch.eye(links.shape[-1], dtype=torch.bool, device=links.device)
    return links.masked_fill(eye, 0.0)


def directional_weights(links: torch.Tensor, read_weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(forward f_t, backward b_t) [B, R, N] from L_t [B, N, N] and w^r_{t-1} [B, R, N]."""
    forward = torch.einsum("bij,brj->bri", links, read_weights)
    backward = torch.einsum("bji,brj->bri", links, read_weights)
    return forward, backward


def update_usage(usage, write_weights, free_gates, read_weights) -> torch.Tensor:
    """u_t from u_{t-1} [B, N], w^w_{t-1} [B, N], free gates f_t [B, R] and w^r_{t-1} [B, R, N]."""
    retention = torch.prod(1 - free_gates.unsqueeze(-1) * read_weights, dim=1)
    usage = (usage + write_weights - usage * write_weights) * retention
    return USAGE_EPSILON + (1 - USAGE_EPSILON) * usage


def allocation_weights(usage: torch.Tensor) -> torch.Tensor:
    """a_t [B, N] from u_t [B, N]: the least used rows get the weight, in order of usage.

    The sort order is not differentiated (it is piecewise constant); the
    weights are, through the sorted usage values.
    """
    order = torch.sort(usage.detach(), dim=-1, stable=True).indices
    sorted_usage = usage.gather(-1, order)
    # Exclusive cumulative product: Π_{i<j} u(φ_i), 1 for the first row.
    before = torch.cumprod(torch.cat([torch.ones_like(sorted_usage[..., :1]), sorted_usage[..., :-1]], -1), -1)
    sorted_allocation = (1 - sorted_usage) * before
    return torch.zeros_like(usage).scatter(-1, order, sorted_allocation)
