"""Where a trained database-task model's false positives come from: scores by distance from the set's range.

    .venv/bin/python docs/results/bloom/probe_database.py runs/bench-bloom/<run> [sets]

For a few sets of the run's size drawn from the test universe, the model writes the set and scores
every key of the universe. Printed per set: the share of the set's own keys at or below the
threshold that passes 0.5% of the other keys (its misses at the operating point the bench uses),
the mean score and the share above that threshold for keys 1-50, 51-200, ... ranks away from the
range, and a sample of the far keys (> 5,000 ranks away) above the threshold.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from training.run_dir import load_checkpoint  # noqa: E402
from training.supervised.bloom import embed_pool, setup_bloom  # noqa: E402

BANDS = [(0, 0), (1, 50), (51, 200), (201, 1000), (1001, 5000), (5001, 10**9)]


def main(run: Path, sets: int = 3) -> None:
    torch.set_num_threads(1)
    checkpoint = load_checkpoint(run / "checkpoint.pt")
    cfg = checkpoint["config"]
    parts = setup_bloom(cfg, checkpoint)
    model, distribution = parts.model, parts.task.eval
    model.eval()
    keys, universe = distribution.pool.keys, distribution.pool.items.shape[0]
    size = int(cfg["task"]["set_size_max"])
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        embedding = embed_pool(model, distribution.pool.items, parts.device)
        for _ in range(sets):
            members = distribution.sample_set(generator, size)
            low, high = int(members.min()), int(members.max())
            scores = model.familiarity(model.write(embedding[members].unsqueeze(0)), embedding.unsqueeze(0))[0]
            outside = torch.ones(universe, dtype=torch.bool)
            outside[members] = False
            threshold = torch.quantile(scores[outside], 0.995)
            print(f"set {keys[low]!r}..{keys[high]!r} (ranks {low}-{high} of {universe}): "
                  f"{float((scores[members] <= threshold).float().mean()):.2f} of its keys missed at 0.5%")
            rank = torch.arange(universe)
            distance = torch.where(rank < low, low - rank, torch.where(rank > high, rank - high, 0))
            for first, last in BANDS:
                band = (distance >= first) & (distance <= last)
                print(f"  {first}-{last if last < 10**9 else 'end'} ranks away: mean score {float(scores[band].mean()):6.2f}, "
                      f"above threshold {float((scores[band] > threshold).float().mean()):.3f}")
            far = torch.nonzero((distance > 5000) & (scores > threshold)).flatten()
            sample = far[torch.randperm(len(far), generator=generator)[:12]].tolist()
            print(f"  far keys above threshold: {len(far)}, e.g. {[keys[i] for i in sample]}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__.splitlines()[2].strip())
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3)
