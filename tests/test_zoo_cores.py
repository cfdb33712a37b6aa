"""gru, ffm, lru, linear_attention, mamba: each fast (parallel) form against its step-by-step twin,
in float64 with resets in the middle of the unroll, plus numerical gradient checks."""
from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call

import memory_cores
from memory_cores.linear_scan import linear_scan, linear_scan_step_by_step

T, B, INPUT = 11, 3, 4
# Cores whose ``forward`` is a parallel form over T with a ``forward_per_step`` twin.
PARALLEL = ["gru", "lru", "ffm", "linear_attention", "mamba"]


SMALL = {"gru": {"hidden_size": 3, "num_layers": 2}}  # cores without a ``test_config``
VARIANTS = {"mamba:parallel": ("mamba", {"scan": "parallel"})}  # other fast forms of a core
PARALLEL += list(VARIANTS)


def make_core(name):
    name, extra = VARIANTS.get(name, (name, {}))
    cls = memory_cores.registry.CORES.get(name)[0]
    torch.manual_seed(0)
    return memory_cores.build(name, INPUT, **SMALL.get(name, getattr(cls, "test_config", {})), **extra).double()


def mid_unroll_resets(steps=T, seed=3):
    reset = torch.rand(steps, B, generator=torch.Generator().manual_seed(seed)) < 0.2
    reset[0, 0] = True  # an env that starts fresh at step 0 drops the carried-in state
    reset[steps // 2, 1] = True
    return reset


def carried_state(core, seed=5):
    """A non-zero state, as if from an earlier unroll."""
    g = torch.Generator().manual_seed(seed)
    _, state, _ = core(torch.randn(4, B, INPUT, generator=g, dtype=torch.float64), core.initial_state(B).double(), None)
    return state.detach()


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("steps, block", [(1, None), (7, None), (16, None), (23, 5), (23, 1), (23, 23)])
def test_linear_scan_equals_the_step_loop_with_resets(dtype, steps, block):
    g = torch.Generator().manual_seed(steps)
    a = torch.rand(steps, B, 5, generator=g, dtype=torch.float64).to(dtype)
    b = torch.randn(steps, B, 5, generator=g, dtype=torch.float64).to(dtype)
    h0 = torch.randn(B, 5, generator=g, dtype=torch.float64).to(dtype)
    reset = mid_unroll_resets(steps)
    fast = linear_scan(a, b, h0, reset, block)
    torch.testing.assert_close(fast, linear_scan_step_by_step(a, b, h0, reset), rtol=1e-12, atol=1e-12)
    # By hand at the reset of env 1: nothing before it reaches the state.
    k = steps // 2
    if k:
        torch.testing.assert_close(fast[k, 1], b[k, 1], rtol=0, atol=0)


def test_linear_scan_gradcheck_with_resets():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(9, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(9, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    reset = torch.zeros(9, 2, dtype=torch.bool)
    reset[4, 0] = True
    assert torch.autograd.gradcheck(lambda a, b, h0: linear_scan(a, b, h0, reset, 3), (a, b, h0))


@pytest.mark.parametrize("name", PARALLEL)
def test_parallel_form_equals_the_step_loop_with_resets(name):
    core = make_core(name)
    x = torch.randn(T, B, INPUT, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    state0 = carried_state(core)
    reset = mid_unroll_resets()
    fast, fast_state, _ = core(x, state0, reset)
    slow, slow_state, _ = core.forward_per_step(x, state0, reset)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)
    for key in slow_state.keys(True, True):
        torch.testing.assert_close(fast_state[key], slow_state[key], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", PARALLEL)
def test_parallel_form_gradcheck(name):
    """Numerical gradients of the parallel form w.r.t. the inputs, the carried state and every parameter."""
    core = make_core(name)
    steps = 5
    x = torch.randn(steps, 2, INPUT, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    state0 = carried_state(core)[:2]
    reset = torch.zeros(steps, 2, dtype=torch.bool)
    reset[2, 1] = True
    names = [n for n, _ in core.named_parameters()]
    keys = list(state0.keys(True, True))

    def run(x, *tensors):
        params = dict(zip(names, tensors[: len(names)]))
        state = state0.clone()
        for key, value in zip(keys, tensors[len(names):]):
            state[key] = value
        out, new_state, _ = functional_call(core, params, (x, state, reset))
        return out, *(new_state[k] for k in keys)

    inputs = (x, *(p.detach() for p in core.parameters()), *(state0[k] for k in keys))
    inputs = tuple(t.clone().requires_grad_(t.is_floating_point()) for t in inputs)
    assert torch.autograd.gradcheck(run, inputs, fast_mode=True)


def test_zoo_bench_times_every_system_and_compares_fast_forms_with_their_step_loops():
    from omegaconf import OmegaConf

    from evaluation import benchmarks

    cfg = OmegaConf.load("configs/bench/zoo.yaml")
    cfg.lengths, cfg.repeats, cfg.batch_size, cfg.input_size, cfg.hidden_size = [6], 1, 2, 4, 4
    rows = benchmarks.get("zoo")(cfg)
    systems = [row["system"] for row in rows]
    assert systems[:3] == ["lstm", "gru", "gru:step_loop"] and "mamba:parallel_scan" in systems
    by_system = {row["system"]: row for row in rows}
    for row in rows:
        assert row["T"] == 6 and row["ms_median"] >= row["ms_best"] > 0
        assert row["vs_lstm"] == pytest.approx(row["ms_median"] / by_system["lstm"]["ms_median"])
    fast, loop = by_system["mamba:parallel_scan"], by_system["mamba:step_loop"]
    assert fast["speedup_vs_step_loop"] == pytest.approx(loop["ms_median"] / fast["ms_median"])
    assert "speedup_vs_step_loop" not in by_system["lstm"]  # lstm's step loop is not in step_loops


def test_lstm_forget_bias_shifts_only_the_forget_gate_biases():
    def build(forget_bias):
        torch.manual_seed(0)
        return memory_cores.build("lstm", 5, hidden_size=8, num_layers=2, forget_bias=forget_bias).lstm

    plain, shifted = build(0.0), build(1.0)
    for layer in range(2):
        shift = getattr(shifted, f"bias_ih_l{layer}") - getattr(plain, f"bias_ih_l{layer}")
        expected = torch.zeros(32)
        expected[8:16] = 1.0  # gate order: input, forget, cell, output
        torch.testing.assert_close(shift, expected)
        torch.testing.assert_close(getattr(shifted, f"bias_hh_l{layer}"), getattr(plain, f"bias_hh_l{layer}"))


def trace_readout_r2(core, lag, steps=2000, warmup=100, ridge=1e-3):
    """Held-out R² of the best linear read-out (ridge) of x_{t−lag} from [Re S_t, Im S_t], for a scalar
    white-noise input fed to every channel of ``core``'s aggregator (γ as initialised)."""
    m, c = core.config.memory_size, core.config.context_size
    u = torch.randn(steps, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    drive = u[:, None, None, None].expand(steps, 1, m, c).to(torch.complex128)
    trace = linear_scan(core.decay().detach().to(torch.complex128), drive, torch.zeros(1, m, c, dtype=torch.complex128))
    features = torch.view_as_real(trace[warmup:, 0]).reshape(steps - warmup, -1)
    target = u[warmup - lag:steps - lag]
    half = len(target) // 2
    fit, held = (features[:half], target[:half]), (features[half:], target[half:])
    gram = fit[0].T @ fit[0] + ridge * torch.eye(features.shape[1], dtype=torch.float64)
    weights = torch.linalg.solve(gram, fit[0].T @ fit[1])
    return 1 - (held[1] - held[0] @ weights).var() / held[1].var()


def test_ffm_log_spaced_periods_tell_recent_steps_apart():
    """S is meant to hold what was seen and when (FFM's contextual drift): at log-spaced periods a linear
    read-out recovers the input of each of the last 4 steps. At the reference's 4 linearly spaced periods
    (1, 342, 683, 1024; the default) it does not (R² 0.80, 0.42, 0.41, 0.32 at lags 1-4 on this input): no
    context turns by more than 0.02 rad a step. Both keep a held context (period 1) and the same decays."""
    core = memory_cores.build("ffm", 1, context_size=8, period_spacing="log")
    for lag in (1, 2, 3, 4):
        assert trace_readout_r2(core, lag) > 0.9, lag
    reference = memory_cores.build("ffm", 1)
    assert (reference.config.context_size, reference.config.period_spacing) == (4, "linear")
    assert trace_readout_r2(reference, 4) < 0.6
    for ffm in (core, reference):
        assert torch.allclose(ffm.decay()[:, 0].imag, torch.zeros(()), atol=1e-6)  # ω = 2π: γ real, held
        assert ffm.omega[-1].item() == pytest.approx(2 * math.pi / 1024)
    torch.testing.assert_close(core.alpha, reference.alpha)


@pytest.mark.parametrize("bad, field", [({"period_spacing": "geometric"}, "period_spacing"),
                                        ({"forgotten_at": 1.0}, "forgotten_at"), ({"min_period": 2e3}, "min_period")])
def test_ffm_config_errors_name_the_field(bad, field):
    from memory_cores.ffm import FFMConfig

    with pytest.raises(ValueError, match=field):
        FFMConfig(**bad)
