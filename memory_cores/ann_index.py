"""Top-K content search over memory rows: exact, or a faiss ANN index per env.

Thesis Sec. 3.2.7 and 3.3.4: the K rows a head reads are the K words with the
highest cosine similarity to its query. No gradient flows through the choice
of rows, only through the weights computed on them afterwards.

Both indexes follow one protocol, used once per forward call:

    index = ExactIndex(memory)                 # memory: the unroll's buffer [B, N, W]
    index.update(rows)                         # rows [B, S] were just written
    index.reset(envs)                          # envs' memory was just reset
    rows = index.search(queries, k)            # queries [B, H, W] -> [B, H, K] (long)

``FaissIndex`` is an IVF index (inverted lists, inner product on unit rows)
for the whole batch: one faiss ``IndexIVFFlat`` whose list env·L + c holds
env's rows of cell c (row ids env·N + row), updated in place as rows are
written (remove + add by id, O(1) with faiss' hashtable direct map), so a
step makes three faiss calls whatever B is. The coarse quantizer is a
multi-index (Babenko & Lempitsky): two codebooks of S centroids for the two
halves of a word, L = S^2 cells; a row's cell is the pair of best half
matches, found in torch for all envs at once in O(S W) (float64, so a row
gets the same cell whichever batch it is assigned in), and a query probes
the ``ann_probes`` cells with the highest summed half scores (from the top
probes of each half). By default L is about N/64, so a step costs
O(sqrt N) for the coarse search plus a scan of about 64 rows per probe.

The codebooks live in the core state (``ann_centroids`` [B, S, W], row j =
[half-centroid j of the first half, of the second half]), so the lists are a
function of the state: an index rebuilt from the state finds the same rows
as one carried across calls. Every N inserts an env re-centres (thesis:
"rebuild the ANN from scratch every N insertions to ensure it does not
become imbalanced"): its codebooks become its current unit rows at S fixed
random positions and its rows are re-filed; the count is ``ann_inserts`` [B]
in the state. The index is a cache: kept between calls keyed on the storage
and version of the returned memory tensor, rebuilt from the state otherwise.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from . import native_ops
from .addressing import NORM_EPSILON, unit

try:
    import faiss
except ImportError:  # pragma: no cover - faiss-cpu is a dependency; the error says what to do
    faiss = None

CENTROID_SEED = 20161027
ROWS_PER_LIST = 64  # default list size: L = N / 64


@contextlib.contextmanager
def _one_faiss_thread():
    """faiss calls here are small (H queries, a few rows): OpenMP threads only add latency."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def codebook_size(slots: int, lists: int = 0) -> int:
    """Centroids S per half-codebook for N slots: L = S^2 cells, about ``lists`` (0: about N / 64)."""
    lists = lists or max(1, round(slots / ROWS_PER_LIST))
    return max(1, min(slots, round(lists**0.5)))


class ExactIndex:
    """Exact top-K by cosine similarity over all N rows: one pass over the memory per step.

    Keeps the inverse row norms [B, N] and refreshes only the written rows,
    so a search is one pass over the memory (q·M(i)) plus a top-K; on CPU
    both are one C++ call (``native``; the PyTorch ops otherwise).
    """

    def __init__(self, memory: torch.Tensor, native: bool = True):
        self.memory = memory
        self.inverse_norms = torch.rsqrt(memory.pow(2).sum(-1) + NORM_EPSILON)
        # On CPU, scores and top-K as one C++ pass (csrc/top_rows.cpp) where it builds.
        self._native = (native and memory.device.type == "cpu" and memory.dtype in (torch.float32, torch.float64)
                        and native_ops.extension("top_rows") is not None)

    def update(self, rows: torch.Tensor) -> None:
        values = self.memory.gather(1, rows.unsqueeze(-1).expand(-1, -1, self.memory.shape[-1]))
        self.inverse_norms.scatter_(1, rows, torch.rsqrt(values.pow(2).sum(-1) + NORM_EPSILON))

    def reset(self, envs: torch.Tensor) -> None:
        fresh = torch.rsqrt(self.memory.pow(2).sum(-1) + NORM_EPSILON)
        self.inverse_norms = torch.where(envs.unsqueeze(1), fresh, self.inverse_norms)

    def search(self, queries: torch.Tensor, k: int) -> torch.Tensor:
        with torch.no_grad():
            if self._native:
                search = native_ops.extension("top_rows").top_rows
                return search(self.memory, self.inverse_norms, unit(queries.to(self.memory.dtype)), k)
            scores = torch.bmm(unit(queries.to(self.memory.dtype)), self.memory.transpose(1, 2))
            scores = scores * self.inverse_norms.unsqueeze(1)  # [B, H, N]
            return scores.topk(k, dim=-1).indices

    def state(self) -> dict[str, torch.Tensor]:
        return {}


def initial_centroids(codebook: int, word_size: int) -> torch.Tensor:
    """Fixed random unit codebooks [S, W] for the initial memory (itself i.i.d. Gaussian)."""
    generator = torch.Generator().manual_seed(CENTROID_SEED)
    return unit(torch.randn(codebook, word_size, generator=generator, dtype=torch.float64)).float()


# (storage address, layout, version) of a returned memory tensor -> (that tensor, centroids key, indexes).
# Keyed on storage, not the Python object, so that state.detach() still finds its index; the
# entry holds the tensor so its storage cannot be freed and its address reused while cached.
_CACHE: dict[tuple, tuple] = {}
_CACHE_SIZE = 2


def clear_cache() -> None:
    """Drop every cached index (and the memory tensors the entries hold)."""
    _CACHE.clear()


def _tensor_key(tensor: torch.Tensor) -> tuple:
    return (
        tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
        tensor.stride(), tensor.dtype, tensor.device, tensor._version,
    )


class FaissIndex:
    """A faiss IVF index over the rows of every env, multi-index coarse cells; see the module doc.

    memory: the unroll's buffer [B, N, W] (changed in place by the caller);
    source: the state's memory tensor it was copied from (the cache key);
    centroids [B, S, W] and inserts [B] from the state; probes: cells searched.
    """

    def __init__(self, memory, source, centroids, inserts, probes: int):
        if faiss is None:
            raise ValueError("ann=faiss needs faiss: pip install faiss-cpu (or use ann=exact)")
        self.memory = memory
        self.batch, self.slots, self.width = memory.shape
        self.half = self.width // 2
        self.centroids = centroids.detach().to(device="cpu", dtype=torch.float32).clone()
        self.codebook = self.centroids.shape[1]
        self.cells = self.codebook**2
        self.probes = min(probes, self.cells)
        self.inserts = inserts.detach().to("cpu").long().clone()
        self.index = self._cached(source, centroids)
        if self.index is None:
            self.index = self._build()

    # -- the protocol ------------------------------------------------------------------------
    def update(self, rows: torch.Tensor) -> None:
        """Re-file rows [B, R] (repeats allowed) after a write changed them."""
        rows, _ = torch.sort(rows.detach().cpu(), dim=1)
        vectors = self._units(rows)  # [B, R, W]
        cells = self._cells(vectors, torch.arange(self.batch))  # [B, R]
        fresh = torch.ones_like(rows, dtype=torch.bool)
        fresh[:, 1:] = rows[:, 1:] != rows[:, :-1]  # each row once
        envs = torch.arange(self.batch).unsqueeze(1).expand_as(rows)[fresh]
        with _one_faiss_thread():
            self._file(envs, rows[fresh], cells[fresh], vectors[fresh], remove=True)
        self.inserts += fresh.sum(1)
        for env in torch.nonzero(self.inserts >= self.slots).flatten().tolist():
            self._recentre(env)

    def reset(self, envs: torch.Tensor) -> None:
        for env in torch.nonzero(envs.cpu()).flatten().tolist():
            self.centroids[env] = initial_centroids(self.codebook, self.width)
            self.inserts[env] = 0
            self._refile(env, remove=True)

    def search(self, queries: torch.Tensor, k: int) -> torch.Tensor:
        """queries [B, H, W] -> rows [B, H, K]: the K best rows among the probed cells."""
        heads = queries.shape[1]
        units = unit(queries.detach().to("cpu", torch.float64))
        scores, cells = self._probe(units)  # [B, H, P]
        lists = cells + (torch.arange(self.batch) * self.cells).view(-1, 1, 1)
        x = np.ascontiguousarray(units.float().reshape(-1, self.width).numpy())
        with _one_faiss_thread():
            self.index.nprobe = lists.shape[-1]
            _, ids = self.index.search_preassigned(
                x, k, np.ascontiguousarray(lists.reshape(len(x), -1).numpy()),
                np.ascontiguousarray(scores.float().reshape(len(x), -1).numpy()),
            )
            missing = np.nonzero((ids < 0).any(1))[0]
            if len(missing):  # the probed cells held fewer than K rows: search all of that env's cells
                self.index.nprobe = self.cells
                for query in missing.tolist():
                    every = np.arange(self.cells, dtype=np.int64)[None] + (query // heads) * self.cells
                    _, ids[query] = self.index.search_preassigned(
                        x[query : query + 1], k, every, np.zeros((1, self.cells), dtype=np.float32)
                    )
        ids = torch.from_numpy(ids).view(self.batch, heads, k)
        rows = ids - (torch.arange(self.batch) * self.slots).view(-1, 1, 1)
        return rows.to(queries.device)

    def state(self) -> dict[str, torch.Tensor]:
        return {"ann_centroids": self.centroids, "ann_inserts": self.inserts}

    def remember(self, memory_out: torch.Tensor, centroids_out: torch.Tensor) -> None:
        """Keep the index for the next call that starts from ``memory_out`` (or a detached alias)."""
        while len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        # Detached aliases keep the storages (so the keys stay unique) but not the unroll's graph.
        entry = (memory_out.detach(), centroids_out.detach(), _tensor_key(centroids_out), self.index)
        _CACHE[_tensor_key(memory_out)] = entry

    # -- coarse cells ---------------------------------------------------------------------------
    def _units(self, rows: torch.Tensor, envs: torch.Tensor | None = None) -> torch.Tensor:
        """Unit rows (float64, CPU): rows [E, M] of envs ``envs`` [E] (default all) -> [E, M, W]."""
        envs = torch.arange(self.batch) if envs is None else envs
        memory = self.memory.detach()
        values = memory[envs.to(memory.device).unsqueeze(1), rows.to(memory.device)]
        return unit(values.double()).cpu()

    def _half_scores(self, vectors: torch.Tensor, envs: torch.Tensor):
        """Inner products of vectors [E, M, W] with the half-codebooks of envs [E] -> 2 x [E, M, S]."""
        books = self.centroids[envs].double()  # [E, S, W]
        first = torch.bmm(vectors[..., : self.half], books[..., : self.half].transpose(1, 2))
        second = torch.bmm(vectors[..., self.half :], books[..., self.half :].transpose(1, 2))
        return first, second

    def _cells(self, vectors: torch.Tensor, envs: torch.Tensor) -> torch.Tensor:
        """Cell of each unit row [E, M, W]: the best first half times S plus the best second -> [E, M]."""
        first, second = self._half_scores(vectors, envs)
        return first.argmax(-1) * self.codebook + second.argmax(-1)

    def _probe(self, units: torch.Tensor):
        """The P best cells of each query [B, H, W] by summed half scores -> (scores, cells) [B, H, P]."""
        first, second = self._half_scores(units, torch.arange(self.batch))  # [B, H, S]
        best = min(self.probes, self.codebook)
        top_first, cell_first = first.topk(best, -1)
        top_second, cell_second = second.topk(best, -1)
        pair_scores = (top_first.unsqueeze(-1) + top_second.unsqueeze(-2)).flatten(2)
        pair_cells = (cell_first.unsqueeze(-1) * self.codebook + cell_second.unsqueeze(-2)).flatten(2)
        scores, pick = pair_scores.topk(self.probes, -1)
        return scores, pair_cells.gather(-1, pick)

    # -- filing rows ------------------------------------------------------------------------------
    def _file(self, envs, rows, cells, vectors, remove: bool) -> None:
        """File rows [M] of envs [M] in cells [M] with unit contents vectors [M, W] (float64)."""
        ids = np.ascontiguousarray((envs * self.slots + rows).numpy())
        if remove:
            self.index.remove_ids(faiss.IDSelectorArray(ids))
        lists = np.ascontiguousarray((cells + envs * self.cells).numpy())
        x = np.ascontiguousarray(vectors.float().numpy())
        self.index.add_core(len(ids), faiss.swig_ptr(x), faiss.swig_ptr(ids), faiss.swig_ptr(lists))

    def _refile(self, env: int, remove: bool, same_as: int | None = None, filed=None):
        """File every row of ``env``; returns (cells, vectors) chunks so an identical env can reuse them."""
        chunk = 1 << 16  # the half scores are [chunk, S]
        filed = filed or []
        with _one_faiss_thread():
            for i, start in enumerate(range(0, self.slots, chunk)):
                rows = torch.arange(start, min(start + chunk, self.slots))
                if same_as is None:
                    vectors = self._units(rows.unsqueeze(0), torch.tensor([env]))
                    cells = self._cells(vectors, torch.tensor([env]))[0]
                    filed.append((cells, vectors[0]))
                cells, vectors = filed[i]
                self._file(torch.full_like(rows, env), rows, cells, vectors, remove)
        return filed

    def _recentre(self, env: int) -> None:
        """Every N inserts: the codebooks become the env's unit rows at S fixed random positions."""
        generator = torch.Generator().manual_seed(CENTROID_SEED)
        positions = torch.randperm(self.slots, generator=generator)[: self.codebook]
        self.centroids[env] = self._units(positions.unsqueeze(0), torch.tensor([env]))[0].float()
        self.inserts[env] = 0
        self._refile(env, remove=True)

    def _build(self):
        lists = self.batch * self.cells
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.width), self.width, lists, faiss.METRIC_INNER_PRODUCT)
        index.is_trained = True  # lists are chosen here (add_core / search_preassigned), never by faiss
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        self.index = index
        filed = None
        for env in range(self.batch):
            # Envs that start from the same memory and codebooks (a fresh batch) share one assignment.
            same = env > 0 and torch.equal(self.centroids[0], self.centroids[env]) and torch.equal(
                self.memory[0], self.memory[env]
            )
            if same:
                self._refile(env, remove=False, same_as=0, filed=filed)
            else:
                result = self._refile(env, remove=False)
                filed = result if env == 0 else filed
        return index

    def _cached(self, source: torch.Tensor, centroids: torch.Tensor):
        entry = _CACHE.pop(_tensor_key(source), None)  # popped: the index now follows this call
        if entry is None:
            return None
        _, _, centroids_key, index = entry
        if centroids_key != _tensor_key(centroids) or index.nlist != self.batch * self.cells:
            return None
        return index
