"""Each RL core of the zoo learns a delayed-recall task with the supervised trainer; no memory cannot.

The task (registered here): a sequence is two episodes back to back, the second
starting with a reset; an episode shows a cue of ``bits`` random bits, then
``delay`` steps of random distractor bits, then asks for the cue. A memoryless
model sees nothing of the cue at the question, so its loss stays at chance
(``bits`` per question); a core that keeps the cue across the distractors
drives it towards 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from training.config import compose
from training.supervised.tasks import Batch, Task, register_task
from training.supervised.trainer import setup, train_on_batch, validate

CORES = ["gru", "ffm", "lru", "linear_attention", "mamba"]


@dataclass
class DelayedRecallConfig:
    bits: int = 4  # W: bits of the cue
    delay: int = 6  # distractor steps between the cue and the question
    validation_batches: int = 2  # fixed-seed batches per validation


@register_task("test_delayed_recall", DelayedRecallConfig)
class DelayedRecall(Task):
    """Inputs [bits | cue flag | distractor flag | question flag]; targets the cue's bits at each question."""

    def __init__(self, config: DelayedRecallConfig, seed: int):
        self.config = config
        self.input_size, self.output_size = config.bits + 3, config.bits

    def train_batch(self, generator, batch_size):
        bits, delay = self.config.bits, self.config.delay
        episode = delay + 2
        inputs = torch.zeros(2 * episode, batch_size, bits + 3)
        targets = torch.zeros(2 * episode, batch_size, bits)
        mask = torch.zeros(2 * episode, batch_size, dtype=torch.bool)
        reset = torch.zeros(2 * episode, batch_size, dtype=torch.bool)
        for start in (0, episode):
            cue = torch.randint(0, 2, (batch_size, bits), generator=generator).float()
            inputs[start, :, :bits], inputs[start, :, bits] = cue, 1
            noise = torch.randint(0, 2, (delay, batch_size, bits), generator=generator).float()
            inputs[start + 1:start + 1 + delay, :, :bits], inputs[start + 1:start + 1 + delay, :, bits + 1] = noise, 1
            question = start + episode - 1
            inputs[question, :, bits + 2] = 1
            targets[question], mask[question], reset[start] = cue, True, True
        return Batch(inputs, targets, mask, reset)

    def validation_batches(self, batch_size):
        generator = torch.Generator().manual_seed(12345)
        return iter([self.train_batch(generator, batch_size) for _ in range(self.config.validation_batches)])


def recall_loss_bits(core: str, seed: int, batches: int) -> float:
    """Validation loss in bits per question after ``batches`` Adam steps."""
    cfg = compose("supervised", [f"core={core}", "core.hidden_size=32", "optimizer.name=adam",
                                 "optimizer.learning_rate=3e-3", "batch_size=32", f"seed={seed}", "threads=1",
                                 "progress=false", "tensorboard=false"])
    cfg["task"] = {"name": "test_delayed_recall"}
    parts = setup(cfg)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        batch = parts.task.train_batch(generator, 32)
        train_on_batch(parts.model, parts.optimizer, parts.task, batch, parts.model.initial_state(32), 0, 10.0)
    return validate(parts, 64)["val_loss_bits_per_seq"] / 2  # two questions per sequence


BATCHES = 300
CHANCE = DelayedRecallConfig.bits  # bits per question of a model that knows nothing of the cue


@pytest.mark.learning
def test_no_memory_stays_at_chance(margin):
    margin("feedforward validation bits per question", recall_loss_bits("feedforward", 0, BATCHES), above=0.9 * CHANCE)


@pytest.mark.learning
@pytest.mark.parametrize("core", CORES)
def test_core_learns_delayed_recall(core, margin):
    """Both of two seeds below a quarter of chance (measured: under 0.1 bits for every core at 300 batches)."""
    losses = [recall_loss_bits(core, seed, BATCHES) for seed in (0, 1)]
    margin("worse seed's validation bits per question", max(losses), below=0.25 * CHANCE)
