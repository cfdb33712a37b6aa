"""The classical Bloom filter, its analytic sizes, and the backup-filter accounting of thesis 5.5.

A Bloom filter stores a set S of n items in a bit array of m bits: each item
sets the bits at k hash positions; a query answers "present" when all k bits
are set. It never gives a false negative; its false-positive rate after n
inserts is (Bloom 1970; thesis 5.1)::

    fpr(m, k, n) = (1 - (1 - 1/m)^(k n))^k  ~  (1 - e^(-k n / m))^k

minimised by k = (m / n) ln 2, which gives the optimal size for a target
rate epsilon (the thesis compares against this optimum, not an implementation)::

    m*(n, epsilon) = n log2(1/epsilon) / ln 2  bits   (9.59 bits per item at 1%)

Learned filters can emit false negatives. Thesis 5.5 (after Kraska et al.
2018) stores them in a backup Bloom filter: at a target overall rate alpha the
model runs at epsilon = alpha/2 and the backup filter at delta = alpha/2, so
the overall rate is epsilon + (1 - epsilon) delta <= alpha and::

    TOTAL_SPACE(f, alpha) = SPACE(f, alpha/2) + m*(n_fn, alpha/2)

where n_fn is the number of the set's items the model misses.

>>> bloom = BloomFilter.for_capacity(num_items=100, false_positive_rate=0.01, seed=0)
>>> bloom.insert(np.arange(100))
>>> bool(bloom.query(np.arange(100)).all())
True
>>> round(optimal_size_bits(100, 0.01))
959
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

LN2 = math.log(2.0)
_MIX1, _MIX2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


# -- analytic sizes ----------------------------------------------------------------------------------
def false_positive_rate(num_bits: int, num_hashes: int, num_items: int) -> float:
    """Expected false-positive rate of an m-bit filter with k hashes after n inserts (uniform hashing)."""
    if num_bits <= 0 or num_hashes <= 0:
        raise ValueError(f"num_bits={num_bits} and num_hashes={num_hashes} must be positive")
    bit_still_zero = math.exp(num_hashes * num_items * math.log1p(-1.0 / num_bits)) if num_bits > 1 else 0.0
    return (1.0 - bit_still_zero) ** num_hashes


def optimal_num_hashes(num_bits: int, num_items: int) -> int:
    """k = round((m / n) ln 2), at least 1."""
    if num_items <= 0:
        return 1
    return max(1, round(num_bits / num_items * LN2))


def optimal_size_bits(num_items: float, false_positive_rate: float) -> float:
    """m*(n, epsilon) = n log2(1/epsilon) / ln 2: the optimal Bloom filter size in bits (0 for an empty set).

    Linear in n, so it also gives the mean size over sets from the mean n.
    """
    if not 0.0 < false_positive_rate < 1.0:
        raise ValueError(f"false_positive_rate={false_positive_rate} must lie in (0, 1)")
    if num_items < 0:
        raise ValueError(f"num_items={num_items} must be >= 0")
    return num_items * math.log2(1.0 / false_positive_rate) / LN2


# -- hashing ----------------------------------------------------------------------------------------
def item_keys(items) -> np.ndarray:
    """64-bit keys [n] for a batch of items: an integer array as it is, str/bytes through BLAKE2b."""
    if isinstance(items, np.ndarray) and items.dtype.kind in "iu":
        return items.astype(np.uint64).ravel()
    if hasattr(items, "numpy") and not isinstance(items, (str, bytes)):  # a torch tensor of integer ids
        return item_keys(items.detach().cpu().numpy())
    keys = [int.from_bytes(hashlib.blake2b(_as_bytes(item), digest_size=8).digest(), "little") for item in items]
    return np.asarray(keys, dtype=np.uint64)


def _as_bytes(item) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, (int, np.integer)):
        return int(item).to_bytes(8, "little", signed=True)
    raise TypeError(f"cannot hash an item of type {type(item).__name__}; use int, str or bytes")


def mix64(keys: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 that spreads every input bit over the output."""
    with np.errstate(over="ignore"):
        z = keys + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


# -- the filter -------------------------------------------------------------------------------------
class BloomFilter:
    """A bit array of m bits and k hash functions h_j(x) = mix64(key(x) xor seed_j) mod m.

    Each h_j has its own 64-bit seed drawn from ``seed``, so the k positions of
    an item are independent, as the analytic false-positive rate assumes.
    """

    def __init__(self, num_bits: int, num_hashes: int, seed: int = 0):
        if num_bits < 1 or num_hashes < 1:
            raise ValueError(f"num_bits={num_bits} and num_hashes={num_hashes} must be positive integers")
        self.num_bits, self.num_hashes = int(num_bits), int(num_hashes)
        self.seeds = np.random.default_rng(seed).integers(0, 2**63, size=num_hashes, dtype=np.uint64)
        self.bits = np.zeros(self.num_bits, dtype=bool)

    @classmethod
    def for_capacity(cls, num_items: int, false_positive_rate: float, seed: int = 0) -> "BloomFilter":
        """A filter of ceil(m*(n, epsilon)) bits (at least 1) and the optimal integer k for n items."""
        num_bits = max(1, math.ceil(optimal_size_bits(num_items, false_positive_rate)))
        return cls(num_bits, optimal_num_hashes(num_bits, num_items), seed)

    def positions(self, items) -> np.ndarray:
        """Bit positions [n, k] of each item."""
        keys = item_keys(items)
        return (mix64(keys[:, None] ^ self.seeds[None, :]) % np.uint64(self.num_bits)).astype(np.int64)

    def insert(self, items: Iterable) -> None:
        self.bits[self.positions(items).ravel()] = True

    def query(self, items: Iterable) -> np.ndarray:
        """bool [n]: True where all k bits of the item are set."""
        return self.bits[self.positions(items)].all(axis=1)

    def expected_false_positive_rate(self, num_items: int) -> float:
        return false_positive_rate(self.num_bits, self.num_hashes, num_items)

    @property
    def size_bits(self) -> int:
        return self.num_bits


# -- backup-filter accounting (thesis 5.5) ------------------------------------------------------------
def threshold_at_rate(negative_scores: np.ndarray, rate: float) -> float:
    """The operating point tau: "present" means score > tau, and at most floor(rate * count) negatives pass.

    negative_scores [Q]: the model's scores for queries not in their set.
    """
    scores = np.sort(np.asarray(negative_scores, dtype=np.float64).ravel())[::-1]
    allowed = math.floor(rate * scores.size + 1e-9)  # the 1e-9 keeps 0.01 * 300 = 3 from flooring to 2
    if allowed >= scores.size:
        return -math.inf
    return float(scores[allowed])


@dataclass
class SpaceAtRate:
    """One model's space at a target overall false-positive rate alpha, averaged over sets."""

    threshold: float  # tau_epsilon: the model's operating point at epsilon = alpha / 2
    model_false_positive_rate: float  # measured epsilon on the negative queries (<= alpha / 2)
    false_negatives_per_set: float  # mean n_fn: items of the set the model misses at tau
    model_bits: float  # SPACE(f, alpha/2): the model's state size
    backup_bits: float  # mean m*(n_fn, alpha/2) of the per-set backup Bloom filters
    total_bits: float  # model_bits + backup_bits
    overall_false_positive_rate: float  # epsilon + (1 - epsilon) delta, delta = alpha / 2
    bloom_bits: float  # m*(n, alpha): the optimal classical Bloom filter for the mean set size

    @property
    def ratio(self) -> float:
        """Bloom filter bits / total bits: how many times smaller the model is (< 1: the filter wins)."""
        return self.bloom_bits / self.total_bits if self.total_bits > 0 else math.inf


def space_at_rate(positive_scores: list[np.ndarray], negative_scores: np.ndarray, model_bits: float,
                  target_rate: float) -> SpaceAtRate:
    """TOTAL_SPACE(f, alpha) of thesis 5.5 with epsilon = delta = alpha / 2.

    positive_scores: one array per evaluated set, the scores of all its items
    (each miss goes to that set's backup filter); negative_scores [Q]: scores
    of queries outside their set, pooled over sets (the empirical rate).
    """
    if not 0.0 < target_rate < 1.0:
        raise ValueError(f"target_rate={target_rate} must lie in (0, 1)")
    if not positive_scores or len(negative_scores) == 0:
        raise ValueError("space_at_rate needs at least one set and one negative query")
    half = target_rate / 2.0
    threshold = threshold_at_rate(negative_scores, half)
    model_rate = float(np.mean(np.asarray(negative_scores) > threshold))
    misses = np.array([float(np.sum(np.asarray(s) <= threshold)) for s in positive_scores])
    mean_misses, mean_items = float(misses.mean()), float(np.mean([np.size(s) for s in positive_scores]))
    backup = optimal_size_bits(mean_misses, half)
    return SpaceAtRate(
        threshold=threshold, model_false_positive_rate=model_rate, false_negatives_per_set=mean_misses,
        model_bits=float(model_bits), backup_bits=backup, total_bits=float(model_bits) + backup,
        overall_false_positive_rate=model_rate + (1.0 - model_rate) * half,
        bloom_bits=optimal_size_bits(mean_items, target_rate),
    )
