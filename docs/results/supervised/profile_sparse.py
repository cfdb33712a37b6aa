"""Where one bAbI training batch of sam and sdnc spends its time (issue 27, item 1).

    TORCH_EXTENSIONS_DIR=... python docs/results/supervised/profile_sparse.py [core ...] \
        > docs/results/supervised/profile_sparse.txt

The settings of ``memrl bench supervised_throughput`` (configs/bench/supervised_throughput.yaml: joint
bAbI 10k, sentence encoding, batch 64, Adam, 2 threads). Each core (default lstm, sam, sdnc) trains on
the same 6 batches (after 2 warm-up batches): the wall time per batch and its steps T, then
torch.profiler's operators by own CPU time and cProfile's Python functions by own time over those batches.
"""
from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from evaluation.benchmarks.supervised_throughput import _setup
from training.supervised.trainer import train_on_batch

BENCH = Path(__file__).resolve().parents[3] / "configs/bench/supervised_throughput.yaml"


def main(cores: list[str]) -> None:
    cfg = OmegaConf.load(BENCH)
    torch.set_num_threads(cfg.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, interop {torch.get_num_interop_threads()}")
    for core in cores:
        part = _setup(cfg, {"core": core})
        batches = [part.task.train_batch(part.generator, cfg.batch_size) for _ in range(8)]

        def train(batch):
            train_on_batch(part.model, part.optimizer, part.task, batch, part.model.initial_state(cfg.batch_size), 0, 40.0)

        for batch in batches[:2]:
            train(batch)
        timed = []
        for batch in batches[2:]:
            start = time.perf_counter()
            train(batch)
            timed.append((batch.length, time.perf_counter() - start))
        steps = sum(t for t, _ in timed)
        seconds = sum(s for _, s in timed)
        print(f"\n==== {core}: {len(timed)} batches, T = {[t for t, _ in timed]}, {seconds:.3f} s, "
              f"{seconds / steps * 1e3:.2f} ms per step of 64 stories ====")
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for batch in batches[2:]:
                train(batch)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=50))
        profiler = cProfile.Profile()
        profiler.enable()
        for batch in batches[2:]:
            train(batch)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())


if __name__ == "__main__":
    main(sys.argv[1:] or ["lstm", "sam", "sdnc"])
