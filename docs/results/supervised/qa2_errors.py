"""qa2 test errors of a trained model, split by what last happened to the asked-about object.

"dropped" (dropped, discarded, put down, left): the answer is where the holder was at that event;
"held" (got, grabbed, picked up, took): the holder's place now.

Usage: python docs/results/supervised/qa2_errors.py runs/<run>/checkpoint.pt
(the weights the run's own evaluation used: its best-validation weights when it ran with eval.weights=best)
"""
import collections
import sys

import torch

from training.run_dir import load_checkpoint
from training.supervised.tasks.babi import read_stories
from training.supervised.trainer import run_model, setup, use_weights

LET_GO = {"dropped", "discarded", "put", "left"}


def main(checkpoint_path: str) -> None:
    torch.set_num_threads(1)
    checkpoint = load_checkpoint(checkpoint_path)  # the project's loader: weights only, run folders accepted
    parts = setup(checkpoint["config"], checkpoint)
    use_weights(parts.model, checkpoint, checkpoint["config"]["eval"].get("weights", "last"))
    task, model = parts.task, parts.model.eval()
    counts = collections.Counter()
    for story in read_stories(task.files[2, "test"], 2):
        batch = task.collate([task.encode(story)])
        wrong = (run_model(model, batch, torch.device("cpu")).argmax(-1) != batch.targets)[:, 0]
        statements, asked = [], 0
        for line in story.lines:
            if line.answer is None:
                statements.append(line)
                continue
            thing = line.words[-2]  # "where is the <thing> ?"
            last = [s.words[1] for s in statements if thing in s.words][-1]
            kind = "dropped" if last in LET_GO else "held"
            markers = batch.info["question"][:, 0] == asked
            counts[kind, bool(wrong[markers].any())] += 1
            asked += 1
    for kind in ("dropped", "held"):
        total = counts[kind, True] + counts[kind, False]
        print(f"{kind}: {counts[kind, True]} of {total} wrong ({100 * counts[kind, True] / total:.0f}%)")


if __name__ == "__main__":
    main(sys.argv[1])
