"""V-trace off-policy targets (Espeholt et al. 2018, "IMPALA", Section 4.1).

All tensors are time-major [T, B]; ``bootstrap_value`` is [B].

    rho_t  = min(rho_bar, pi(a_t|x_t) / mu(a_t|x_t))        (clip_rho_threshold)
    c_t    = lambda min(c_bar, pi(a_t|x_t) / mu(a_t|x_t))    (clip_c_threshold, trace_lambda)
    delta_t = rho_t (r_t + gamma_t V(x_{t+1}) - V(x_t))
    v_s - V(x_s) = delta_s + gamma_s c_s (v_{s+1} - V(x_{s+1}))
    policy-gradient advantage_s = rho_pg_s (r_s + gamma_s v_{s+1} - V(x_s))

``discounts`` carries gamma_t * (1 - terminated_t), so a terminal step does not
bootstrap. ``trace_lambda`` < 1 (paper, Section 4.1, Remark 2) shortens the
traces: less variance from rewards the value cannot predict, more bias. ``vtrace_reference`` is the direct loop over the recursion above.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class VTraceReturns(NamedTuple):
    vs: torch.Tensor  # [T, B] value targets
    pg_advantages: torch.Tensor  # [T, B] policy-gradient advantages


@torch.no_grad()
def vtrace(
    log_rhos: torch.Tensor,
    discounts: torch.Tensor,
    rewards: torch.Tensor,
    values: torch.Tensor,
    bootstrap_value: torch.Tensor,
    clip_rho_threshold: float | None = 1.0,
    clip_c_threshold: float | None = 1.0,
    clip_pg_rho_threshold: float | None = 1.0,
    trace_lambda: float = 1.0,
) -> VTraceReturns:
    """V-trace targets from log importance ratios ``log_rhos = log pi - log mu`` [T, B]."""
    rhos = log_rhos.exp()
    clipped_rhos = rhos.clamp(max=clip_rho_threshold) if clip_rho_threshold is not None else rhos
    cs = trace_lambda * (rhos.clamp(max=clip_c_threshold) if clip_c_threshold is not None else rhos)
    values_next = torch.cat([values[1:], bootstrap_value[None]], dim=0)
    deltas = clipped_rhos * (rewards + discounts * values_next - values)

    # Backward scan; T is small (an unroll), so a Python loop over time is fine.
    acc = torch.zeros_like(bootstrap_value)
    corrections = []
    for t in reversed(range(log_rhos.shape[0])):
        acc = deltas[t] + discounts[t] * cs[t] * acc
        corrections.append(acc)
    vs = torch.stack(corrections[::-1]) + values

    vs_next = torch.cat([vs[1:], bootstrap_value[None]], dim=0)
    pg_rhos = rhos.clamp(max=clip_pg_rho_threshold) if clip_pg_rho_threshold is not None else rhos
    pg_advantages = pg_rhos * (rewards + discounts * vs_next - values)
    return VTraceReturns(vs=vs, pg_advantages=pg_advantages)


def vtrace_reference(log_rhos, discounts, rewards, values, bootstrap_value, clip_rho_threshold, clip_c_threshold, trace_lambda=1.0):
    """Slow twin of ``vtrace`` straight from the paper's definition (eq. 1):

    v_s = V(x_s) + sum_{t=s}^{T-1} (prod_{i=s}^{t-1} gamma_i) (prod_{i=s}^{t-1} c_i) delta_t V
    """
    T, B = log_rhos.shape
    rhos = log_rhos.exp()
    vs = torch.zeros(T, B, dtype=values.dtype)
    values_next = torch.cat([values[1:], bootstrap_value[None]])
    for b in range(B):
        for s in range(T):
            total = values[s, b].clone()
            weight = 1.0
            for t in range(s, T):
                rho_t = min(clip_rho_threshold, rhos[t, b]) if clip_rho_threshold is not None else rhos[t, b]
                delta = rho_t * (rewards[t, b] + discounts[t, b] * values_next[t, b] - values[t, b])
                total = total + weight * delta
                c_t = min(clip_c_threshold, rhos[t, b]) if clip_c_threshold is not None else rhos[t, b]
                weight = weight * discounts[t, b] * trace_lambda * c_t
            vs[s, b] = total
    return vs
