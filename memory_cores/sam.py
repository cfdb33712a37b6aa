"""``sam``: Sparse Access Memory (J. Rae, thesis Ch. 3.2-3.3; Rae et al. 2016).

An LSTM controller reads and writes an external memory M [B, N, W] through K
rows per head only:

- read (eq. 3.1): head h takes the K rows of highest cosine similarity to its
  query q_h (exact search, or a faiss index), weights them by a softmax of
  β_h · cos renormalised over the K, and reads r_h = Σ_k a^R_h(s_k) M(s_k);
- write (eq. 3.2-3.3): a^W = α(γ a^R_{t-1} + (1-γ) I^U) adds α γ w to the
  rows read at the previous step and α(1-γ) w to the least recently used row,
  which is erased first;
- usage (U^(2)): the step of each row's last access with a^W(i) + Σ_h
  a^R_h(i) > δ; I^U is the row accessed longest ago (never-used rows first).

Per step the work is O(H K W) plus the search and O(sqrt N) for the LRU row,
and backpropagation keeps O(H K W) per step (``sparse_access``), never a copy
of the memory. The step order: controller, write, read, usage, output.

One call opens a ``SAMUnroll`` from the state (what the call changes in
place: the memory, its index and the LRU index) and steps the small per-step
fields (``step_fields``) as tensors. A step is ``_write`` (a^W), ``_read``
(a^R and r) and ``_update_usage``; the SDNC replaces only ``_read`` (its read
goes through the links), and extends ``_fresh`` (its per-step fields) and
``_open`` (its unroll, ``SDNCUnroll``, adds the links).

State (batch-first, fixed shapes): ``memory`` [B, N, W]; ``last_access``
[B, N] (step of the last access, -1 = never); ``step`` [B] (steps since the
episode began); ``read_rows`` [B, H, K] and ``read_weights`` [B, H, K]
(a^R_{t-1}); ``read_words`` [B, H, W] (r_{t-1}); ``h``, ``c`` [B, C]; with
``ann=faiss`` also ``ann_centroids`` [B, S, W] (the index's codebooks) and
``ann_inserts`` [B].
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from tensordict import TensorDict

from . import ann_index
from .addressing import LeastRecentlyUsed, accessed_rows, cosine_similarity, initial_memory
from .base import MemoryCore
from .memory_controller import Interface, MemoryController, sparse_write_weights
from .registry import register
from .sparse_access import SparseMemory

ANN_KINDS = ("exact", "faiss")
INPUT_PROJECTIONS = ("unroll", "step")


@dataclass
class SAMConfig:
    slots: int = 128  # N: rows of memory (independent of the unroll length)
    word_size: int = 32  # W: width of a memory row
    heads: int = 2  # H: read heads (one write per step, to their previously read rows and the LRU row)
    top_k: int = 4  # K: rows each head reads per step
    controller_size: int = 128  # units of the LSTM controller
    output_size: int = 128  # size of y_t = Linear([h_t, r_t])
    usage_threshold: float = 0.005  # δ: an access counts for usage when its weight exceeds this
    memory_init_scale: float = 1e-4  # std of the fixed random initial memory (near-empty, tie-free)
    ann: str = "exact"  # top-K search: "exact" (batched similarity + topk) or "faiss" (IVF index per env)
    ann_lists: int = 0  # faiss: IVF cells L (rounded to a square S^2 of the multi-index); 0 picks about N/64
    ann_probes: int = 8  # faiss: cells searched per query (ann_probes >= L gives exact search)
    in_place_state: bool = False  # update the input state's memory in place (no O(N) copy per call; never reuse that state)
    input_projection: str = "unroll"  # the controller's input term W_x x_t + b: "unroll" (one matmul for all T steps before the loop; x gets no gradient unless it needs one) or "step" (nn.LSTMCell on [x_t, r_{t-1}] per step: the slow twin)


def check_memory_config(config) -> None:
    """One-line ValueErrors for the fields SAM and DAM share."""
    for name in ("slots", "word_size", "heads", "controller_size", "output_size"):
        value = getattr(config, name)
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}; set e.g. {name}=32")
    if not 0 <= config.usage_threshold < 1:
        raise ValueError(f"usage_threshold must be in [0, 1), got {config.usage_threshold}; the thesis uses 0.005")
    if config.memory_init_scale <= 0:
        raise ValueError(f"memory_init_scale must be > 0, got {config.memory_init_scale}; use e.g. 1e-4")


@dataclass
class SAMUnroll:
    """What one forward call changes in place: opened from the state, closed into the next state by ``final``."""

    memory: SparseMemory  # M [B, N, W] and its autograd tape
    index: ann_index.ExactIndex | ann_index.FaissIndex  # the top-K search over M's rows
    usage: LeastRecentlyUsed  # the last-access steps [B, N] and the least recently used row I^U

    def reset(self, envs: torch.Tensor, initial: torch.Tensor) -> None:
        """New episodes for envs ``envs`` (bool [B]): memory to ``initial`` [N, W], every row never used."""
        self.memory.reset(envs, initial)
        self.index.reset(envs)
        self.usage.reset(envs, torch.full((initial.shape[0],), -1, dtype=torch.long, device=initial.device))

    def final(self) -> dict[str, torch.Tensor]:
        """The state's memory-sized fields after the call: memory, last_access and the index's fields."""
        return {"memory": self.memory.final(), "last_access": self.usage.last_access(), **self.index.state()}


def weighted_words(weights: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """r_h = Σ_k a_h(s_k) M(s_k): weights [B, H, K], words M(s_k) [B, H, K, W] -> [B, H, W]."""
    return (weights.unsqueeze(-1) * words).sum(2)


@register("sam", SAMConfig)
class SAMCore(MemoryCore):
    """Sparse Access Memory; see the module docstring."""

    test_config = {"slots": 16, "word_size": 4, "heads": 2, "top_k": 3, "controller_size": 8, "output_size": 8}
    read_modes = False  # the controller also gives read modes π_t (the SDNC)
    # The state's per-step fields, stepped as tensors (the memory-sized rest lives in the unroll); those
    # holding steps or row indices are taken as long (a state may arrive converted).
    step_fields = ("step", "read_rows", "read_weights", "read_words", "h", "c")
    index_fields = ("step", "read_rows")

    def __init__(self, input_size: int, config: SAMConfig):
        super().__init__(input_size)
        check_memory_config(config)
        if not isinstance(config.top_k, int) or not 0 < config.top_k <= config.slots:
            raise ValueError(f"top_k must be an int in [1, slots={config.slots}], got {config.top_k!r}")
        if config.ann not in ANN_KINDS:
            raise ValueError(f"ann must be one of {ANN_KINDS}, got {config.ann!r}")
        if config.input_projection not in INPUT_PROJECTIONS:
            raise ValueError(f"input_projection must be one of {INPUT_PROJECTIONS}, got {config.input_projection!r}")
        if not 0 <= config.ann_lists <= config.slots or config.ann_probes <= 0:
            raise ValueError(
                f"need 0 <= ann_lists <= slots and ann_probes > 0, got {config.ann_lists}, {config.ann_probes}"
            )
        self.config = config
        self.output_size = config.output_size
        self.codebook = ann_index.codebook_size(config.slots, config.ann_lists)
        self.controller = MemoryController(
            input_size, config.controller_size, config.heads, config.word_size, config.output_size,
            read_modes=self.read_modes,
        )

    # -- state --------------------------------------------------------------------------------
    def initial_state(self, batch_size, device=None):
        cfg = self.config
        memory = initial_memory(cfg.slots, cfg.word_size, cfg.memory_init_scale, device=device)
        fields = {
            "memory": memory.expand(batch_size, -1, -1).clone(),
            "last_access": torch.full((batch_size, cfg.slots), -1, dtype=torch.long, device=device),
            **self._fresh(batch_size, device, torch.float32),
        }
        if cfg.ann == "faiss":
            centroids = ann_index.initial_centroids(self.codebook, cfg.word_size).to(device)
            fields["ann_centroids"] = centroids.expand(batch_size, -1, -1).clone()
            fields["ann_inserts"] = torch.zeros(batch_size, dtype=torch.long, device=device)
        return TensorDict(fields, batch_size=[batch_size], device=device)

    def _fresh(self, batch_size, device, dtype) -> dict[str, torch.Tensor]:
        """A new episode's fields but the memory and last_access: the ``step_fields`` (read_rows point at rows
        0..K-1 with zero weight), and a subclass's own (the SDNC's empty links)."""
        cfg = self.config
        heads, k = cfg.heads, cfg.top_k
        return {
            "step": torch.zeros(batch_size, dtype=torch.long, device=device),
            "read_rows": torch.arange(k, device=device).expand(batch_size, heads, k).clone(),
            "read_weights": torch.zeros(batch_size, heads, k, dtype=dtype, device=device),
            "read_words": torch.zeros(batch_size, heads, cfg.word_size, dtype=dtype, device=device),
            "h": torch.zeros(batch_size, cfg.controller_size, dtype=dtype, device=device),
            "c": torch.zeros(batch_size, cfg.controller_size, dtype=dtype, device=device),
        }

    # -- the unroll ---------------------------------------------------------------------------
    def forward(self, x, state, reset):
        T, B = x.shape[:2]
        unroll = self._open(state, x)
        small = {key: state[key].long() if key in self.index_fields else state[key] for key in self.step_fields}
        resets = reset.cpu() if reset is not None else None  # one transfer, not one sync per step
        controller = self._controller(x)
        outs = []
        for t in range(T):
            if resets is not None and resets[t].any():
                small = self._reset(reset[t], small, unroll, x)
            out, small = self._step(functools.partial(controller, t), small, unroll)
            outs.append(out)
        new_state = TensorDict({**unroll.final(), **small}, batch_size=[B], device=x.device)
        if self.config.ann == "faiss":
            unroll.index.remember(new_state["memory"], new_state["ann_centroids"])
        return torch.stack(outs), new_state, {}

    def _controller(self, x):
        """The controller's step at each t: ``controller(t, read_words, h, c) -> h_t, c_t, p_t`` for x [T, B, I]."""
        if self.config.input_projection == "step":
            return lambda t, read_words, h, c: self.controller.step(x[t], read_words, h, c)
        # unbind, not gates[t]: its backward stacks the T gradients once (indexing's writes each into a zeroed [T, B, 4C])
        gates, weight = self.controller.input_gates(x).unbind(0), self.controller.recurrent_weight(x.shape[-1])
        return lambda t, read_words, h, c: self.controller.step_from_gates(gates[t], weight, read_words, h, c)

    def _open(self, state, x) -> SAMUnroll:
        """The unroll of one call over the state's memory (in x's dtype)."""
        cfg = self.config
        memory = SparseMemory(state["memory"].to(x.dtype), torch.is_grad_enabled(), in_place=cfg.in_place_state)
        touches = 2 * cfg.heads * cfg.top_k + 1  # rows written and read per step
        return SAMUnroll(
            memory=memory,
            index=self._index(state, memory),
            usage=LeastRecentlyUsed(state["last_access"], touches, in_place=cfg.in_place_state),
        )

    def _index(self, state, memory: SparseMemory):
        if self.config.ann == "exact":
            return ann_index.ExactIndex(memory.memory)
        return ann_index.FaissIndex(
            memory.memory, state["memory"], state["ann_centroids"], state["ann_inserts"], self.config.ann_probes
        )

    def _reset(self, envs, small, unroll: SAMUnroll, x):
        """Start a new episode for envs ``envs`` [B] before this step (selection by torch.where)."""
        cfg = self.config
        unroll.reset(envs, initial_memory(cfg.slots, cfg.word_size, cfg.memory_init_scale, x.dtype, x.device))
        fresh = self._fresh(envs.shape[0], x.device, x.dtype)
        return {
            key: torch.where(envs.view(-1, *([1] * (value.dim() - 1))), fresh[key], value)
            for key, value in small.items()
        }

    # -- one step: controller, write, read, usage, output ---------------------------------------
    def _step(self, controller, small, unroll: SAMUnroll):
        """controller(read_words, h, c) -> (h_t, c_t, p_t) (``_controller`` at t), the per-step fields at t-1
        -> y_t [B, O], the per-step fields at t."""
        h, c, p = controller(small["read_words"], small["h"], small["c"])
        write_rows, write_weights = self._write(p, small, unroll)
        read = self._read(p, small, unroll, write_rows, write_weights)
        self._update_usage(unroll, small["step"], (write_rows, write_weights), (read["read_rows"], read["read_weights"]))
        small = {**small, **read, "step": small["step"] + 1, "h": h, "c": c}
        return self.controller.readout(h, read["read_words"]), small

    def _write(self, p: Interface, small, unroll: SAMUnroll):
        """M_t: w_t written with a^W (eq. 3.2-3.3) to the rows read at t-1 and the least recently used row
        I^U_t (erased first). Returns the write's rows and weights a^W [B, H K + 1] (I^U_t last)."""
        least_used = unroll.usage.least_recent().unsqueeze(1)  # I^U_t [B, 1]
        write_rows = torch.cat([small["read_rows"].flatten(1), least_used], 1)
        write_weights = sparse_write_weights(p, small["read_weights"])
        unroll.memory.write(write_rows, write_weights, p.write_word, erase_rows=least_used)
        unroll.index.update(write_rows)
        return write_rows, write_weights

    def _read(self, p: Interface, small, unroll: SAMUnroll, write_rows, write_weights) -> dict[str, torch.Tensor]:
        """a^R_t and r_t (eq. 3.1): the content weights. Returns the read's per-step fields: read_rows,
        read_weights [B, H, K] and read_words [B, H, W] (a subclass may add its own, e.g. the SDNC's p_t)."""
        rows, weights, words = self._content_weights(p, unroll)
        return {"read_rows": rows, "read_weights": weights, "read_words": weighted_words(weights, words)}

    def _content_weights(self, p: Interface, unroll: SAMUnroll):
        """Per head the top-K rows by cosine similarity to q_h and a softmax of β_h · cos renormalised over
        them. Returns rows [B, H, K] (long, no gradient), weights [B, H, K] and the rows' words [B, H, K, W]."""
        cfg = self.config
        rows = unroll.index.search(p.queries, cfg.top_k)
        words = unroll.memory.gather(rows.flatten(1)).view(*rows.shape, cfg.word_size)
        weights = torch.softmax(p.sharpness.unsqueeze(-1) * cosine_similarity(p.queries, words), -1)
        return rows, weights, words

    def _update_usage(self, unroll: SAMUnroll, step, write, read) -> None:
        """U^(2): rows accessed by more than δ this step (write (rows, a^W) [B, S], read (rows, a^R) [B, H, K])
        get last_access = step [B]."""
        rows = torch.cat([write[0], read[0].flatten(1)], 1)
        weights = torch.cat([write[1], read[1].flatten(1)], 1).detach()
        unroll.usage.touch(rows, accessed_rows(rows, weights, self.config.usage_threshold), step)
