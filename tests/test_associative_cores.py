"""The ``hopfield`` and ``hrr`` cores beyond the shared contract: fast path vs loop twin,
hand-checked retrievals, ring-buffer bookkeeping, the mutable write, config errors."""
from __future__ import annotations

import math

import pytest
import torch

import memory_cores
from memory_cores import vsa


def build(name, input_size, **cfg):
    torch.manual_seed(0)
    return memory_cores.build(name, input_size, **cfg).double()


def inputs(T, B, size, seed=1):
    return torch.randn(T, B, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def assert_states_equal(a, b):
    for key in a.keys():
        torch.testing.assert_close(a[key].double(), b[key].double(), rtol=1e-12, atol=1e-12, msg=key)


# -- hopfield ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("update_steps", [1, 3])
def test_hopfield_whole_unroll_matches_the_per_step_loop(update_steps):
    core = build("hopfield", 5, memory_size=3, key_size=4, value_size=2, update_steps=update_steps)
    with torch.no_grad():
        core.recency.fill_(0.7)  # the ages must agree too (the slope starts at 0)
    T, B = 11, 4
    reset = torch.rand(T, B, generator=torch.Generator().manual_seed(2)) < 0.2
    reset[0, 3] = True
    state = core.initial_state(B).double()
    _, state, _ = core.forward_per_step(inputs(4, B, 5, seed=3), state, None)  # a partly filled, wrapped buffer
    fast, fast_state, _ = core(inputs(T, B, 5), state, reset)
    slow, slow_state, _ = core.forward_per_step(inputs(T, B, 5), state, reset)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)
    assert_states_equal(fast_state, slow_state)


def chained_hopfield(recency=True):
    core = build("hopfield", 5, memory_size=4, key_size=3, value_size=3, hops=3, age_embedding=True, recency=recency)
    with torch.no_grad():  # the age tables and slopes start at 0: give them values, or they test nothing
        core.age_keys.normal_(generator=torch.Generator().manual_seed(4))
        core.age_values.normal_(generator=torch.Generator().manual_seed(5))
        if recency:
            core.recency.copy_(torch.tensor([0.9, -0.3, 0.4]))
    return core


@pytest.mark.parametrize("recency", [True, False])
def test_chained_hopfield_whole_unroll_matches_the_per_step_loop(recency):
    core = chained_hopfield(recency)
    T, B = 12, 3
    reset = torch.rand(T, B, generator=torch.Generator().manual_seed(2)) < 0.2
    state = core.initial_state(B).double()
    _, state, _ = core.forward_per_step(inputs(6, B, 5, seed=3), state, None)  # a full, wrapped buffer
    fast, fast_state, _ = core(inputs(T, B, 5), state, reset)
    slow, slow_state, _ = core.forward_per_step(inputs(T, B, 5), state, reset)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)
    assert_states_equal(fast_state, slow_state)


def test_chained_hopfield_read_follows_the_equations():
    # The read of one step written out pattern by pattern: hop k scores pattern j by
    # β ξ_k·(K_k(x_j) + T_A,k(a_j)) − ρ_k a_j, reads r_k = Σ_j p_j (V_k(x_j) + T_C,k(a_j)), and ξ_{k+1} = ξ_k + r_k.
    core = chained_hopfield()
    x = inputs(4, 1, 5, seed=6)[:, 0]  # three stored steps, then the read of step 3 (memory of 4: nothing dropped)
    out, _, _ = core(x[:, None], core.initial_state(1).double())
    normed = torch.nn.functional.layer_norm(x, (5,))
    beta, W = core.log_beta.exp(), 3
    query = core.query(normed[3])
    for hop in range(3):
        scores, reads = [], []
        for j in range(3):
            age = 3 - j
            key = core.key(normed[j])[hop * W:(hop + 1) * W] + core.age_keys[hop, age]
            scores.append(beta * query @ key - core.recency[hop] * age)
            reads.append(core.value(normed[j])[hop * W:(hop + 1) * W] + core.age_values[hop, age])
        read = sum(p * r for p, r in zip(torch.softmax(torch.stack(scores), 0), reads))
        query = query + read
    torch.testing.assert_close(out[3, 0, 5:], read, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bad, message", [
    (dict(hops=2, value_size=4), "value_size"),
    (dict(hops=2, update_steps=2), "update_steps"),
    (dict(age_embedding=True, update_steps=2), "update_steps"),
    (dict(hops=0), "hops must be >= 1"),
])
def test_chained_hopfield_config_errors_name_the_fix(bad, message):
    with pytest.raises(ValueError, match=message):
        memory_cores.build("hopfield", 5, **{"key_size": 3, "value_size": 3, **bad})


def identity_hopfield(memory_size, beta=50.0):
    core = build("hopfield", 3, memory_size=memory_size, key_size=3, value_size=3, beta=beta, learn_beta=False,
                 normalize=False)
    with torch.no_grad():
        for layer in (core.query, core.key, core.value):
            layer.weight.copy_(torch.eye(3))
            layer.bias.zero_()
    return core


def test_hopfield_reads_the_past_by_hand():
    e = torch.eye(3, dtype=torch.float64)
    x = torch.stack([e[0], e[1], e[0], e[2]])[:, None]  # [T=4, B=1, 3]
    out, _, _ = identity_hopfield(memory_size=8)(x, identity_hopfield(8).initial_state(1).double())
    read = out[:, 0, 3:]
    torch.testing.assert_close(read[0], torch.zeros(3, dtype=torch.float64))  # empty memory reads zero
    torch.testing.assert_close(read[1], e[0])  # the only stored pattern
    torch.testing.assert_close(read[2], e[0], atol=1e-20, rtol=0)  # β = 50 picks the matching key e0 over e1
    torch.testing.assert_close(read[3], (2 * e[0] + e[1]) / 3)  # e2 matches none: the mean of the 3 stored
    torch.testing.assert_close(out[:, 0, :3], x[:, 0])  # the input passes through


def test_hopfield_recency_picks_the_latest_of_two_equal_keys():
    # Steps 0 and 2 store the same key (the key ignores the third input) with different values, like a
    # cue seen twice in one episode. Content alone reads their mean; a slope of 5 reads the later one.
    x = torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, 0, 1], [1, 0, 0]], dtype=torch.float64)[:, None]
    core = identity_hopfield(memory_size=8)
    with torch.no_grad():
        core.key.weight.copy_(torch.diag(torch.tensor([1.0, 1, 0])))
    for slope, expected in ((0.0, 0.5), (5.0, 1 / (1 + math.exp(-10)))):  # ages 3 and 1: bias gap 2 x 5
        with torch.no_grad():
            core.recency.fill_(slope)
        whole = core(x, core.initial_state(1).double())[0][3, 0, 3:]
        _, state, _ = core(x[:3], core.initial_state(1).double())
        last_step = core(x[3:], state)[0][0, 0, 3:]  # T = 1: the per-step path
        for read in (whole, last_step):
            torch.testing.assert_close(read, torch.tensor([1.0, 0, expected], dtype=torch.float64))


def test_hopfield_ring_buffer_forgets_the_oldest_and_tracks_its_position():
    core = identity_hopfield(memory_size=2)
    e = torch.eye(3, dtype=torch.float64)
    x = torch.stack([e[0], e[1], e[0], e[2]])[:, None]
    out, state, _ = core(x, core.initial_state(1).double())
    # At step 3 the buffer holds steps 1 and 2 only (step 0 was overwritten).
    torch.testing.assert_close(out[3, 0, 3:], (e[0] + e[1]) / 2)
    torch.testing.assert_close(state["keys"][0], torch.stack([e[0], e[2]]))  # slot 0: step 2, slot 1: step 3
    assert state["position"].tolist() == [0] and state["valid"].all()


def test_hopfield_read_does_not_depend_on_the_input_scale():
    # A growing encoder must not saturate the softmax: with the layer norm, inputs scaled by 1000 read the
    # same; without it, the scaled read collapses onto a single stored value.
    x = inputs(6, 2, 5)
    for normalize in (True, False):
        core = build("hopfield", 5, memory_size=8, key_size=4, value_size=3, normalize=normalize)
        state = core.initial_state(2).double()
        read = core(x, state)[0][..., 5:]
        scaled_read = core(1000 * x, state)[0][..., 5:]
        change = (read - scaled_read).abs().max().item()
        assert change < 1e-4 if normalize else change > 0.1  # 1e-4: the layer norm's eps


def test_hopfield_reset_empties_the_memory_of_that_env_only():
    core = build("hopfield", 3, memory_size=4, key_size=3, value_size=2)
    reset = torch.zeros(6, 2, dtype=torch.bool)
    reset[5, 0] = True
    _, state, _ = core(inputs(6, 2, 3), core.initial_state(2).double(), reset)
    assert state["valid"].sum(-1).tolist() == [1, 4]
    assert state["position"].tolist() == [1, 2]


def test_hopfield_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="hopfield update_steps must be >= 1, got 0"):
        memory_cores.build("hopfield", 4, update_steps=0)
    with pytest.raises(ValueError, match="hopfield beta must be >= 0"):
        memory_cores.build("hopfield", 4, beta=-1.0)


# -- hrr --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cleanup", ["hard", "none"])
def test_hrr_chunked_unroll_and_gradients_in_every_cleanup_mode(cleanup):
    core = build("hrr", 5, hidden_size=6, num_heads=2, dimension=8, cleanup=cleanup)
    T, B = 8, 3
    x = inputs(T, B, 5)
    reset = torch.zeros(T, B, dtype=torch.bool)
    reset[4, 1] = True
    state0 = core.initial_state(B).double()
    whole, whole_state, aux = core(x, state0, reset)
    outs, state = [], state0
    for xs, rs in zip(x.chunk(3), reset.chunk(3)):
        out, state, _ = core(xs, state, rs)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs), whole, rtol=1e-10, atol=1e-10)
    assert_states_equal(state, whole_state)
    assert aux["write_gate"].shape == (T, B, 2)
    whole.square().mean().backward()
    missing = [n for n, p in core.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def rigged_hrr(cleanup):
    """One fixed address, read with the same key, write gate ≈ 1: every step overwrites one slot."""
    core = build("hrr", 4, hidden_size=6, num_heads=1, dimension=16, cleanup=cleanup)
    with torch.no_grad():
        address = torch.randn(16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
        core.keys.weight.zero_()
        core.keys.bias.copy_(torch.cat([address, address]))  # write address = read key
        core.write_gate.weight.zero_()
        core.write_gate.bias.fill_(40.0)
    return core


@pytest.mark.parametrize("cleanup", ["hard", "none"])
def test_hrr_mutable_write_replaces_the_value_at_an_address(cleanup):
    """M ← M − a⊛v_old + a⊛v_new: reading the address gives the latest value, not a sum of all."""
    core = rigged_hrr(cleanup)
    out, _, _ = core(inputs(6, 2, 4), core.initial_state(2).double())
    hidden, read = out[..., :6], out[..., 6:]
    latest = core.clean(core.value(hidden))  # the value written at each step
    torch.testing.assert_close(read, latest, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(latest[0], latest[-1])  # the values did change over time


def test_hrr_hard_cleanup_returns_codes_with_a_straight_through_gradient():
    core = build("hrr", 4, hidden_size=4, num_heads=1, dimension=16, cleanup="hard")
    vector = torch.randn(3, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64, requires_grad=True)
    code = core.clean(vector)
    codebook = vsa.krop_codebook(core.angles.double())
    assert torch.isclose(code @ codebook.T, torch.ones((), dtype=torch.float64)).any(-1).all()
    (code * torch.arange(16.0, dtype=torch.float64)).sum().backward()
    torch.testing.assert_close(vector.grad, torch.arange(16.0, dtype=torch.float64).expand(3, 16))


def test_hrr_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="power-of-two dimension, got 100"):
        memory_cores.build("hrr", 4, dimension=100)
    with pytest.raises(ValueError, match="hrr cleanup must be one of hard, soft, none, got 'fuzzy'"):
        memory_cores.build("hrr", 4, cleanup="fuzzy")
