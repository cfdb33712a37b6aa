"""The memory-core contract (see DESIGN.md, "The memory-core contract").

Glossary used in every docstring of this package: T time, B batch, I input
size, O output size, N memory slots, W word size, H heads, K sparse reads,
D hypervector dimension.

A core maps a time-major input sequence and a state to outputs and a new state::

    out, state, aux = core(x, state, reset)
    # x: [T, B, I]; reset: bool [T, B] or None; out: [T, B, O]
    # state: TensorDict with batch_size [B]; aux: dict of named tensors

``reset[t, b]`` means step ``t`` of env ``b`` starts a new episode: the core
replaces that env's state by its initial state *before* step ``t``.
A core is a pure function of parameters, inputs and state: nothing is kept on
``self`` between calls.
"""
from __future__ import annotations

from typing import Callable

import torch
from tensordict import TensorDict
from torch import nn

StepOutput = tuple[torch.Tensor, TensorDict, dict[str, torch.Tensor]]


class MemoryCore(nn.Module):
    """Base class of every memory core.

    A subclass sets ``self.output_size`` and implements ``initial_state`` and
    ``forward``. Calls go through ``__call__``, which checks shapes on the way
    in and out, so a subclass's ``forward`` can assume well-formed inputs.
    Recurrent cores usually implement ``step`` and let ``unroll_steps`` run it.
    """

    input_size: int
    output_size: int

    def __init__(self, input_size: int):
        super().__init__()
        if not isinstance(input_size, int) or input_size <= 0:
            raise ValueError(f"input_size must be a positive int, got {input_size!r}")
        self.input_size = input_size

    # -- the two methods a core implements -------------------------------------------------
    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> TensorDict:
        """The state of a fresh episode, a TensorDict with batch_size [B]."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state: TensorDict, reset: torch.Tensor | None) -> StepOutput:
        raise NotImplementedError

    # -- shape checking --------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, state: TensorDict, reset: torch.Tensor | None = None) -> StepOutput:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects x of shape [T, B, {self.input_size}], got {list(x.shape)}"
            )
        T, B = x.shape[:2]
        if tuple(state.batch_size) != (B,):
            raise ValueError(f"state batch_size {list(state.batch_size)} does not match x's batch {B}")
        if reset is not None:
            if reset.shape != (T, B):
                raise ValueError(f"reset must have shape [T, B] = [{T}, {B}], got {list(reset.shape)}")
            reset = reset.to(device=x.device, dtype=torch.bool)
        out, new_state, aux = super().__call__(x, state, reset)
        if out.shape[:2] != (T, B) or out.shape[-1] != self.output_size:
            raise RuntimeError(
                f"{type(self).__name__} returned output {list(out.shape)}, expected [{T}, {B}, {self.output_size}]"
            )
        if not isinstance(aux, dict):
            raise RuntimeError(f"{type(self).__name__} must return aux as a dict, got {type(aux).__name__}")
        return out, new_state, aux

    # -- helpers for subclasses ------------------------------------------------------------
    def reset_state(self, state: TensorDict, reset_t: torch.Tensor | None, initial: TensorDict) -> TensorDict:
        """Select ``initial`` where ``reset_t`` [B] is True, ``state`` elsewhere (torch.where, per env)."""
        if reset_t is None:
            return state
        return select_state(reset_t, initial, state)

    def unroll_steps(
        self,
        step: Callable[[torch.Tensor, TensorDict], tuple[torch.Tensor, TensorDict, dict[str, torch.Tensor]]],
        x: torch.Tensor,
        state: TensorDict,
        reset: torch.Tensor | None,
    ) -> StepOutput:
        """Run ``step(x_t [B, I], state) -> (out_t [B, O], state, aux_t)`` over T steps.

        Resets are applied before each step. Aux entries are stacked over time;
        entries named ``loss_*`` are averaged over time so that a loss keeps its
        per-step scale whatever T is.
        """
        initial = self.initial_state(x.shape[1], x.device) if reset is not None else None
        outs, auxes = [], []
        for t in range(x.shape[0]):
            if reset is not None:
                state = self.reset_state(state, reset[t], initial)
            out_t, state, aux_t = step(x[t], state)
            outs.append(out_t)
            auxes.append(aux_t)
        return torch.stack(outs), state, stack_aux(auxes)


def select_state(mask: torch.Tensor, if_true: TensorDict, if_false: TensorDict) -> TensorDict:
    """Per-env selection between two states: ``mask`` is bool [B]."""

    def pick(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        m = mask.view(mask.shape[0], *([1] * (a.dim() - 1)))
        return torch.where(m, a, b)

    return if_true.apply(pick, if_false)


def stack_aux(auxes: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack per-step aux dicts over time; ``loss_*`` entries are averaged instead."""
    if not auxes or not auxes[0]:
        return {}
    merged = {}
    for key in auxes[0]:
        values = torch.stack([a[key] for a in auxes])
        merged[key] = values.mean(0) if key.startswith("loss_") else values
    return merged


def auxiliary_losses(aux: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The core's ``loss_*`` entries, each reduced to a scalar by its mean; the diagnostics left out.

    The one reduction every trainer uses (IMPALA's learner, the supervised
    trainers, the RLlib module): a core may return a loss of any shape (a
    scalar, per env [B], per step [T, B]) and each counts as its mean.
    """
    return {key: value.mean() for key, value in aux.items() if key.startswith("loss_")}


def auxiliary_loss(aux: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The sum of ``auxiliary_losses(aux)``: a scalar to add to the objective, or None when there is none."""
    losses = list(auxiliary_losses(aux).values())
    return torch.stack(losses).sum() if losses else None
