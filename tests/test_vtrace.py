import pytest
import torch

from agents.vtrace import vtrace, vtrace_reference


@pytest.mark.parametrize("discount", [0.0, 0.5, 0.99])
@pytest.mark.parametrize("clip_rho, clip_c", [(1.0, 1.0), (0.5, 2.0), (None, None), (2.0, 0.7)])
@pytest.mark.parametrize("trace_lambda", [1.0, 0.6])
def test_vtrace_matches_the_recursion(discount, clip_rho, clip_c, trace_lambda):
    g = torch.Generator().manual_seed(hash((discount, clip_rho, clip_c, trace_lambda)) % 2**31)
    T, B = 7, 3
    log_rhos = torch.randn(T, B, generator=g, dtype=torch.float64)
    # Some terminal steps (discount 0) in the middle.
    discounts = discount * (torch.rand(T, B, generator=g) > 0.2).double()
    rewards = torch.randn(T, B, generator=g, dtype=torch.float64)
    values = torch.randn(T, B, generator=g, dtype=torch.float64)
    bootstrap = torch.randn(B, generator=g, dtype=torch.float64)
    got = vtrace(log_rhos, discounts, rewards, values, bootstrap, clip_rho, clip_c, clip_rho, trace_lambda)
    want = vtrace_reference(log_rhos, discounts, rewards, values, bootstrap, clip_rho, clip_c, trace_lambda)
    torch.testing.assert_close(got.vs, want, rtol=1e-10, atol=1e-10)
    # pg advantage uses v_{s+1}, clipped rho, and the same discounts.
    rhos = log_rhos.exp()
    pg_rho = rhos.clamp(max=clip_rho) if clip_rho is not None else rhos
    vs_next = torch.cat([want[1:], bootstrap[None]])
    torch.testing.assert_close(got.pg_advantages, pg_rho * (rewards + discounts * vs_next - values), rtol=1e-10, atol=1e-10)


def test_on_policy_vtrace_is_the_n_step_return():
    T, B, discount = 5, 2, 0.9
    rewards = torch.arange(T * B, dtype=torch.float64).reshape(T, B)
    values = torch.zeros(T, B, dtype=torch.float64)
    bootstrap = torch.full((B,), 10.0, dtype=torch.float64)
    got = vtrace(torch.zeros(T, B, dtype=torch.float64), torch.full((T, B), discount, dtype=torch.float64), rewards, values, bootstrap)
    expected = bootstrap.clone()
    for t in reversed(range(T)):
        expected = rewards[t] + discount * expected
        torch.testing.assert_close(got.vs[t], expected)
