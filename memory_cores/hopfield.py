"""``hopfield``: a modern Hopfield layer used as an episodic memory.

Each step t reads, then writes (Ramsauer et al. 2020; Yang slides, "modern
Hopfield nets / transformer limit"):

    x̂_t = LayerNorm(x_t)  (``normalize``; as in Ramsauer et al.'s Hopfield layers)
    query ξ_t = W_q x̂_t,  key k_t = W_k x̂_t,  value v_t = W_v x̂_t
    read:  ξ ← Kᵀ softmax(β K ξ − ρ a)   (update_steps − 1 times, K = stored keys)
           r_t = Vᵀ softmax(β K ξ − ρ a)  (V = stored values, a = their ages)
    write: (k_t, v_t) into slot ``position`` of a ring buffer of N patterns
    out_t = [x_t, r_t]

Reading before writing makes r_t a recall of the *past* of the episode. Slots
never written in this episode are masked; an empty memory reads zero.

Chained reads (``hops`` > 1; MemN2N, Sukhbaatar et al. 2015, Sec. 2.2): hop k
has its own keys and values (W_k^(k), W_v^(k); all hops' patterns are stored)
and its own recency slope ρ_k; hop k+1 queries with ξ_{k+1} = ξ_k + r_k, and
r_t is the last hop's read. A question whose answer needs two facts ("where is
the football?": who had it last, then where they were) can find the first
fact with one hop and the second with the next, whose query now holds the first.
``age_embedding`` adds learned vectors per age to every hop's keys and values
(MemN2N's temporal encoding, T_A and T_C): scores β ξᵀ(k + T_A(a)), reads
Σ p (v + T_C(a)), so a read can carry *when* its pattern was written and the
next hop can prefer patterns of related ages (the last place before an event).

Why normalise: an RL encoder's output grows during training (norms ~100 were
seen on select_nonmatching_object), so unnormalised patterns make β kᵀξ huge,
the softmax one-hot and its gradient zero; the agent then stopped learning and
its policy collapsed. The layer norm keeps the patterns, and the read, at a
scale set by the weights alone.

Why a recency term: content alone cannot tell this trial's cue from the same
cue seen earlier in the episode (select_nonmatching_object repeats its trials
within one episode, with the same objects). The age a of a pattern (1 for the
previous step) times a learned slope ρ (``recency``; initialised to 0, so the
read starts as the plain Hopfield update) lets the read prefer the latest
match, like ALiBi's linear distance bias (Press et al. 2022).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tensordict import TensorDict
from torch import nn

from .associative import retrieval_weights, softmax_retrieve
from .base import MemoryCore
from .registry import register


@dataclass
class HopfieldConfig:
    memory_size: int = 128  # N: past steps kept per env (ring buffer of key/value patterns)
    key_size: int = 32  # W: size of queries and keys
    value_size: int = 32  # size of stored values, i.e. of the retrieval r_t
    update_steps: int = 1  # softmax updates per read (>= 1); the last one reads the values
    beta: float = 0.0  # inverse temperature β at initialisation; 0 means 1/sqrt(key_size)
    learn_beta: bool = True  # train log β with the other parameters
    normalize: bool = True  # layer-normalise the input before the query/key/value projections
    recency: bool = True  # learn a slope ρ that scores a pattern of age a by −ρ a (0 at initialisation)
    hops: int = 1  # chained reads (MemN2N): hop k+1's query is hop k's query plus its read; each hop its own keys/values
    age_embedding: bool = False  # learned vectors per age added to each hop's keys and values (MemN2N's temporal encoding)

    def __post_init__(self):
        for name in ("memory_size", "key_size", "value_size", "update_steps", "hops"):
            if getattr(self, name) < 1:
                raise ValueError(f"hopfield {name} must be >= 1, got {getattr(self, name)}; set {name}=1 or more")
        if self.hops > 1 and self.value_size != self.key_size:
            raise ValueError(f"hopfield hops={self.hops} adds each read to the query: value_size ({self.value_size}) "
                             f"must equal key_size ({self.key_size}); set value_size={self.key_size}")
        if (self.hops > 1 or self.age_embedding) and self.update_steps != 1:
            raise ValueError(f"hopfield update_steps={self.update_steps} applies to a single plain read only; "
                             "set update_steps=1 with hops > 1 or age_embedding=true")
        if self.beta < 0:
            raise ValueError(f"hopfield beta must be >= 0, got {self.beta}; use 0 for 1/sqrt(key_size)")


@register("hopfield", HopfieldConfig)
class HopfieldCore(MemoryCore):
    """State (batch-first, per env):

    - ``keys`` [B, N, hops W] and ``values`` [B, N, hops V]: the stored patterns (every hop's, side by side);
    - ``valid`` bool [B, N]: slot written in this episode;
    - ``position`` int64 [B]: the slot the next write goes to.

    ``forward`` computes a whole unroll at once (all reads as one masked
    attention over the stored patterns plus the unroll's own earlier writes);
    ``forward_per_step`` is its slow twin, a plain read-then-write loop, which
    ``forward`` also uses when T = 1.
    """

    test_config = {"memory_size": 4, "key_size": 5, "value_size": 3, "update_steps": 2}

    def __init__(self, input_size: int, config: HopfieldConfig):
        super().__init__(input_size)
        self.config = config
        self.output_size = input_size + config.value_size
        # No affine part: the projections that follow absorb it.
        self.normalize = nn.LayerNorm(input_size, elementwise_affine=False) if config.normalize else nn.Identity()
        self.query = nn.Linear(input_size, config.key_size)
        self.key = nn.Linear(input_size, config.hops * config.key_size)
        self.value = nn.Linear(input_size, config.hops * config.value_size)
        log_beta = torch.tensor(math.log(config.beta or 1 / math.sqrt(config.key_size)))
        if config.learn_beta:
            self.log_beta = nn.Parameter(log_beta)
        else:
            self.register_buffer("log_beta", log_beta)
        # One slope per hop; a scalar for a single hop (the shape its checkpoints have).
        slopes = () if config.hops == 1 else (config.hops,)
        self.recency = nn.Parameter(torch.zeros(slopes)) if config.recency else None
        if config.age_embedding:  # indexed by age 1..N (row 0: the age of no visible pattern); 0 at initialisation
            self.age_keys = nn.Parameter(torch.zeros(config.hops, config.memory_size + 1, config.key_size))
            self.age_values = nn.Parameter(torch.zeros(config.hops, config.memory_size + 1, config.value_size))
        else:
            self.age_keys = self.age_values = None

    def _age_bias(self, ages: torch.Tensor, hop: int = 0) -> torch.Tensor | None:
        if self.recency is None:
            return None
        slope = self.recency if self.recency.dim() == 0 else self.recency[hop]
        return -slope * ages.to(slope.dtype)

    def _read(self, query, keys, values, valid, ages):
        """r_t from queries [..., B, W] over patterns keys/values [B, M, hops * W] visible where valid
        [..., B, M], of ages [..., B, M] (both paths' shapes, as ``softmax_retrieve``)."""
        config, beta = self.config, self.log_beta.exp()
        if config.hops == 1 and not config.age_embedding:
            return softmax_retrieve(query, keys, values, valid, beta, config.update_steps, self._age_bias(ages))
        keys = keys.unflatten(-1, (config.hops, config.key_size))
        values = values.unflatten(-1, (config.hops, config.value_size))
        age_index = ages.clamp(0, config.memory_size)  # a pattern not visible may have any age; its weight is 0
        for hop in range(config.hops):
            if hop:
                query = query + read
            bias = self._age_bias(ages, hop)
            if self.age_keys is not None:  # β ξ·T_A(a), as part of β ξ·(k + T_A(a))
                age_scores = beta * (query @ self.age_keys[hop].T).gather(-1, age_index)
                bias = age_scores if bias is None else bias + age_scores
            weights = retrieval_weights(query, keys[:, :, hop], valid, beta, bias)
            read = torch.einsum("...bm,bmv->...bv", weights, values[:, :, hop])
            if self.age_values is not None:  # Σ p T_C(a): the weights summed per age, times the table
                per_age = torch.zeros(*weights.shape[:-1], config.memory_size + 1, dtype=weights.dtype, device=weights.device)
                read = read + per_age.scatter_add_(-1, age_index, weights) @ self.age_values[hop]
        return read

    def initial_state(self, batch_size, device=None):
        config = self.config
        slots = config.memory_size
        return TensorDict(
            {
                "keys": torch.zeros(batch_size, slots, config.hops * config.key_size, device=device),
                "values": torch.zeros(batch_size, slots, config.hops * config.value_size, device=device),
                "valid": torch.zeros(batch_size, slots, dtype=torch.bool, device=device),
                "position": torch.zeros(batch_size, dtype=torch.long, device=device),
            },
            batch_size=[batch_size],
            device=device,
        )

    # -- fast path: the whole unroll at once -----------------------------------------------------

    def forward(self, x, state, reset):
        if x.shape[0] == 1:
            # One step (the actors' case): the plain loop is ~4x cheaper than building the masks.
            return self.forward_per_step(x, state, reset)
        T, B = x.shape[:2]
        slots = self.config.memory_size
        keys0, values0, valid0, position0 = self._unpack(state)
        patterns = self.normalize(x)
        queries, keys, values = self.query(patterns), self.key(patterns), self.value(patterns)  # [T, B, ·]
        steps = torch.arange(T, device=x.device)
        if reset is None:
            reset = torch.zeros(T, B, dtype=torch.bool, device=x.device)
        # episode_start[t, b]: the last step <= t that reset env b, or -1 (episode began before the unroll).
        episode_start = torch.where(reset, steps[:, None], -1).cummax(0).values
        fresh = episode_start < 0  # [T, B]: still in the episode the state came from

        # Stored slot j is overwritten by the unroll's write number (j − position0) mod N, which
        # happens after the read of that step; it is gone for good once the env resets.
        overwritten_at = (torch.arange(slots, device=x.device) - position0[:, None]) % slots  # [B, N]
        old_visible = valid0 & fresh[:, :, None] & (steps[:, None, None] <= overwritten_at)  # [T, B, N]
        # The unroll's own write at step s is visible to the read at step t when s < t <= s + N
        # and no reset happened in (s, t].
        age = steps[:, None] - steps[None, :]  # [t, s]
        same_episode = episode_start[:, None, :] <= steps[None, :, None]  # [t, s, B]
        new_visible = ((age >= 1) & (age <= slots))[:, :, None] & same_episode  # [t, s, B]
        visible = torch.cat([old_visible, new_visible.permute(0, 2, 1)], dim=-1)  # [T, B, N + T]

        # Ages at the read of step t: a stored slot j was written (position0 − 1 − j) mod N + 1 steps
        # before the unroll (while visible it has not been overwritten, so no wrap-around), a write
        # of the unroll at step s, t − s steps before.
        stored_age = (position0[:, None] - 1 - torch.arange(slots, device=x.device)) % slots + 1  # [B, N]
        ages = torch.cat([steps[:, None, None] + stored_age, age[:, None, :].expand(T, B, T)], dim=-1)  # [T, B, N + T]

        pattern_keys = torch.cat([keys0, keys.transpose(0, 1)], dim=1)  # [B, N + T, W]
        pattern_values = torch.cat([values0, values.transpose(0, 1)], dim=1)
        read = self._read(queries, pattern_keys, pattern_values, visible, ages)
        out = torch.cat([x, read], dim=-1)
        return out, self._final_state(state, keys, values, reset, episode_start[-1]), {}

    def _final_state(self, state, keys, values, reset, last_start):
        """The ring buffer after the unroll's writes; last_start [B] is the last reset step or -1."""
        T, B = keys.shape[:2]
        slots = self.config.memory_size
        keys0, values0, valid0, position0 = self._unpack(state)
        initial = self.initial_state(B, keys.device)
        # Writes before the last reset are wiped; the surviving ones fill slots from the
        # state's position (no reset) or from slot 0 (after a reset).
        reset_seen = last_start >= 0
        first = last_start.clamp(min=0)
        base_position = torch.where(reset_seen, 0, position0)
        steps = torch.arange(T, device=keys.device)[:, None]
        slot = (base_position + steps - first) % slots  # [T, B]
        alive = steps >= first  # [T, B]
        writes = alive[:, :, None] & (slot[:, :, None] == torch.arange(slots, device=keys.device))  # [T, B, N]
        last_write = torch.where(writes, steps[:, :, None], -1).amax(0)  # [B, N], -1 when unwritten
        written = last_write >= 0
        index = last_write.clamp(min=0)

        def fill(new, old, blank):
            latest = new.transpose(0, 1).gather(1, index[:, :, None].expand(-1, -1, new.shape[-1]))
            base = torch.where(reset_seen[:, None, None], blank.to(old.dtype), old)
            return torch.where(written[:, :, None], latest, base)

        return TensorDict(
            {
                "keys": fill(keys, keys0, initial["keys"]),
                "values": fill(values, values0, initial["values"]),
                "valid": written | (valid0 & ~reset_seen[:, None]),
                "position": (base_position + T - first) % slots,
            },
            batch_size=[B],
            device=keys.device,
        )

    # -- slow twin: read then write, one step at a time ------------------------------------------

    def forward_per_step(self, x, state, reset):
        """Reference loop: per step, a masked softmax read of the buffer, then one ring-buffer write."""
        keys0, values0, valid0, position0 = self._unpack(state)
        state = TensorDict(
            {"keys": keys0, "values": values0, "valid": valid0, "position": position0},
            batch_size=state.batch_size,
            device=x.device,
        )
        slots = torch.arange(self.config.memory_size, device=x.device)

        def step(x_t, s):
            pattern = self.normalize(x_t)
            ages = (s["position"][:, None] - 1 - slots) % self.config.memory_size + 1  # [B, N]; 1 = last step
            read = self._read(self.query(pattern), s["keys"], s["values"], s["valid"], ages)
            target = (slots == s["position"][:, None])[:, :, None]  # [B, N, 1]
            new = TensorDict(
                {
                    "keys": torch.where(target, self.key(pattern)[:, None], s["keys"]),
                    "values": torch.where(target, self.value(pattern)[:, None], s["values"]),
                    "valid": s["valid"] | target[:, :, 0],
                    "position": (s["position"] + 1) % self.config.memory_size,
                },
                batch_size=s.batch_size,
                device=x_t.device,
            )
            return torch.cat([x_t, read], dim=-1), new, {}

        return self.unroll_steps(step, x, state, reset)

    @staticmethod
    def _unpack(state):
        # Generic casts (e.g. TensorDict.double()) turn the mask and the position into floats.
        return state["keys"], state["values"], state["valid"].bool(), state["position"].long()
