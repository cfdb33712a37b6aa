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

In code: ``SDNCCore`` is ``SAMCore`` with its own ``_read`` (steps 2-4's read
weights; SAM's write and usage are shared), its unroll ``SDNCUnroll`` adds the
links, and its per-step fields add p_t.

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
from .memory_controller import Interface
from .registry import register
from .sam import SAMConfig, SAMCore, SAMUnroll, weighted_words


@dataclass
class SDNCConfig(SAMConfig):
    link_entries: int = 8  # K_L: non-zeros kept per row of the sparse link matrices and in the precedence
    fused_links: bool = True  # on CPU, each step's links (update, precedence, directional reads and the read merge) as one C++ op (built on first use); false: PyTorch ops


@dataclass
class SDNCUnroll(SAMUnroll):
    """SAM's unroll plus both link matrices (≈ L_t and ≈ L_t^T, [B, N, K_L] each)."""

    links: links_ops.TorchLinks | links_ops.FusedLinks

    def reset(self, envs: torch.Tensor, initial: torch.Tensor) -> None:
        """As SAM's, and empty links for envs ``envs`` (bool [B])."""
        self.links.reset(envs)
        super().reset(envs, initial)

    def final(self) -> dict[str, torch.Tensor]:
        """SAM's fields and the links' (cols, values) [B, N, K_L] of both matrices."""
        fields = super().final()
        (fields["links_cols"], fields["links_values"]), (fields["back_cols"], fields["back_values"]) = self.links.final()
        return fields


@register("sdnc", SDNCConfig)
class SDNCCore(SAMCore):
    """Sparse DNC; see the module docstring."""

    read_modes = True  # the controller's interface also gives π_t
    step_fields = SAMCore.step_fields + ("precedence_rows", "precedence_values")  # p_{t-1} (rows, values) [B, K_L]
    index_fields = SAMCore.index_fields + ("precedence_rows",)

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

    def _open(self, state, x) -> SDNCUnroll:
        unroll = super()._open(state, x)
        cfg = self.config
        links, back = ((state[f"{m}_cols"], state[f"{m}_values"].to(x.dtype)) for m in ("links", "back"))
        links = links_ops.open_links(links, back, torch.is_grad_enabled(), cfg.in_place_state, cfg.fused_links)
        return SDNCUnroll(**vars(unroll), links=links)

    def _read(self, p: Interface, small, unroll: SDNCUnroll, write_rows, write_weights) -> dict[str, torch.Tensor]:
        """Steps 2-4: SAM's content weights c_h; the links updated with p_{t-1} and the write; the read
        weights from the previous read through L_t (forward and backward) and c_h mixed by the read modes,
        K largest kept; r_t. Returns SAM's read fields [B, H, K] and [B, H, W], and p_t (rows, values) [B, K_L]."""
        content_rows, content, _ = self._content_weights(p, unroll)
        read_rows, read_weights, precedence = unroll.links.read(
            (small["precedence_rows"], small["precedence_values"]), write_rows, write_weights,
            small["read_rows"], small["read_weights"], (content_rows, content), p.read_modes, self.config.top_k,
        )
        words = unroll.memory.gather(read_rows.flatten(1)).view(*read_rows.shape, self.config.word_size)
        return {
            "read_rows": read_rows,
            "read_weights": read_weights,
            "read_words": weighted_words(read_weights, words),
            "precedence_rows": precedence[0],
            "precedence_values": precedence[1],
        }
