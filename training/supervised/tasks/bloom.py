"""Set-membership (Bloom) tasks: pools of items and the set distributions of thesis 5.6.2 and 5.6.4.

A *pool* is the universe U of items a task draws from: their model inputs
[U, I], class labels and (for strings) their text. Each distribution samples a
storage set S (item indices, distinct) and queries q with targets 1[q in S]:

- ``class_based``: S is n images of one random class; queries are drawn from
  S or from images of the other classes (App. C.3). Sets share a latent class.
- ``non_uniform``: S is n images drawn without replacement with
  p(i-th image of a fixed permutation) proportional to ``decay``^i (heavy
  hitters; the permutation keeps the classes mixed). Queries are uniform over
  the pool. Evaluated on the training pool, as in the thesis: the model must
  learn which images are frequent.
- ``uniform``: S is n images uniform without replacement; queries uniform.
  No structure: the classical Bloom filter's home ground.
- ``database``: the pool is a sorted universe of unique word tokens; S is a
  contiguous range of n keys (the rows of one table file); queries uniform.

Training queries (Algorithm 3) take a share ``positive_fraction`` from S and
the rest from the distribution's negative-query law (labels are membership,
so a uniform query may still hit S). Evaluation uses every item of S as a
positive and negative queries drawn from that law, conditioned on not being
in S (the false-positive rate is measured on them).

Data: MNIST's 10k test images (``/work/shared/data/mnist``, the only images
there), split into a training and an evaluation pool stratified by class;
word tokens of WikiText-2 and War and Peace, shuffled, split, and each part
sorted. Tests build pools from synthetic arrays with ``Pool``.

The training loop is ``training/supervised/bloom.py``.
"""
from __future__ import annotations

import gzip
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

DISTRIBUTIONS = ("class_based", "non_uniform", "uniform", "database")
IMAGE_DISTRIBUTIONS = ("class_based", "non_uniform", "uniform")
GUTENBERG_START, GUTENBERG_END = "*** START OF THIS PROJECT GUTENBERG", "*** END OF THIS PROJECT GUTENBERG"


@dataclass
class BloomTaskConfig:
    distribution: str = "class_based"  # class_based, non_uniform, uniform (MNIST images) or database (sorted word keys)
    paths: list[str] = field(default_factory=lambda: ["/work/shared/data/mnist"])  # MNIST folder, or word text files
    set_size_min: int = 50  # n of a training set is drawn uniformly from [set_size_min, set_size_max] per batch
    set_size_max: int = 50  # largest training set
    queries: int = 64  # training queries per set
    positive_fraction: float = 0.5  # share of training queries drawn from S (the rest from the negative-query law)
    eval_fraction: float = 0.5  # share of the pool held out for evaluation (non_uniform evaluates on the training pool)
    split_seed: int = 0  # seed of the train/eval split and of non_uniform's fixed permutation
    non_uniform_decay: float = 0.999  # non_uniform: p(i-th image of the permutation) ~ decay^i (App. C.3)
    max_length: int = 16  # database: characters per key (UTF-8 bytes); longer tokens are left out
    embedding_size: int = 128  # z: the encoder's output size, for every core (conv for images, char LSTM for keys)
    conv_channels: int = 16  # conv encoder: filters per layer (App. C.1 used 64)
    query_hidden_size: int = 128  # recurrent cores: hidden units of the query MLP on [final state, z]
    eval_set_sizes: list[int] = field(default_factory=lambda: [50])  # n values of the space evaluation
    eval_queries: int = 50000  # negative queries per evaluated set size (the thesis used 50,000)
    eval_negatives_per_set: int = 1000  # negative queries per evaluated set (sets = eval_queries / this)
    eval_precisions: list[int] = field(default_factory=lambda: [32, 16, 8])  # bits per state value tried at evaluation
    target_false_positive_rate: float = 0.01  # alpha of the space comparison (model and backup at alpha / 2)
    validation_sets: int = 64  # sets in the fixed validation sample (at set_size_max, on the evaluation pool)


def check_config(config: BloomTaskConfig) -> None:
    """One-line ValueErrors for bad task fields."""
    if config.distribution not in DISTRIBUTIONS:
        raise ValueError(f"task.distribution={config.distribution!r} is unknown; use one of {', '.join(DISTRIBUTIONS)}")
    if not 1 <= config.set_size_min <= config.set_size_max:
        raise ValueError(f"task.set_size_min={config.set_size_min} and set_size_max={config.set_size_max} "
                         "must satisfy 1 <= min <= max")
    for name in ("queries", "max_length", "embedding_size", "conv_channels", "query_hidden_size", "eval_queries",
                 "eval_negatives_per_set", "validation_sets"):
        if not isinstance(getattr(config, name), int) or getattr(config, name) < 1:
            raise ValueError(f"task.{name}={getattr(config, name)!r} must be a positive integer")
    if not 0.0 < config.positive_fraction < 1.0:
        raise ValueError(f"task.positive_fraction={config.positive_fraction} must lie in (0, 1)")
    if not 0.0 < config.eval_fraction < 1.0:
        raise ValueError(f"task.eval_fraction={config.eval_fraction} must lie in (0, 1)")
    if not 0.0 < config.non_uniform_decay <= 1.0:
        raise ValueError(f"task.non_uniform_decay={config.non_uniform_decay} must lie in (0, 1]")
    if not 0.0 < config.target_false_positive_rate < 1.0:
        raise ValueError(f"task.target_false_positive_rate={config.target_false_positive_rate} must lie in (0, 1)")
    if not config.eval_set_sizes or min(config.eval_set_sizes) < 1:
        raise ValueError(f"task.eval_set_sizes={list(config.eval_set_sizes)} must be a non-empty list of positive sizes")
    bad = [p for p in config.eval_precisions if p not in (32, 16, 8)]
    if bad or not config.eval_precisions:
        raise ValueError(f"task.eval_precisions={list(config.eval_precisions)}: each must be 32, 16 or 8")
    if not config.paths:
        raise ValueError("task.paths is empty; pass the MNIST folder or word text files, e.g. task.paths=[/work/shared/data/mnist]")


# -- pools --------------------------------------------------------------------------------------------
@dataclass
class Pool:
    """A universe of U items.

    items:  [U, I] float model inputs (flattened images in [0, 1], or character ids with 0 padding)
    labels: [U] long class ids (-1: no class)
    keys:   the items' text for string pools (sorted), else None
    """

    items: torch.Tensor
    labels: torch.Tensor
    keys: list[str] | None = None

    def __len__(self) -> int:
        return self.items.shape[0]

    def subset(self, index: torch.Tensor) -> "Pool":
        keys = None if self.keys is None else [self.keys[i] for i in index.tolist()]
        return Pool(self.items[index], self.labels[index], keys)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not), e.g. MNIST's images [n, 28, 28] or labels [n]."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != math.prod(shape):
        raise ValueError(f"{path}: header says {shape} but the file holds {body.size} values (truncated?)")
    return body.reshape(shape)


def load_mnist(folder: str) -> Pool:
    """MNIST's 10k test images as a pool: items [10000, 784] in [0, 1], labels [10000]."""
    root = Path(folder)
    fix = "pass task.paths=[<folder with t10k-images-idx3-ubyte(.gz)>], e.g. task.paths=[/work/shared/data/mnist]"
    images = _first_existing(root, ["t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"])
    labels = _first_existing(root, ["t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte"])
    if images is None or labels is None:
        raise FileNotFoundError(f"no MNIST t10k images/labels in {root}; {fix}")
    pixels, classes = read_idx(images), read_idx(labels)
    if pixels.shape[0] != classes.shape[0]:
        raise ValueError(f"{images} has {pixels.shape[0]} images but {labels} has {classes.shape[0]} labels")
    items = torch.from_numpy(pixels.reshape(pixels.shape[0], -1).astype(np.float32) / 255.0)
    return Pool(items, torch.from_numpy(classes.astype(np.int64)))


def _first_existing(root: Path, names: list[str]) -> Path | None:
    return next((root / n for n in names if (root / n).is_file()), None)


def read_tokens(path: Path) -> set[str]:
    """Whitespace tokens of a text file; a Project Gutenberg header and licence are left out."""
    if not path.is_file():
        raise FileNotFoundError(f"word file {path} does not exist; pass task.paths=[<text files>]")
    text = path.read_text(encoding="utf-8", errors="replace")
    start, end = text.find(GUTENBERG_START), text.find(GUTENBERG_END)
    if start >= 0:
        text = text[text.index("\n", start) + 1: end if end > start else None]
    return set(re.findall(r"\S+", text)) - {"<unk>", "<eos>"}


def encode_keys(keys: list[str], max_length: int) -> torch.Tensor:
    """Character ids [n, max_length]: UTF-8 byte values (1..255), 0 after the end of the string."""
    ids = np.zeros((len(keys), max_length), dtype=np.float32)
    for row, key in enumerate(keys):
        data = key.encode("utf-8")[:max_length]
        ids[row, : len(data)] = np.frombuffer(data, dtype=np.uint8)
    return torch.from_numpy(ids)


def load_words(paths: list[str], max_length: int) -> Pool:
    """The sorted unique tokens of the files with at most ``max_length`` UTF-8 bytes."""
    tokens: set[str] = set()
    for path in paths:
        tokens |= read_tokens(Path(path))
    keys = sorted(t for t in tokens if len(t.encode("utf-8")) <= max_length)
    if not keys:
        raise ValueError(f"no tokens of at most {max_length} bytes in {list(paths)}")
    return Pool(encode_keys(keys, max_length), torch.full((len(keys),), -1, dtype=torch.long), keys)


def split_pool(pool: Pool, eval_fraction: float, seed: int, stratify: bool) -> tuple[Pool, Pool]:
    """(training pool, evaluation pool). Stratified by label when asked; string pools stay sorted."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(pool), generator=generator)
    if stratify:
        groups = [order[pool.labels[order] == c] for c in torch.unique(pool.labels)]
    else:
        groups = [order]
    train, held = [], []
    for group in groups:
        cut = int(round(len(group) * (1.0 - eval_fraction)))
        train.append(group[:cut])
        held.append(group[cut:])
    train_index, eval_index = torch.cat(train).sort().values, torch.cat(held).sort().values
    return pool.subset(train_index), pool.subset(eval_index)


# -- set distributions --------------------------------------------------------------------------------
@dataclass
class Episode:
    """A batch of storage sets and queries (indices into one pool).

    sets:    [B, n] long, distinct within a row
    queries: [B, Q] long
    targets: [B, Q] float, 1.0 where the query is in its row's set
    """

    sets: torch.Tensor
    queries: torch.Tensor
    targets: torch.Tensor


class SetDistribution:
    """Samples storage sets S and queries from one pool; subclasses define S's law and the negatives' law."""

    def __init__(self, pool: Pool):
        self.pool = pool

    def sample_set(self, generator: torch.Generator, size: int) -> torch.Tensor:
        """Distinct item indices [size]."""
        raise NotImplementedError

    def sample_other(self, generator: torch.Generator, members: torch.Tensor, count: int) -> torch.Tensor:
        """Indices [count] from the query law for a set (may include members, except for class_based)."""
        return torch.randint(len(self.pool), (count,), generator=generator)

    def check_size(self, size: int) -> None:
        if size > len(self.pool):
            raise ValueError(f"set size {size} is larger than the pool of {len(self.pool)} items; lower the set size")

    def negatives(self, generator: torch.Generator, members: torch.Tensor, count: int) -> torch.Tensor:
        """Indices [count] from the query law conditioned on not being in ``members`` (evaluation)."""
        is_member = torch.zeros(len(self.pool), dtype=torch.bool)
        is_member[members] = True
        if bool(is_member.all()):
            raise ValueError("the set holds the whole pool: there is no negative query; lower the set size")
        found, total = [], 0
        while total < count:
            draw = self.sample_other(generator, members, 2 * count)
            draw = draw[~is_member[draw]]
            found.append(draw)
            total += draw.numel()
        return torch.cat(found)[:count]

    def episode(self, generator: torch.Generator, batch_size: int, size: int, queries: int,
                positive_fraction: float) -> Episode:
        """B sets of ``size`` items and ``queries`` training queries each (Algorithm 3, lines 5-7)."""
        self.check_size(size)
        positives = int(round(queries * positive_fraction))
        sets, picks = [], []
        for _ in range(batch_size):
            members = self.sample_set(generator, size)
            from_set = members[torch.randint(size, (positives,), generator=generator)]
            picks.append(torch.cat([from_set, self.sample_other(generator, members, queries - positives)]))
            sets.append(members)
        sets, picks = torch.stack(sets), torch.stack(picks)
        targets = (picks.unsqueeze(-1) == sets.unsqueeze(1)).any(-1).float()
        return Episode(sets, picks, targets)


class ClassBased(SetDistribution):
    """S: ``size`` images of one random class; other queries: images of the other classes."""

    def __init__(self, pool: Pool):
        super().__init__(pool)
        self.classes = torch.unique(pool.labels)
        self.by_class = {int(c): torch.nonzero(pool.labels == c).flatten() for c in self.classes}
        if len(self.classes) < 2 or int(self.classes.min()) < 0:
            raise ValueError("class_based needs a labelled pool with at least two classes")

    def check_size(self, size: int) -> None:
        smallest = min(self.by_class, key=lambda c: len(self.by_class[c]))
        if len(self.by_class[smallest]) < size:
            raise ValueError(f"class_based: class {smallest} has only {len(self.by_class[smallest])} items in this "
                             f"pool, fewer than set size {size}; lower the set size or task.eval_fraction")

    def sample_set(self, generator, size):
        label = int(self.classes[torch.randint(len(self.classes), (1,), generator=generator)])
        members = self.by_class[label]
        return members[torch.randperm(len(members), generator=generator)[:size]]

    def sample_other(self, generator, members, count):
        label = self.pool.labels[members[0]]
        others = torch.nonzero(self.pool.labels != label).flatten()
        return others[torch.randint(len(others), (count,), generator=generator)]


class NonUniform(SetDistribution):
    """S: ``size`` images without replacement, p(i-th image of a fixed permutation) ~ decay^i."""

    def __init__(self, pool: Pool, decay: float, seed: int):
        super().__init__(pool)
        order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed + 1))
        self.weights = torch.empty(len(pool), dtype=torch.float64)
        self.weights[order] = decay ** torch.arange(len(pool), dtype=torch.float64)

    def sample_set(self, generator, size):
        return torch.multinomial(self.weights, size, replacement=False, generator=generator)


class Uniform(SetDistribution):
    """S: ``size`` items uniformly without replacement."""

    def sample_set(self, generator, size):
        return torch.randperm(len(self.pool), generator=generator)[:size]


class ContiguousRange(SetDistribution):
    """S: ``size`` consecutive keys of the sorted pool, from a uniform start (one table file's rows)."""

    def sample_set(self, generator, size):
        start = int(torch.randint(len(self.pool) - size + 1, (1,), generator=generator))
        return torch.arange(start, start + size)


def make_distribution(name: str, pool: Pool, config: BloomTaskConfig) -> SetDistribution:
    if name == "class_based":
        return ClassBased(pool)
    if name == "non_uniform":
        return NonUniform(pool, config.non_uniform_decay, config.split_seed)
    if name == "uniform":
        return Uniform(pool)
    if name == "database":
        return ContiguousRange(pool)
    raise ValueError(f"unknown distribution {name!r}; use one of {', '.join(DISTRIBUTIONS)}")


# -- the task -----------------------------------------------------------------------------------------
class BloomTask:
    """Pools and distributions of one Bloom task; ``train`` and ``eval`` are SetDistributions.

    ``input_kind`` tells the model which encoder to use: "image" (conv) or
    "string" (character LSTM); ``image_shape`` and ``alphabet_size`` size it.
    """

    def __init__(self, config: BloomTaskConfig, pool: Pool | None = None):
        check_config(config)
        self.config = config
        if pool is None:
            pool = (load_mnist(config.paths[0]) if config.distribution in IMAGE_DISTRIBUTIONS
                    else load_words(config.paths, config.max_length))
        self.pool = pool
        self.input_kind = "string" if config.distribution == "database" else "image"
        self.input_size = pool.items.shape[1]
        side = int(round(math.sqrt(self.input_size)))
        self.image_shape = [1, side, side] if side * side == self.input_size else None
        self.alphabet_size = 256
        if config.distribution == "non_uniform":  # the thesis evaluates this task on the training images
            train_pool = eval_pool = pool
        else:
            train_pool, eval_pool = split_pool(pool, config.eval_fraction, config.split_seed,
                                               stratify=config.distribution == "class_based")
        self.train = make_distribution(config.distribution, train_pool, config)
        self.eval = self.train if eval_pool is train_pool else make_distribution(config.distribution, eval_pool, config)
        self.train.check_size(config.set_size_max)


def build_bloom_task(values: dict, pool: Pool | None = None) -> BloomTask:
    """The task from the run config's ``task`` section (``name`` is dropped); unknown keys are a one-line error."""
    from .base import make_dataclass_config

    config = make_dataclass_config(BloomTaskConfig, {k: v for k, v in values.items() if k != "name"}, "task 'bloom'")
    return BloomTask(config, pool)
