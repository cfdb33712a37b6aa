"""SAM against its dense twin, the sparse ops against dense loops, exact vs faiss search.

The contract tests (shapes, chunked unroll, resets, pickling) run for ``sam``
and ``dam`` in test_core_contract.py; these check the maths.
"""
from __future__ import annotations

import pytest
import torch

import memory_cores
from memory_cores import ann_index
from memory_cores.addressing import LeastRecentlyUsed, accessed_rows, cosine_similarity
from memory_cores.sparse_access import DenseGradientMemory, SparseMemory

T, B, INPUT = 10, 3, 5
SMALL = dict(slots=12, word_size=4, heads=2, controller_size=8, output_size=6)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops: one intra-op thread (two stall for milliseconds per op on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def twins(top_k=3, **extra):
    """A float64 ``sam`` and the ``dam`` computing the same function densely, same parameters."""
    torch.manual_seed(0)
    sam = memory_cores.build("sam", INPUT, top_k=top_k, **SMALL, **extra).double()
    dam = memory_cores.build("dam", INPUT, read_top_k=top_k, usage="recency", **SMALL).double()
    dam.load_state_dict(sam.state_dict())
    return sam, dam


def random_start(core, memory):
    state = core.initial_state(B).double()
    state["memory"] = memory
    return state


def run_chunks(core, x, state, reset, chunks):
    """Unroll in ``chunks`` pieces with the state carried (not detached); loss on outputs and final memory."""
    outs = []
    for xs, rs in zip(x.chunk(chunks), reset.chunk(chunks)):
        out, state, _ = core(xs, state, rs)
        outs.append(out)
    out = torch.cat(outs)
    return out, out.pow(2).sum() + (state["memory"] * 0.3).sum()


def assert_same_unrolls(core, twin, chunks, seed, out_atol, grad_atol):
    """``core`` and ``twin`` (float64, same parameters) over T steps in ``chunks`` pieces, with resets inside a
    chunk and at a chunk boundary: outputs to ``out_atol``, gradients for x, the initial memory and every
    parameter to ``grad_atol`` (each non-zero in the twin, or the check would prove nothing)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, INPUT, generator=g, dtype=torch.float64, requires_grad=True)
    memory0 = torch.randn(B, SMALL["slots"], SMALL["word_size"], generator=g, dtype=torch.float64, requires_grad=True)
    reset = torch.zeros(T, B, dtype=torch.bool)
    reset[4, 1] = True  # at a chunk boundary when chunks=3
    reset[5, 2] = True  # inside a chunk
    core_out, core_loss = run_chunks(core, x, random_start(core, memory0), reset, chunks)
    twin_out, twin_loss = run_chunks(twin, x, random_start(twin, memory0), reset, chunks)
    torch.testing.assert_close(core_out, twin_out, rtol=0, atol=out_atol)
    wrt = [x, memory0]
    core_grads = torch.autograd.grad(core_loss, wrt + list(core.parameters()))
    twin_grads = torch.autograd.grad(twin_loss, wrt + list(twin.parameters()))
    names = ["x", "memory0"] + [n for n, _ in core.named_parameters()]
    for name, a, b in zip(names, core_grads, twin_grads):
        assert b.abs().sum() > 0, f"{name}: the reference gradient is zero, the test would prove nothing"
        torch.testing.assert_close(a, b, rtol=0, atol=grad_atol, msg=lambda m: f"d loss / d {name}: {m}")


@pytest.mark.parametrize("chunks", [1, 3])
def test_sam_matches_dense_twin_values_and_gradients(chunks):
    """Gradients for inputs, every parameter and the initial memory match DAM(top-K, recency) to 1e-6."""
    sam, dam = twins()
    assert_same_unrolls(sam, dam, chunks, seed=1, out_atol=1e-10, grad_atol=1e-6)


@pytest.mark.parametrize("name, extra", [("sam", {}), ("sdnc", {"link_entries": 3})], ids=["sam", "sdnc"])
@pytest.mark.parametrize("chunks", [1, 3])
def test_controller_input_for_the_whole_unroll_is_the_per_step_cell(name, extra, chunks):
    """input_projection=unroll (W_x x_t + b for all t in one matmul, the cell's pointwise maths in torch ops) against
    step (nn.LSTMCell per step): the same outputs and gradients, float64."""
    torch.manual_seed(0)
    fast = memory_cores.build(name, INPUT, top_k=3, **SMALL, **extra).double()
    slow = memory_cores.build(name, INPUT, top_k=3, **SMALL, **extra, input_projection="step").double()
    slow.load_state_dict(fast.state_dict())
    assert_same_unrolls(fast, slow, chunks, seed=2, out_atol=1e-12, grad_atol=1e-10)


def test_sam_gradient_matches_finite_differences():
    """float64 central differences of the whole unroll (the top-K choice is locally constant)."""
    sam, _ = twins(top_k=2)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 2, INPUT, generator=g, dtype=torch.float64, requires_grad=True)
    memory0 = torch.randn(2, SMALL["slots"], SMALL["word_size"], generator=g, dtype=torch.float64, requires_grad=True)

    def loss(x, memory0):
        state = sam.initial_state(2).double()
        state["memory"] = memory0
        out, state, _ = sam(x, state, None)
        return out.pow(2).sum() + state["memory"].sum()

    assert torch.autograd.gradcheck(loss, (x, memory0), eps=1e-6, atol=1e-5, fast_mode=True)


@pytest.mark.parametrize("tape", [SparseMemory, DenseGradientMemory])
def test_sparse_memory_ops_match_dense_loop(tape):
    """gather/write/reset through SparseMemory (compact or dense gradient table) against the same ops
    written densely with autograd."""
    g = torch.Generator().manual_seed(3)
    n, w = 7, 3
    memory0 = torch.randn(2, n, w, generator=g, dtype=torch.float64, requires_grad=True)
    steps = []
    for _ in range(4):
        rows = torch.randint(0, n, (2, 4), generator=g)  # repeats allowed: weights add up
        weights = torch.rand(2, 4, generator=g, dtype=torch.float64, requires_grad=True)
        word = torch.randn(2, w, generator=g, dtype=torch.float64, requires_grad=True)
        erase = torch.randint(0, n, (2, 1), generator=g)
        steps.append((rows, weights, word, erase, torch.randint(0, n, (2, 3), generator=g)))
    envs = torch.tensor([False, True])
    initial = torch.randn(n, w, generator=g, dtype=torch.float64)

    sparse = tape(memory0, record=True)
    sparse_reads = []
    for i, (rows, weights, word, erase, reads) in enumerate(steps):
        sparse.write(rows, weights, word, erase)
        if i == 2:
            sparse.reset(envs, initial)
        sparse_reads.append(sparse.gather(reads))
    final = sparse.final()
    sparse_loss = sum((r * (i + 1)).sum() for i, r in enumerate(sparse_reads)) + final.pow(2).sum()

    dense = memory0
    dense_reads = []
    for i, (rows, weights, word, erase, reads) in enumerate(steps):
        erased = torch.zeros(2, n, dtype=torch.bool)
        erased[torch.arange(2).unsqueeze(1), erase] = True
        add = torch.zeros(2, n, dtype=torch.float64).scatter_add(1, rows, weights)
        dense = torch.where(erased.unsqueeze(-1), 0.0, dense) + add.unsqueeze(-1) * word.unsqueeze(1)
        if i == 2:
            dense = torch.where(envs.view(-1, 1, 1), initial, dense)
        dense_reads.append(dense[torch.arange(2).unsqueeze(1), reads])
    dense_loss = sum((r * (i + 1)).sum() for i, r in enumerate(dense_reads)) + dense.pow(2).sum()

    torch.testing.assert_close(final.detach(), dense.detach(), rtol=0, atol=1e-12)
    leaves = [memory0] + [t for s in steps for t in (s[1], s[2])]
    for a, b in zip(torch.autograd.grad(sparse_loss, leaves), torch.autograd.grad(dense_loss, leaves)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def saved_bytes(core, slots_state, x):
    """Bytes autograd saves for backward during one unroll (tensors saved by every op)."""
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        core(x, slots_state, None)
    return total


def test_sam_saves_nothing_that_grows_with_memory_size():
    """O(1) space per step: what backward keeps does not depend on N (DAM's grows with N)."""
    x = torch.randn(8, 1, INPUT)
    sizes = {}
    for name, extra in (("sam", {"top_k": 4}), ("dam", {})):
        for slots in (64, 1024):
            torch.manual_seed(0)
            core = memory_cores.build(name, INPUT, slots=slots, word_size=8, heads=2, controller_size=8, output_size=4, **extra)
            sizes[name, slots] = saved_bytes(core, core.initial_state(1), x)
    assert sizes["sam", 64] == sizes["sam", 1024]
    assert sizes["dam", 1024] > 8 * sizes["dam", 64] / 2  # the dense twin keeps memory copies


def test_least_recently_used_matches_argmin():
    g = torch.Generator().manual_seed(4)
    for slots in (1, 5, 16, 37):
        last = torch.randint(-1, 3, (3, slots), generator=g)
        lru = LeastRecentlyUsed(last)
        for step in range(3, 12):
            assert torch.equal(lru.least_recent(), last.argmin(-1)), (slots, step)
            rows = torch.randint(0, slots, (3, 4), generator=g)
            accessed = torch.rand(3, 4, generator=g) < 0.7
            accessed = accessed_like_rows(rows, accessed)
            now = torch.full((3,), step)
            lru.touch(rows, accessed, now)
            last.scatter_(1, rows, torch.where(accessed, now.unsqueeze(1), last.gather(1, rows)))
            assert torch.equal(lru.last_access(), last)


def accessed_like_rows(rows, accessed):
    # touch() expects entries of the same row to agree (accessed_rows guarantees it).
    same = rows.unsqueeze(2) == rows.unsqueeze(1)
    return (same & accessed.unsqueeze(1)).any(-1)


def test_accessed_rows_hand_example():
    rows = torch.tensor([[2, 5, 2, 7]])
    weights = torch.tensor([[0.003, 0.004, 0.003, 0.01]])
    # row 2: 0.003 + 0.003 = 0.006 > δ; row 5: 0.004 < δ; row 7: 0.01 > δ
    assert accessed_rows(rows, weights, 0.005).tolist() == [[True, False, True, True]]


def test_write_goes_to_never_used_rows_in_order_and_erases_them():
    """From the initial state the LRU rows are 0, 1, 2, ...; each is erased, then holds exactly a^W(u) w."""
    torch.manual_seed(0)
    heads = 2
    core = memory_cores.build("sam", INPUT, slots=32, word_size=4, heads=heads, top_k=2, controller_size=8, output_size=4)
    captured = []
    original = core.controller.access_parameters

    def spy(h):
        p = original(h)
        captured.append(p)
        return p

    core.controller.access_parameters = spy
    state = core.initial_state(1)
    with torch.no_grad():
        for t in range(4):
            previous = state
            _, state, _ = core(torch.randn(1, 1, INPUT), state, None)
            p = captured[-1]
            # a^W(t) = α(1-γ) + αγ/H Σ a^R_{t-1} over previously read entries that hit row t
            hits = (previous["read_rows"] == t) * previous["read_weights"]
            weight = p.write_gate * (1 - p.interpolation_gate + p.interpolation_gate * hits.sum() / heads)
            torch.testing.assert_close(state["memory"][0, t], weight[0] * p.write_word[0], rtol=1e-6, atol=1e-7)


def test_dam_reads_are_a_dense_softmax_by_default():
    torch.manual_seed(0)
    dam = memory_cores.build("dam", INPUT, **SMALL).double()
    _, state, _ = dam(torch.randn(4, B, INPUT, dtype=torch.float64), dam.initial_state(B).double(), None)
    weights = state["read_weights"]
    assert (weights > 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, SMALL["heads"], dtype=torch.float64))


def test_no_grad_path_equals_recorded_path():
    sam, _ = twins()
    x = torch.randn(T, B, INPUT, dtype=torch.float64)
    state = sam.initial_state(B).double()
    recorded, recorded_state, _ = sam(x, state, None)
    with torch.no_grad():
        plain, plain_state, _ = sam(x, state, None)
    torch.testing.assert_close(plain, recorded.detach(), rtol=0, atol=0)
    torch.testing.assert_close(plain_state["memory"], recorded_state["memory"].detach(), rtol=0, atol=0)


@pytest.mark.parametrize(
    "name, extra", [("sam", {}), ("sdnc", {}), ("sam", dict(ann="faiss", slots=64, ann_lists=9))], ids=["sam", "sdnc", "sam-faiss"]
)
def test_recorded_unrolls_are_freed_after_backward(name, extra):
    """The autograd graph holds each unroll's SparseMemory; the tape must not hold the graph back
    (a cycle through C++ autograd nodes that gc cannot break): the SAM learner leaked ~300 MiB/min."""
    import gc

    def tapes():
        gc.collect()
        return {id(o) for o in gc.get_objects() if isinstance(o, SparseMemory)}

    before = tapes()  # earlier tests may leave some (saved_bytes's identity pack hook forms cycles)
    core = memory_cores.build(name, INPUT, **{**SMALL, **extra})
    for _ in range(3):
        x = torch.randn(T, B, INPUT)
        out, state, _ = core(x, core.initial_state(B), torch.zeros(T, B, dtype=torch.bool))
        (out.sum() + state["memory"].sum()).backward()
        del out, state
    assert not tapes() - before


def test_cosine_similarity_hand_example():
    q = torch.tensor([[[1.0, 0.0]]])
    words = torch.tensor([[[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]]])
    torch.testing.assert_close(cosine_similarity(q, words), torch.tensor([[[1.0, 0.0, -1.0]]]), rtol=0, atol=1e-6)


# -- faiss -------------------------------------------------------------------------------------


def faiss_twins(probes):
    torch.manual_seed(0)
    cfg = dict(slots=64, word_size=8, heads=2, top_k=3, controller_size=16, output_size=6, ann_lists=9)
    exact = memory_cores.build("sam", INPUT, **cfg)
    ann = memory_cores.build("sam", INPUT, ann="faiss", ann_probes=probes, **cfg)
    ann.load_state_dict(exact.state_dict())
    return exact, ann


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exact_search_in_cpp_equals_the_torch_ops(dtype):
    """The one-pass C++ search (scores and top-K) finds the torch path's rows in its order: word sizes with
    and without a multiple of 8, K from 1 to N, rows of very different norms."""
    g = torch.Generator().manual_seed(5)
    for batch, slots, width, heads, k in [(3, 300, 32, 4, 4), (2, 17, 5, 3, 1), (2, 9, 13, 2, 9)]:
        memory = torch.randn(batch, slots, width, generator=g, dtype=dtype) * torch.rand(batch, slots, 1, generator=g, dtype=dtype)
        queries = torch.randn(batch, heads, width, generator=g, dtype=dtype)
        native, ops = ann_index.ExactIndex(memory, native=True), ann_index.ExactIndex(memory, native=False)
        assert native._native and not ops._native, "the C++ op must build here (this machine has a C++ compiler)"
        assert torch.equal(native.search(queries, k), ops.search(queries, k))


def test_faiss_searching_every_list_equals_exact():
    exact, ann = faiss_twins(probes=1000)
    x = torch.randn(20, B, INPUT)
    reset = torch.zeros(20, B, dtype=torch.bool)
    reset[7, 1] = True
    out_e, state_e, _ = exact(x, exact.initial_state(B), reset)
    out_a, state_a, _ = ann(x, ann.initial_state(B), reset)
    assert torch.equal(state_e["read_rows"], state_a["read_rows"])
    torch.testing.assert_close(out_a, out_e, rtol=0, atol=0)


@pytest.mark.parametrize("carry", ["same tensors", "copied state (index rebuilt)"])
def test_faiss_approximate_chunked_unroll_equals_whole(carry):
    """With few probes the search is approximate, yet a function of the state: chunks agree."""
    _, ann = faiss_twins(probes=2)
    x = torch.randn(30, B, INPUT)
    reset = torch.zeros(30, B, dtype=torch.bool)
    reset[11, 0] = True
    state0 = ann.initial_state(B)
    whole, whole_state, _ = ann(x, state0, reset)
    state, outs = state0, []
    for xs, rs in zip(x.chunk(3), reset.chunk(3)):
        out, state, _ = ann(xs, state.clone() if carry.startswith("copied") else state, rs)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs), whole, rtol=0, atol=0)
    # 30 steps x 7 rows > N = 64 inserts: envs 1 and 2 rebuilt their index with retrained centroids.
    assert whole_state["ann_inserts"][1] < 64 and not torch.equal(whole_state["ann_centroids"][1], state0["ann_centroids"][1])
    for key in whole_state.keys():
        torch.testing.assert_close(state[key], whole_state[key], rtol=0, atol=0)


def test_bad_config_is_a_one_line_error():
    with pytest.raises(ValueError, match="top_k must be an int in"):
        memory_cores.build("sam", 4, slots=8, top_k=9)
    with pytest.raises(ValueError, match="ann must be one of"):
        memory_cores.build("sam", 4, ann="kdtree")
    with pytest.raises(ValueError, match="input_projection must be one of"):
        memory_cores.build("sam", 4, input_projection="sequence")
    with pytest.raises(ValueError, match="usage must be one of"):
        memory_cores.build("dam", 4, usage="lru")
    with pytest.raises(ValueError, match="slots must be a positive int"):
        memory_cores.build("dam", 4, slots=0)


def test_in_place_state_gives_the_same_function_without_copying_memory():
    sam, _ = twins()
    torch.manual_seed(0)
    in_place = memory_cores.build("sam", INPUT, top_k=3, in_place_state=True, **SMALL).double()
    in_place.load_state_dict(sam.state_dict())
    x = torch.randn(T, B, INPUT, dtype=torch.float64)
    reset = torch.zeros(T, B, dtype=torch.bool)
    reset[3, 2] = True
    out, state, _ = sam(x, sam.initial_state(B).double(), reset)
    given = in_place.initial_state(B).double()
    memory_given = given["memory"]
    out_in_place, state_in_place, _ = in_place(x, given, reset)
    torch.testing.assert_close(out_in_place, out, rtol=0, atol=0)
    torch.testing.assert_close(state_in_place["memory"], state["memory"], rtol=0, atol=0)
    assert state_in_place["memory"].data_ptr() == memory_given.data_ptr()  # updated where it was
    grads = torch.autograd.grad(out.sum(), list(sam.parameters()))
    grads_in_place = torch.autograd.grad(out_in_place.sum(), list(in_place.parameters()))
    for a, b in zip(grads, grads_in_place):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_bench_sam_smoke():
    """`memrl bench sam` at a tiny size: every model measured, ratios against DAM filled in."""
    from omegaconf import OmegaConf

    from evaluation import benchmarks

    cfg = OmegaConf.load("configs/bench/sam.yaml")
    cfg.n_values, cfg.steps, cfg.repeats = [64], 4, 1
    cfg.controller_size, cfg.heads, cfg.word_size = 8, 2, 8
    rows = benchmarks.get("sam")(cfg)
    assert [r["model"] for r in rows] == list(cfg.models)
    dense = rows[-1]
    assert dense["model"] == "dam" and dense["speedup_vs_dam"] == 1
    for row in rows:
        assert row["ms_per_step"] > 0 and row["saved_mib"] > 0
        assert row["memory_ratio_vs_dam"] == pytest.approx(dense["peak_extra_mib"] / row["peak_extra_mib"])


@pytest.mark.slow
@pytest.mark.learning
def test_impala_with_sam_learns_the_tmaze(tmp_path, margin):
    """IMPALA (in-process actor) with core=sam remembers a T-maze cue over a 6-step corridor."""
    from training.config import compose
    from training.impala import train

    torch.set_num_threads(2)
    cfg = compose("train", [
        "core=sam", "env=tmaze", "env.corridor_length=6", "actors.num_actors=0", "actors.envs_per_actor=16",
        "total_frames=60000", "tensorboard=false", "log.interval_s=1000", "checkpoint.interval_s=100000",
    ])
    metrics = train(cfg, tmp_path, quiet=True)
    margin("mean success", metrics["mean_success"], above=0.9)  # a memoryless policy succeeds half of the time
