"""Multi-head attention with TransformerXL relative positions over a per-query window.

Dai et al. 2019 (TransformerXL), the score of query i for key j::

    score(i, j) = (q_i + u) · k_j  +  (q_i + v) · W_R r_{i-j}

``r_{i-j}`` is the sinusoid encoding of the distance i − j, ``u`` and ``v`` are
learned biases (one per head) and ``W_R`` projects the encodings. The scores are
scaled by 1/√(W/H) and softmaxed over the keys the query may see.

Here every query sees a *window* of P positions: position 0 is the oldest, P − 1
is the query itself (distance 0), so position w is at distance P − 1 − w. Keys
are passed as one set of S activations per env, and ``window`` [B, T, S] says at
which window position each key sits for each query (−1: the query does not see
that key). With a window the relative-position term is a [B, H, T, P] product
gathered into place, so no "relative shift" is needed.

Glossary: B batch, T queries, S keys, W word (d_model), H heads, P window positions.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoid_encoding(distances: torch.Tensor, width: int) -> torch.Tensor:
    """Sinusoid encodings of ``distances`` [P] -> [P, W] (sines then cosines, as in TransformerXL)."""
    half = (width + 1) // 2
    inverse_frequency = 1.0 / (10000 ** (torch.arange(half, dtype=torch.float64) * 2 / width))
    angles = distances.to(torch.float64)[:, None] * inverse_frequency[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)[:, :width].float()


class RelativeMultiHeadAttention(nn.Module):
    """H-head attention over a window of P positions with TransformerXL relative positions."""

    def __init__(self, width: int, n_heads: int, window_size: int):
        super().__init__()
        if width % n_heads:
            raise ValueError(f"width {width} must be divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.head_width = width // n_heads
        self.query = nn.Linear(width, width, bias=False)
        self.key = nn.Linear(width, width, bias=False)
        self.value = nn.Linear(width, width, bias=False)
        self.position = nn.Linear(width, width, bias=False)  # W_R
        self.output = nn.Linear(width, width)
        self.content_bias = nn.Parameter(torch.zeros(n_heads, self.head_width))  # u
        self.position_bias = nn.Parameter(torch.zeros(n_heads, self.head_width))  # v
        distances = torch.arange(window_size - 1, -1, -1)  # window position w is at distance P-1-w
        self.register_buffer("encodings", sinusoid_encoding(distances, width), persistent=False)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, S, W] -> [B, H, S, W/H]."""
        return x.unflatten(-1, (self.n_heads, self.head_width)).transpose(1, 2)

    def project_queries(self, h: torch.Tensor) -> torch.Tensor:
        """Queries of h [B, T, W] -> [B, H, T, W/H]."""
        return self.split_heads(self.query(h))

    def logits(self, queries: torch.Tensor, keys: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        """Scores [B, H, T, S] of queries [B, H, T, W/H] for keys [B, S, W]; -inf where ``window`` [B, T, S] < 0."""
        k = self.split_heads(self.key(keys))
        content = (queries + self.content_bias[:, None]) @ k.transpose(-1, -2)
        r = self.position(self.encodings.to(queries.dtype)).unflatten(-1, (self.n_heads, self.head_width))
        by_position = (queries + self.position_bias[:, None]) @ r.permute(1, 2, 0)  # [B, H, T, P]
        index = window.clamp(min=0)[:, None].expand(-1, self.n_heads, -1, -1)
        scores = (content + by_position.gather(-1, index)) / math.sqrt(self.head_width)
        return scores.masked_fill(window[:, None] < 0, float("-inf"))

    def read(self, probs: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Attention readout: probs [B, H, T, S] over keys [B, S, W] -> [B, T, W] (after the output projection)."""
        values = self.split_heads(self.value(keys))
        return self.output((probs @ values).transpose(1, 2).flatten(-2))

    def content_read(self, h: torch.Tensor, memory: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Content-only attention with stopped weights (thesis Alg. 6, lines 5-6).

        attn(h, m) = softmax((hQ)(mK)ᵀ)(mV), no relative positions, no output
        projection, and Q, K, V detached so that no gradient reaches them.
        h [B, T, W], memory [B, S, W], visible bool [B, T, S] -> [B, T, W].
        A row that sees nothing reads an average of its (invisible) keys: the
        caller leaves such rows out of its loss.
        """
        q = self.split_heads(F.linear(h, self.query.weight.detach()))
        k = self.split_heads(F.linear(memory, self.key.weight.detach()))
        v = self.split_heads(F.linear(memory, self.value.weight.detach()))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_width)
        scores = scores.masked_fill(~visible[:, None], torch.finfo(scores.dtype).min)
        return (scores.softmax(-1) @ v).transpose(1, 2).flatten(-2)
