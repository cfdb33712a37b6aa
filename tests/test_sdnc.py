"""The Sparse DNC: sparse links against the dense DNC's equations, sparse ops, gradients, O(1) memory.

Contract tests (shapes, chunked unroll, resets, pickling) run for ``sdnc`` in
test_core_contract.py.
"""
from __future__ import annotations

import pytest
import torch

import memory_cores
from memory_cores import native_ops
from memory_cores import sparse_linkage as sl
from memory_cores import temporal_linkage as tl

B, N, S = 2, 7, 4
INPUT = 5


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_writes(steps, generator):
    """Sparse write weights (rows may repeat within a step), summing to 0.9 per env."""
    for _ in range(steps):
        rows = torch.randint(0, N, (B, S), generator=generator)
        weights = torch.rand(B, S, generator=generator, dtype=torch.float64)
        yield rows, 0.9 * weights / weights.sum(-1, keepdim=True)


def dense(rows, weights, slots=N):
    return torch.zeros(*rows.shape[:-1], slots, dtype=weights.dtype).scatter_add(-1, rows, weights)


def link_matrices(per_row, fused):
    """Empty links (both matrices) outside autograd, for checking the equations."""
    if fused:
        assert native_ops.extension("link_step") is not None, "the fused op must build here (this machine has a C++ compiler)"
    empty = [sl.empty_links(B, N, per_row, torch.float64) for _ in range(2)]
    links = sl.open_links(*empty, record=False, fused=fused)
    assert isinstance(links, sl.FusedLinks if fused else sl.TorchLinks)
    return links


def random_read(generator, heads=2, k=3):
    """(rows, weights) [B, heads, k], rows may repeat."""
    return torch.randint(0, N, (B, heads, k), generator=generator), torch.rand(B, heads, k, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("fused", [False, True], ids=["torch", "fused"])
def test_sparse_links_with_every_entry_kept_equal_the_dnc_links(fused):
    """K_L = N: links, their transpose, precedence and the read weights π_b b + π_c c + π_f f equal the dense DNC's."""
    g = torch.Generator().manual_seed(0)
    links = link_matrices(N, fused)
    precedence = sl.empty_precedence(B, N, torch.float64)
    dense_links, dense_precedence = torch.zeros(B, N, N, dtype=torch.float64), torch.zeros(B, N, dtype=torch.float64)
    for rows, weights in random_writes(6, g):
        write = dense(rows, weights)
        previous, content = random_read(g), random_read(g)
        modes = torch.softmax(torch.randn(B, 2, 3, generator=g, dtype=torch.float64), -1)
        read_rows, read_weights, precedence = links.read(precedence, rows, weights, *previous, content, modes, N)
        dense_links = tl.update_links(dense_links, dense_precedence, write)
        dense_precedence = tl.update_precedence(dense_precedence, write)
        sparse_links, sparse_back = links.dense()
        torch.testing.assert_close(sparse_links, dense_links, rtol=0, atol=1e-12)
        torch.testing.assert_close(sparse_back, dense_links.transpose(1, 2), rtol=0, atol=1e-12)
        torch.testing.assert_close(dense(*precedence), dense_precedence, rtol=0, atol=1e-12)
        dense_f, dense_b = tl.directional_weights(dense_links, dense(*previous))
        expected = modes[..., :1] * dense_b + modes[..., 1:2] * dense(*content) + modes[..., 2:] * dense_f
        torch.testing.assert_close(dense(read_rows, read_weights), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fused", [False, True], ids=["torch", "fused"])
def test_truncated_links_keep_valid_rows(fused):
    """K_L = 2 < N: rows hold at most K_L entries, no self-links, non-negative, row sums <= 1."""
    g = torch.Generator().manual_seed(1)
    links = link_matrices(2, fused)
    precedence = sl.empty_precedence(B, 2, torch.float64)
    no_read = torch.zeros(B, 1, 1, dtype=torch.long), torch.zeros(B, 1, 1, dtype=torch.float64)
    modes = torch.full((B, 1, 3), 1 / 3, dtype=torch.float64)
    for rows, weights in random_writes(8, g):
        precedence = links.read(precedence, rows, weights, *no_read, no_read, modes, 1)[-1]
    for full in links.dense():
        assert (full >= 0).all() and full.sum(-1).max() <= 1 + 1e-9
        assert torch.diagonal(full, dim1=1, dim2=2).abs().max() == 0
        assert ((full > 0).sum(-1) <= 2).all()
        assert full.sum() > 0


def test_merge_sums_repeats_and_keeps_the_largest():
    def merge(keys, values, keep):  # one part with mode 1: merge_top itself
        return sl.mix_merge([(keys, values)], torch.ones(1, 1), keep)

    keys = torch.tensor([[3, 1, 3, 5, 1, 0]])
    values = torch.tensor([[0.1, 0.2, 0.3, 0.05, 0.1, 0.25]], requires_grad=True)
    # totals: key 3 -> 0.4, key 1 -> 0.3, key 0 -> 0.25, key 5 -> 0.05
    kept_keys, kept_values = merge(keys, values, 2)
    assert kept_keys.tolist() == [[3, 1]]
    torch.testing.assert_close(kept_values, torch.tensor([[0.4, 0.3]]))
    kept_values.sum().backward()  # each kept key's entries get its gradient, dropped ones none
    assert values.grad.tolist() == [[1.0, 1.0, 1.0, 0.0, 1.0, 0.0]]
    kept_keys, kept_values = merge(keys, values, 6)  # room for all: the dense vector exactly
    torch.testing.assert_close(dense(kept_keys, kept_values, 6), dense(keys, values, 6))
    kept_keys, kept_values = merge(keys[:, :3], values[:, :3], 4)  # fewer keys than slots: padded
    assert kept_keys.tolist() == [[3, 1, 0, 0]]
    torch.testing.assert_close(kept_values, torch.tensor([[0.4, 0.2, 0.0, 0.0]]))


@pytest.mark.parametrize("per_row", [2, N])
def test_fused_links_read_is_the_same_function_as_the_torch_ops(per_row):
    """Five recorded steps on few rows (many repeats, truncated merges): the same read rows, weights, p_t and
    links, and the same gradients of every input (write and previous-read weights, content weights, modes,
    p_0 and the initial link values)."""
    results = []
    for fused in (False, True):
        g = torch.Generator().manual_seed(4)
        initial = [[torch.randint(0, N, (B, N, per_row), generator=g),
                    torch.rand(B, N, per_row, generator=g, dtype=torch.float64).requires_grad_()] for _ in range(2)]
        prec = (torch.randint(0, N, (B, per_row), generator=g), torch.rand(B, per_row, generator=g, dtype=torch.float64).requires_grad_())
        leaves = [initial[0][1], initial[1][1], prec[1]]
        links = sl.open_links(*initial, record=True, fused=fused)
        assert isinstance(links, sl.FusedLinks if fused else sl.TorchLinks)
        rows, weights = random_read(g)
        weights.requires_grad_()
        leaves.append(weights)
        loss, outputs = 0, []
        for write_rows, write_weights in random_writes(5, g):
            content_rows, content_weights = random_read(g)
            modes = torch.softmax(torch.randn(B, 2, 3, generator=g, dtype=torch.float64), -1)
            step_leaves = [write_weights.requires_grad_(), content_weights.requires_grad_(), modes.requires_grad_()]
            leaves += step_leaves
            rows, weights, prec = links.read(prec, write_rows, write_weights, rows, weights, (content_rows, content_weights), modes, 3)
            outputs.append((rows, weights.detach(), prec[0], prec[1].detach()))
            loss = loss + (weights * torch.arange(1.0, 4.0, dtype=torch.float64)).sum() + prec[1].pow(2).sum()
        (cols_l, values_l), (cols_b, values_b) = links.final()
        loss = loss + values_l.pow(2).sum() + values_b.sum()
        loss.backward()
        results.append((outputs, [sl.densify(cols_l, values_l.detach(), N), sl.densify(cols_b, values_b.detach(), N)],
                        [leaf.grad for leaf in leaves]))
    (out_torch, links_torch, grads_torch), (out_fused, links_fused, grads_fused) = results
    for step_torch, step_fused in zip(out_torch, out_fused):
        assert torch.equal(step_fused[0], step_torch[0]) and torch.equal(step_fused[2], step_torch[2])
        torch.testing.assert_close(step_fused[1], step_torch[1], rtol=0, atol=1e-12)
        torch.testing.assert_close(step_fused[3], step_torch[3], rtol=0, atol=1e-12)
    for fused_matrix, torch_matrix in zip(links_fused, links_torch):
        torch.testing.assert_close(fused_matrix, torch_matrix, rtol=0, atol=1e-12)
    for i, (fused_grad, torch_grad) in enumerate(zip(grads_fused, grads_torch)):
        assert torch_grad is not None and torch_grad.abs().sum() > 0, f"leaf {i} got no gradient"
        torch.testing.assert_close(fused_grad, torch_grad, rtol=0, atol=1e-12, msg=f"leaf {i}")


def build(**extra):
    torch.manual_seed(0)
    cfg = dict(slots=16, word_size=4, heads=2, top_k=3, controller_size=8, output_size=6, link_entries=3)
    return memory_cores.build("sdnc", INPUT, **{**cfg, **extra}).double()


@pytest.mark.parametrize("fused", [False, True], ids=["torch", "fused"])
def test_sdnc_gradient_matches_finite_differences(fused):
    """Through memory, links (differentiable here, unlike the thesis), precedence and read modes."""
    core = build(slots=8, word_size=3, heads=2, top_k=2, link_entries=3, controller_size=5, fused_links=fused)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 1, INPUT, generator=g, dtype=torch.float64, requires_grad=True)
    memory0 = torch.randn(1, 8, 3, generator=g, dtype=torch.float64, requires_grad=True)

    def loss(x, memory0):
        state = core.initial_state(1).double()
        state["memory"] = memory0
        out, state, _ = core(x, state, None)
        return out.pow(2).sum() + state["memory"].sum() + state["links_values"].sum() + state["read_weights"].sum()

    assert torch.autograd.gradcheck(loss, (x, memory0), eps=1e-6, atol=1e-5, fast_mode=True)


@pytest.mark.parametrize("per_row", [3, 16])
def test_fused_link_update_is_the_same_function_as_the_torch_ops(per_row):
    """Outputs, next state and every gradient over an unroll, with rows truncated (K_L = 3) and not (K_L = N)."""
    assert native_ops.extension("link_step") is not None, "the fused op must build here (this machine has a C++ compiler)"
    results = []
    for fused in (False, True):
        core = build(link_entries=per_row, fused_links=fused)
        x = torch.randn(12, B, INPUT, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        out, state, _ = core(x, core.initial_state(B).double(), None)
        (out.pow(2).sum() + state["links_values"].pow(2).sum() + state["back_values"].sum()).backward()
        dense_links = [sl.densify(state[f"{m}_cols"], state[f"{m}_values"].detach(), 16) for m in ("links", "back")]
        results.append((out.detach(), dense_links, {n: p.grad for n, p in core.named_parameters()}))
    (out_torch, links_torch, grads_torch), (out_fused, links_fused, grads_fused) = results
    assert links_torch[0].sum() > 0, "the unroll must build links for the comparison to mean anything"
    torch.testing.assert_close(out_fused, out_torch, rtol=0, atol=1e-10)
    for fused_matrix, torch_matrix in zip(links_fused, links_torch):
        torch.testing.assert_close(fused_matrix, torch_matrix, rtol=0, atol=1e-10)
    for name, grad in grads_torch.items():
        torch.testing.assert_close(grads_fused[name], grad, rtol=1e-8, atol=1e-10, msg=name)


def test_fused_link_step_splits_envs_over_threads_with_the_same_results(monkeypatch):
    """The C++ link step runs its envs on the intra-op threads: every call of an unroll (forward and backward,
    recorded with one thread) gives bit-identical outputs, in-place tables included, when replayed with two."""
    extension = native_ops.extension("link_step")
    assert extension is not None, "the fused op must build here (this machine has a C++ compiler)"
    calls = []

    class Recorder:  # the extension's functions, each call's inputs kept (cloned: some change in place)
        def __getattr__(self, name):
            def record(*args):
                calls.append((name, [a.clone() if torch.is_tensor(a) else a for a in args]))
                return getattr(extension, name)(*args)

            return record

    monkeypatch.setattr(native_ops, "extension", lambda op: Recorder() if op == "link_step" else None)
    batch = 12
    core = build(link_entries=3, fused_links=True)
    x = torch.randn(8, batch, INPUT, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    out, state, _ = core(x, core.initial_state(batch).double(), None)
    (out.pow(2).sum() + state["links_values"].pow(2).sum()).backward()
    assert {name for name, _ in calls} == {"link_step_forward", "link_step_backward"}
    results = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        results[threads] = []
        for name, args in calls:
            args = [a.clone() if torch.is_tensor(a) else a for a in args]
            outputs = list(getattr(extension, name)(*args))
            if name == "link_step_forward":
                del outputs[1:3]  # the changed rows' old entries, saved for backward: set for first copies only
            results[threads].append(outputs + [a for a in args if torch.is_tensor(a)])
    for one, two in zip(results[1], results[2]):
        for a, b in zip(one, two):
            torch.testing.assert_close(b, a, rtol=0, atol=0, equal_nan=True)  # NaN: unset entries of saved inputs


def test_links_are_used_and_gradients_reach_the_read_modes():
    core = build()
    x = torch.randn(10, B, INPUT, dtype=torch.float64)
    out, state, _ = core(x, core.initial_state(B).double(), None)
    assert state["links_values"].sum() > 0 and state["precedence_values"].sum() > 0
    out.pow(2).sum().backward()
    modes_rows = core.controller.interface.weight.grad[-3 * core.config.heads :]  # the rows giving π_t
    assert modes_rows.abs().sum() > 0


def test_sdnc_saves_nothing_that_grows_with_memory_size():
    x = torch.randn(6, 1, INPUT)
    saved = {}
    for slots in (64, 1024):
        torch.manual_seed(0)
        core = memory_cores.build("sdnc", INPUT, slots=slots, word_size=4, heads=2, controller_size=8, output_size=4)
        total = 0

        def pack(tensor):
            nonlocal total
            total += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            core(x, core.initial_state(1), None)
        saved[slots] = total
    assert saved[64] == saved[1024]


def test_in_place_state_gives_the_same_function():
    core, in_place = build(), build(in_place_state=True)
    x = torch.randn(8, B, INPUT, dtype=torch.float64)
    reset = torch.zeros(8, B, dtype=torch.bool)
    reset[4, 1] = True
    out, state, _ = core(x, core.initial_state(B).double(), reset)
    out_in_place, state_in_place, _ = in_place(x, in_place.initial_state(B).double(), reset)
    torch.testing.assert_close(out_in_place, out, rtol=0, atol=0)
    for key in state.keys():
        torch.testing.assert_close(state_in_place[key], state[key], rtol=0, atol=0)


def test_bad_config_is_a_one_line_error():
    with pytest.raises(ValueError, match="link_entries must be an int in"):
        memory_cores.build("sdnc", 4, slots=8, link_entries=0)


def test_backward_twice_on_a_retained_graph_gives_the_same_gradient():
    """Regression: a pass that asks only for d/dx never reaches the link tables' first op; the
    next pass must still start from a clean gradient table."""
    core = build()
    x = torch.randn(6, B, INPUT, dtype=torch.float64, requires_grad=True)
    out, _, _ = core(x, core.initial_state(B).double(), None)
    loss = out.pow(2).sum()
    first = torch.autograd.grad(loss, [x], retain_graph=True)[0]
    second = torch.autograd.grad(loss, [x], retain_graph=True)[0]
    torch.testing.assert_close(second, first, rtol=0, atol=0)


def test_bench_sdnc_smoke_with_the_sam_floor():
    """`memrl bench sdnc` at a tiny size: every model (sam too) timed and sized, ratios against the DNC."""
    from omegaconf import OmegaConf

    from evaluation import benchmarks

    cfg = OmegaConf.load("configs/bench/sdnc.yaml")
    cfg.n_values, cfg.steps, cfg.dense_steps, cfg.repeats = [32], 4, 2, 1
    cfg.models = ["sdnc", "sdnc_unfused", "dnc", "sam"]
    cfg.controller_size, cfg.heads, cfg.word_size, cfg.top_k, cfg.link_entries = 8, 2, 8, 2, 2
    rows = benchmarks.get("sdnc")(cfg)
    assert [r["model"] for r in rows] == ["sdnc", "sdnc_unfused", "dnc", "sam"]
    dnc = rows[2]
    for row in rows:
        assert row["ms_per_step"] > 0 and row["total_mib"] > 0
        assert row["speedup_vs_dnc"] == pytest.approx(dnc["ms_per_step"] / row["ms_per_step"])
    with pytest.raises(ValueError, match="unknown model"):
        benchmarks.get("sdnc")(OmegaConf.merge(cfg, {"models": ["sdnc", "ntm"]}))
