"""``dnc``: the Differentiable Neural Computer (Graves et al. 2016; thesis Sec. 3.5), dense.

An LSTM controller reads [x_t, r_{t-1}] and emits the interface ξ_t: R read
keys and strengths, a write key and strength, an erase vector e, a write
vector v, R free gates, an allocation gate g^a, a write gate g^w and R read
modes π (backward, content, forward). One step:

1. usage u_t from the previous write and the freed reads; allocation a_t
   from sorted usage (``temporal_linkage``);
2. write weights w^w = g^w (g^a a_t + (1 - g^a) C(M_{t-1}, k^w, β^w)),
   with C the softmax of β · cosine over the N rows;
3. M_t = M_{t-1} ⊙ (1 - w^w e^T) + w^w v^T;
4. links L_t and precedence p_t; forward and backward weights from w^r_{t-1};
5. read weights w^r = π_b b + π_c C(M_t, k^r, β^r) + π_f f; r = M_t^T w^r;
6. y_t = Linear([h_t, r_t]).

Links are N x N per env: O(N^2) time and space per step, the reference the
sparse ``sdnc`` approximates. State: ``memory`` [B, N, W], ``usage`` [B, N],
``links`` [B, N, N], ``precedence`` [B, N], ``write_weights`` [B, N],
``read_weights`` [B, R, N], ``read_words`` [B, R, W], ``h``, ``c`` [B, C].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from tensordict import TensorDict
from torch import nn

from .addressing import cosine_similarity, initial_memory, oneplus
from .base import MemoryCore
from .registry import register
from .temporal_linkage import (
    allocation_weights,
    directional_weights,
    update_links,
    update_precedence,
    update_usage,
)


@dataclass
class DNCConfig:
    slots: int = 64  # N: rows of memory
    word_size: int = 32  # W: width of a memory row
    read_heads: int = 4  # R: read heads (one write head)
    controller_size: int = 128  # units of the LSTM controller
    output_size: int = 128  # size of y_t = Linear([h_t, r_t])
    memory_init_scale: float = 1e-4  # std of the fixed random initial memory (the same as sam's)


class DNCInterface(NamedTuple):
    """ξ_t split into its named parts."""

    read_keys: torch.Tensor  # k^r [B, R, W]
    read_strengths: torch.Tensor  # β^r [B, R] >= 1
    write_key: torch.Tensor  # k^w [B, 1, W]
    write_strength: torch.Tensor  # β^w [B, 1] >= 1
    erase: torch.Tensor  # e [B, W] in (0, 1)
    write_vector: torch.Tensor  # v [B, W]
    free_gates: torch.Tensor  # f [B, R] in (0, 1)
    allocation_gate: torch.Tensor  # g^a [B, 1] in (0, 1)
    write_gate: torch.Tensor  # g^w [B, 1] in (0, 1)
    read_modes: torch.Tensor  # π [B, R, 3] (backward, content, forward), rows sum to 1


def content_weights(memory: torch.Tensor, keys: torch.Tensor, strengths: torch.Tensor) -> torch.Tensor:
    """C(M, k, β) = softmax_i(β cos(k, M(i))): memory [B, N, W], keys [B, H, W], strengths [B, H] -> [B, H, N]."""
    return torch.softmax(strengths.unsqueeze(-1) * cosine_similarity(keys, memory), -1)


@register("dnc", DNCConfig)
class DNCCore(MemoryCore):
    """Differentiable Neural Computer; see the module docstring."""

    test_config = {"slots": 8, "word_size": 4, "read_heads": 2, "controller_size": 8, "output_size": 6}

    def __init__(self, input_size: int, config: DNCConfig):
        super().__init__(input_size)
        for name in ("slots", "word_size", "read_heads", "controller_size", "output_size"):
            value = getattr(config, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}; set e.g. {name}=16")
        if config.memory_init_scale <= 0:
            raise ValueError(f"memory_init_scale must be > 0, got {config.memory_init_scale}; use e.g. 1e-4")
        self.config = config
        self.output_size = config.output_size
        reads, width = config.read_heads, config.word_size
        self.lstm = nn.LSTMCell(input_size + reads * width, config.controller_size)
        self._sizes = [reads * width, reads, width, 1, width, width, reads, 1, 1, reads * 3]
        self.interface = nn.Linear(config.controller_size, sum(self._sizes))
        self.output = nn.Linear(config.controller_size + reads * width, config.output_size)

    def initial_state(self, batch_size, device=None):
        cfg = self.config
        memory = initial_memory(cfg.slots, cfg.word_size, cfg.memory_init_scale, device=device)
        fields = {"memory": memory.expand(batch_size, -1, -1).clone(), **self._fresh(batch_size, device, torch.float32)}
        return TensorDict(fields, batch_size=[batch_size], device=device)

    def _fresh(self, batch_size, device, dtype) -> dict[str, torch.Tensor]:
        cfg = self.config
        n, reads = cfg.slots, cfg.read_heads

        def zeros(*shape):
            return torch.zeros(batch_size, *shape, dtype=dtype, device=device)

        return {
            "usage": zeros(n),
            "links": zeros(n, n),
            "precedence": zeros(n),
            "write_weights": zeros(n),
            "read_weights": zeros(reads, n),
            "read_words": zeros(reads, cfg.word_size),
            "h": zeros(cfg.controller_size),
            "c": zeros(cfg.controller_size),
        }

    def forward(self, x, state, reset):
        cfg = self.config
        T, B = x.shape[:2]
        fields = {key: value.to(x.dtype) for key, value in state.items()}
        resets = reset.cpu() if reset is not None else None  # one transfer, not one sync per step
        outs = []
        for t in range(T):
            if resets is not None and resets[t].any():
                fields = self._reset(reset[t], fields, x)
            out, fields = self._step(x[t], fields)
            outs.append(out)
        return torch.stack(outs), TensorDict(fields, batch_size=[B], device=x.device), {}

    def _interface(self, h) -> DNCInterface:
        reads, width = self.config.read_heads, self.config.word_size
        parts = self.interface(h).split(self._sizes, -1)
        read_keys, read_strengths, write_key, write_strength, erase, vector, free, alloc, gate, modes = parts
        return DNCInterface(
            read_keys=read_keys.view(-1, reads, width),
            read_strengths=oneplus(read_strengths),
            write_key=write_key.unsqueeze(1),
            write_strength=oneplus(write_strength),
            erase=torch.sigmoid(erase),
            write_vector=vector,
            free_gates=torch.sigmoid(free),
            allocation_gate=torch.sigmoid(alloc),
            write_gate=torch.sigmoid(gate),
            read_modes=torch.softmax(modes.view(-1, reads, 3), -1),
        )

    def _step(self, x_t, fields):
        h, c = self.lstm(torch.cat([x_t, fields["read_words"].flatten(1)], -1), (fields["h"], fields["c"]))
        p = self._interface(h)
        memory = fields["memory"]
        # Allocation from usage, then the write weights.
        usage = update_usage(fields["usage"], fields["write_weights"], p.free_gates, fields["read_weights"])
        allocation = allocation_weights(usage)
        write_content = content_weights(memory, p.write_key, p.write_strength)[:, 0]
        write_weights = p.write_gate * (p.allocation_gate * allocation + (1 - p.allocation_gate) * write_content)
        # Erase then add.
        memory = memory * (1 - write_weights.unsqueeze(-1) * p.erase.unsqueeze(1))
        memory = memory + write_weights.unsqueeze(-1) * p.write_vector.unsqueeze(1)
        # Temporal links (with p_{t-1}), then precedence.
        links = update_links(fields["links"], fields["precedence"], write_weights)
        precedence = update_precedence(fields["precedence"], write_weights)
        forward, backward = directional_weights(links, fields["read_weights"])
        # Read: a mix of backward, content and forward weights per head.
        content = content_weights(memory, p.read_keys, p.read_strengths)
        modes = p.read_modes
        read_weights = modes[..., 0:1] * backward + modes[..., 1:2] * content + modes[..., 2:3] * forward
        read_words = read_weights @ memory
        fields = {
            "memory": memory,
            "usage": usage,
            "links": links,
            "precedence": precedence,
            "write_weights": write_weights,
            "read_weights": read_weights,
            "read_words": read_words,
            "h": h,
            "c": c,
        }
        return self.output(torch.cat([h, read_words.flatten(1)], -1)), fields

    def _reset(self, envs, fields, x):
        cfg = self.config
        fresh = self._fresh(envs.shape[0], x.device, x.dtype)
        fresh["memory"] = initial_memory(cfg.slots, cfg.word_size, cfg.memory_init_scale, x.dtype, x.device)
        return {
            key: torch.where(envs.view(-1, *([1] * (value.dim() - 1))), fresh[key], value)
            for key, value in fields.items()
        }
