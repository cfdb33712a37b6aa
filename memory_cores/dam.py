"""``dam``: Dense Access Memory, the dense twin of SAM (thesis Sec. 3.2.3).

The same controller, interface and write rule as ``sam``, computed over all
N rows with ordinary autograd (so backpropagation keeps a copy of the memory
per step: the NTM-like cost SAM removes):

- read: a^R_h = softmax over N of β_h cos(q_h, M(i)); r_h = Σ_i a^R_h(i) M(i);
- write: a^W = α(γ a^R_{t-1} + (1-γ) I^U); the I^U row is erased (selected
  to zero), then M += a^W w^T;
- usage, ``usage=discounted`` (the thesis' DAM): U_t = λ U_{t-1} + a^W_t +
  Σ_h a^R_h, I^U = argmin U;
  ``usage=recency`` (SAM's): last access with a^W(i) + Σ_h a^R_h(i) > δ,
  I^U = the row accessed longest ago.

``read_top_k=K`` keeps only the K highest scores of each head before the
softmax (the others get weight 0). With ``read_top_k=K`` and
``usage=recency`` DAM computes exactly SAM's function densely: it is the
reference SAM's sparse forward and backward are tested against.

State: ``memory`` [B, N, W]; ``usage`` [B, N] (discounted) or
``last_access`` [B, N] (recency); ``step`` [B]; ``read_weights`` [B, H, N];
``read_words`` [B, H, W]; ``h``, ``c`` [B, C].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tensordict import TensorDict

from .addressing import cosine_similarity, initial_memory
from .base import MemoryCore
from .memory_controller import MemoryController, dense_write_weights
from .registry import register
from .sam import check_memory_config

USAGE_KINDS = ("discounted", "recency")


@dataclass
class DAMConfig:
    slots: int = 128  # N: rows of memory
    word_size: int = 32  # W: width of a memory row
    heads: int = 2  # H: read heads (one write per step, as in sam)
    controller_size: int = 128  # units of the LSTM controller
    output_size: int = 128  # size of y_t = Linear([h_t, r_t])
    usage: str = "discounted"  # "discounted" (λ-discounted access sum, the thesis' DAM) or "recency" (SAM's)
    usage_decay: float = 0.99  # λ of the discounted usage
    usage_threshold: float = 0.005  # δ of the recency usage
    read_top_k: int = 0  # 0: dense softmax over all N; K > 0: keep each head's top K (SAM's reads, densely)
    memory_init_scale: float = 1e-4  # std of the fixed random initial memory (the same as sam's)


@register("dam", DAMConfig)
class DAMCore(MemoryCore):
    """Dense Access Memory; see the module docstring."""

    test_config = {"slots": 16, "word_size": 4, "heads": 2, "controller_size": 8, "output_size": 8}

    def __init__(self, input_size: int, config: DAMConfig):
        super().__init__(input_size)
        check_memory_config(config)
        if config.usage not in USAGE_KINDS:
            raise ValueError(f"usage must be one of {USAGE_KINDS}, got {config.usage!r}")
        if not 0 <= config.usage_decay <= 1:
            raise ValueError(f"usage_decay must be in [0, 1], got {config.usage_decay}; the usual value is 0.99")
        if not isinstance(config.read_top_k, int) or not 0 <= config.read_top_k <= config.slots:
            raise ValueError(f"read_top_k must be 0 (dense) or an int in [1, slots={config.slots}], got {config.read_top_k!r}")
        self.config = config
        self.output_size = config.output_size
        self.controller = MemoryController(
            input_size, config.controller_size, config.heads, config.word_size, config.output_size
        )

    @property
    def _usage_key(self) -> str:
        return "usage" if self.config.usage == "discounted" else "last_access"

    def initial_state(self, batch_size, device=None):
        cfg = self.config
        memory = initial_memory(cfg.slots, cfg.word_size, cfg.memory_init_scale, device=device)
        fields = {"memory": memory.expand(batch_size, -1, -1).clone(), **self._fresh(batch_size, device, torch.float32)}
        return TensorDict(fields, batch_size=[batch_size], device=device)

    def _fresh(self, batch_size, device, dtype) -> dict[str, torch.Tensor]:
        cfg = self.config
        if cfg.usage == "discounted":
            usage = torch.zeros(batch_size, cfg.slots, dtype=dtype, device=device)
        else:
            usage = torch.full((batch_size, cfg.slots), -1, dtype=torch.long, device=device)
        return {
            self._usage_key: usage,
            "step": torch.zeros(batch_size, dtype=torch.long, device=device),
            "read_weights": torch.zeros(batch_size, cfg.heads, cfg.slots, dtype=dtype, device=device),
            "read_words": torch.zeros(batch_size, cfg.heads, cfg.word_size, dtype=dtype, device=device),
            "h": torch.zeros(batch_size, cfg.controller_size, dtype=dtype, device=device),
            "c": torch.zeros(batch_size, cfg.controller_size, dtype=dtype, device=device),
        }

    def forward(self, x, state, reset):
        cfg = self.config
        T, B = x.shape[:2]
        fields = dict(state.items())
        fields["memory"] = fields["memory"].to(x.dtype)
        fields["step"] = fields["step"].long()
        if cfg.usage == "recency":
            fields["last_access"] = fields["last_access"].long()
        resets = reset.cpu() if reset is not None else None
        outs = []
        for t in range(T):
            if resets is not None and resets[t].any():
                fields = self._reset(reset[t], fields, x)
            out, fields = self._step(x[t], fields)
            outs.append(out)
        return torch.stack(outs), TensorDict(fields, batch_size=[B], device=x.device), {}

    def _step(self, x_t, fields):
        cfg = self.config
        memory = fields["memory"]
        h, c, p = self.controller.step(x_t, fields["read_words"], fields["h"], fields["c"])
        # Write: erase the least used row (selection, not 1 - one-hot), then add a^W w^T.
        usage = fields[self._usage_key]
        least_used = F.one_hot(usage.argmin(-1), cfg.slots).bool()  # I^U_t [B, N]
        write_weights = dense_write_weights(p, fields["read_weights"], least_used.to(memory.dtype))
        memory = torch.where(least_used.unsqueeze(-1), 0.0, memory)
        memory = memory + write_weights.unsqueeze(-1) * p.write_word.unsqueeze(1)
        # Read: softmax of β·cos over all rows (or over each head's top K).
        scores = cosine_similarity(p.queries, memory)  # [B, H, N]
        logits = p.sharpness.unsqueeze(-1) * scores
        if cfg.read_top_k:
            top = scores.detach().topk(cfg.read_top_k, dim=-1).indices
            keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, top, True)
            logits = logits.masked_fill(~keep, float("-inf"))
        read_weights = torch.softmax(logits, -1)
        read_words = read_weights @ memory  # [B, H, W]
        # Usage (no gradient: it only chooses the row to overwrite).
        access = (write_weights + read_weights.sum(1)).detach()
        if cfg.usage == "discounted":
            usage = cfg.usage_decay * usage + access
        else:
            usage = torch.where(access > cfg.usage_threshold, fields["step"].unsqueeze(1), usage)
        fields = {
            "memory": memory,
            self._usage_key: usage,
            "step": fields["step"] + 1,
            "read_weights": read_weights,
            "read_words": read_words,
            "h": h,
            "c": c,
        }
        return self.controller.readout(h, read_words), fields

    def _reset(self, envs, fields, x):
        cfg = self.config
        fresh = self._fresh(envs.shape[0], x.device, x.dtype)
        fresh["memory"] = initial_memory(cfg.slots, cfg.word_size, cfg.memory_init_scale, x.dtype, x.device)
        return {
            key: torch.where(envs.view(-1, *([1] * (value.dim() - 1))), fresh[key].to(value.dtype), value)
            for key, value in fields.items()
        }
