"""``memrl supervised task=bloom``: meta-learned one-shot set membership (thesis Algorithm 3) and its space evaluation.

    memrl supervised task=bloom core=neural_bloom core.memory_slots=4 core.word_size=2
    memrl supervised task=bloom_database core=neural_bloom task.set_size_max=200
    memrl supervised task=bloom core=lstm core.hidden_size=8      # writes by unrolling over S

A Bloom episode does not fit the sequence trainer (a set is written, then
queries are answered independently from the result), so this module has its
own loop, readable top to bottom, on the shared run-folder, checkpoint and
metrics helpers:

1. sample B sets S and Q queries with targets 1[q in S] (``tasks/bloom.py``),
2. write each set into a state: the Neural Bloom Filter sums all its writes at
   once; any other core unrolls over S (in a random order) and keeps its final
   state (the thesis' LSTM and DNC baselines),
3. score the queries against the state, sigmoid cross-entropy, one optimiser step,
4. log, validate, checkpoint; at the end measure space at the target
   false-positive rate (``evaluate_space``) and write ``eval.json``/``eval.md``.

Every core gets the same encoder (``task.embedding_size``; conv for images,
character LSTM for keys): for ``neural_bloom`` the task sets its encoder fields.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import memory_cores
from memory_cores.bloom_filter import BloomFilter, space_at_rate
from memory_cores.neural_bloom import LEAK, NeuralBloomConfig, NeuralBloomCore, build_encoder

from ..run_dir import new_run_dir
from ..run_loop import Run, StopClock, make_optimizer, restore_training_state
from .report import write_result
from .tasks.base import add_sums, markdown_table
from .tasks.bloom import BloomTask, build_bloom_task
from .trainer import MISMATCH, Setup, clip_gradients, start_process

SCALE_BITS = 32  # an 8-bit state also stores one float32 scale per set


# -- models: write a set into a state, score queries against it ----------------------------------------
class SetModel(nn.Module):
    """The set-level interface every Bloom model offers.

    embed(x [..., I]) -> z [..., E];  write(z [B, n, E]) -> state [B, ...];
    familiarity(state, z [B, Q, E]) -> logits [B, Q];  state_elements() -> values in a state.
    """

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def write(self, embedding: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def familiarity(self, state: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def state_elements(self) -> int:
        raise NotImplementedError

    def observe_training_batch(self, embedding: torch.Tensor) -> None:
        """Statistics that follow the training data (the NBF's query sphering)."""


class NeuralBloomSetModel(SetModel):
    """The ``neural_bloom`` core's own set API: parallel additive writes; state = memory [B, N, W]."""

    def __init__(self, core: NeuralBloomCore):
        super().__init__()
        self.core = core

    def embed(self, x):
        return self.core.embed(x)

    def write(self, embedding):
        return self.core.write_embedded(embedding)

    def familiarity(self, state, embedding):
        return self.core.familiarity_embedded(state, embedding)

    def state_elements(self):
        return self.core.memory_elements()

    def observe_training_batch(self, embedding):
        if self.core.config.sphering:
            self.core.update_sphering(self.core.raw_query(embedding.detach()))


class RecurrentSetModel(SetModel):
    """Any registered core: unroll it over the set (T = n), keep its final state, and score
    queries with an MLP on [flattened floating state, z] (thesis 5.6's LSTM/DNC baselines)."""

    def __init__(self, encoder: nn.Module, core: memory_cores.MemoryCore, embedding_size: int, hidden_size: int):
        super().__init__()
        self.encoder, self.core = encoder, core
        probe = core.initial_state(1)
        self.state_keys = [k for k in sorted(probe.keys(True, True)) if probe[k].is_floating_point()]
        self.elements = sum(probe[k][0].numel() for k in self.state_keys)
        if self.elements == 0:
            raise ValueError(f"core {type(core).core_name!r} has no floating state to store a set in; use a memory core")
        self.query_net = nn.Sequential(nn.Linear(self.elements + embedding_size, hidden_size), nn.LeakyReLU(LEAK),
                                       nn.Linear(hidden_size, hidden_size), nn.LeakyReLU(LEAK),
                                       nn.Linear(hidden_size, 1))

    def embed(self, x):
        return self.encoder(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)

    def write(self, embedding):
        batch = embedding.shape[0]
        state = self.core.initial_state(batch, embedding.device).to(embedding.dtype)
        _, state, _ = self.core(embedding.transpose(0, 1), state, None)
        return torch.cat([state[k].reshape(batch, -1) for k in self.state_keys], -1)

    def familiarity(self, state, embedding):
        state = state.unsqueeze(1).expand(-1, embedding.shape[1], -1)
        return self.query_net(torch.cat([state, embedding], -1)).squeeze(-1)

    def state_elements(self):
        return self.elements


def build_set_model(task: BloomTask, core_cfg: dict[str, Any]) -> SetModel:
    """The Bloom model for ``core_cfg`` (a core section with ``name``), with the task's encoder."""
    config = task.config
    encoder_fields = {"encoder": "conv" if task.input_kind == "image" else "lstm",
                      "embedding_size": config.embedding_size, "conv_channels": config.conv_channels,
                      "image_shape": task.image_shape or [1, 1, task.input_size],
                      "alphabet_size": task.alphabet_size}
    if core_cfg["name"] == "neural_bloom":
        return NeuralBloomSetModel(memory_cores.build_from_config(core_cfg, task.input_size, **encoder_fields))
    encoder = build_encoder(task.input_size, NeuralBloomConfig(**encoder_fields))
    core = memory_cores.build_from_config(core_cfg, config.embedding_size)
    return RecurrentSetModel(encoder, core, config.embedding_size, config.query_hidden_size)


def quantise(state: torch.Tensor, bits: int) -> torch.Tensor:
    """The state as stored at ``bits`` per value: 32 as is, 16 as float16, 8 as int8 times one float32 scale per set."""
    if bits == 32:
        return state
    if bits == 16:
        return state.half().to(state.dtype)
    scale = state.flatten(1).abs().amax(1).clamp(min=1e-12).view(-1, *([1] * (state.dim() - 1))) / 127.0
    return (state / scale).round().clamp(-127, 127) * scale


def state_bits(elements: int, bits: int) -> int:
    return elements * bits + (SCALE_BITS if bits == 8 else 0)


# -- setup --------------------------------------------------------------------------------------------
def setup_bloom(cfg: dict[str, Any], checkpoint: dict[str, Any] | None = None, task: BloomTask | None = None) -> Setup:
    device = start_process(cfg)
    if ((cfg["optimizer"].get("plateau") or {}).get("patience") is not None or cfg["eval"].get("weights") == "best"
            or cfg["optimizer"].get("ema_decay") is not None):
        raise ValueError("task=bloom has no validation split and no weight average: leave optimizer.plateau.patience=null, "
                         "optimizer.ema_decay=null and eval.weights=last")
    task = task or build_bloom_task(cfg["task"])
    model = build_set_model(task, cfg["core"]).to(device)
    optimizer = make_optimizer(model.parameters(), cfg["optimizer"])
    generator = torch.Generator().manual_seed(cfg["seed"])
    if checkpoint is not None:
        restore_training_state(checkpoint, model, optimizer, MISMATCH, generator)
    return Setup(task, model, optimizer, device, generator)


# -- one batch ----------------------------------------------------------------------------------------
def episode_logits(model: SetModel, items: torch.Tensor, sets: torch.Tensor, queries: torch.Tensor,
                   device: torch.device, observe: bool = False) -> torch.Tensor:
    """Algorithm 3, lines 8-9: write each set, score its queries. sets [B, n], queries [B, Q] -> logits [B, Q]."""
    n = sets.shape[1]
    embedding = model.embed(items[torch.cat([sets, queries], 1)].to(device))  # one encoder call for both
    if observe:
        model.observe_training_batch(embedding[:, :n])
    return model.familiarity(model.write(embedding[:, :n]), embedding[:, n:])


def episode_sums(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    predicted = logits > 0
    positive = targets > 0.5
    return {"queries": float(targets.numel()),
            "loss_nats": float(F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")),
            "correct": float((predicted == positive).sum()),
            "negatives": float((~positive).sum()), "false_positives": float((predicted & ~positive).sum()),
            "positives": float(positive.sum()), "false_negatives": float((~predicted & positive).sum())}


def summarise(sums: dict[str, float], prefix: str = "") -> dict[str, float]:
    div = lambda a, b: sums.get(a, 0.0) / sums[b] if sums.get(b) else math.nan  # noqa: E731
    return {f"{prefix}loss": div("loss_nats", "queries"), f"{prefix}accuracy": div("correct", "queries"),
            f"{prefix}false_positive_rate": div("false_positives", "negatives"),
            f"{prefix}false_negative_rate": div("false_negatives", "positives")}


@torch.no_grad()
def validate(parts: Setup, batch_size: int) -> dict[str, float]:
    """Fixed-seed sets at ``set_size_max`` from the evaluation pool (the same every call)."""
    config = parts.task.config
    generator = torch.Generator().manual_seed(config.split_seed + 7919)
    was_training = parts.model.training
    parts.model.eval()
    total: dict[str, float] = {}
    for start in range(0, config.validation_sets, batch_size):
        count = min(batch_size, config.validation_sets - start)
        episode = parts.task.eval.episode(generator, count, config.set_size_max, config.queries,
                                          config.positive_fraction)
        logits = episode_logits(parts.model, parts.task.eval.pool.items, episode.sets, episode.queries, parts.device)
        add_sums(total, episode_sums(logits.cpu(), episode.targets))
    parts.model.train(was_training)
    return summarise(total, "validation_")


# -- the loop -----------------------------------------------------------------------------------------
def train_bloom(cfg: dict[str, Any], run_dir: Path, parts: Setup, checkpoint: dict[str, Any] | None = None,
                quiet: bool = False) -> dict[str, float]:
    """Algorithm 3 until ``max_batches`` or ``max_time_s``; returns the last logged row."""
    task, model, optimizer, device = parts.task, parts.model, parts.optimizer, parts.device
    config = task.config
    counters = {"batches": 0, "sets": 0, "seconds": 0.0}
    if checkpoint:
        counters.update(checkpoint["counters"])
        counters["seconds"] = counters.pop("time_s", counters["seconds"])  # runs saved before the run loop
    items = task.train.pool.items
    payload = lambda: {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "config": cfg,  # noqa: E731
                       "task": {}, "rng": {"torch": torch.get_rng_state(), "data": parts.generator.get_state()}}
    run = Run(run_dir, counters, StopClock("batches", cfg["max_batches"], cfg["max_time_s"]), cfg["checkpoint"], payload,
              progress_line, log_interval_s=cfg["log"]["interval_s"], bar=cfg["progress"], quiet=quiet,
              tensorboard=cfg["tensorboard"])
    model.train()
    with run:
        done = run.done()
        while not done:
            size = int(torch.randint(config.set_size_min, config.set_size_max + 1, (1,), generator=parts.generator))
            episode = task.train.episode(parts.generator, cfg["batch_size"], size, config.queries,
                                         config.positive_fraction)
            logits = episode_logits(model, items, episode.sets, episode.queries, device, observe=True)
            loss = F.binary_cross_entropy_with_logits(logits, episode.targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.window.peak("grad_norm", clip_gradients(model, cfg["optimizer"]["max_grad_norm"]))
            optimizer.step()
            run.window.add(episode_sums(logits.detach().cpu(), episode.targets))
            counters["batches"] += 1
            counters["sets"] += cfg["batch_size"]
            done = run.step(1)

            validated = counters["batches"] % cfg["validation"]["interval_batches"] == 0 or done
            # Every row has the validation columns (NaN between validations): metrics.csv fixes its columns once.
            validation = validate(parts, cfg["validation"]["batch_size"]) if validated else summarise({}, "validation_")
            if run.log_due(done or validated):
                window = run.window
                run.log({"batches": counters["batches"], "sets": counters["sets"], "time_s": round(run.seconds(), 2),
                         "batches_per_s": window.per_second(window.steps), "grad_norm": window.peaks.get("grad_norm", 0.0),
                         **summarise(window.sums), **validation})
            run.checkpoint_if_due(done)
    return run.last_row


def progress_line(row: dict[str, float]) -> str:
    line = (f"batch {row['batches']:>7,} | loss {row['loss']:.4f} | acc {row['accuracy']:.4f} | "
            f"fpr {row['false_positive_rate']:.4f} | fnr {row['false_negative_rate']:.4f}")
    if not math.isnan(row.get("validation_loss", math.nan)):
        line += f" | val loss {row['validation_loss']:.4f} acc {row['validation_accuracy']:.4f}"
    return line + f" | {row['time_s']:6.0f} s"


# -- space at a false-positive rate (thesis 5.5, 5.6.1) -------------------------------------------------
@torch.no_grad()
def embed_pool(model: SetModel, items: torch.Tensor, device: torch.device, chunk: int = 2048) -> torch.Tensor:
    """z [U, E] of every pool item (the encoder does not depend on the set, so evaluation runs it once)."""
    return torch.cat([model.embed(items[i: i + chunk].to(device)) for i in range(0, items.shape[0], chunk)])


@torch.no_grad()
def evaluate_space(parts: Setup, set_size: int, seed: int = 12345, batch_sets: int = 8) -> list[dict[str, Any]]:
    """One row per state precision: the model's total space (state + backup filters) at the target rate.

    ceil(eval_queries / eval_negatives_per_set) sets of ``set_size`` are drawn
    from the evaluation pool; every item of a set is a positive and the set's
    negatives come from the query law outside the set. The operating point is
    chosen on the pooled negatives (thesis 5.5). A real Bloom filter of the
    optimal size is built for each set on the same queries as a check of the
    analytic baseline (``bloom_measured_false_positive_rate``).
    """
    task, model, device = parts.task, parts.model, parts.device
    config = task.config
    distribution = task.eval
    model.eval()
    embedding = embed_pool(model, distribution.pool.items, device)
    generator = torch.Generator().manual_seed(seed)
    sets_total = math.ceil(config.eval_queries / config.eval_negatives_per_set)
    positives = {bits: [] for bits in config.eval_precisions}
    negatives = {bits: [] for bits in config.eval_precisions}
    bloom_false, bloom_queries, bloom_missed = 0, 0, 0
    distribution.check_size(set_size)
    for start in range(0, sets_total, batch_sets):
        count = min(batch_sets, sets_total - start)
        sets = torch.stack([distribution.sample_set(generator, set_size) for _ in range(count)])
        negative = torch.stack([distribution.negatives(generator, s, config.eval_negatives_per_set) for s in sets])
        state = model.write(embedding[sets.to(device)])
        for bits in config.eval_precisions:
            stored = quantise(state, bits)
            positives[bits] += list(model.familiarity(stored, embedding[sets.to(device)]).cpu().double().numpy())
            negatives[bits].append(model.familiarity(stored, embedding[negative.to(device)]).cpu().double().numpy().ravel())
        for row, (members, outside) in enumerate(zip(sets, negative)):
            keys = lambda index: (np.asarray([distribution.pool.keys[i] for i in index.tolist()], dtype=object)  # noqa: E731
                                  if distribution.pool.keys is not None else index.numpy())
            bloom = BloomFilter.for_capacity(set_size, config.target_false_positive_rate, seed=start + row)
            bloom.insert(keys(members))
            bloom_missed += int((~bloom.query(keys(members))).sum())
            bloom_false += int(bloom.query(keys(outside)).sum())
            bloom_queries += outside.numel()
    if bloom_missed:
        raise RuntimeError(f"the Bloom filter gave {bloom_missed} false negatives; it never should")
    rows = []
    for bits in config.eval_precisions:
        result = space_at_rate(positives[bits], np.concatenate(negatives[bits]), state_bits(model.state_elements(), bits),
                               config.target_false_positive_rate)
        rows.append({
            "distribution": config.distribution, "set_size": set_size, "precision_bits": bits,
            "state_bits": result.model_bits, "model_false_positive_rate": result.model_false_positive_rate,
            "false_negatives_per_set": result.false_negatives_per_set, "backup_bits": result.backup_bits,
            "total_bits": result.total_bits, "overall_false_positive_rate": result.overall_false_positive_rate,
            "bloom_bits": result.bloom_bits, "bloom_over_total": result.ratio,
            "bloom_measured_false_positive_rate": bloom_false / bloom_queries,
            "sets": sets_total, "negative_queries": int(sum(n.size for n in negatives[bits])),
        })
    return rows


def evaluate_bloom(parts: Setup) -> dict[str, Any]:
    """Space rows for every ``task.eval_set_sizes`` and precision, plus a markdown table."""
    rows = [row for size in parts.task.config.eval_set_sizes for row in evaluate_space(parts, int(size))]
    return {"rows": rows, "markdown": markdown_table(rows)}


# -- entry points ---------------------------------------------------------------------------------------
def run_bloom(cfg: dict[str, Any], run_dir: Path | None = None, checkpoint: dict[str, Any] | None = None,
              quiet: bool = False, task: BloomTask | None = None) -> dict[str, Any]:
    """Train (a new run when ``run_dir`` is None, else resume it), then evaluate if ``eval.at_end``.

    Returns {"run_dir", "row" (last training row), "eval" (rows or None)}.
    """
    parts = setup_bloom(cfg, checkpoint, task)  # everything is checked before a folder exists
    run_dir = run_dir or new_run_dir(cfg, f"{cfg['core']['name']}-bloom-{parts.task.config.distribution}")
    if not quiet:
        print(f"run folder: {run_dir}", flush=True)
    row = train_bloom(cfg, run_dir, parts, checkpoint, quiet=quiet)
    result = None
    if cfg["eval"]["at_end"]:
        result = evaluate_bloom(parts)
        write_result(result, run_dir / "eval")
        if not quiet:
            print(result["markdown"])
    return {"run_dir": run_dir, "row": row, "eval": None if result is None else result["rows"]}

