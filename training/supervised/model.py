"""The supervised sequence model: input embedding -> any registered memory core -> output head."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import nn

import memory_cores


class SequenceModel(nn.Module):
    """logits [T, B, O] from inputs [T, B, I] (vectors) or [T, B] (token ids).

    Vectors go to the core unchanged (``embedding_size=0``) or through a linear
    layer; tokens go one-hot (``embedding_size=0``, as in the thesis' bAbI
    runs) or through an ``nn.Embedding``. The core is built from the registry
    with its own config, unchanged; its ``aux`` comes back for the trainer to
    add the ``loss_*`` entries.
    """

    def __init__(self, input_kind: str, input_size: int, output_size: int, core: dict[str, Any],
                 embedding_size: int = 0):
        super().__init__()
        if input_kind not in ("vector", "token"):
            raise ValueError(f"input_kind={input_kind!r}; use vector or token")
        if embedding_size < 0:
            raise ValueError(f"model.embedding_size={embedding_size} must be >= 0 (0: no embedding layer)")
        self.input_kind, self.input_size, self.embedding_size = input_kind, input_size, embedding_size
        if embedding_size == 0:
            self.embed = None
        elif input_kind == "token":
            self.embed = nn.Embedding(input_size, embedding_size)
        else:
            self.embed = nn.Linear(input_size, embedding_size)
        self.core = memory_cores.build_from_config(core, embedding_size or input_size)
        self.head = nn.Linear(self.core.output_size, output_size)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> TensorDict:
        return self.core.initial_state(batch_size, device)

    def forward(self, inputs: torch.Tensor, state: TensorDict, reset: torch.Tensor | None = None):
        """Returns (logits [T, B, O], state, aux)."""
        out, state, aux = self.core(self.features(inputs), state, reset)
        return self.head(out), state, aux

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            return self.embed(inputs)
        if self.input_kind == "token":
            return F.one_hot(inputs, self.input_size).float()
        return inputs


def build_model(task, cfg: dict[str, Any]) -> SequenceModel:
    """The model for ``task`` from the run config's ``core`` and ``model`` sections."""
    return SequenceModel(task.input_kind, task.input_size, task.output_size, cfg["core"], cfg["model"]["embedding_size"])
