"""HRR / krop ops (memory_cores.vsa) and associative memories (memory_cores.associative).

Fast functions are checked against dense or loop references, statistics
against their predicted values, dynamics against hand-checked examples.
"""
from __future__ import annotations

import math

import pytest
import torch

from memory_cores import associative as am
from memory_cores import vsa


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


# -- HRR -------------------------------------------------------------------------------------------


def circular_convolution_loop(a, b):
    size = a.shape[-1]
    return torch.stack([sum(a[k] * b[(j - k) % size] for k in range(size)) for j in range(size)])


def circular_correlation_loop(a, b):
    size = a.shape[-1]
    return torch.stack([sum(a[k] * b[(j + k) % size] for k in range(size)) for j in range(size)])


@pytest.mark.parametrize("size", [7, 8])
def test_bind_and_unbind_match_their_definitions(size):
    a, b = torch.randn(2, size, generator=generator(), dtype=torch.float64)
    torch.testing.assert_close(vsa.bind(a, b), circular_convolution_loop(a, b), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(vsa.unbind(a, b), circular_correlation_loop(a, b), rtol=1e-12, atol=1e-12)


def test_unitary_key_unbinds_exactly_and_keeps_norms():
    g = generator(1)
    key = vsa.make_unitary(torch.randn(64, generator=g, dtype=torch.float64))
    value = torch.randn(64, generator=g, dtype=torch.float64)
    torch.testing.assert_close(torch.fft.rfft(key).abs(), torch.ones(33, dtype=torch.float64))
    torch.testing.assert_close(vsa.unbind(key, vsa.bind(key, value)), value, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(vsa.bind(key, value).norm(), value.norm())


@pytest.mark.learning
@pytest.mark.parametrize("keys, predicted", [("unitary", lambda m: m - 1), ("gaussian", lambda m: m)])
def test_unbinding_a_superposition_has_the_predicted_noise(keys, predicted, margin):
    """Read a⊕M of M pairs with N(0, 1/D) values: the noise energy is M − 1 (unitary) or M (Gaussian keys).

    Unitary keys make every cross term an orthogonal map of an isotropic
    Gaussian, energy 1 each, and the own term exact. Gaussian keys add a
    self term (|A_f|² − 1)V_f of energy ≈ 1 and keep cross terms at ≈ 1.
    """
    size, pairs, trials = 2048, 8, 16
    g = generator(2)
    energies = []
    for _ in range(trials):
        addresses = torch.randn(pairs, size, generator=g, dtype=torch.float64) / math.sqrt(size)
        if keys == "unitary":
            addresses = vsa.make_unitary(addresses)
        values = torch.randn(pairs, size, generator=g, dtype=torch.float64) / math.sqrt(size)
        trace = vsa.bundle(vsa.bind(addresses, values))
        noise = vsa.unbind(addresses, trace) - values
        energies.append(noise.square().sum(-1))
        assert noise.mean().abs() < 5 / size  # unbiased
    measured = torch.cat(energies).mean().item()
    margin("|measured / predicted noise energy - 1|", abs(measured / predicted(pairs) - 1), below=0.05)


def test_similarity_and_bundle():
    a, b = torch.randn(2, 3, 16, generator=generator(3), dtype=torch.float64)
    torch.testing.assert_close(vsa.similarity(a, b), torch.einsum("bd,bd->b", a, b))
    torch.testing.assert_close(vsa.bundle(a), a[0] + a[1] + a[2])


# -- krop --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [1, 3, 6, 9])
def test_krop_rows_are_orthonormal_and_the_codebook_symmetric(levels):
    angles = vsa.krop_angles(levels, generator=generator(levels), dtype=torch.float64)
    codebook = vsa.krop_codebook(angles)
    torch.testing.assert_close(codebook @ codebook.T, torch.eye(1 << levels, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(codebook, codebook.T, rtol=0, atol=0)


def test_krop_codebook_follows_the_slides_recursion():
    """H(k+1) = [[H(k) c_k, H(k) s_k], [H(k) s_k, −H(k) c_k]] for K = 2, written out by hand."""
    angles = torch.tensor([0.3, 1.1], dtype=torch.float64)
    c0, s0, c1, s1 = math.cos(0.3), math.sin(0.3), math.cos(1.1), math.sin(1.1)
    h1 = torch.tensor([[c0, s0], [s0, -c0]], dtype=torch.float64)
    expected = torch.cat([torch.cat([h1 * c1, h1 * s1], 1), torch.cat([h1 * s1, -h1 * c1], 1)], 0)
    torch.testing.assert_close(vsa.krop_codebook(angles), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("levels", [1, 4, 5, 10, 11])
def test_krop_fast_transform_equals_the_dense_product(levels):
    angles = vsa.krop_angles(levels, generator=generator(levels))
    vectors = torch.randn(2, 3, 1 << levels, generator=generator(7))
    dense = vectors @ vsa.krop_codebook(angles).T
    torch.testing.assert_close(vsa.krop_transform(angles, vectors), dense, rtol=0, atol=1e-5)


@pytest.mark.parametrize("levels", [2, 7, 9])
def test_krop_reconstruction_equals_the_dense_codebook_row(levels):
    angles = vsa.krop_angles(levels, generator=generator(levels), dtype=torch.float64)
    codebook = vsa.krop_codebook(angles)
    index = torch.randperm(1 << levels, generator=generator(1)).reshape(2, -1)
    torch.testing.assert_close(vsa.krop_vector(angles, index), codebook[index], rtol=0, atol=1e-14)


def test_krop_hard_cleanup_recovers_noisy_codes():
    levels = 10
    angles = vsa.krop_angles(levels, generator=generator(4))
    target = torch.randint(1 << levels, (50,), generator=generator(5))
    noisy = vsa.krop_vector(angles, target) + 0.5 * torch.randn(50, 1 << levels, generator=generator(6)) / 32
    index, code = vsa.krop_cleanup(angles, noisy)
    assert torch.equal(index, target)
    torch.testing.assert_close(code, vsa.krop_vector(angles, target))


def test_krop_soft_cleanup_is_the_softmax_mixture_and_tends_to_hard():
    levels = 5
    angles = vsa.krop_angles(levels, generator=generator(8), dtype=torch.float64)
    codebook = vsa.krop_codebook(angles)
    vector = torch.randn(4, 32, generator=generator(9), dtype=torch.float64)
    expected = torch.softmax(3.0 * vector @ codebook.T, -1) @ codebook
    torch.testing.assert_close(vsa.krop_soft_cleanup(angles, vector, 3.0), expected, rtol=1e-12, atol=1e-12)
    _, hard = vsa.krop_cleanup(angles, vector)
    torch.testing.assert_close(vsa.krop_soft_cleanup(angles, vector, 1e4), hard, rtol=0, atol=1e-8)


def test_krop_soft_cleanup_gradient_matches_finite_differences():
    angles = vsa.krop_angles(3, generator=generator(10), dtype=torch.float64).requires_grad_()
    vector = torch.randn(2, 8, generator=generator(11), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, v: vsa.krop_soft_cleanup(a, v, 2.0), (angles, vector))


def test_krop_rejects_sizes_that_are_not_powers_of_two():
    with pytest.raises(ValueError, match="power-of-two dimension, got 100; use e.g. 64"):
        vsa.krop_levels(100)
    with pytest.raises(ValueError, match="needs vectors of size 8, got 10"):
        vsa.krop_transform(vsa.krop_angles(3), torch.zeros(10))


# -- classical Hopfield -----------------------------------------------------------------------------------


def random_patterns(count, neurons, seed=0, dtype=torch.float64):
    return torch.randint(0, 2, (count, neurons), generator=generator(seed)).to(dtype) * 2 - 1


def test_hebbian_weights_by_hand():
    patterns = torch.tensor([[1.0, -1, 1], [-1, 1, -1]])
    expected = torch.tensor([[0.0, -2, 2], [-2, 0, -2], [2, -2, 0]])
    torch.testing.assert_close(am.hebbian_weights(patterns), expected)
    state = torch.tensor([1.0, -1, 1])
    assert am.hopfield_energy(expected, state).item() == -12.0  # −Σ_μ ⟨ξ^μ, σ⟩² + K N = −(9 + 9) + 6


def test_hopfield_energy_never_increases_under_asynchronous_updates():
    neurons = 40
    patterns = random_patterns(12, neurons, seed=1)  # above capacity: many flips happen
    weights = am.hebbian_weights(patterns)
    state = random_patterns(5, neurons, seed=2)
    energy = am.hopfield_energy(weights, state)
    visits = torch.randint(neurons, (400,), generator=generator(3))
    changed = 0
    for neuron in visits:
        new_state, _ = am.hopfield_recall(weights, state, neuron.view(1), max_sweeps=1)
        new_energy = am.hopfield_energy(weights, new_state)
        assert (new_energy <= energy + 1e-9).all()
        changed += int((new_state != state).any())
        state, energy = new_state, new_energy
    assert changed > 10  # the check saw real updates


def test_hopfield_recall_matches_a_plain_loop_and_repairs_a_corrupted_pattern():
    neurons = 64
    patterns = random_patterns(3, neurons, seed=4)
    weights = am.hebbian_weights(patterns)
    probe = patterns.clone()
    probe[:, :6] *= -1
    order = torch.randperm(neurons, generator=generator(5))
    recalled, sweeps = am.hopfield_recall(weights, probe, order, max_sweeps=10)
    reference = probe.clone()
    for _ in range(sweeps):
        for i in order.tolist():
            reference[:, i] = torch.where(reference @ weights[i] >= 0, 1.0, -1.0)
    torch.testing.assert_close(recalled, reference)
    torch.testing.assert_close(recalled, patterns)


XOR = torch.tensor([[-1.0, -1, -1], [-1, 1, 1], [1, -1, 1], [1, 1, -1]])


def test_xor_patterns_classical_net_fails_dense_cubic_memory_stores_them():
    """The slides' example: 4 XOR patterns in 3 neurons (K > N)."""
    weights = am.hebbian_weights(XOR)
    assert torch.equal(weights, torch.zeros(3, 3))  # the correlations cancel: nothing is stored
    recalled, _ = am.hopfield_recall(weights, XOR, torch.arange(3), max_sweeps=3)
    assert not (recalled == XOR).all(-1).any()
    assert not am.one_step_errors(XOR.double(), degree=3, probes=4).any()  # n = 3: all four are fixed points
    recalled, _ = am.dense_recall(XOR.double(), XOR.double(), 3, torch.arange(3), max_sweeps=3)
    torch.testing.assert_close(recalled, XOR.double())


# -- dense associative memory ---------------------------------------------------------------------------------


def test_rectified_polynomial():
    x = torch.tensor([-2.0, 0.0, 3.0])
    torch.testing.assert_close(am.rectified_polynomial(x, 3), torch.tensor([0.0, 0.0, 27.0]))


@pytest.mark.parametrize("degree", [2, 3, 4])
def test_dense_energy_never_increases_under_asynchronous_updates(degree):
    neurons = 16
    patterns = random_patterns(60, neurons, seed=6)
    state = random_patterns(4, neurons, seed=7)
    energy = am.polynomial_energy(patterns, state, degree)
    changed = 0
    for neuron in torch.randint(neurons, (120,), generator=generator(8)):
        new_state, _ = am.dense_recall(patterns, state, degree, neuron.view(1))
        new_energy = am.polynomial_energy(patterns, new_state, degree)
        assert (new_energy <= energy).all()
        changed += int((new_state != state).any())
        state, energy = new_state, new_energy
    assert changed > 3


def test_one_step_errors_agree_with_single_dense_updates():
    neurons, degree = 12, 3
    patterns = random_patterns(90, neurons, seed=9)
    flags = am.one_step_errors(patterns, degree, probes=10, chunk=3)
    for i in range(neurons):
        updated, _ = am.dense_recall(patterns, patterns[:10], degree, torch.tensor([i]))
        assert torch.equal(flags[:, i], updated[:, i] != patterns[:10, i])
    assert flags.any() and not flags.all()


# -- softmax (modern Hopfield) --------------------------------------------------------------------------------


def test_softmax_update_never_increases_its_energy():
    patterns = torch.randn(20, 8, generator=generator(10), dtype=torch.float64)
    state = torch.randn(5, 8, generator=generator(11), dtype=torch.float64)
    for beta in (0.3, 2.0):
        current = state
        for _ in range(5):
            new = am.softmax_update(patterns, current, beta)
            assert (am.softmax_energy(patterns, new, beta) <= am.softmax_energy(patterns, current, beta) + 1e-12).all()
            current = new


@pytest.mark.learning
def test_softmax_update_retrieves_from_far_beyond_classical_capacity(margin):
    neurons = 32
    patterns = random_patterns(2000, neurons, seed=12)  # 62 N; the classical net holds about 4
    probes = patterns[:50].clone()
    probes[:, :2] *= -1
    retrieved = torch.sign(am.softmax_update(patterns, probes, 1.0))
    margin("fraction of probes retrieved", (retrieved == patterns[:50]).all(-1).double().mean(), above=0.9)


def test_softmax_retrieve_ignores_invalid_slots_and_reads_zero_from_an_empty_store():
    g = generator(13)
    keys = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    values = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    query = torch.randn(2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    valid = torch.tensor([[True, False, True, True, False], [False] * 5])
    read = am.softmax_retrieve(query, keys, values, valid, 0.7, steps=2)
    # Reference for env 0: the same two updates over its valid slots only.
    kept_keys, kept_values = keys[0, valid[0]], values[0, valid[0]]
    xi = torch.softmax(0.7 * kept_keys @ query[0], 0) @ kept_keys
    expected = torch.softmax(0.7 * kept_keys @ xi, 0) @ kept_values
    torch.testing.assert_close(read[0], expected)
    torch.testing.assert_close(read[1], torch.zeros(3, dtype=torch.float64))
    read.sum().backward()
    assert torch.isfinite(query.grad).all() and query.grad[1].abs().sum() == 0


@pytest.mark.parametrize("module", [vsa, am], ids=["vsa", "associative"])
def test_docstring_examples_run(module):
    import doctest

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
