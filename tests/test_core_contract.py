"""The memory-core contract, checked for every registered core.

A core class may set ``test_config`` (a dict of small config overrides) so
these tests stay fast; nothing else is core-specific here.
"""
from __future__ import annotations

import io
import pickle

import pytest
import torch
from tensordict import TensorDict

import memory_cores

T, B, INPUT = 12, 3, 6


def make_core(name: str, **extra):
    cls = memory_cores.registry.CORES.get(name)[0]
    cfg = {**getattr(cls, "test_config", {}), **extra}
    torch.manual_seed(0)
    return memory_cores.build(name, INPUT, **cfg).double()


def inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, INPUT, generator=g, dtype=torch.float64)


def assert_states_close(a: TensorDict, b: TensorDict, **tol):
    assert set(a.keys(True, True)) == set(b.keys(True, True))
    for key in a.keys(True, True):
        torch.testing.assert_close(a[key], b[key], **tol, msg=lambda m: f"state[{key!r}]: {m}")


ALL = memory_cores.names()


@pytest.mark.parametrize("name", ALL)
def test_shapes_and_state(name):
    core = make_core(name)
    state = core.initial_state(B, "cpu").double()
    assert isinstance(state, TensorDict) and tuple(state.batch_size) == (B,)
    out, new_state, aux = core(inputs(), state, None)
    assert out.shape == (T, B, core.output_size)
    assert isinstance(aux, dict)
    assert torch.isfinite(out).all()
    assert set(new_state.keys(True, True)) == set(state.keys(True, True))
    for key in state.keys(True, True):
        assert new_state[key].shape == state[key].shape, f"state[{key!r}] changed shape"


@pytest.mark.parametrize("name", ALL)
def test_wrong_input_size_is_a_clear_error(name):
    core = make_core(name)
    with pytest.raises(ValueError, match="expects x of shape"):
        core(torch.zeros(T, B, INPUT + 1, dtype=torch.float64), core.initial_state(B).double())


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("chunks", [2, 3, 12])
def test_chunked_unroll_equals_whole(name, chunks):
    core = make_core(name)
    x = inputs()
    reset = torch.zeros(T, B, dtype=torch.bool)
    reset[5, 1] = True
    reset[7, 0] = True
    state0 = core.initial_state(B).double()
    whole, whole_state, _ = core(x, state0, reset)
    outs, state = [], state0
    for xs, rs in zip(x.chunk(chunks), reset.chunk(chunks)):
        out, state, _ = core(xs, state, rs)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs), whole, rtol=1e-9, atol=1e-9)
    assert_states_close(state, whole_state, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ALL)
def test_reset_mid_unroll_equals_fresh_episode(name):
    core = make_core(name)
    x = inputs()
    k = 5
    reset = torch.zeros(T, B, dtype=torch.bool)
    reset[k, 0] = True
    state0 = core.initial_state(B).double()
    out, _, _ = core(x, state0, reset)
    fresh, _, _ = core(x[k:], state0, None)
    torch.testing.assert_close(out[k:, 0], fresh[:, 0], rtol=1e-9, atol=1e-9)
    # Envs that did not reset are untouched by env 0's reset.
    no_reset, _, _ = core(x, state0, None)
    torch.testing.assert_close(out[:, 1:], no_reset[:, 1:], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ALL)
def test_gradient_reaches_every_parameter(name):
    core = make_core(name)
    if not any(p.requires_grad for p in core.parameters()):
        pytest.skip(f"core {name!r} has no parameters")
    state = core.initial_state(B).double()
    total = 0.0
    for xs in inputs().chunk(2):
        out, state, aux = core(xs, state, None)
        total = total + out.pow(2).mean() + sum(v for k, v in aux.items() if k.startswith("loss_"))
    total.backward()
    missing = [n for n, p in core.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing, f"no gradient reached {missing}"


@pytest.mark.parametrize("name", ALL)
def test_state_round_trips_through_pickle_and_torch_save(name):
    core = make_core(name)
    _, state, _ = core(inputs(), core.initial_state(B).double(), None)
    state = state.detach()
    assert_states_close(pickle.loads(pickle.dumps(state)), state, rtol=0, atol=0)  # what Ray does
    buf = io.BytesIO()
    torch.save(state.to_dict(), buf)
    buf.seek(0)
    loaded = TensorDict(torch.load(buf, weights_only=True), batch_size=[B])
    assert_states_close(loaded, state, rtol=0, atol=0)
    # Per-env slicing and stacking, as the runtime does.
    assert_states_close(torch.stack([state[i] for i in range(B)]), state, rtol=0, atol=0)


@pytest.mark.parametrize("name", ALL)
def test_module_state_dict_round_trip(name):
    core = make_core(name)
    other = make_core(name)
    other.load_state_dict(core.state_dict())
    x = inputs()
    a, _, _ = core(x, core.initial_state(B).double(), None)
    b, _, _ = other(x, other.initial_state(B).double(), None)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_unknown_core_and_unknown_key_are_clear_errors():
    with pytest.raises(ValueError, match="unknown core 'nope'; registered cores: .*lstm"):
        memory_cores.build("nope", 4)
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['hiden_size'\] for core 'lstm'"):
        memory_cores.build("lstm", 4, hiden_size=3)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_torch_rnn_fast_path_matches_per_step_loop(name):
    core = make_core(name, num_layers=2)
    x = inputs()
    reset = torch.rand(T, B, generator=torch.Generator().manual_seed(3)) < 0.25
    state0 = core.initial_state(B).double()
    fast, fast_state, _ = core(x, state0, reset)
    slow, slow_state, _ = core.forward_per_step(x, state0, reset)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)
    assert_states_close(fast_state, slow_state, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize("steps", [1, T])
def test_torch_rnn_fast_path_gradients_match_per_step_loop(name, steps):
    """A random start state, resets at step 0 (some envs) and in the middle: outputs, final state and the
    gradients of inputs, start state and weights as the per-step loop's (float64). steps=1 is an actor's call."""
    core = make_core(name, num_layers=2)
    g = torch.Generator().manual_seed(5)
    reset = torch.rand(steps, B, generator=g) < 0.3
    reset[0, 0], reset[0, 1] = True, False
    if steps > 1:
        reset[steps // 2, 2] = True
    state0 = core.initial_state(B).double().apply(lambda s: torch.randn(s.shape, generator=g, dtype=s.dtype))

    def run(forward):
        x = inputs()[:steps].requires_grad_()
        start = state0.clone().apply(lambda s: s.requires_grad_())
        core.zero_grad()
        out, state, _ = forward(x, start, reset)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(6), dtype=out.dtype)
        ((out * weights).sum() + sum(v.pow(2).sum() for v in state.values())).backward()
        grads = [x.grad, *(start[k].grad for k in sorted(start.keys())), *(p.grad for p in core.parameters())]
        return out.detach(), state.detach(), grads

    fast, fast_state, fast_grads = run(core)
    slow, slow_state, slow_grads = run(core.forward_per_step)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)
    assert_states_close(fast_state, slow_state, rtol=1e-10, atol=1e-10)
    for a, b in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", memory_cores.names())
def test_every_core_has_a_config_file_listing_each_field_with_its_default(name):
    """`memrl train core=<name>` reads configs/core/<name>.yaml; it must exist and match the typed config."""
    import dataclasses
    from pathlib import Path

    from omegaconf import OmegaConf

    path = Path(__file__).resolve().parent.parent / "configs" / "core" / f"{name}.yaml"
    assert path.exists(), f"{path} is missing"
    listed = OmegaConf.to_container(OmegaConf.load(path))
    assert listed.pop("name") == name
    def default(field):
        value = field.default_factory() if field.default is dataclasses.MISSING else field.default
        return list(value) if isinstance(value, tuple) else value

    assert listed == {f.name: default(f) for f in dataclasses.fields(memory_cores.config_class(name))}
