"""``sdnc``: the Sparse Differentiable Neural Computer (thesis Sec. 3.5.1).

SAM (``sam``: sparse reads and writes, LRU allocation, exact or faiss top-K,
O(1) saved per step) plus the DNC's temporal links, kept sparse
(``sparse_linkage``: ≈ L_t and ≈ L_t^T with at most K_L entries per row,
K_L-sparse precedence), and the DNC's read modes. One step:

1. controller; write as in SAM (previously read rows and the LRU row);
2. c_h, SAM's top-K content weighting of head h;
3. links and precedence updated with the write weights (differentiable,
   unlike the thesis, with SAM's sparse backward for the link values), and
   head h reads w^r_h = π_b b_h + π_c c_h + π_f f_h, where
   f_h = L_t w^r_{h,t-1} and b_h = L_t^T w^r_{h,t-1} (sparse, K K_L entries
   each) and π_h = softmax of 3 more outputs of the controller's interface
   (as in the DNC); repeated rows add up and the K largest weights are kept
   (not renormalised). On CPU this whole
   step of the links is one C++ call each way (``sparse_linkage.FusedLinks``;
   ``fused_links``);
4. r_h = Σ_k w^r_h(s_k) M_t(s_k); usage; y_t = Linear([h_t, r_t]).

Extra state over ``sam``: ``links_cols``, ``links_values``, ``back_cols``,
``back_values`` [B, N, K_L] and ``precedence_rows``, ``precedence_values``
[B, K_L]. The link tensors are copied once per call (O(N K_L)), or, by the
PyTorch ops only, updated in place with ``in_place_state``; a step changes
O(H K K_L) of their rows and backward keeps only those rows (O(1) per step).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import sparse_linkage as links_ops
from .addressing import accessed_rows, cosine_similarity
from .memory_controller import sparse_write_weights
from .registry import register
from .sam import SAMConfig, SAMCore


@dataclass
class SDNCConfig(SAMConfig):
    link_entries: int = 8  # K_L: non-zeros kept per row of the sparse link matrices and in the precedence
    fused_links: bool = True  # on CPU, each step's links (update, precedence, directional reads and the read merge) as one C++ op (built on first use); false: PyTorch ops


@register("sdnc", SDNCConfig)
class SDNCCore(SAMCore):
    """Sparse DNC; see the module docstring."""

    read_modes = True  # the controller's interface also gives π_t

    test_config = {
        "slots": 16, "word_size": 4, "heads": 2, "top_k": 3, "controller_size": 8, "output_size": 8,
        "link_entries": 3,
    }

    def __init__(self, input_size: int, config: SDNCConfig):
        super().__init__(input_size, config)
        if not isinstance(config.link_entries, int) or not 0 < config.link_entries <= config.slots:
            raise ValueError(f"link_entries must be an int in [1, slots={config.slots}], got {config.link_entries!r}")

    def _fresh(self, batch_size, device, dtype):
        fields = super()._fresh(batch_size, device, dtype)
        slots, entries = self.config.slots, self.config.link_entries
        fields["links_cols"], fields["links_values"] = links_ops.empty_links(batch_size, slots, entries, dtype, device)
        fields["back_cols"], fields["back_values"] = links_ops.empty_links(batch_size, slots, entries, dtype, device)
        rows, values = links_ops.empty_precedence(batch_size, entries, dtype, device)
        fields["precedence_rows"], fields["precedence_values"] = rows, values
        return fields

    def _small_state(self, state):
        small = super()._small_state(state)
        small["precedence_rows"] = state["precedence_rows"].long()
        small["precedence_values"] = state["precedence_values"]
        return small

    def _open(self, state, x):
        unroll = super()._open(state, x)
        links, back = ((state[f"{m}_cols"], state[f"{m}_values"].to(x.dtype)) for m in ("links", "back"))
        unroll.links = links_ops.open_links(
            links, back, torch.is_grad_enabled(), self.config.in_place_state, self.config.fused_links
        )
        return unroll

    def _close(self, unroll):
        fields = super()._close(unroll)
        (fields["links_cols"], fields["links_values"]), (fields["back_cols"], fields["back_values"]) = unroll.links.final()
        return fields

    def _reset(self, envs, small, unroll, x):
        unroll.links.reset(envs)
        return super()._reset(envs, small, unroll, x)

    def _step(self, x_t, small, unroll):
        cfg = self.config
        B, heads, k = x_t.shape[0], cfg.heads, cfg.top_k
        memory, index, usage = unroll.memory, unroll.index, unroll.usage
        h, c, p = self.controller.step(x_t, small["read_words"], small["h"], small["c"])
        # Write as in SAM.
        least_used = usage.least_recent().unsqueeze(1)
        write_rows = torch.cat([small["read_rows"].flatten(1), least_used], 1)
        write_weights = sparse_write_weights(p, small["read_weights"])
        memory.write(write_rows, write_weights, p.write_word, erase_rows=least_used)
        index.update(write_rows)
        # Content weights as in SAM.
        content_rows = index.search(p.queries, k)
        content_values = memory.gather(content_rows.flatten(1)).view(B, heads, k, cfg.word_size)
        content = torch.softmax(p.sharpness.unsqueeze(-1) * cosine_similarity(p.queries, content_values), -1)
        # Links with p_{t-1}, then the read weights: the previous read through L_t (forward and backward)
        # and the content weights, mixed by the read modes, K largest kept; and p_t.
        read_rows, read_weights, precedence = unroll.links.read(
            (small["precedence_rows"], small["precedence_values"]), write_rows, write_weights,
            small["read_rows"], small["read_weights"], (content_rows, content), p.read_modes, k,
        )
        values = memory.gather(read_rows.flatten(1)).view(B, heads, k, cfg.word_size)
        read_words = (read_weights.unsqueeze(-1) * values).sum(2)
        # Usage as in SAM.
        touched = torch.cat([write_rows, read_rows.flatten(1)], 1)
        touched_weights = torch.cat([write_weights, read_weights.flatten(1)], 1).detach()
        usage.touch(touched, accessed_rows(touched, touched_weights, cfg.usage_threshold), small["step"])
        small = {
            **small,
            "step": small["step"] + 1,
            "read_rows": read_rows,
            "read_weights": read_weights,
            "read_words": read_words,
            "h": h,
            "c": c,
            "precedence_rows": precedence[0],
            "precedence_values": precedence[1],
        }
        return self.controller.readout(h, read_words), small
