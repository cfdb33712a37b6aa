"""What a trained select_nonmatching_object agent chooses in room 2, by the object room 1 showed.

    .venv/bin/python docs/results/quickstart_sweep/choices.py <run or checkpoint> [...] [--episodes 50]

For every completed trial: the object type room 1 showed (A) and the type the agent stepped on.
A policy that uses memory picks B (the other type) whatever A is; a memoryless one picks by what
room 2 shows (a type it prefers, or a direction), so P(picks type 0 | A) does not depend on A.
Prints, per run: trials, success, P(picks type 0 | A = a) for each a, the most frequent
direction of the choosing step with its share, and the policy's mean entropy at that step (a
policy that still explores its choice is near ln 2 or above; one that has settled on a choice, near 0).
"""
from __future__ import annotations

import argparse
import collections

import torch

import envs
from envs.select_nonmatching_object import REWARD_MATCHING, REWARD_NONMATCHING
from evaluation.record import episode_steps
from training.actor import build_agent
from training.run_dir import load_checkpoint, resolve_checkpoint


@torch.no_grad()
def choices(checkpoint: str, episodes: int, seed: int) -> list[tuple[int, int, int, float]]:
    """(A, chosen type, action, the policy's entropy at the choosing step) for every completed trial
    of ``episodes`` sampled episodes."""
    payload = load_checkpoint(resolve_checkpoint(checkpoint))
    cfg = payload["config"]
    env = envs.make_from_config(cfg["env"])
    agent = build_agent(env, cfg)
    agent.load_state_dict(payload["model"])
    agent.eval()
    generator = torch.Generator().manual_seed(seed)
    trials = []
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed + episode)
        shown, other = env.unwrapped.matching_object, env.unwrapped.nonmatching_object
        for step in episode_steps(agent, env, observation, generator):
            if step.reward in (REWARD_NONMATCHING, REWARD_MATCHING):
                entropy = float(agent.entropy(step.out.logits[0]).squeeze())
                trials.append((shown, other if step.reward == REWARD_NONMATCHING else shown, int(step.env_action), entropy))
            # A choice starts the next trial inside env.step: read its objects before the next step.
            shown, other = env.unwrapped.matching_object, env.unwrapped.nonmatching_object
    env.close()
    return trials


DIRECTIONS = ("up", "down", "left", "right")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders or checkpoint files")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    print("| run | trials | success | P(picks type 0 \\| A = 0) | P(picks type 0 \\| A = 1) | commonest choosing step | entropy at the choosing step (nats; uniform: 1.386) |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for run in args.runs:
        trials = choices(run, args.episodes, args.seed)
        success = sum(a != c for a, c, _, _ in trials) / len(trials)
        by_shown = {a: [c == 0 for s, c, _, _ in trials if s == a] for a in (0, 1)}
        picks = " | ".join(f"{sum(v) / len(v):.2f}" if v else "-" for v in by_shown.values())
        direction, count = collections.Counter(d for _, _, d, _ in trials).most_common(1)[0]
        entropy = sum(e for *_, e in trials) / len(trials)
        print(f"| {run} | {len(trials)} | {success:.2f} | {picks} | {DIRECTIONS[direction]} ({count / len(trials):.2f}) | {entropy:.3f} |")


if __name__ == "__main__":
    main()
