"""The dense DNC: its linkage and allocation against direct loops over the equations, gradients.

Contract tests (shapes, chunked unroll, resets, pickling) run for ``dnc`` in
test_core_contract.py.
"""
from __future__ import annotations

import pytest
import torch

import memory_cores
from memory_cores import temporal_linkage as tl

B, N, R = 2, 5, 3


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_weights(*shape, generator):
    """Non-negative weights summing to at most 1 over the last axis."""
    w = torch.rand(*shape, generator=generator, dtype=torch.float64)
    return w / (w.sum(-1, keepdim=True) + torch.rand(*shape[:-1], 1, generator=generator, dtype=torch.float64))


def test_links_and_precedence_match_the_equations():
    g = torch.Generator().manual_seed(0)
    links = torch.rand(B, N, N, generator=g, dtype=torch.float64)
    links = links * (1 - torch.eye(N, dtype=torch.float64))
    precedence = random_weights(B, N, generator=g)
    write = random_weights(B, N, generator=g)
    expected = torch.zeros_like(links)
    for b in range(B):
        for i in range(N):
            for j in range(N):
                if i != j:  # thesis eq. 3.11
                    expected[b, i, j] = (1 - write[b, i] - write[b, j]) * links[b, i, j] + write[b, i] * precedence[b, j]
    torch.testing.assert_close(tl.update_links(links, precedence, write), expected, rtol=0, atol=1e-12)
    expected_p = torch.stack([(1 - write[b].sum()) * precedence[b] + write[b] for b in range(B)])  # eq. 3.9
    torch.testing.assert_close(tl.update_precedence(precedence, write), expected_p, rtol=0, atol=1e-12)


def test_directional_weights_follow_links_forward_and_backward():
    g = torch.Generator().manual_seed(1)
    links = torch.rand(B, N, N, generator=g, dtype=torch.float64)
    read = random_weights(B, R, N, generator=g)
    forward, backward = tl.directional_weights(links, read)
    for b in range(B):
        for r in range(R):
            torch.testing.assert_close(forward[b, r], links[b] @ read[b, r])  # eq. 3.13
            torch.testing.assert_close(backward[b, r], links[b].T @ read[b, r])  # eq. 3.14


def test_usage_matches_the_equation():
    g = torch.Generator().manual_seed(2)
    usage = torch.rand(B, N, generator=g, dtype=torch.float64)
    write = random_weights(B, N, generator=g)
    free = torch.rand(B, R, generator=g, dtype=torch.float64)
    read = random_weights(B, R, N, generator=g)
    expected = torch.empty(B, N, dtype=torch.float64)
    for b in range(B):
        for i in range(N):
            retention = 1.0
            for r in range(R):
                retention *= 1 - free[b, r] * read[b, r, i]
            expected[b, i] = (usage[b, i] + write[b, i] - usage[b, i] * write[b, i]) * retention
    expected = tl.USAGE_EPSILON + (1 - tl.USAGE_EPSILON) * expected
    torch.testing.assert_close(tl.update_usage(usage, write, free, read), expected, rtol=0, atol=1e-12)


def test_allocation_hand_example_and_loop():
    usage = torch.tensor([[0.9, 0.1, 0.5, 0.0]], dtype=torch.float64)
    # sorted: row 3 (0.0), row 1 (0.1), row 2 (0.5), row 0 (0.9)
    expected = torch.tensor([[(1 - 0.9) * 0.0 * 0.1 * 0.5, (1 - 0.1) * 0.0, (1 - 0.5) * 0.0 * 0.1, 1.0]])
    torch.testing.assert_close(tl.allocation_weights(usage), expected.double(), rtol=0, atol=1e-12)
    g = torch.Generator().manual_seed(3)
    usage = torch.rand(B, N, generator=g, dtype=torch.float64)
    allocation = tl.allocation_weights(usage)
    for b in range(B):
        order = sorted(range(N), key=lambda i: usage[b, i].item())
        product = 1.0
        for i in order:
            assert allocation[b, i].item() == pytest.approx((1 - usage[b, i].item()) * product, abs=1e-12)
            product *= usage[b, i].item()


def test_link_matrix_in_a_run_has_zero_diagonal_and_bounded_rows():
    torch.manual_seed(0)
    core = memory_cores.build("dnc", 4, slots=6, word_size=4, read_heads=2, controller_size=8, output_size=4).double()
    _, state, _ = core(torch.randn(9, B, 4, dtype=torch.float64), core.initial_state(B).double(), None)
    links = state["links"]
    assert torch.diagonal(links, dim1=1, dim2=2).abs().max() == 0
    assert links.min() >= 0 and links.sum(-1).max() <= 1 + 1e-9
    assert links.sum() > 0  # something was linked
    torch.testing.assert_close(state["read_weights"].sum(-1) <= 1 + 1e-9, torch.ones(B, 2, dtype=torch.bool))


def test_dnc_gradient_matches_finite_differences():
    torch.manual_seed(0)
    core = memory_cores.build("dnc", 3, slots=4, word_size=3, read_heads=2, controller_size=5, output_size=3).double()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(4, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    memory0 = torch.randn(2, 4, 3, generator=g, dtype=torch.float64, requires_grad=True)

    def loss(x, memory0):
        state = core.initial_state(2).double()
        state["memory"] = memory0
        out, state, _ = core(x, state, None)
        return out.pow(2).sum() + state["memory"].sum() + state["links"].sum()

    assert torch.autograd.gradcheck(loss, (x, memory0), eps=1e-6, atol=1e-6)


def test_bad_config_is_a_one_line_error():
    with pytest.raises(ValueError, match="read_heads must be a positive int"):
        memory_cores.build("dnc", 4, read_heads=0)
