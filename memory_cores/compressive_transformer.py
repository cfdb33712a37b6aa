"""``compressive_transformer`` and ``transformer_xl``: attention over a memory of past activations.

Thesis Ch. 6, Algorithms 5 and 6 (Rae et al. 2019). Every layer i keeps a FIFO
*memory* of the n_m most recent activations h^(i) (its inputs) and a FIFO
*compressed memory* of n_cm slots. Memories that leave the memory are not
discarded but compressed by f_c^(i), c of them into one compressed slot
(``memory_cores.compression``). Each step attends, with TransformerXL relative
positions (``memory_cores.relative_attention``), over the window::

    [compressed memory (n_cm), memory (n_m), itself]     distances n_cm+n_m ... 1, 0

``transformer_xl`` is the same model with n_cm = 0.

How a segment maps onto an unroll (the choice that makes chunking exact)
-------------------------------------------------------------------------
Algorithm 5 moves a whole segment of n_s steps into memory at once, so what a
step sees depends on where the segment boundaries fall. Here what a step sees
depends only on the step count: it is Algorithm 5 with segments of one step,
computed in parallel over the unroll. Step t attends to itself and the n_m
activations before it; after step t, its activation enters the memory and the
oldest memory is evicted. Evicted memories are compressed in groups of c
consecutive ones (Alg. 5 lines 8-11 with old_mem the c oldest evicted); the
last c − 1 evicted memories are kept in the state (``evicted``) until their
group is complete. A compressed slot is visible from the step after its last
member was evicted. So one unroll of T gives exactly what k unrolls of T/k give
with the state carried, and an IMPALA unroll is a segment whose memory carries
over to the next. Most-used compression ranks a memory by the attention it
received while in memory, normalised over the uncompressed window [memory,
itself] (not over the compressed slots, which would make step t's slots depend
on step t − 1's attention and force a step-by-step loop).

Episodes. The state counts the steps of the current episode (``steps``).
Memory slots, pending evictions and compressed slots are valid only if they were
written in this episode: a memory at distance δ is visible iff δ ≤ steps, and
compression groups are aligned to the episode start, so the compressed slots
made so far are ⌊max(steps − n_m, 0) / c⌋. ``reset[t, b]`` restarts the count at
step t, which masks everything before t (memory, earlier steps of the unroll,
compressed slots) for step t and later: exactly a fresh initial state, without
copying one in (the old contents stay in the FIFOs, masked, until pushed out; a
memory evicted after its episode ended is never compressed). Slots that were
never written are masked the same way.

Losses. ``aux["loss_compression"]`` is the attention-reconstruction loss of
Algorithm 6 (or the auto-encoding loss): per layer, the queries h^(i) of this
unroll read the memories compressed during this unroll, and the compressed
slots they became, by content attention with the layer's Q, K, V; the squared
error between the two reads is averaged and summed over layers. The queries,
the memories and the attention weights are detached, so the loss trains only
the compression network (and the decoder g for auto-encoding). A query reads
only memories of its own episode. Because compressed slots made inside an
unroll are attended to by later steps of that unroll, the task gradient also
reaches f_c (the paper's "BPTT" setting); the state is not detached between
calls (a trainer truncates BPTT by detaching the state itself).
Parameter-free compressions (pooling, most-used) have nothing to train: their
``loss_compression`` is 0, as is the TransformerXL's.
``aux["compressed_attention"]`` is the mean attention mass on compressed slots.

Layers. Without gating, Alg. 5: a = LN(MHA(h) + h); h' = LN(MLP(a) + a).
With ``gating`` (GTrXL, Parisotto et al. 2019): layer norm before attention and
MLP, and GRU-type gates g(x, y) in place of the residual sums:
a = g(h, ReLU(MHA(LN(h)))); h' = g(a, ReLU(MLP(LN(a)))); a final layer norm.

Glossary: T time, B batch, I input, W word (d_model, the paper's d), H heads,
M = n_m, C = n_cm, c compression rate, L layers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from tensordict import TensorDict
from torch import nn

from .base import MemoryCore
from .compression import COMPRESSIONS, make_compression, make_decoder
from .registry import register
from .relative_attention import RelativeMultiHeadAttention

COMPRESSION_LOSSES = ("attention", "autoencoding", "none")


@dataclass
class TransformerXLConfig:
    d_model: int = 64  # width W of activations and memories (the paper's d)
    n_layers: int = 2  # transformer layers, each with its own memory (the paper's l)
    n_heads: int = 4  # attention heads H per layer; must divide d_model
    mlp_size: int = 256  # hidden units of each layer's mixing MLP
    n_m: int = 64  # memory slots per layer: each step attends to the n_m activations before it
    gating: bool = False  # GTrXL: layer norm first and GRU gates instead of residual + layer norm
    dropout: float = 0.0  # residual dropout on each attention and MLP output while training (TransformerXL's regulariser)


@dataclass
class CompressiveTransformerConfig(TransformerXLConfig):
    n_m: int = 32  # memory slots per layer (with n_cm = 32: the TransformerXL default's attention cost)
    n_cm: int = 32  # compressed-memory slots per layer; 0 gives the TransformerXL
    compression_rate: int = 4  # c: evicted memories per compressed slot
    compression: str = "conv"  # f_c: max_pool, mean_pool, conv, dilated_conv or most_used
    compression_loss: str = "attention"  # attention (Alg. 6), autoencoding, or none (task gradient only)


def check_config(config: CompressiveTransformerConfig) -> None:
    """One-line ValueErrors naming the bad field and the fix."""
    positive = ("d_model", "n_layers", "n_heads", "mlp_size", "n_m", "compression_rate")
    for name in positive:
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(config.n_cm, int) or config.n_cm < 0:
        raise ValueError(f"n_cm must be an int >= 0 (0 gives the TransformerXL), got {config.n_cm!r}")
    if not 0 <= config.dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {config.dropout!r}; 0 turns it off")
    if config.d_model % config.n_heads:
        raise ValueError(f"d_model={config.d_model} is not divisible by n_heads={config.n_heads}; change one of them")
    if config.compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {config.compression!r}; choose one of {', '.join(COMPRESSIONS)}")
    if config.compression_loss not in COMPRESSION_LOSSES:
        raise ValueError(
            f"unknown compression_loss {config.compression_loss!r}; choose one of {', '.join(COMPRESSION_LOSSES)}"
        )


class GRUGate(nn.Module):
    """GTrXL's gate g(x, y) (Parisotto et al. 2019, Eq. 5-8), x the residual stream, y the sublayer output.

    r = σ(W_r y + U_r x), z = σ(W_z y + U_z x − b_g), ĥ = tanh(W_g y + U_g (r ⊙ x)),
    g = (1 − z) ⊙ x + z ⊙ ĥ. b_g starts at 2 so that the layer starts near the identity.
    """

    def __init__(self, width: int, initial_bias: float = 2.0):
        super().__init__()
        self.from_update = nn.Linear(width, 3 * width, bias=False)  # W_r, W_z, W_g
        self.from_stream = nn.Linear(width, 2 * width, bias=False)  # U_r, U_z
        self.candidate = nn.Linear(width, width, bias=False)  # U_g
        self.update_bias = nn.Parameter(torch.full((width,), initial_bias))  # b_g

    def forward(self, stream: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        w_reset, w_update, w_candidate = self.from_update(update).chunk(3, -1)
        u_reset, u_update = self.from_stream(stream).chunk(2, -1)
        reset = torch.sigmoid(w_reset + u_reset)
        gate = torch.sigmoid(w_update + u_update - self.update_bias)
        candidate = torch.tanh(w_candidate + self.candidate(reset * stream))
        return (1 - gate) * stream + gate * candidate


class TransformerLayer(nn.Module):
    """Attention over the window plus the mixing MLP (Alg. 5 lines 6, 7, 12), post-norm or gated."""

    def __init__(self, config: CompressiveTransformerConfig):
        super().__init__()
        width = config.d_model
        self.gating = config.gating
        self.attention = RelativeMultiHeadAttention(width, config.n_heads, config.n_cm + config.n_m + 1)
        self.attention_norm = nn.LayerNorm(width)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, config.mlp_size), nn.ReLU(), nn.Linear(config.mlp_size, width))
        self.dropout = nn.Dropout(config.dropout)  # active in train() mode only
        if self.gating:
            self.attention_gate = GRUGate(width)
            self.mlp_gate = GRUGate(width)

    def attention_input(self, h: torch.Tensor) -> torch.Tensor:
        """What queries and keys are computed from: h itself, or LN(h) when gated."""
        return self.attention_norm(h) if self.gating else h

    def finish(self, h: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """The layer's output from its input h [B, T, W] and the attention readout [B, T, W]."""
        if self.gating:
            a = self.attention_gate(h, self.dropout(torch.relu(attended)))
            return self.mlp_gate(a, self.dropout(torch.relu(self.mlp(self.mlp_norm(a)))))
        a = self.attention_norm(self.dropout(attended) + h)
        return self.mlp_norm(self.dropout(self.mlp(a)) + a)

    def content_read(self, h: torch.Tensor, memory: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Alg. 6's attn(h, m) with every weight of this layer detached (layer norm included when gated)."""
        if self.gating:
            norm = self.attention_norm
            detached = lambda x: nn.functional.layer_norm(  # noqa: E731
                x, norm.normalized_shape, norm.weight.detach(), norm.bias.detach(), norm.eps
            )
            h, memory = detached(h), detached(memory)
        return self.attention.content_read(h, memory, visible)


class Evictions(NamedTuple):
    """The groups of evicted memories a layer may compress in one call.

    elements [B, E, W] evicted memories, oldest first; element_member bool [B, E]
    (in a group that completes in this call); element_episode [B, E];
    groups [B, G, W, c]; usage [B, G, c] or None; valid bool [B, G] (the group
    is complete and lies in one episode); group_episode [B, G].
    """

    elements: torch.Tensor
    element_member: torch.Tensor
    element_episode: torch.Tensor
    groups: torch.Tensor
    usage: torch.Tensor | None
    valid: torch.Tensor
    group_episode: torch.Tensor


@register("compressive_transformer", CompressiveTransformerConfig)
class CompressiveTransformerCore(MemoryCore):
    """State (L layers): ``memory`` [B, L, M, W] (oldest first), ``steps`` [B] (steps of the current
    episode so far) and, when n_cm > 0, ``compressed`` [B, L, C, W] (oldest first) and ``evicted``
    [B, L, c − 1, W] (the last evicted memories); with most-used compression also ``memory_usage``
    [B, L, M] and ``evicted_usage`` [B, L, c − 1]. ``forward`` runs the whole unroll in parallel;
    ``forward_per_step`` is its slow twin that applies Algorithm 5's FIFO updates one step at a time.
    """

    test_config = dict(d_model=8, n_layers=2, n_heads=2, mlp_size=16, n_m=3, n_cm=2, compression_rate=2)

    def __init__(self, input_size: int, config: CompressiveTransformerConfig):
        super().__init__(input_size)
        check_config(config)
        self.config = config  # as given (the TransformerXL replaces it by its own config)
        self.settings = config  # every field of the model, n_cm included
        self.output_size = config.d_model
        self.input_projection = nn.Linear(input_size, config.d_model)  # W_emb
        self.layers = nn.ModuleList(TransformerLayer(config) for _ in range(config.n_layers))
        self.final_norm = nn.LayerNorm(config.d_model) if config.gating else nn.Identity()
        width, rate = config.d_model, config.compression_rate
        self.compressions = nn.ModuleList()
        self.decoders = nn.ModuleList()
        if config.n_cm:
            self.compressions.extend(make_compression(config.compression, width, rate) for _ in self.layers)
        self.trains_compression = any(p.requires_grad for p in self.compressions.parameters())
        if self.trains_compression and config.compression_loss == "autoencoding":
            self.decoders.extend(make_decoder(width, rate) for _ in self.layers)

    @property
    def uses_usage(self) -> bool:
        return self.settings.n_cm > 0 and self.settings.compression == "most_used"

    def initial_state(self, batch_size, device=None):
        cfg = self.settings
        layers, width, pending = cfg.n_layers, cfg.d_model, cfg.compression_rate - 1

        def zeros(*shape):
            return torch.zeros(batch_size, *shape, device=device)

        state = {"memory": zeros(layers, cfg.n_m, width), "steps": torch.zeros(batch_size, dtype=torch.long, device=device)}
        if cfg.n_cm:
            state["compressed"] = zeros(layers, cfg.n_cm, width)
            state["evicted"] = zeros(layers, pending, width)
        if self.uses_usage:
            state["memory_usage"] = zeros(layers, cfg.n_m)
            state["evicted_usage"] = zeros(layers, pending)
        return TensorDict(state, batch_size=[batch_size], device=device)

    # -- the parallel unroll ---------------------------------------------------------------
    def forward(self, x, state, reset):
        cfg = self.settings
        T, B = x.shape[:2]
        h = self.input_projection(x).transpose(0, 1)  # [B, T, W]
        start = state["steps"].long()
        episode_step, episode = episode_clock(start, reset, T)
        memory_window = memory_windows(episode_step, cfg.n_m, cfg.n_cm)
        # Episode step and episode of the T memories evicted in this call: the M
        # memories from the state, then the unroll's own steps.
        evicted_step = torch.cat([start[:, None] - cfg.n_m + torch.arange(cfg.n_m, device=x.device), episode_step], 1)[:, :T]
        evicted_episode = torch.cat([torch.zeros_like(episode[:, :1]).expand(B, cfg.n_m), episode], 1)[:, :T]
        plan = compression_plan(start, episode_step, episode, evicted_step, evicted_episode, cfg) if cfg.n_cm else None
        new_layers, losses, compressed_mass = [], [], []
        for i in range(cfg.n_layers):
            layer_state = {key: value[:, i] for key, value in state.items() if key != "steps"}
            h, new_state, loss, mass = self._layer(i, h, layer_state, memory_window, episode, evicted_episode, plan)
            new_layers.append(new_state)
            losses.append(loss)
            compressed_mass.append(mass)
        next_state = {key: torch.stack([s[key] for s in new_layers], 1) for key in new_layers[0]}
        next_state["steps"] = (episode_step[:, -1] + 1).to(state["steps"].dtype)
        aux = {"loss_compression": sum(losses), "compressed_attention": torch.stack(compressed_mass).mean()}
        out = self.final_norm(h).transpose(0, 1)
        return out, TensorDict(next_state, batch_size=[B], device=x.device), aux

    def _layer(self, i, h, layer_state, memory_window, episode, evicted_episode, plan):
        """Layer i over the whole unroll: h [B, T, W] -> (h^(i+1), its new state, its loss, attention mass on compressed slots)."""
        M, T = self.settings.n_m, h.shape[1]
        layer = self.layers[i]
        activations = torch.cat([layer_state["memory"], h], 1)  # the M memories then the unroll, oldest first
        keys = layer.attention_input(activations)
        queries = layer.attention.project_queries(keys[:, M:])
        logits = layer.attention.logits(queries, keys, memory_window)
        new_state = {"memory": activations[:, T:]}
        loss = h.new_zeros(())
        if plan is not None:
            evictions, compressed, usage_state = self._evictions(i, layer_state, activations, logits, evicted_episode, plan)
            compressed_keys = layer.attention_input(compressed)
            logits = torch.cat([layer.attention.logits(queries, compressed_keys, plan.window), logits], -1)
            keys = torch.cat([compressed_keys, keys], 1)
            new_state["compressed"] = compressed.gather(1, plan.fifo[..., None].expand(-1, -1, compressed.shape[-1]))
            new_state["evicted"] = evictions.elements[:, T:]
            new_state.update(usage_state)
            loss = self._compression_loss(i, h, episode, evictions)
        probs = logits.softmax(-1)
        mass = probs[..., : keys.shape[1] - activations.shape[1]].sum(-1).mean().detach()
        return layer.finish(h, layer.attention.read(probs, keys)), new_state, loss, mass

    def _evictions(self, i, layer_state, activations, memory_logits, evicted_episode, plan):
        """Compress the groups of c evicted memories of layer i that complete in this call.

        Returns the Evictions, all compressed slots [B, C + G, W] (the state's, then the
        new ones) and the usage state for most-used compression.
        """
        cfg = self.settings
        T, rate = memory_logits.shape[2], cfg.compression_rate
        B, width = activations.shape[0], activations.shape[-1]
        elements = torch.cat([layer_state["evicted"], activations[:, :T]], 1)  # [B, c-1+T, W]
        # Group p ends with the memory evicted after step p; keep the completed ones.
        slot_step = plan.slot_step
        groups = elements.unfold(1, rate, 1).gather(1, slot_step[:, :, None, None].expand(-1, -1, width, rate))
        usage, usage_state = None, {}
        if self.uses_usage:
            # Usage: attention each memory received among the (uncompressed) memory
            # window, summed over the steps that saw it and averaged over heads.
            received = memory_logits.softmax(-1).mean(1).sum(1).detach()  # [B, M+T]
            memory_usage = torch.cat([layer_state["memory_usage"], received.new_zeros(B, T)], 1) + received
            element_usage = torch.cat([layer_state["evicted_usage"], memory_usage[:, :T]], 1)
            usage = element_usage.unfold(1, rate, 1).gather(1, slot_step[:, :, None].expand(-1, -1, rate))
            usage_state = {"memory_usage": memory_usage[:, T:], "evicted_usage": element_usage[:, T:]}
        G = slot_step.shape[1]
        flat_usage = usage.flatten(0, 1) if usage is not None else None
        new_slots = self.compressions[i](groups.flatten(0, 1), flat_usage).unflatten(0, (B, G))
        compressed = torch.cat([layer_state["compressed"], new_slots], 1)
        element_episode = torch.cat([evicted_episode.new_zeros(B, rate - 1), evicted_episode], 1)
        member = torch.zeros_like(element_episode, dtype=torch.bool)
        for offset in range(rate):  # element j is in group p iff p <= j < p + c
            member[:, offset : offset + T] |= plan.completes
        evictions = Evictions(elements, member, element_episode, groups, usage, plan.slot_valid, plan.slot_episode)
        return evictions, compressed, usage_state

    def _compression_loss(self, i: int, queries: torch.Tensor, query_episode: torch.Tensor, ev: Evictions) -> torch.Tensor:
        """Alg. 6 (or the auto-encoding loss) for layer i, over the groups completed in this call."""
        if not self.trains_compression or self.settings.compression_loss == "none":
            return queries.new_zeros(())
        groups = ev.groups.detach()  # old_mem: stop gradient into the transformer
        B, G = groups.shape[:2]
        usage = ev.usage.flatten(0, 1) if ev.usage is not None else None
        new_slots = self.compressions[i](groups.flatten(0, 1), usage)  # [B*G, W]
        if self.settings.compression_loss == "autoencoding":
            error = (self.decoders[i](new_slots).unflatten(0, (B, G)) - groups).pow(2).mean((-1, -2))  # [B, G]
            return (error * ev.valid).sum() / ev.valid.sum().clamp(min=1)
        same = query_episode[:, :, None]
        sees_old = ev.element_member[:, None] & (ev.element_episode[:, None] == same)  # [B, T, E]
        sees_new = ev.valid[:, None] & (ev.group_episode[:, None] == same)  # [B, T, G]
        layer, queries = self.layers[i], queries.detach()
        target = layer.content_read(queries, ev.elements.detach(), sees_old)
        estimate = layer.content_read(queries, new_slots.unflatten(0, (B, G)), sees_new)
        rows = sees_new.any(-1)  # queries with something to reconstruct
        error = (target - estimate).pow(2).mean(-1)
        return (error * rows).sum() / rows.sum().clamp(min=1)

    # -- the slow twin: Algorithm 5 one step at a time -------------------------------------
    def forward_per_step(self, x, state, reset):
        """Slow reference: explicit FIFO updates per step, resets by selecting the initial state."""
        return self.unroll_steps(self._step, x, state, reset)

    def _step(self, x_t, state):
        cfg = self.settings
        M, C, rate = cfg.n_m, cfg.n_cm, cfg.compression_rate
        h = self.input_projection(x_t)[:, None]  # [B, 1, W]
        steps = state["steps"].long()
        device = x_t.device
        # Window: compressed slots 0..C-1, memory C..C+M-1, itself C+M.
        memory_visible = (M - torch.arange(M, device=device))[None] <= steps[:, None]  # slot j at distance M - j
        memory_window = torch.where(memory_visible, C + torch.arange(M, device=device), -1)
        memory_window = torch.cat([memory_window, torch.full_like(steps[:, None], C + M)], 1)[:, None]  # [B, 1, M+1]
        produced = (steps - M).clamp(min=0) // rate
        compressed_visible = torch.arange(C - 1, -1, -1, device=device)[None] < produced[:, None]
        compressed_window = torch.where(compressed_visible, torch.arange(C, device=device), -1)[:, None]
        evicted_step = steps - M  # episode step of the memory that leaves after this step
        completes = (evicted_step >= 0) & ((evicted_step + 1) % rate == 0)
        new_layers, losses, compressed_mass = [], [], []
        for i, layer in enumerate(self.layers):
            s = {key: value[:, i] for key, value in state.items() if key != "steps"}
            memory = s["memory"]
            keys = layer.attention_input(torch.cat([memory, h], 1))
            queries = layer.attention.project_queries(keys[:, M:])
            logits = layer.attention.logits(queries, keys, memory_window)
            oldest = memory[:, :1]  # Alg. 5 line 8: old_mem, with a segment of one step
            new_state = {"memory": torch.cat([memory, h], 1)[:, -M:]}  # line 10
            if C:
                group = torch.cat([s["evicted"], oldest], 1)  # the c oldest evicted memories [B, c, W]
                usage = None
                if self.uses_usage:
                    received = logits.softmax(-1).mean(1)[:, 0].detach()  # [B, M+1]
                    memory_usage = torch.cat([s["memory_usage"], received.new_zeros(received.shape[0], 1)], 1) + received
                    usage = torch.cat([s["evicted_usage"], memory_usage[:, :1]], 1)
                    new_state["memory_usage"] = memory_usage[:, 1:]
                    new_state["evicted_usage"] = usage[:, 1:]
                new_slot = self.compressions[i](group.transpose(1, 2), usage)  # line 9
                pushed = torch.cat([s["compressed"], new_slot[:, None]], 1)[:, -C:]  # line 11
                new_state["compressed"] = torch.where(completes[:, None, None], pushed, s["compressed"])
                new_state["evicted"] = group[:, 1:]
                compressed_keys = layer.attention_input(s["compressed"])
                logits = torch.cat([layer.attention.logits(queries, compressed_keys, compressed_window), logits], -1)
                keys = torch.cat([compressed_keys, keys], 1)
                zeros = torch.zeros_like(completes[:, None], dtype=torch.long)
                ev = Evictions(
                    group, completes[:, None].expand(-1, rate), zeros.expand(-1, rate),
                    group.transpose(1, 2)[:, None], usage[:, None] if usage is not None else None,
                    completes[:, None], zeros,
                )
                losses.append(self._compression_loss(i, h, zeros, ev))
            probs = logits.softmax(-1)
            compressed_mass.append(probs[..., :C].sum(-1).mean().detach())
            new_layers.append(new_state)
            h = layer.finish(h, layer.attention.read(probs, keys))
        next_state = {key: torch.stack([s[key] for s in new_layers], 1) for key in new_layers[0]}
        next_state["steps"] = (steps + 1).to(state["steps"].dtype)
        aux = {
            "loss_compression": sum(losses) if losses else h.new_zeros(()),
            "compressed_attention": torch.stack(compressed_mass).mean(),
        }
        return self.final_norm(h)[:, 0], TensorDict(next_state, batch_size=state.batch_size, device=x_t.device), aux


@register("transformer_xl", TransformerXLConfig)
class TransformerXLCore(CompressiveTransformerCore):
    """The TransformerXL baseline: the Compressive Transformer with n_cm = 0 (no compressed memory)."""

    test_config = dict(d_model=8, n_layers=2, n_heads=2, mlp_size=16, n_m=3)

    def __init__(self, input_size: int, config: TransformerXLConfig):
        super().__init__(input_size, CompressiveTransformerConfig(**asdict(config), n_cm=0))
        self.config = config


# -- the bookkeeping of one call, shared by all layers -------------------------------------
def episode_clock(start: torch.Tensor, reset: torch.Tensor | None, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Step within its episode [B, T] and episode number within this call [B, T] (0: the state's episode).

    start [B]: steps of the state's episode before this call; reset bool [T, B] or None.
    """
    t = torch.arange(T, device=start.device)
    if reset is None:
        return start[:, None] + t, torch.zeros(start.shape[0], T, dtype=torch.long, device=start.device)
    restarts = reset.transpose(0, 1)
    episode = restarts.long().cumsum(1)
    last_restart = torch.where(restarts, t, -1).cummax(1).values
    return torch.where(last_restart >= 0, t - last_restart, start[:, None] + t), episode


def memory_windows(episode_step: torch.Tensor, n_m: int, n_cm: int) -> torch.Tensor:
    """Window positions [B, T, M + T] of the memories and unroll steps for each query (−1: not seen).

    Query t sees activations t .. t + M of [memory, unroll] (M before it, then itself)
    at window positions n_cm .. n_cm + M, if they are at most episode_step[t] steps back.
    """
    T = episode_step.shape[1]
    offset = torch.arange(n_m + T, device=episode_step.device)[None] - torch.arange(T, device=episode_step.device)[:, None]
    distance = n_m - offset
    seen = (offset >= 0) & (offset <= n_m) & (distance[None] <= episode_step[:, :, None])
    return torch.where(seen, n_cm + offset, -1)


class CompressionPlan(NamedTuple):
    """Which evictions of a call complete a group, and which compressed slots each step sees.

    The groups completed in a call are packed into G = ⌈T / c⌉ new slots per env
    (completions are at least c evictions apart, so G is enough).
    completes bool [B, T]: the memory evicted after step p completes a group;
    slot_step [B, G]: after which step new slot g is made; slot_valid bool [B, G];
    slot_episode [B, G]; window [B, T, C + G]: window position of [state slots, new
    slots] for query t (−1: not seen); fifo [B, C]: indices into [state slots, new
    slots] of the compressed memory after the call.
    """

    completes: torch.Tensor
    slot_step: torch.Tensor
    slot_valid: torch.Tensor
    slot_episode: torch.Tensor
    window: torch.Tensor
    fifo: torch.Tensor


def compression_plan(start, episode_step, episode, evicted_step, evicted_episode, config) -> CompressionPlan:
    """The compressed-memory FIFO of a call, as indices (same for every layer).

    Groups are aligned to the episode start: the memory with episode step e completes a
    group iff (e + 1) is a multiple of c and it leaves the memory during its own episode.
    A slot made after step p is seen from step p + 1; a step sees the C most recent slots
    of its own episode, the newest at window position C − 1.
    """
    M, C, rate = config.n_m, config.n_cm, config.compression_rate
    B, T = episode_step.shape
    G = -(-T // rate)
    device = episode_step.device
    # A memory evicted after its episode ended is never compressed: a later call could
    # not tell it from a fresh slot, and chunked calls must agree with one call.
    completes = (evicted_step >= 0) & ((evicted_step + 1) % rate == 0) & (evicted_episode == episode)
    made = completes.long().cumsum(1)  # new slots made after steps <= p
    before = made - completes.long()  # new slots seen by query t: made after steps <= t - 1
    # Pack: new slot g is the (g+1)-th completion; unused slots point at step 0 and are invalid.
    target = torch.where(completes, made - 1, G)
    slot_step = torch.zeros(B, G + 1, dtype=torch.long, device=device)
    slot_step = slot_step.scatter_(1, target, torch.arange(T, device=device).expand(B, -1))[:, :G]
    slot_valid = torch.arange(G, device=device)[None] < made[:, -1:]
    slot_episode = evicted_episode.gather(1, slot_step)
    # New slot g for query t: rank 0 is the newest slot the query sees.
    rank = before[:, :, None] - 1 - torch.arange(G, device=device)[None, None]
    sees_new = slot_valid[:, None] & (rank >= 0) & (slot_episode[:, None] == episode[:, :, None]) & (rank < C)
    # State slot q (age C - 1 - q) for query t.
    age = torch.arange(C - 1, -1, -1, device=device)
    produced = (start - M).clamp(min=0) // rate
    state_rank = age[None, None] + before[:, :, None]
    sees_state = (age[None] < produced[:, None])[:, None] & (episode == 0)[:, :, None] & (state_rank < C)
    window = torch.cat([torch.where(sees_state, C - 1 - state_rank, -1), torch.where(sees_new, C - 1 - rank, -1)], -1)
    # After the call: the last C of [state slots, valid new slots].
    pushed = torch.cat([torch.ones(B, C, dtype=torch.bool, device=device), slot_valid], 1)
    order = pushed.long().cumsum(1)
    target = order - 1 - (order[:, -1:] - C)
    target = torch.where(pushed & (target >= 0), target, C)  # everything else goes to a dropped slot
    fifo = torch.zeros(B, C + 1, dtype=torch.long, device=device)
    fifo.scatter_(1, target, torch.arange(C + G, device=device).expand(B, -1))
    return CompressionPlan(completes, slot_step, slot_valid, slot_episode, window, fifo[:, :C])
