"""Bloom filter, backup-filter accounting, Bloom task sampling, the Neural Bloom Filter and its training loop."""
from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch

import memory_cores
from memory_cores.bloom_filter import (BloomFilter, false_positive_rate, optimal_num_hashes, optimal_size_bits,
                                       space_at_rate, threshold_at_rate)
from memory_cores.neural_bloom import sparse_softmax
from training.supervised.tasks.bloom import (BloomTask, BloomTaskConfig, ClassBased, ContiguousRange, NonUniform,
                                             Pool, Uniform, encode_keys, load_mnist, load_words, split_pool)


# -- the classical Bloom filter -------------------------------------------------------------------------
def test_bloom_filter_never_gives_a_false_negative():
    rng = np.random.default_rng(0)
    for num_bits, num_hashes, count in [(64, 3, 200), (1000, 7, 100), (5000, 1, 400)]:  # overfull, optimal, one hash
        bloom = BloomFilter(num_bits, num_hashes, seed=int(num_bits))
        items = rng.integers(-2**62, 2**62, size=count)
        bloom.insert(items)
        assert bloom.query(items).all()
    words = [f"key-{i}" for i in range(300)]
    bloom = BloomFilter.for_capacity(len(words), 0.01, seed=3)
    bloom.insert(words)
    assert bloom.query(words).all()


def test_bloom_filter_false_positive_rate_matches_the_analytic_rate():
    """Mean measured rate over 30 filters is within 4 standard errors of (1 - (1 - 1/m)^(kn))^k."""
    num_bits, num_hashes, count, queries = 1000, 4, 150, 20000
    rng = np.random.default_rng(1)
    rates = []
    for seed in range(30):
        bloom = BloomFilter(num_bits, num_hashes, seed=seed)
        members = rng.choice(10**9, size=count, replace=False)
        bloom.insert(members)
        outside = rng.integers(10**9, 2 * 10**9, size=queries)  # disjoint from the members
        rates.append(bloom.query(outside).mean())
    analytic = false_positive_rate(num_bits, num_hashes, count)
    assert analytic == pytest.approx((1 - math.exp(-num_hashes * count / num_bits)) ** num_hashes, rel=0.01)
    standard_error = np.std(rates, ddof=1) / math.sqrt(len(rates))
    assert abs(np.mean(rates) - analytic) < 4 * standard_error, (np.mean(rates), analytic, standard_error)


def test_optimal_sizes_by_hand():
    # m* = n log2(1/eps) / ln 2: 500 items at 1% -> 4792.5 bits (the thesis' 4.8 kb at 500 elements).
    assert optimal_size_bits(500, 0.01) == pytest.approx(500 * math.log2(100) / math.log(2))
    assert optimal_size_bits(500, 0.01) == pytest.approx(4792.53, abs=0.01)
    assert optimal_size_bits(0, 0.01) == 0.0
    assert optimal_num_hashes(959, 100) == 7  # 9.59 ln 2 = 6.6
    bloom = BloomFilter.for_capacity(100, 0.01)
    assert bloom.num_bits == 959 and bloom.num_hashes == 7
    assert bloom.expected_false_positive_rate(100) < 0.0102
    with pytest.raises(ValueError, match="false_positive_rate=1.5 must lie"):
        optimal_size_bits(10, 1.5)


# -- backup-filter accounting (thesis 5.5) -------------------------------------------------------------------
def test_backup_filter_accounting_on_a_hand_made_example():
    negatives = np.arange(400) / 400.0  # 400 negative scores 0, 1/400, ..., 399/400
    # alpha = 2% -> epsilon = delta = 1%: at most 4 of 400 negatives may pass, so tau is the 5th largest score.
    assert threshold_at_rate(negatives, 0.01) == 395 / 400
    sets = [np.array([0.99, 0.5, 1.0]), np.array([0.98, 0.2, 0.999, 1.0])]  # misses: 0.5 | 0.98 and 0.2
    result = space_at_rate(sets, negatives, model_bits=100, target_rate=0.02)
    assert result.threshold == 395 / 400
    assert result.model_false_positive_rate == 4 / 400
    assert result.false_negatives_per_set == 1.5
    per_item_at_1pct = math.log2(100) / math.log(2)  # 9.585 bits per backed-up item at delta = 1%
    assert result.backup_bits == pytest.approx(1.5 * per_item_at_1pct)
    assert result.total_bits == pytest.approx(100 + 1.5 * per_item_at_1pct)
    assert result.overall_false_positive_rate == pytest.approx(0.01 + 0.99 * 0.01)
    assert result.bloom_bits == pytest.approx(3.5 * math.log2(50) / math.log(2))  # mean set size 3.5 at 2%
    assert result.ratio == pytest.approx(result.bloom_bits / result.total_bits)
    assert threshold_at_rate(negatives, 1.0) == -math.inf  # everything may pass


def test_model_plus_backup_filter_has_no_false_negatives():
    """Items the model misses go to a backup filter sized by the accounting; together they miss nothing."""
    rng = np.random.default_rng(2)
    members = np.arange(1000)
    scores = rng.normal(size=1000)
    negatives = rng.normal(-1.0, 1.0, size=50000)
    result = space_at_rate([scores], negatives, model_bits=0, target_rate=0.01)
    missed = members[scores <= result.threshold]
    assert len(missed) == result.false_negatives_per_set
    backup = BloomFilter.for_capacity(len(missed), 0.005, seed=0)
    backup.insert(missed)
    assert ((scores > result.threshold) | backup.query(members)).all()
    assert backup.num_bits == math.ceil(result.backup_bits)


# -- pools and set distributions -------------------------------------------------------------------------
def image_pool(size=200, classes=4, side=4, seed=0) -> Pool:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(size) % classes
    centres = torch.rand(classes, side * side, generator=g)
    items = (centres[labels] + 0.05 * torch.randn(size, side * side, generator=g)).clamp(0, 1)
    return Pool(items, labels)


def test_class_based_sets_share_one_class_and_queries_come_from_other_classes():
    pool = image_pool()
    distribution = ClassBased(pool)
    g = torch.Generator().manual_seed(0)
    episode = distribution.episode(g, batch_size=20, size=10, queries=30, positive_fraction=0.5)
    for members, queries, targets in zip(episode.sets, episode.queries, episode.targets):
        assert len(set(members.tolist())) == 10
        assert len(set(pool.labels[members].tolist())) == 1
        inside = torch.tensor([q in set(members.tolist()) for q in queries.tolist()])
        assert torch.equal(targets.bool(), inside)
        assert (pool.labels[queries[~inside]] != pool.labels[members[0]]).all()  # the rest: other classes
        assert int(inside.sum()) == 15  # positive_fraction of 30
        negatives = distribution.negatives(g, members, 100)
        assert (pool.labels[negatives] != pool.labels[members[0]]).all()
    with pytest.raises(ValueError, match="class 0 has only 50 items in this pool, fewer than set size 60"):
        distribution.check_size(60)


def test_non_uniform_sets_follow_the_geometric_law():
    pool = image_pool(size=200)
    distribution = NonUniform(pool, decay=0.9, seed=0)
    g = torch.Generator().manual_seed(1)
    draws = torch.stack([distribution.sample_set(g, 1) for _ in range(4000)]).flatten()
    order = torch.argsort(distribution.weights, descending=True)  # the fixed permutation, heaviest first
    for rank in range(4):
        expected = 0.1 * 0.9**rank / (1 - 0.9**200)
        measured = (draws == order[rank]).double().mean().item()
        assert abs(measured - expected) < 4 * math.sqrt(expected * (1 - expected) / 4000), rank
    members = distribution.sample_set(g, 50)
    assert len(set(members.tolist())) == 50
    # The permutation mixes classes: the 40 heaviest items are not all one class.
    assert len(set(pool.labels[order[:40]].tolist())) == 4


def test_uniform_sets_include_every_item_equally_often():
    pool = image_pool(size=200)
    distribution = Uniform(pool)
    g = torch.Generator().manual_seed(2)
    sets = torch.stack([distribution.sample_set(g, 20) for _ in range(1000)])
    assert all(len(set(row.tolist())) == 20 for row in sets)
    counts = torch.bincount(sets.flatten(), minlength=200).double()  # each ~ Binomial(1000, 0.1): mean 100, sd 9.5
    assert counts.min() > 100 - 5 * 9.5 and counts.max() < 100 + 5 * 9.5
    chi_square = ((counts - 100) ** 2 / (100 * 0.9)).sum().item()
    assert chi_square < 199 + 5 * math.sqrt(2 * 199)
    negatives = distribution.negatives(g, sets[0], 500)
    assert not bool(torch.isin(negatives, sets[0]).any()) and negatives.numel() == 500


def test_database_sets_are_contiguous_ranges_of_sorted_keys(tmp_path):
    text = tmp_path / "book.txt"
    words = [f"w{i:03d}" for i in range(300)] + ["<unk>", "averyveryverylongtoken"]
    text.write_text("Header junk\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n" + " ".join(words)
                    + "\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nlicence")
    pool = load_words([str(text)], max_length=8)
    assert pool.keys == sorted(f"w{i:03d}" for i in range(300))  # header, licence, <unk> and long tokens left out
    assert encode_keys(["ab"], 4).tolist() == [[97.0, 98.0, 0.0, 0.0]]
    config = BloomTaskConfig(distribution="database", paths=[str(text)], max_length=8, eval_fraction=0.2,
                             set_size_min=10, set_size_max=10)
    task = BloomTask(config)
    assert len(task.train.pool) == 240 and len(task.eval.pool) == 60
    assert not set(task.train.pool.keys) & set(task.eval.pool.keys)
    g = torch.Generator().manual_seed(3)
    episode = task.train.episode(g, batch_size=8, size=10, queries=40, positive_fraction=0.5)
    for members, queries, targets in zip(episode.sets, episode.queries, episode.targets):
        assert torch.equal(members, torch.arange(members[0], members[0] + 10))
        keys = [task.train.pool.keys[i] for i in members.tolist()]
        assert keys == sorted(keys)
        assert torch.equal(targets.bool(), (queries >= members[0]) & (queries <= members[-1]))
    assert isinstance(task.train, ContiguousRange)


def test_split_is_stratified_and_disjoint_and_mnist_reader_reads_idx(tmp_path):
    images = (np.arange(6 * 28 * 28) % 256).astype(np.uint8).reshape(6, 28, 28)
    header = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(header + images.tobytes())
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (6).to_bytes(4, "big") + bytes([0, 1, 0, 1, 0, 1]))
    pool = load_mnist(str(tmp_path))
    assert pool.items.shape == (6, 784) and pool.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert torch.allclose(pool.items[1, :3], torch.tensor([16, 17, 18]) / 255.0)  # row 1 starts at 784 % 256 = 16
    big = image_pool(size=400, classes=4)
    train, held = split_pool(big, 0.5, seed=0, stratify=True)
    assert torch.bincount(train.labels).tolist() == [50] * 4 and torch.bincount(held.labels).tolist() == [50] * 4
    with pytest.raises(FileNotFoundError, match="no MNIST t10k images/labels"):
        load_mnist(str(tmp_path / "missing"))


# -- the Neural Bloom Filter -------------------------------------------------------------------------
def small_core(**extra):
    torch.manual_seed(0)
    config = {"memory_slots": 6, "word_size": 3, "embedding_size": 8, "hidden_size": 8, "query_size": 5, **extra}
    return memory_cores.build("neural_bloom", 7, **config).double()


def test_neural_bloom_write_is_invariant_to_the_order_of_the_set():
    core = small_core()
    x = torch.randn(2, 40, 7, dtype=torch.float64)
    permuted = x[:, torch.randperm(40)]
    torch.testing.assert_close(core.write_set(permuted), core.write_set(x), rtol=1e-12, atol=1e-12)
    queries = torch.randn(2, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(core.familiarity(core.write_set(permuted), queries),
                               core.familiarity(core.write_set(x), queries), rtol=1e-10, atol=1e-10)
    # A padded set writes nothing for its padding.
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[:, 30:] = False
    torch.testing.assert_close(core.write_set(x, mask), core.write_set(x[:, :30]), rtol=1e-12, atol=1e-12)


def test_neural_bloom_parallel_write_equals_the_stream_and_the_step_loop():
    core = small_core()
    x = torch.randn(10, 3, 7, dtype=torch.float64)
    reset = torch.zeros(10, 3, dtype=torch.bool)
    reset[4, 1] = True
    state = core.initial_state(3).double()
    out, final, _ = core(x, state, reset)
    slow, slow_final, _ = core.forward_per_step(x, state, reset)
    torch.testing.assert_close(out, slow, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(final["memory"], slow_final["memory"], rtol=1e-12, atol=1e-12)
    # The stream's final memory is the set write of what came since the last reset.
    torch.testing.assert_close(final["memory"][0], core.write_set(x[:, 0:1].transpose(0, 1))[0])
    torch.testing.assert_close(final["memory"][1], core.write_set(x[4:, 1:2].transpose(0, 1))[0])
    # Step t reads before writing: step 0's familiarity is that of an empty memory.
    empty = torch.zeros(3, 6, 3, dtype=torch.float64)
    torch.testing.assert_close(out[0, :, 0], core.familiarity(empty, x[0].unsqueeze(1))[:, 0])


def test_sparse_address_reads_only_the_addressed_rows():
    logits = torch.tensor([[0.5, 2.0, -1.0, 1.5]])
    address = sparse_softmax(logits, 2)
    expected = torch.softmax(torch.tensor([2.0, 1.5]), 0)
    torch.testing.assert_close(address, torch.tensor([[0.0, expected[0], 0.0, expected[1]]]))
    torch.testing.assert_close(sparse_softmax(logits, 0), torch.softmax(logits, -1))
    core = small_core(top_k=1)
    query = torch.randn(1, 1, 7, dtype=torch.float64)
    address, _, _ = core.controller(query)
    row = int(address.argmax())
    memory = torch.randn(1, 6, 3, dtype=torch.float64)
    changed = memory.clone()
    changed[0, [r for r in range(6) if r != row]] += 5.0  # rows the query does not address
    torch.testing.assert_close(core.familiarity(changed, query), core.familiarity(memory, query))
    changed[0, row] += 1.0
    assert not torch.allclose(core.familiarity(changed, query), core.familiarity(memory, query))


def test_neural_bloom_gradients_match_finite_differences():
    core = small_core(top_k=3, embedding_size=4, hidden_size=4)
    items = torch.randn(1, 3, 7, dtype=torch.float64, requires_grad=True)
    queries = torch.randn(1, 2, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s, q: core.familiarity(core.write_set(s), q), (items, queries), fast_mode=True)


def test_moving_zca_spheres_correlated_queries():
    core = small_core(sphering=True, sphering_moment_decay=0.9, sphering_decay=0.0, sphering_interval=5)
    g = torch.Generator().manual_seed(0)
    mixing = torch.randn(5, 5, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1.0, 0.5, 0.2, 2.0]).double()
    sample = lambda n: torch.randn(n, 5, generator=g, dtype=torch.float64) @ mixing + 4.0  # noqa: E731
    for _ in range(50):
        core.update_sphering(sample(500))
    sphered = (sample(20000) - core.sphering_mean) @ core.sphering_projection
    torch.testing.assert_close(torch.cov(sphered.T), torch.eye(5, dtype=torch.float64), atol=0.08, rtol=0)
    # Without sphering the query is raw; the buffers never change in forward.
    before = core.sphering_projection.clone()
    core(torch.randn(3, 2, 7, dtype=torch.float64), core.initial_state(2).double())
    assert torch.equal(core.sphering_projection, before)


def test_encoders_and_bad_config_are_one_line_errors():
    lstm = memory_cores.build("neural_bloom", 6, encoder="lstm", embedding_size=8, hidden_size=8, query_size=4)
    short = torch.tensor([[97.0, 98.0, 0.0, 0.0, 0.0, 0.0]])
    longer = torch.tensor([[97.0, 98.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    lstm8 = memory_cores.build("neural_bloom", 8, encoder="lstm", embedding_size=8, hidden_size=8, query_size=4)
    lstm8.load_state_dict(lstm.state_dict())
    torch.testing.assert_close(lstm.embed(short), lstm8.embed(longer))  # the read is at the last character
    assert not torch.allclose(lstm.embed(short), lstm.embed(torch.tensor([[97.0, 99.0, 0, 0, 0, 0]])))
    conv = memory_cores.build("neural_bloom", 64, encoder="conv", image_shape=[1, 8, 8], embedding_size=8)
    assert conv.embed(torch.rand(2, 3, 64)).shape == (2, 3, 8)
    with pytest.raises(ValueError, match="top_k=9 must lie in 0..memory_slots=8"):
        memory_cores.build("neural_bloom", 4, top_k=9)
    with pytest.raises(ValueError, match="encoder='cnn' is unknown"):
        memory_cores.build("neural_bloom", 4, encoder="cnn")
    with pytest.raises(ValueError, match="conv encoder needs input_size = C\\*H\\*W"):
        memory_cores.build("neural_bloom", 63, encoder="conv", image_shape=[1, 8, 8])


# -- the training loop, the CLI and the benchmark -----------------------------------------------------------
def fake_mnist(folder, count=240, classes=4, seed=0):
    """IDX files shaped like MNIST's t10k pair: each class a fixed random 28x28 pattern plus noise."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % classes).astype(np.uint8)
    patterns = rng.integers(0, 256, size=(classes, 28, 28))
    images = np.clip(patterns[labels] + rng.normal(0, 20, size=(count, 28, 28)), 0, 255).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape) + images.tobytes())
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + count.to_bytes(4, "big") + labels.tobytes())
    return folder


def bloom_config(overrides):
    from training.config import compose

    return compose("supervised", ["task=bloom", "core=neural_bloom", "tensorboard=false", "progress=false",
                                  "optimizer.name=adam", "optimizer.learning_rate=0.003", *overrides])


@pytest.mark.learning
@pytest.mark.parametrize("core", ["neural_bloom", "lstm"])
def test_meta_learning_loop_learns_class_based_familiarity(tmp_path, core, margin):
    from training.run_dir import read_metrics
    from training.supervised.bloom import evaluate_space, setup_bloom, train_bloom

    overrides = [f"core={core}", "max_batches=160", "batch_size=8", "task.set_size_min=4", "task.set_size_max=8",
                 "task.queries=16", "task.embedding_size=16", "task.conv_channels=4", "task.query_hidden_size=16",
                 "task.validation_sets=32", "validation.interval_batches=20", "log.interval_s=1000",
                 "task.eval_queries=4000", "task.eval_negatives_per_set=200", "optimizer.learning_rate=0.002"]
    overrides += ["core.memory_slots=4", "core.word_size=2", "core.hidden_size=16"] if core == "neural_bloom" \
        else ["core.hidden_size=8"]
    cfg = bloom_config(overrides)
    config = BloomTaskConfig(**{k: v for k, v in cfg["task"].items() if k != "name"})
    task = BloomTask(config, pool=image_pool(size=400, classes=4, side=8))
    parts = setup_bloom(cfg, task=task)
    row = train_bloom(cfg, tmp_path, parts, quiet=True)
    assert row["batches"] == 160
    accuracy = [a for a in read_metrics(tmp_path)["validation_accuracy"] if not math.isnan(a)]
    # from chance (0.5) to recognising the set
    margin("first validation accuracy", accuracy[0], below=0.8)
    margin("best validation accuracy", max(accuracy), above=0.95)
    rows = evaluate_space(parts, set_size=8)
    elements = 4 * 2 if core == "neural_bloom" else 2 * 8  # memory N*W, or the LSTM's h and c
    assert [r["state_bits"] for r in rows] == [elements * 32, elements * 16, elements * 8 + 32]
    for r in rows:
        assert r["negative_queries"] == 4000 and r["model_false_positive_rate"] <= 0.005
        assert r["total_bits"] == pytest.approx(r["state_bits"] + r["backup_bits"])
        assert r["bloom_bits"] == pytest.approx(optimal_size_bits(8, 0.01))
        assert r["bloom_measured_false_positive_rate"] > 0
        margin("a real Bloom filter's measured false-positive rate (target 0.01)", r["bloom_measured_false_positive_rate"], below=0.03)


def test_memrl_supervised_bloom_trains_resumes_and_evaluates(tmp_path):
    from training.cli import main
    from training.run_dir import read_metrics

    data = fake_mnist(tmp_path / "mnist")
    common = [f"task.paths=[{data}]", f"run_root={tmp_path / 'runs'}", "tensorboard=false", "progress=false",
              "task.set_size_min=5", "task.set_size_max=5", "task.eval_set_sizes=[5]", "task.eval_queries=300",
              "task.eval_negatives_per_set=100", "task.validation_sets=4", "task.embedding_size=8",
              "task.conv_channels=2", "core.hidden_size=8"]
    assert main(["supervised", "task=bloom", "core=neural_bloom", "max_batches=2", *common]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "checkpoint.pt").is_file() and (run / "eval.json").is_file()
    assert main(["supervised", f"resume={run}", "max_batches=4"]) == 0
    assert read_metrics(run)["batches"][-1] == 4
    assert main(["eval", f"checkpoint={run}", f"eval.out={tmp_path / 'again'}"]) == 0
    import json

    rows = json.loads((tmp_path / "again.json").read_text())["rows"]
    assert [r["precision_bits"] for r in rows] == [32, 16, 8] and rows[0]["set_size"] == 5
    assert main(["supervised", "task=bloom", "task.distribution=nope", *common]) == 2


def test_bench_bloom_trains_each_model_and_plots(tmp_path):
    from omegaconf import OmegaConf

    from evaluation import benchmarks

    data = fake_mnist(tmp_path / "mnist")
    cfg = OmegaConf.create({
        "tasks": ["bloom"], "set_sizes": [4], "eval_queries": 200, "target_false_positive_rate": 0.01, "seed": 0,
        "models": [{"core": "neural_bloom", "memory_slots": 2, "word_size": 2, "hidden_size": 8},
                   {"core": "lstm", "hidden_size": 4}],
        "overrides": [f"task.paths=[{data}]", "max_batches=2", "batch_size=2", "tensorboard=false",
                      "task.eval_negatives_per_set=100", "task.validation_sets=2", "task.embedding_size=8",
                      "task.conv_channels=2", "task.query_hidden_size=8"],
        "run_root": str(tmp_path / "runs"), "plot": str(tmp_path / "bloom.png"), "out": None,
    })
    rows = benchmarks.get("bloom")(cfg)
    runs = [r for r in rows if r["section"] == "run"]
    best = [r for r in rows if r["section"] == "best"]
    assert [r["core"] for r in runs] == ["neural_bloom", "lstm"] and len(best) == 2
    assert runs[0]["state_bits"] in (2 * 2 * 32, 2 * 2 * 16, 2 * 2 * 8 + 32)
    for r in best:
        assert r["bloom_bits"] == pytest.approx(optimal_size_bits(4, 0.01))
        assert r["bloom_over_total"] == pytest.approx(r["bloom_bits"] / r["total_bits"])
    assert (tmp_path / "bloom.png").stat().st_size > 1000
