"""Compression functions f_c of the Compressive Transformer (thesis 6.3.2).

Each maps a group of c consecutive memories to one compressed memory::

    f_c: groups [N, W, c] (oldest first), usage [N, c] or None -> [N, W]

- ``max_pool`` / ``mean_pool``: pooling with kernel and stride c.
- ``conv``: a 1D convolution with kernel and stride c (W -> W channels).
- ``dilated_conv``: a stack of kernel-2 convolutions with growing dilations
  (1, 2, 4, ..., the last cut so that the receptive field is exactly c), with
  ReLUs between them: the same receptive field as ``conv``, built hierarchically.
- ``most_used``: keeps the memory of the group with the highest usage (the
  attention it received while in memory), as DNC-style garbage collection erases
  the least used. It needs ``usage``.

``make_decoder`` gives g of the auto-encoding loss, one compressed memory ->
c memories: [N, W] -> [N, W, c] (a transposed convolution, kernel and stride c).

Glossary: N groups, W word (d_model), c compression rate.
"""
from __future__ import annotations

import torch
from torch import nn

COMPRESSIONS = ("max_pool", "mean_pool", "conv", "dilated_conv", "most_used")


class PoolCompression(nn.Module):
    """Max or mean pooling over the c memories of a group."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, groups: torch.Tensor, usage: torch.Tensor | None = None) -> torch.Tensor:
        return groups.amax(-1) if self.mode == "max" else groups.mean(-1)


class ConvCompression(nn.Module):
    """Conv1d with kernel = stride = c: one linear map of the whole group."""

    def __init__(self, width: int, rate: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel_size=rate, stride=rate)

    def forward(self, groups: torch.Tensor, usage: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(groups)[..., 0]


def dilations_for(rate: int) -> list[int]:
    """Dilations of kernel-2 convolutions whose receptive field is exactly ``rate`` (1 + sum = rate)."""
    dilations, field, next_dilation = [], 1, 1
    while field < rate:
        step = min(next_dilation, rate - field)
        dilations.append(step)
        field += step
        next_dilation *= 2
    return dilations


class DilatedConvCompression(nn.Module):
    """Kernel-2 convolutions with dilations 1, 2, 4, ... (ReLU between) reducing c memories to one."""

    def __init__(self, width: int, rate: int):
        super().__init__()
        dilations = dilations_for(rate)
        if not dilations:  # c = 1: a per-memory linear map
            self.convs = nn.ModuleList([nn.Conv1d(width, width, kernel_size=1)])
        else:
            self.convs = nn.ModuleList(nn.Conv1d(width, width, kernel_size=2, dilation=d) for d in dilations)

    def forward(self, groups: torch.Tensor, usage: torch.Tensor | None = None) -> torch.Tensor:
        y = groups
        for i, conv in enumerate(self.convs):
            y = conv(torch.relu(y) if i else y)
        return y[..., 0]


class MostUsedCompression(nn.Module):
    """Keep the memory of each group that received the most attention (ties: the oldest)."""

    def forward(self, groups: torch.Tensor, usage: torch.Tensor | None = None) -> torch.Tensor:
        if usage is None:
            raise ValueError("most_used compression needs the usage of each memory")
        index = usage.argmax(-1)  # [N]
        return groups.gather(-1, index[:, None, None].expand(-1, groups.shape[1], 1))[..., 0]


def make_compression(kind: str, width: int, rate: int) -> nn.Module:
    """The compression function ``kind`` (one of COMPRESSIONS) for memories of width W at rate c."""
    if kind == "max_pool":
        return PoolCompression("max")
    if kind == "mean_pool":
        return PoolCompression("mean")
    if kind == "conv":
        return ConvCompression(width, rate)
    if kind == "dilated_conv":
        return DilatedConvCompression(width, rate)
    if kind == "most_used":
        return MostUsedCompression()
    raise ValueError(f"unknown compression {kind!r}; choose one of {', '.join(COMPRESSIONS)}")


def make_decoder(width: int, rate: int) -> nn.Module:
    """g of the auto-encoding loss: [N, W] -> [N, W, c]."""
    return _Decoder(width, rate)


class _Decoder(nn.Module):
    def __init__(self, width: int, rate: int):
        super().__init__()
        self.deconv = nn.ConvTranspose1d(width, width, kernel_size=rate, stride=rate)

    def forward(self, compressed: torch.Tensor) -> torch.Tensor:
        return self.deconv(compressed[..., None])
