"""An actor's envs do not run in lockstep: each cuts one episode at its own seeded step (training/actor.py)."""
import torch

from training.actor import Actor
from training.config import compose

LENGTH, ENVS, T = 7, 8, 50


def reset_steps(cfg, steps: int) -> torch.Tensor:
    """reset [steps, ENVS] (obs starts an episode) from an actor's unrolls, and its finished episodes."""
    actor = Actor(cfg, actor_index=0, seed=0)
    resets, episodes = [], []
    while sum(r.shape[0] for r in resets) < steps:
        result = actor.unroll()
        resets.append(result.unroll["reset"][:-1])
        episodes += result.episodes
    return torch.cat(resets), episodes


def test_fixed_length_envs_of_one_actor_do_not_all_reset_on_the_same_step():
    cfg = compose("train", ["env=counter", f"env.length={LENGTH}", "core=counter", f"actors.envs_per_actor={ENVS}",
                            f"actors.unroll_length={T}"])
    spread = cfg["actors"]["decorrelate_steps"]
    assert spread > 0, "decorrelation must be on by default"
    resets, episodes = reset_steps(cfg, spread + 4 * LENGTH)
    late = resets[spread + 1:]  # every env has made its cut by now
    phases = {tuple(late[:, b].nonzero().flatten().remainder(LENGTH).tolist()) for b in range(ENVS)}
    assert len(phases) > 1, "all envs reset on the same steps: the actor's envs run in lockstep"
    assert all(len(p) > 0 for p in phases), "every env must keep finishing episodes"
    # The cut episodes are left out of the episode statistics: every counted episode ran its full length.
    assert episodes and all(e["length"] == LENGTH and e["return"] == LENGTH for e in episodes)


def test_decorrelation_off_starts_every_env_together():
    cfg = compose("train", ["env=counter", f"env.length={LENGTH}", "core=counter", f"actors.envs_per_actor={ENVS}",
                            f"actors.unroll_length={T}", "actors.decorrelate_steps=0"])
    resets, _ = reset_steps(cfg, 4 * LENGTH)
    assert (resets == resets[:, :1]).all()
