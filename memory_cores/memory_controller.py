"""The LSTM controller shared by SAM and DAM (thesis Sec. 3.2.5, Fig. 3.1).

At step t the LSTM reads [x_t, r_{t-1}] (the input and the H words read at
the previous step), and a linear layer of its output h_t gives the memory
interface p_t = (q_t, β_t, w_t, α_t, γ_t). The output is
y_t = Linear([h_t, r_t]) with r_t the words read at step t.

Two ways to run the LSTM: ``step`` (``nn.LSTMCell`` on [x_t, r_{t-1}] at
each step), or ``input_gates`` for the whole unroll (W_x x_t + b for every t
in one matmul, before the loop, as ``nn.LSTM`` does) and ``step_from_gates``
at each step (only r_{t-1} and h_{t-1} left to multiply): the same function
with the same parameters, and no gradient for x where x needs none (a wide
input, e.g. bAbI's 2,093-wide sentences, made the per-step cell's gradient
for [x_t, r_{t-1}] a third of SAM's training time).
Glossary: B batch, C controller units, H heads, W word.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .addressing import oneplus


class Interface(NamedTuple):
    """p_t, the controller's memory access parameters for one step."""

    queries: torch.Tensor  # q_t [B, H, W], one read query per head
    sharpness: torch.Tensor  # β_t [B, H] >= 1, multiplies the cosine before the softmax
    write_word: torch.Tensor  # w_t [B, W]
    write_gate: torch.Tensor  # α_t [B] in (0, 1): how much is written
    interpolation_gate: torch.Tensor  # γ_t [B] in (0, 1): previously read rows vs the LRU row
    read_modes: torch.Tensor | None = None  # π_t [B, H, 3] (the SDNC's): softmax over backward, content, forward


class MemoryController(nn.Module):
    """LSTM cell, interface projection and output layer of a read/write memory core."""

    def __init__(self, input_size: int, controller_size: int, heads: int, word_size: int, output_size: int,
                 read_modes: bool = False):
        super().__init__()
        self.heads, self.word_size = heads, word_size
        self.modes = 3 * heads if read_modes else 0  # read modes come out of the same projection as p_t
        read_size = heads * word_size
        self.lstm = nn.LSTMCell(input_size + read_size, controller_size)
        self.interface = nn.Linear(controller_size, read_size + heads + word_size + 2 + self.modes)
        self.output = nn.Linear(controller_size + read_size, output_size)

    def step(self, x, read_words, h, c) -> tuple[torch.Tensor, torch.Tensor, Interface]:
        """x [B, I], read_words r_{t-1} [B, H, W], h and c [B, C] -> h_t, c_t, p_t.

        ``nn.LSTMCell`` on [x_t, r_{t-1}]: the slow twin of ``input_gates`` + ``step_from_gates``."""
        h, c = self.lstm(torch.cat([x, read_words.flatten(1)], -1), (h, c))
        return h, c, self.access_parameters(h)

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """The LSTM's input term for every step at once: W_x x_t + b_ih + b_hh, x [..., I] -> [..., 4C].

        One matmul over the whole unroll (as ``nn.LSTM`` does) instead of one per step; x gets a
        gradient only if it needs one (the per-step cell computes one for [x_t, r_{t-1}] whole)."""
        lstm = self.lstm
        return F.linear(x, lstm.weight_ih[:, : x.shape[-1]], lstm.bias_ih + lstm.bias_hh)

    def recurrent_weight(self, input_size: int) -> torch.Tensor:
        """[W_r, W_h] [4C, H W + C]: the LSTM's weights of r_{t-1} and h_{t-1}, joined once per unroll."""
        return torch.cat([self.lstm.weight_ih[:, input_size:], self.lstm.weight_hh], 1)

    def step_from_gates(self, input_gates, recurrent_weight, read_words, h, c) -> tuple[torch.Tensor, torch.Tensor, Interface]:
        """``step`` with the input term precomputed: input_gates [B, 4C] (``input_gates`` at t),
        recurrent_weight [4C, H W + C] (``recurrent_weight``), read_words [B, H, W], h, c [B, C] -> h_t, c_t, p_t.
        The LSTM cell of ``nn.LSTMCell`` (gates i, f, g, o), the same function summed in another order."""
        gates = torch.addmm(input_gates, torch.cat([read_words.flatten(1), h], -1), recurrent_weight.t())
        in_gate, forget_gate, _, out_gate = torch.sigmoid(gates).chunk(4, 1)  # one op for the three gates
        cell_gate = torch.tanh(gates[:, 2 * h.shape[1] : 3 * h.shape[1]])
        c = forget_gate * c + in_gate * cell_gate
        h = out_gate * torch.tanh(c)
        return h, c, self.access_parameters(h)

    def access_parameters(self, h) -> Interface:
        """p_t from the controller's output h_t [B, C]."""
        p = self.interface(h)
        heads, width = self.heads, self.word_size
        queries, sharpness, word, gates, modes = p.split([heads * width, heads, width, 2, self.modes], -1)
        return Interface(
            queries=queries.view(-1, heads, width),
            sharpness=oneplus(sharpness),
            write_word=word,
            write_gate=torch.sigmoid(gates[:, 0]),
            interpolation_gate=torch.sigmoid(gates[:, 1]),
            read_modes=torch.softmax(modes.view(-1, heads, 3), -1) if self.modes else None,
        )

    def readout(self, h, read_words) -> torch.Tensor:
        """y_t = Linear([h_t, r_t]): h [B, C], read_words [B, H, W] -> [B, O]."""
        return self.output(torch.cat([h, read_words.flatten(1)], -1))


def sparse_write_weights(interface: Interface, read_weights: torch.Tensor) -> torch.Tensor:
    """a^W_t = α_t (γ_t a^R_{t-1} + (1 - γ_t) I^U_t)   (thesis eq. 3.3), sparse.

    read_weights: a^R_{t-1} of the H heads over their K rows [B, H, K]. With H
    heads a^R_{t-1} is the mean of the heads' weights, so a^W sums to α.
    Returns [B, H*K + 1]: the weights of the previously read rows (heads in
    order), then the weight of the least recently used row.
    """
    alpha = interface.write_gate.unsqueeze(1)
    gamma = interface.interpolation_gate.unsqueeze(1)
    previous = gamma * read_weights.flatten(1) / read_weights.shape[1]
    return alpha * torch.cat([previous, 1 - gamma], 1)


def dense_write_weights(interface: Interface, read_weights: torch.Tensor, least_used: torch.Tensor) -> torch.Tensor:
    """The same a^W_t over all N rows: read_weights [B, H, N], least_used I^U_t one-hot [B, N] -> [B, N]."""
    alpha = interface.write_gate.unsqueeze(1)
    gamma = interface.interpolation_gate.unsqueeze(1)
    return alpha * (gamma * read_weights.mean(1) + (1 - gamma) * least_used)
