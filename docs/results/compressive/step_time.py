"""Training-step time of the three byte-level models, measured side by side (rounds interleaved).

    .venv/bin/python docs/results/compressive/step_time.py --rounds 20

One step = forward, loss (plus the core's loss_* terms), backward and an Adam
update on a [T=64, B=16] batch of random bytes, the state carried between steps,
with the configs of run_supervised.sh. Each round times every model once, so a
change in machine load hits all of them alike; the table gives the median.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from training.supervised.model import SequenceModel, auxiliary_loss  # noqa: E402
from training.supervised.tasks.base import markdown_table  # noqa: E402

MODELS = {  # the settings of run_supervised.sh
    "compressive_transformer": ("compressive_transformer", {}),
    "transformer_xl": ("transformer_xl", {"mlp_size": 384}),
    "lstm": ("lstm", {"hidden_size": 146}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    steps, times = {}, {name: [] for name in MODELS}
    for name, (core, config) in MODELS.items():
        model = SequenceModel("token", 256, 256, core, config, embedding_size=64)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        steps[name] = [model, optimizer, model.initial_state(16)]
    data = torch.randint(0, 256, (65, 16))
    for round_ in range(args.rounds + 2):  # two warm-up rounds
        for name, parts in steps.items():
            model, optimizer, state = parts
            start = time.perf_counter()
            logits, state, aux = model(data[:-1], state, None)
            loss = F.cross_entropy(logits.flatten(0, 1), data[1:].flatten())
            extra = auxiliary_loss(aux)
            optimizer.zero_grad()
            (loss if extra is None else loss + extra).backward()
            optimizer.step()
            parts[2] = state.detach()
            if round_ >= 2:
                times[name].append(time.perf_counter() - start)
    rows = []
    for name, (core, _) in MODELS.items():
        ms = 1000 * statistics.median(times[name])
        rows.append({"model": name, "parameters": sum(p.numel() for p in steps[name][0].parameters()),
                     "ms_per_step": round(ms, 1)})
    for r in rows:
        r["time_vs_lstm"] = round(r["ms_per_step"] / rows[-1]["ms_per_step"], 2)
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
