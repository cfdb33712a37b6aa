"""``memrl bench rllib_state``: the memory a core's state costs under RLlib vs memrl's IMPALA.

RLlib's env runners store the module's state_out with every timestep of an
episode chunk (``SingleAgentEpisode.extra_model_outputs``) and ship the chunks
to the learner, which then keeps only every max_seq_len-th state. memrl's
actors send the state once per unroll (its start). So per learner batch of
``batch_unrolls * envs_per_actor * unroll_length`` frames, RLlib holds
``frames`` states where memrl holds ``batch_unrolls * envs_per_actor``: T times
more.

For every registered core at its configs/core/<name>.yaml size (dataclass
defaults where there is no yaml) this reports the state bytes of one env, the
MiB of states per learner batch for both runtimes, and, measured, the bytes of
state_out that one RLlib env runner's sampled episode chunks really hold
(``measure=true``: a local SingleAgentEnvRunner samples one fragment per env).
"""
from __future__ import annotations

import math

from . import benchmark


def _run_config(cfg, core: str) -> dict:
    from training.config import ConfigError, compose

    overrides = [
        "backend=rllib", f"env={cfg.env}", "actors.num_actors=0", f"actors.envs_per_actor={cfg.envs_per_actor}",
        f"actors.unroll_length={cfg.unroll_length}", f"learner.batch_unrolls={cfg.batch_unrolls}",
    ]
    try:
        return compose("train", [f"core={core}", *overrides, *cfg.core_overrides])
    except ConfigError:  # no configs/core/<core>.yaml: the core's dataclass defaults
        if cfg.core_overrides:
            raise
        run_cfg = compose("train", overrides)
        run_cfg["core"] = {"name": core}
        return run_cfg


def _measured_bytes_per_step(run_cfg: dict) -> tuple[float, int]:
    """Bytes of state_out held in one env runner's sampled chunks, per sampled step, and the steps."""
    import numpy as np
    import tree
    from ray.rllib.core.columns import Columns
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from training.rllib_backend import algorithm_config

    actors = run_cfg["actors"]
    runner = SingleAgentEnvRunner(config=algorithm_config(run_cfg))
    try:
        runner.sample(num_timesteps=actors["envs_per_actor"], random_actions=False)  # warm up: chunks now continue
        episodes = runner.sample(num_timesteps=actors["envs_per_actor"] * actors["unroll_length"], random_actions=False)
    finally:
        runner.stop()
    held = steps = 0
    for episode in episodes:
        steps += len(episode)
        if Columns.STATE_OUT in episode.extra_model_outputs:
            # The buffer's whole array: this chunk's steps plus the lookback it carries.
            outs = episode.extra_model_outputs[Columns.STATE_OUT].data
            held += sum(np.asarray(leaf).nbytes for leaf in tree.flatten(outs))
    return held / max(steps, 1), steps


@benchmark("rllib_state")
def rllib_state(cfg) -> list[dict]:
    import memory_cores
    from training.rllib_backend import batch_frames, state_bytes_per_step

    cores = list(cfg.cores) if cfg.cores else memory_cores.names()
    sizes = " ".join(cfg.core_overrides) or "configs/core defaults"
    rows = []
    for core in cores:
        run_cfg = _run_config(cfg, core)
        state_bytes = state_bytes_per_step(run_cfg)
        frames = batch_frames(run_cfg)
        unrolls = run_cfg["learner"]["batch_unrolls"] * run_cfg["actors"]["envs_per_actor"]
        rllib_mib = frames * state_bytes / 2**20
        row = {
            "core": core, "size": sizes,
            "state_bytes_per_env": state_bytes,
            "rllib_state_mib_per_batch": rllib_mib,
            "memrl_state_mib_per_batch": unrolls * state_bytes / 2**20,
            "rllib_vs_memrl": frames / unrolls if state_bytes else math.nan,
            "fits_max_state_mib": rllib_mib <= cfg.max_state_mib,
        }
        if cfg.measure and state_bytes:
            row["measured_rllib_bytes_per_step"], row["measured_steps"] = _measured_bytes_per_step(run_cfg)
        rows.append(row)
        print(f"{core}: {state_bytes} B per env, RLlib {rllib_mib:.1f} MiB per batch", flush=True)
    return rows
