"""Top-K content search over memory rows: exact, or a faiss ANN index per env.

Thesis Sec. 3.2.7 and 3.3.4: the K rows a head reads are the K words with the
highest cosine similarity to its query. No gradient flows through the choice
of rows, only through the weights computed on them afterwards.

Both indexes follow one protocol, used once per forward call:

    index = ExactIndex(memory)                 # memory: the unroll's buffer [B, N, W]
    index.update(rows)                         # rows [B, S] were just written
    index.reset(envs)                          # envs' memory was just reset
    rows = index.search(queries, k)            # queries [B, H, W] -> [B, H, K] (long)

``FaissIndex`` keeps one IVF index (inverted lists over centroids, inner
product on unit vectors) per env, updated in place as rows are written
(remove + add by row id, O(1) with faiss' hashtable direct map). By default
there are about N/64 lists; the coarse quantizer that assigns a row or a
query to lists is exact (flat) up to 256 lists and an HNSW graph above, so a
step costs O(log N), not O(sqrt N). The centroids live in the core state
(``ann_centroids`` [B, L, W]), and every faiss structure is built
single-threaded (HNSW's graph then depends only on the centroids), so the
lists are a function of the state: an index rebuilt from the state finds the
same rows as one carried across calls. Every N inserts an env re-centres
(thesis: "rebuild the ANN from scratch every N insertions to ensure it does
not become imbalanced"): its centroids become its current rows at L fixed
random positions, and its index is rebuilt; the count is ``ann_inserts`` [B]
in the state. Indexes are a cache: kept between calls keyed on the storage
and version of the returned memory tensor, rebuilt from the state otherwise.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from .addressing import NORM_EPSILON, unit

try:
    import faiss
except ImportError:  # pragma: no cover - faiss-cpu is a dependency; the error says what to do
    faiss = None

CENTROID_SEED = 20161027
ROWS_PER_LIST = 64  # default list size: L = N / 64
HNSW_ABOVE_LISTS = 256  # coarse quantizer: exact up to this many lists, HNSW above
HNSW_NEIGHBOURS = 16  # HNSW graph degree M of the coarse quantizer


@contextlib.contextmanager
def _one_faiss_thread():
    """faiss calls here are small (H queries, a few rows): OpenMP threads only add latency."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def default_lists(slots: int) -> int:
    """IVF lists L for N slots when the config leaves it to us: about N / 64."""
    return max(1, round(slots / ROWS_PER_LIST))


class ExactIndex:
    """Exact top-K by cosine similarity over all N rows: one batched product per step.

    Keeps the squared row norms [B, N] and refreshes only the written rows,
    so a search is one pass over the memory (q·M(i)) plus a top-K.
    """

    def __init__(self, memory: torch.Tensor):
        self.memory = memory
        self.inverse_norms = torch.rsqrt(memory.pow(2).sum(-1) + NORM_EPSILON)

    def update(self, rows: torch.Tensor) -> None:
        values = self.memory.gather(1, rows.unsqueeze(-1).expand(-1, -1, self.memory.shape[-1]))
        self.inverse_norms.scatter_(1, rows, torch.rsqrt(values.pow(2).sum(-1) + NORM_EPSILON))

    def reset(self, envs: torch.Tensor) -> None:
        fresh = torch.rsqrt(self.memory.pow(2).sum(-1) + NORM_EPSILON)
        self.inverse_norms = torch.where(envs.unsqueeze(1), fresh, self.inverse_norms)

    def search(self, queries: torch.Tensor, k: int) -> torch.Tensor:
        with torch.no_grad():
            scores = torch.bmm(unit(queries.to(self.memory.dtype)), self.memory.transpose(1, 2))
            scores = scores * self.inverse_norms.unsqueeze(1)  # [B, H, N]
            return scores.topk(k, dim=-1).indices

    def state(self) -> dict[str, torch.Tensor]:
        return {}


def initial_centroids(lists: int, word_size: int) -> torch.Tensor:
    """Fixed random unit centroids [L, W] for the initial memory (itself i.i.d. Gaussian)."""
    generator = torch.Generator().manual_seed(CENTROID_SEED)
    return unit(torch.randn(lists, word_size, generator=generator, dtype=torch.float64)).float()


# (storage address, layout, version) of a returned memory tensor -> (that tensor, centroids key, indexes).
# Keyed on storage, not the Python object, so that state.detach() still finds its index; the
# entry holds the tensor so its storage cannot be freed and its address reused while cached.
_CACHE: dict[tuple, tuple] = {}
_CACHE_SIZE = 2


def _tensor_key(tensor: torch.Tensor) -> tuple:
    return (
        tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
        tensor.stride(), tensor.dtype, tensor.device, tensor._version,
    )


class FaissIndex:
    """One faiss ``IndexIVFFlat`` (inner product on unit rows) per env; see the module doc.

    memory: the unroll's buffer [B, N, W] (changed in place by the caller);
    source: the state's memory tensor it was copied from (the cache key);
    centroids [B, L, W] and inserts [B] from the state; probes: lists searched.
    """

    def __init__(self, memory, source, centroids, inserts, probes: int):
        if faiss is None:
            raise ValueError("ann=faiss needs faiss: pip install faiss-cpu (or use ann=exact)")
        self.memory = memory
        self.batch, self.slots, self.width = memory.shape
        self.centroids = centroids.detach().to(device="cpu", dtype=torch.float32).clone()
        self.lists = self.centroids.shape[1]
        self.probes = min(probes, self.lists)
        self.inserts = inserts.detach().to("cpu").long().clone()
        self.indexes = self._cached(source, centroids) or [None] * self.batch
        for env in range(self.batch):
            if self.indexes[env] is None:
                self.indexes[env] = self._build(env)

    # -- the protocol ------------------------------------------------------------------------
    def update(self, rows: torch.Tensor) -> None:
        rows = rows.detach().cpu()
        with _one_faiss_thread():
            self._update(rows)

    def _update(self, rows: torch.Tensor) -> None:
        for env in range(self.batch):
            ids = torch.unique(rows[env])
            self._replace(env, ids)
            self.inserts[env] += ids.numel()
            if self.inserts[env] >= self.slots:
                self._retrain(env)

    def reset(self, envs: torch.Tensor) -> None:
        for env in torch.nonzero(envs.cpu()).flatten().tolist():
            self.centroids[env] = initial_centroids(self.lists, self.width)
            self.inserts[env] = 0
            self.indexes[env] = self._build(env)

    def search(self, queries: torch.Tensor, k: int) -> torch.Tensor:
        found = torch.empty(self.batch, queries.shape[1], k, dtype=torch.long)
        units = unit(queries.detach().float()).cpu().numpy()
        with _one_faiss_thread():
            self._search(units, k, found)
        return found.to(queries.device)

    def _search(self, units, k: int, found: torch.Tensor) -> None:
        for env, index in enumerate(self.indexes):
            index.nprobe = self.probes
            _, ids = index.search(units[env], k)
            if (ids < 0).any():  # the probed lists held fewer than K rows: search them all
                index.nprobe = self.lists
                _, ids = index.search(units[env], k)
            found[env] = torch.from_numpy(ids)

    def state(self) -> dict[str, torch.Tensor]:
        return {"ann_centroids": self.centroids, "ann_inserts": self.inserts}

    def remember(self, memory_out: torch.Tensor, centroids_out: torch.Tensor) -> None:
        """Keep the indexes for the next call that starts from ``memory_out`` (or a detached alias)."""
        while len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[_tensor_key(memory_out)] = (memory_out, centroids_out, _tensor_key(centroids_out), self.indexes)

    # -- building ------------------------------------------------------------------------------
    def _cached(self, source: torch.Tensor, centroids: torch.Tensor):
        entry = _CACHE.pop(_tensor_key(source), None)  # popped: the indexes now follow this call
        if entry is None:
            return None
        _, _, centroids_key, indexes = entry
        if centroids_key != _tensor_key(centroids) or len(indexes) != self.batch:
            return None
        return list(indexes)

    def _empty(self, env: int):
        centroids = np.ascontiguousarray(self.centroids[env].numpy())
        if self.lists > HNSW_ABOVE_LISTS:
            quantizer = faiss.IndexHNSWFlat(self.width, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            quantizer.hnsw.efSearch = max(32, 2 * self.probes)
        else:
            quantizer = faiss.IndexFlatIP(self.width)
        quantizer.add(centroids)
        index = faiss.IndexIVFFlat(quantizer, self.width, self.lists, faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantizer.this.disown()
        index.is_trained = True
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return index

    def _build(self, env: int):
        # Envs that start from the same memory and centroids (a fresh batch) share one build.
        for other in range(env):
            if (
                self.indexes[other] is not None
                and torch.equal(self.centroids[other], self.centroids[env])
                and torch.equal(self.memory[other], self.memory[env])
            ):
                return faiss.clone_index(self.indexes[other])
        with _one_faiss_thread():  # single-threaded: the same graph and lists on every rebuild
            index = self._empty(env)
            self._add(index, env, torch.arange(self.slots))
        return index

    def _add(self, index, env: int, ids: torch.Tensor) -> None:
        vectors = unit(self.memory[env].detach()[ids.to(self.memory.device)].float()).cpu()
        index.add_with_ids(np.ascontiguousarray(vectors.numpy()), np.ascontiguousarray(ids.numpy()))

    def _replace(self, env: int, ids: torch.Tensor) -> None:
        index = self.indexes[env]
        index.remove_ids(faiss.IDSelectorArray(np.ascontiguousarray(ids.numpy())))
        self._add(index, env, ids)

    def _retrain(self, env: int) -> None:
        """Re-centre: the centroids become the env's rows at L fixed random positions."""
        generator = torch.Generator().manual_seed(CENTROID_SEED)
        positions = torch.randperm(self.slots, generator=generator)[: self.lists]
        self.centroids[env] = unit(self.memory[env].detach()[positions.to(self.memory.device)].float()).cpu()
        self.inserts[env] = 0
        self.indexes[env] = None
        self.indexes[env] = self._build(env)
