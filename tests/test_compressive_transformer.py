"""Compressive Transformer / TransformerXL: FIFOs against Algorithm 5 by hand, the parallel
unroll against its per-step twin, episode masking, and the Alg. 6 loss's gradients."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import memory_cores
from memory_cores.compression import dilations_for, make_compression
from memory_cores.relative_attention import sinusoid_encoding

SMALL = dict(d_model=8, n_layers=2, n_heads=2, mlp_size=16, n_m=3, n_cm=2, compression_rate=2)
INPUT = 5


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: one thread avoids oversubscribing the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(name="compressive_transformer", input_size=INPUT, **cfg):
    torch.manual_seed(0)
    return memory_cores.build(name, input_size, **cfg).double()


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def identity_embedding_core(compression, n_layers=1):
    """d_model = input size and W_emb = I, so layer 0's memory holds the raw inputs."""
    core = build(input_size=4, d_model=4, n_layers=n_layers, n_heads=1, mlp_size=4, n_m=3, n_cm=2,
                 compression_rate=2, compression=compression)
    with torch.no_grad():
        core.input_projection.weight.copy_(torch.eye(4))
        core.input_projection.bias.zero_()
    return core


# Algorithm 5 by hand: n_m = 3, n_cm = 2, c = 2; input at step n (1-based) is n·[1, 1, 1, 1].
# After step n the memory holds the last 3 inputs; inputs leave it from step 4 on and are
# compressed in pairs (1, 2), (3, 4), (5, 6); the compressed FIFO keeps the last 2 pairs.
HAND_MEMORY = [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6], [5, 6, 7], [6, 7, 8], [7, 8, 9]]
HAND_COMPRESSED = {
    "mean_pool": [[0, 0], [0, 0], [0, 0], [0, 0], [0, 1.5], [0, 1.5], [1.5, 3.5], [1.5, 3.5], [3.5, 5.5]],
    "max_pool": [[0, 0], [0, 0], [0, 0], [0, 0], [0, 2], [0, 2], [2, 4], [2, 4], [4, 6]],
}
HAND_EVICTED = [[0], [0], [0], [1], [2], [3], [4], [5], [6]]


@pytest.mark.parametrize("compression", ["mean_pool", "max_pool"])
@pytest.mark.parametrize("path", ["parallel", "per_step"])
def test_fifos_match_algorithm_5_by_hand(compression, path):
    core = identity_embedding_core(compression)
    x = torch.arange(1, 10, dtype=torch.float64)[:, None, None].expand(9, 1, 4)
    state = core.initial_state(1).double()
    forward = core.forward if path == "parallel" else core.forward_per_step
    for n in range(9):
        _, state, _ = forward(x[n : n + 1], state, None)
        layer0 = lambda key: state[key][0, 0, :, 0].tolist()  # noqa: E731
        assert layer0("memory") == HAND_MEMORY[n], f"memory after step {n + 1}"
        assert layer0("compressed") == HAND_COMPRESSED[compression][n], f"compressed after step {n + 1}"
        assert layer0("evicted") == HAND_EVICTED[n], f"evicted after step {n + 1}"
        assert int(state["steps"][0]) == n + 1
    _, whole, _ = core(x, core.initial_state(1).double(), None)  # one unroll of 9 steps
    assert whole["compressed"][0, 0, :, 0].tolist() == HAND_COMPRESSED[compression][-1]
    assert whole["memory"][0, 0, :, 0].tolist() == HAND_MEMORY[-1]


def test_each_step_sees_exactly_its_memory_and_compressed_slots():
    """n_m = 3, n_cm = 2, c = 2, one layer: step 20 sees steps 17-19 (memory), itself, and the
    pairs (12, 13), (14, 15) (compressed); 16 is evicted but its pair is incomplete."""
    core = build(input_size=INPUT, **{**SMALL, "n_layers": 1, "compression": "conv"})
    x = randn(21, 1, INPUT).requires_grad_()
    out, _, _ = core(x, core.initial_state(1).double(), None)
    (out[20] * randn(*out[20].shape, seed=1)).sum().backward()  # a plain sum of LN outputs is constant
    reached = {t for t in range(21) if x.grad[t].abs().sum() > 0}
    assert reached == {12, 13, 14, 15, 17, 18, 19, 20}


def test_transformer_xl_sees_only_its_memory():
    core = build("transformer_xl", input_size=INPUT, d_model=8, n_layers=1, n_heads=2, mlp_size=16, n_m=4)
    x = randn(12, 1, INPUT).requires_grad_()
    out, state, aux = core(x, core.initial_state(1).double(), None)
    (out[10] * randn(*out[10].shape, seed=1)).sum().backward()
    assert {t for t in range(12) if x.grad[t].abs().sum() > 0} == {6, 7, 8, 9, 10}
    assert set(state.keys()) == {"memory", "steps"}
    assert float(aux["loss_compression"]) == 0.0


VARIANTS = {
    "conv": dict(compression="conv"),
    "mean_pool": dict(compression="mean_pool"),
    "max_pool": dict(compression="max_pool"),
    "dilated_conv_rate3": dict(compression="dilated_conv", compression_rate=3),
    "most_used": dict(compression="most_used"),
    "rate1": dict(compression="conv", compression_rate=1),
    "gated_autoencoding": dict(gating=True, compression_loss="autoencoding"),
    "long_memory": dict(n_m=9, n_cm=3, compression_rate=2),
}


def warm_state(core, B, seed=7):
    """A state in mid-episode, with filled memories and compressed memories."""
    _, state, _ = core(randn(17, B, INPUT, seed=seed), core.initial_state(B).double(), None)
    return state


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_parallel_unroll_matches_per_step_algorithm_5(variant):
    core = build(**{**SMALL, **VARIANTS[variant]})
    T, B = 11, 3
    x = randn(T, B, INPUT, seed=1)
    state0 = warm_state(core, B)
    fast, fast_state, fast_aux = core(x, state0, None)
    slow, slow_state, _ = core.forward_per_step(x, state0, None)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)
    for key in fast_state.keys():
        torch.testing.assert_close(fast_state[key], slow_state[key].to(fast_state[key].dtype), rtol=1e-10, atol=1e-10)
    assert torch.isfinite(fast_aux["loss_compression"]) and 0 < float(fast_aux["compressed_attention"]) < 1
    # With resets the per-step twin copies the initial state in; the parallel unroll masks.
    reset = torch.zeros(T, B, dtype=torch.bool)
    reset[0, 2] = reset[4, 0] = reset[5, 0] = reset[9, 1] = True
    fast, _, _ = core(x, state0, reset)
    slow, _, _ = core.forward_per_step(x, state0, reset)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("variant", ["most_used", "dilated_conv_rate3", "gated_autoencoding", "long_memory"])
def test_chunked_unroll_equals_whole_for_variants(variant):
    core = build(**{**SMALL, **VARIANTS[variant]})
    T, B = 13, 2
    x = randn(T, B, INPUT, seed=2)
    reset = torch.zeros(T, B, dtype=torch.bool)
    reset[6, 0] = reset[2, 1] = reset[11, 1] = True
    state0 = warm_state(core, B)
    whole, whole_state, _ = core(x, state0, reset)
    outs, state = [], state0
    for size in (1, 4, 3, 5):
        start = sum(o.shape[0] for o in outs)
        out, state, _ = core(x[start : start + size], state, reset[start : start + size])
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs), whole, rtol=1e-10, atol=1e-10)
    for key in whole_state.keys():
        torch.testing.assert_close(state[key], whole_state[key], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("variant", ["conv", "most_used", "gated_autoencoding"])
def test_reset_hides_the_previous_episode(variant):
    """Changing the previous episode (inputs and the carried state) changes no output of the new one."""
    core = build(**{**SMALL, **VARIANTS[variant]})
    T, B, start = 14, 2, 5
    x = randn(T, B, INPUT, seed=3)
    reset = torch.zeros(T, B, dtype=torch.bool)
    reset[start, 0] = True
    state = warm_state(core, B)
    out, _, _ = core(x, state, reset)
    other_x = x.clone()
    other_x[:start, 0] = randn(start, INPUT, seed=4)
    other_state = warm_state(core, B, seed=8)
    other_state[1] = state[1]
    other, _, _ = core(other_x, other_state, reset)
    torch.testing.assert_close(other[start:, 0], out[start:, 0], rtol=0, atol=1e-12)
    torch.testing.assert_close(other[:, 1], out[:, 1], rtol=0, atol=1e-12)
    assert not torch.allclose(other[:start, 0], out[:start, 0])  # the old episode did change


def test_unwritten_slots_are_masked():
    core = build(**{**SMALL, "compression": "most_used"})
    B = 2
    clean = core.initial_state(B).double()
    garbage = clean.apply(lambda t: randn(*t.shape, seed=5) * 10 if t.is_floating_point() else t)
    garbage["steps"] = clean["steps"]
    x = randn(9, B, INPUT, seed=6)
    torch.testing.assert_close(core(x, garbage, None)[0], core(x, clean, None)[0], rtol=0, atol=1e-12)


def test_later_inputs_do_not_change_earlier_outputs():
    core = build(**SMALL)
    x = randn(10, 2, INPUT, seed=9)
    state = warm_state(core, 2)
    out, _, _ = core(x, state, None)
    changed = x.clone()
    changed[6:] += 1
    torch.testing.assert_close(core(changed, state, None)[0][:6], out[:6], rtol=0, atol=1e-12)


@pytest.mark.parametrize("compression, loss, trained", [
    ("conv", "attention", ("compressions",)),
    ("dilated_conv", "attention", ("compressions",)),
    ("conv", "autoencoding", ("compressions", "decoders")),
])
def test_compression_loss_trains_only_the_compression_network(compression, loss, trained):
    core = build(**{**SMALL, "compression": compression, "compression_loss": loss, "gating": True})
    _, _, aux = core(randn(12, 3, INPUT, seed=10), warm_state(core, 3), None)
    assert aux["loss_compression"] > 0
    aux["loss_compression"].backward()
    for name, p in core.named_parameters():
        reached = p.grad is not None and p.grad.abs().sum() > 0
        assert reached == name.startswith(trained), f"{name}: gradient {'reached' if reached else 'missing'}"


def test_parameter_free_compression_has_a_zero_loss():
    core = build(**{**SMALL, "compression": "mean_pool"})
    _, _, aux = core(randn(12, 2, INPUT), core.initial_state(2).double(), None)
    assert float(aux["loss_compression"]) == 0.0


def test_attention_reconstruction_loss_matches_algorithm_6():
    """One layer, one env: Alg. 6 written out with explicit heads and groups."""
    core = build(**{**SMALL, "n_layers": 1, "n_heads": 2})
    x = randn(10, 1, INPUT, seed=11)
    _, _, aux = core(x, core.initial_state(1).double(), None)
    h = core.input_projection(x[:, 0]).detach()  # h^(1), the queries [T, W]
    # n_m = 3, c = 2: the inputs of steps 0-5 leave the memory and form pairs (0,1), (2,3), (4,5).
    old = h[:6]
    new = torch.stack([core.compressions[0].conv(old[i : i + 2].T[None])[0, :, 0] for i in (0, 2, 4)])
    attention = core.layers[0].attention
    total = 0.0
    for head in range(2):
        cols = slice(4 * head, 4 * head + 4)
        q = h @ attention.query.weight[cols].T
        def read(m):
            scores = q @ (m @ attention.key.weight[cols].T).T / math.sqrt(4)
            return scores.softmax(-1) @ (m @ attention.value.weight[cols].T)
        total = total + (read(old) - read(new)).pow(2).sum()
    torch.testing.assert_close(aux["loss_compression"], total / h.numel(), rtol=1e-10, atol=0)


@pytest.mark.learning
def test_compression_loss_decreases_when_training_the_compression_only(margin):
    core = build(**{**SMALL, "compression": "conv"})
    x, state = randn(16, 4, INPUT, seed=12), warm_state(core, 4)
    optimiser = torch.optim.Adam(core.compressions.parameters(), lr=0.05)
    losses = []
    for _ in range(25):
        _, _, aux = core(x, state, None)
        optimiser.zero_grad()
        aux["loss_compression"].backward()
        optimiser.step()
        losses.append(float(aux["loss_compression"].detach()))
    margin("final / first compression loss", losses[-1] / losses[0], below=0.5)


def test_relative_attention_score_matches_transformer_xl_formula():
    core = build(**SMALL)
    attention = core.layers[0].attention
    with torch.no_grad():
        attention.content_bias.normal_()
        attention.position_bias.normal_()
    keys = randn(1, 7, 8, seed=13)
    h = randn(1, 1, 8, seed=14)
    window = torch.tensor([[[5, -1, 0, 3, 2, 1, 4]]])  # window of P = C + M + 1 = 6 positions
    logits = attention.logits(attention.project_queries(h), keys, window)[0, :, 0]
    r = sinusoid_encoding(torch.arange(5, -1, -1), 8).double() @ attention.position.weight.T  # W_R r_{distance}
    for head in range(2):
        cols = slice(4 * head, 4 * head + 4)
        q = (h[0, 0] @ attention.query.weight.T)[cols]
        k = (keys[0] @ attention.key.weight.T)[:, cols]
        for j, w in enumerate(window[0, 0].tolist()):
            if w < 0:
                assert logits[head, j] == float("-inf")
                continue
            expected = (q + attention.content_bias[head]) @ k[j] + (q + attention.position_bias[head]) @ r[w, cols]
            torch.testing.assert_close(logits[head, j], expected / 2, rtol=1e-12, atol=1e-12)


def test_sinusoid_encoding_by_hand():
    enc = sinusoid_encoding(torch.tensor([0, 3]), 4)
    expected = torch.tensor([[0, 0, 1, 1], [math.sin(3), math.sin(3 / 100), math.cos(3), math.cos(3 / 100)]])
    torch.testing.assert_close(enc, expected.float())


def test_closed_gates_make_every_layer_the_identity():
    core = build(**{**SMALL, "gating": True})
    with torch.no_grad():
        for gate in core.modules():
            if type(gate).__name__ == "GRUGate":
                gate.update_bias.fill_(1e4)
    x = randn(6, 2, INPUT)
    out, _, _ = core(x, core.initial_state(2).double(), None)
    torch.testing.assert_close(out, core.final_norm(core.input_projection(x)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name, gating", [("transformer_xl", False), ("transformer_xl", True), ("compressive_transformer", False)])
def test_dropout_acts_in_training_only(name, gating):
    config = {k: v for k, v in SMALL.items() if name == "compressive_transformer" or k not in ("n_cm", "compression_rate")}
    plain, dropped = build(name, **config, gating=gating), build(name, **config, gating=gating, dropout=0.5)
    x = randn(6, 2, INPUT)
    state = plain.initial_state(2).double()
    dropped.eval()
    torch.testing.assert_close(dropped(x, state, None)[0], plain(x, state, None)[0])  # same weights (seed 0)
    dropped.train()
    first, second = dropped(x, state, None)[0], dropped(x, state, None)[0]
    assert not torch.allclose(first, second) and not torch.allclose(first, plain(x, state, None)[0])


def test_compression_functions_by_hand():
    groups = torch.tensor([[[1.0, 5.0, 3.0], [2.0, -1.0, 0.0]]], dtype=torch.float64)  # [N=1, W=2, c=3]
    assert make_compression("max_pool", 2, 3)(groups).tolist() == [[5.0, 2.0]]
    assert make_compression("mean_pool", 2, 3)(groups).tolist() == [[3.0, 1 / 3]]
    assert make_compression("most_used", 2, 3)(groups, torch.tensor([[0.1, 0.2, 0.9]])).tolist() == [[3.0, 0.0]]
    conv = make_compression("conv", 2, 3).double()
    flat = conv.conv.weight.flatten(1) @ groups.flatten(1)[0] + conv.conv.bias  # a linear map of the group
    torch.testing.assert_close(conv(groups)[0], flat)
    for rate in range(1, 9):
        assert 1 + sum(dilations_for(rate)) == rate
        dilated = make_compression("dilated_conv", 2, rate)
        for weight in dilated.parameters():  # positive weights and inputs keep every ReLU open
            nn.init.constant_(weight, 0.1)
        g = torch.rand(1, 2, rate).add(0.1).requires_grad_()
        dilated(g).sum().backward()
        assert (g.grad.abs().sum(1) > 0).all(), f"rate {rate}: every memory of the group reaches the output"


@pytest.mark.parametrize("bad, message", [
    (dict(d_model=10, n_heads=4), "d_model=10 is not divisible by n_heads=4"),
    (dict(compression="zip"), "unknown compression 'zip'"),
    (dict(compression_loss="l1"), "unknown compression_loss 'l1'"),
    (dict(n_cm=-1), "n_cm must be an int >= 0"),
    (dict(n_m=0), "n_m must be a positive int"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
])
def test_bad_config_is_a_one_line_error(bad, message):
    with pytest.raises(ValueError, match=message):
        memory_cores.build("compressive_transformer", 4, **bad)
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['n_cm'\]"):
        memory_cores.build("transformer_xl", 4, n_cm=4)


def test_state_shapes_follow_the_config():
    core = memory_cores.build("compressive_transformer", 4, compression="most_used")
    state = core.initial_state(5)
    shapes = {key: tuple(value.shape) for key, value in state.items()}
    assert shapes == {"memory": (5, 2, 32, 64), "compressed": (5, 2, 32, 64), "evicted": (5, 2, 3, 64),
                      "memory_usage": (5, 2, 32), "evicted_usage": (5, 2, 3), "steps": (5,)}
    assert isinstance(core.layers[0].mlp, nn.Sequential)
