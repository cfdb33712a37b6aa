"""``neural_bloom``: the Neural Bloom Filter (thesis Ch. 5, Algorithm 2; sparse variant Algorithm 4).

A controller maps an input x to an embedding z = f_enc(x), a query word
q = f_q(z), a write word w = f_w(z) and a softmax address over N slots against
a learnable address matrix A::

    a = softmax(q^T A)             [N]       (top-k sparse softmax when top_k > 0)
    write:  M <- M + a w^T         [N, W]    additive: the memory of a set is a sum, so it is
                                             invariant to order and computed in parallel
    read:   r = flatten(M * a)     [N W]     component-wise, not a^T M: rows interact in f_out
            o = f_out([r, w, z])   scalar familiarity logit

The memory M is stored slot-major, [N, W] (the thesis writes w a^T, [W, N]).

Two ways to use it:

- Set level (the Bloom task, Algorithm 3): ``write_set(x [B, n, I]) -> memory
  [B, N, W]`` writes a whole set at once; ``familiarity(memory, x [B, Q, I])
  -> logits [B, Q]`` answers queries. No BPTT over writes: the gradient of each
  write word is (dL/dM)^T a, computed for all items in parallel.
- Recurrent core (the memory-core contract): over a stream x [T, B, I] each
  step first *reads* (how familiar is x_t given x_1..x_{t-1}?) and then
  *writes* x_t. ``out[..., 0]`` is the familiarity logit; ``out[..., 1:]`` is
  f_out's last hidden layer, a feature vector for a policy or output head.
  State: ``memory`` [B, N, W], zero at episode start.

Options from Section 5.9: a fixed Gaussian address matrix
(``learn_addresses=false``), sparse top-k addressing (``top_k``), and moving-ZCA
sphering of the query (``sphering``). Sphering statistics are buffers that only
``update_sphering`` changes (the trainer calls it in training, as BatchNorm
updates its statistics); ``forward`` never mutates the module.

The encoder f_enc depends on the input (``encoder``): ``mlp`` for vectors,
``conv`` for flattened images (3 conv layers then 2 dense layers, App. C.1),
``lstm`` for strings given as character ids (floats, 0 = padding at the end).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import nn

from .base import MemoryCore
from .registry import register

ENCODERS = ("mlp", "conv", "lstm")
LEAK = 0.01  # leaky ReLU slope (the thesis uses leaky ReLUs throughout)


@dataclass
class NeuralBloomConfig:
    memory_slots: int = 8  # N: rows of the memory M (the thesis' m)
    word_size: int = 4  # W: width of a memory row and of the write word w
    encoder: str = "mlp"  # f_enc: mlp (vectors), conv (flattened images), lstm (character ids, 0 = padding)
    embedding_size: int = 128  # size of z = f_enc(x)
    hidden_size: int = 128  # hidden units of f_q, f_w and f_out
    query_size: int = 32  # size of the query q; A is [query_size, N]
    image_shape: list[int] = field(default_factory=lambda: [1, 28, 28])  # conv: channels, height, width of x
    conv_channels: int = 16  # conv: filters per conv layer (App. C.1 used 64)
    alphabet_size: int = 256  # lstm: character ids are 0..alphabet_size-1, 0 is padding
    learn_addresses: bool = True  # false: A is a fixed N(0, I) sample (Section 5.9)
    top_k: int = 0  # sparse address: keep the k largest logits of q^T A and renormalise (0: dense softmax)
    sphering: bool = False  # moving-ZCA sphering of the query (Section 5.9.1), trained by update_sphering
    sphering_moment_decay: float = 0.99  # gamma: EMA decay of the query's first and second moments
    sphering_decay: float = 0.99  # eta: EMA decay of the ZCA projection theta_zca
    sphering_interval: int = 10  # recompute the ZCA matrix (an eigendecomposition) every this many updates


def check_config(config: NeuralBloomConfig) -> None:
    positive = {name: getattr(config, name) for name in
                ("memory_slots", "word_size", "embedding_size", "hidden_size", "query_size", "conv_channels",
                 "sphering_interval")}
    for name, value in positive.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"neural_bloom: {name}={value!r} must be a positive integer")
    if config.encoder not in ENCODERS:
        raise ValueError(f"neural_bloom: encoder={config.encoder!r} is unknown; use one of {', '.join(ENCODERS)}")
    if not 0 <= config.top_k <= config.memory_slots:
        raise ValueError(f"neural_bloom: top_k={config.top_k} must lie in 0..memory_slots={config.memory_slots}")
    if len(config.image_shape) != 3 or min(config.image_shape) < 1:
        raise ValueError(f"neural_bloom: image_shape={list(config.image_shape)} must be [channels, height, width]")
    for name in ("sphering_moment_decay", "sphering_decay"):
        if not 0.0 <= getattr(config, name) < 1.0:
            raise ValueError(f"neural_bloom: {name}={getattr(config, name)} must lie in [0, 1)")
    if config.alphabet_size < 2:
        raise ValueError(f"neural_bloom: alphabet_size={config.alphabet_size} must be >= 2 (id 0 is padding)")


# -- encoders f_enc ------------------------------------------------------------------------------------
def variance_preserving(module: nn.Module) -> nn.Module:
    """He initialisation for leaky-ReLU layers, zero biases.

    PyTorch's default init shrinks activations layer by layer; after five
    layers every image gives nearly the same z, the addresses and write words
    cannot tell sets apart, and training sits at chance for hundreds of batches.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(layer.weight, a=LEAK, nonlinearity="leaky_relu")
            nn.init.zeros_(layer.bias)
    return module


class MLPEncoder(nn.Module):
    """Vectors [n, I] -> z [n, E]: two leaky-ReLU layers."""

    def __init__(self, input_size: int, embedding_size: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(input_size, embedding_size), nn.LeakyReLU(LEAK),
                                    nn.Linear(embedding_size, embedding_size), nn.LeakyReLU(LEAK))
        variance_preserving(self)

    def forward(self, x):
        return self.layers(x)


class ConvEncoder(nn.Module):
    """Flattened images [n, C*H*W] -> z [n, E]: three 3x3 stride-2 convolutions, then dense 64 and E (App. C.1)."""

    def __init__(self, input_size: int, embedding_size: int, image_shape, channels: int):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        if input_size != self.image_shape[0] * self.image_shape[1] * self.image_shape[2]:
            raise ValueError(f"neural_bloom: conv encoder needs input_size = C*H*W of image_shape="
                             f"{list(self.image_shape)}, got {input_size}; set image_shape to the images' shape")
        layers, in_channels, height, width = [], self.image_shape[0], self.image_shape[1], self.image_shape[2]
        for _ in range(3):
            layers += [nn.Conv2d(in_channels, channels, 3, stride=2, padding=1), nn.LeakyReLU(LEAK)]
            in_channels, height, width = channels, (height + 1) // 2, (width + 1) // 2
        self.convs = nn.Sequential(*layers)
        self.dense = nn.Sequential(nn.Linear(channels * height * width, 64), nn.LeakyReLU(LEAK),
                                   nn.Linear(64, embedding_size), nn.LeakyReLU(LEAK))
        variance_preserving(self)

    def forward(self, x):
        return self.dense(self.convs(x.reshape(-1, *self.image_shape)).flatten(1))


class CharLSTMEncoder(nn.Module):
    """Character ids [n, L] (floats; 0 = padding after the string) -> z [n, E].

    An embedding, an LSTM of E units over the characters, its output at the
    last character, then one dense layer (App. C.1's database encoder).
    """

    def __init__(self, input_size: int, embedding_size: int, alphabet_size: int):
        super().__init__()
        self.alphabet_size = alphabet_size
        self.characters = nn.Embedding(alphabet_size, min(32, embedding_size))
        self.lstm = nn.LSTM(self.characters.embedding_dim, embedding_size, batch_first=True)
        self.dense = nn.Sequential(nn.Linear(embedding_size, embedding_size), nn.LeakyReLU(LEAK))

    def forward(self, x):
        ids = x.round().long().clamp(0, self.alphabet_size - 1)
        outputs, _ = self.lstm(self.characters(ids))
        last = (ids > 0).sum(-1).clamp(min=1) - 1  # an empty string reads the first (padding) step
        return self.dense(outputs[torch.arange(ids.shape[0], device=x.device), last])


def build_encoder(input_size: int, config: NeuralBloomConfig) -> nn.Module:
    if config.encoder == "conv":
        return ConvEncoder(input_size, config.embedding_size, config.image_shape, config.conv_channels)
    if config.encoder == "lstm":
        return CharLSTMEncoder(input_size, config.embedding_size, config.alphabet_size)
    return MLPEncoder(input_size, config.embedding_size)


# -- addressing -----------------------------------------------------------------------------------------
def sparse_softmax(logits: torch.Tensor, k: int) -> torch.Tensor:
    """sigma_k: softmax over the k largest logits, zero elsewhere; dense softmax when k = 0. [..., N] -> [..., N]."""
    if k == 0 or k == logits.shape[-1]:
        return torch.softmax(logits, -1)
    values, rows = logits.topk(k, dim=-1)
    return torch.zeros_like(logits).scatter(-1, rows, torch.softmax(values, -1))


class ResidualMLP(nn.Module):
    """f_out: [r, w, z] -> hidden h -> h + act(L(h)) twice -> (logit, h). Three layers with residuals."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.inp = nn.Linear(input_size, hidden_size)
        self.blocks = nn.ModuleList([nn.Linear(hidden_size, hidden_size) for _ in range(2)])
        self.logit = nn.Linear(hidden_size, 1)

    def forward(self, inputs):
        hidden = F.leaky_relu(self.inp(inputs), LEAK)
        for block in self.blocks:
            hidden = hidden + F.leaky_relu(block(hidden), LEAK)
        return self.logit(hidden).squeeze(-1), hidden


@register("neural_bloom", NeuralBloomConfig)
class NeuralBloomCore(MemoryCore):
    """Neural Bloom Filter; see the module docstring. State: ``memory`` [B, N, W]."""

    test_config = {"memory_slots": 5, "word_size": 3, "embedding_size": 8, "hidden_size": 8, "query_size": 4}

    def __init__(self, input_size: int, config: NeuralBloomConfig):
        super().__init__(input_size)
        check_config(config)
        self.config = config
        slots, word, embed, hidden, query = (config.memory_slots, config.word_size, config.embedding_size,
                                              config.hidden_size, config.query_size)
        self.output_size = 1 + hidden
        self.encoder = build_encoder(input_size, config)
        self.query_net = nn.Sequential(nn.Linear(embed, hidden), nn.LeakyReLU(LEAK), nn.Linear(hidden, query),
                                       nn.LayerNorm(query))
        self.write_net = nn.Sequential(nn.Linear(embed, hidden), nn.LeakyReLU(LEAK), nn.Linear(hidden, word))
        # A ~ N(0, I) as in Section 5.9: with a layer-normed q the logits have variance query_size, so the
        # first addresses are nearly one-hot, like hash buckets; a soft start leaves a long plateau.
        addresses = torch.randn(query, slots)
        if config.learn_addresses:
            self.addresses = nn.Parameter(addresses)
        else:
            self.register_buffer("addresses", addresses)
        self.read_net = ResidualMLP(slots * word + word + embed, hidden)
        self.register_buffer("sphering_mean", torch.zeros(query))
        self.register_buffer("sphering_second_moment", torch.eye(query))
        self.register_buffer("sphering_projection", torch.eye(query))
        self.register_buffer("sphering_updates", torch.zeros((), dtype=torch.long))

    def memory_elements(self) -> int:
        """N * W: the number of values the state holds (its size in bits is this times the precision)."""
        return self.config.memory_slots * self.config.word_size

    # -- controller ------------------------------------------------------------------------------------
    def raw_query(self, embedding: torch.Tensor) -> torch.Tensor:
        """s = f_q(z): the query word before sphering. [..., E] -> [..., query_size]."""
        return self.query_net(embedding)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """z = f_enc(x). [..., I] -> [..., E]."""
        return self.encoder(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)

    def address_and_word(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [..., E] -> (address a [..., N], write word w [..., W])."""
        query = self.raw_query(embedding)
        if self.config.sphering:
            query = (query - self.sphering_mean) @ self.sphering_projection
        return sparse_softmax(query @ self.addresses, self.config.top_k), self.write_net(embedding)

    def controller(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [..., I] -> (address a [..., N], write word w [..., W], embedding z [..., E])."""
        embedding = self.embed(x)
        return (*self.address_and_word(embedding), embedding)

    # -- set-level API (Algorithm 2) ---------------------------------------------------------------------
    def write_set(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                  memory: torch.Tensor | None = None) -> torch.Tensor:
        """M <- M + sum_i a_i w_i^T over a whole set at once.

        x [B, n, I]; mask [B, n] bool (False: padding, not written) or None;
        memory [B, N, W] to add to (None: an empty memory). Returns [B, N, W].
        """
        return self.write_embedded(self.embed(x), mask, memory)

    def write_embedded(self, embedding: torch.Tensor, mask: torch.Tensor | None = None,
                       memory: torch.Tensor | None = None) -> torch.Tensor:
        """``write_set`` from embeddings z [B, n, E] (the encoder already run, e.g. cached)."""
        address, word = self.address_and_word(embedding)
        if mask is not None:
            word = word * mask.unsqueeze(-1).to(word.dtype)
        written = torch.einsum("bin,biw->bnw", address, word)
        return written if memory is None else memory + written

    def familiarity(self, memory: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Familiarity logits [B, Q] of queries x [B, Q, I] against memory [B, N, W]."""
        return self.familiarity_embedded(memory, self.embed(x))

    def familiarity_embedded(self, memory: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """``familiarity`` from query embeddings z [B, Q, E]."""
        address, word = self.address_and_word(embedding)
        return self.read(memory.unsqueeze(1), address, word, embedding)[0]

    def read(self, memory, address, word, embedding) -> tuple[torch.Tensor, torch.Tensor]:
        """r = flatten(M * a); (logit [...], hidden [..., hidden]) = f_out([r, w, z]).

        memory [..., N, W] broadcast against address [..., N], word [..., W], embedding [..., E].
        """
        read_words = (memory * address.unsqueeze(-1)).flatten(-2)
        read_words = read_words.expand(*address.shape[:-1], read_words.shape[-1])
        return self.read_net(torch.cat([read_words, word, embedding], -1))

    # -- recurrent core (the memory-core contract) -------------------------------------------------------
    def initial_state(self, batch_size, device=None):
        memory = torch.zeros(batch_size, self.config.memory_slots, self.config.word_size, device=device)
        return TensorDict({"memory": memory}, batch_size=[batch_size], device=device)

    def forward(self, x, state, reset):
        """Read, then write, at every step. The controller runs on all T steps at once; only the sums loop."""
        address, word, embedding = self.controller(x)  # [T, B, N], [T, B, W], [T, B, E]
        writes = address.unsqueeze(-1) * word.unsqueeze(-2)  # [T, B, N, W]
        memory, before = state["memory"], []
        for t in range(x.shape[0]):
            if reset is not None:
                memory = torch.where(reset[t].view(-1, 1, 1), torch.zeros_like(memory), memory)
            before.append(memory)
            memory = memory + writes[t]
        logit, hidden = self.read(torch.stack(before), address, word, embedding)
        out = torch.cat([logit.unsqueeze(-1), hidden], -1)
        return out, TensorDict({"memory": memory}, batch_size=state.batch_size, device=x.device), {}

    def forward_per_step(self, x, state, reset):
        """Slow reference: controller, read and write one step at a time."""
        def step(x_t, s):
            address, word, embedding = self.controller(x_t)
            logit, hidden = self.read(s["memory"], address, word, embedding)
            memory = s["memory"] + address.unsqueeze(-1) * word.unsqueeze(-2)
            return torch.cat([logit.unsqueeze(-1), hidden], -1), TensorDict({"memory": memory}, batch_size=s.batch_size), {}

        return self.unroll_steps(step, x, state, reset)

    # -- moving ZCA (Section 5.9.1) ------------------------------------------------------------------------
    @torch.no_grad()
    def update_sphering(self, raw_queries: torch.Tensor) -> None:
        """One moving-ZCA update from raw queries s [..., query_size] (e.g. ``raw_query(z)`` of a batch).

        mu <- gamma mu + (1 - gamma) mean(s);  Sigma <- gamma Sigma + (1 - gamma) mean(s s^T)
        every ``sphering_interval`` updates: U, lambda = eig(Sigma - mu mu^T);
        theta <- eta theta + (1 - eta) U diag(lambda^-1/2) U^T.
        The first update takes the batch's moments as they are (no zero bias).
        """
        s = raw_queries.detach().reshape(-1, raw_queries.shape[-1]).to(self.sphering_mean.dtype)
        mean, second = s.mean(0), s.T @ s / s.shape[0]
        gamma = 0.0 if int(self.sphering_updates) == 0 else self.config.sphering_moment_decay
        self.sphering_mean.mul_(gamma).add_((1 - gamma) * mean)
        self.sphering_second_moment.mul_(gamma).add_((1 - gamma) * second)
        self.sphering_updates += 1
        if int(self.sphering_updates) % self.config.sphering_interval == 0:
            covariance = self.sphering_second_moment - torch.outer(self.sphering_mean, self.sphering_mean)
            values, vectors = torch.linalg.eigh((covariance + covariance.T) / 2)
            zca = vectors @ torch.diag(values.clamp(min=1e-5).rsqrt()) @ vectors.T
            eta = self.config.sphering_decay
            self.sphering_projection.mul_(eta).add_((1 - eta) * zca)
