"""IMPALA on Ray: actors produce unrolls, the learner replays the core and applies V-trace.

``train(cfg, run_dir)`` is the whole loop, readable top to bottom:

1. start the actors (Ray actors, or one in-process actor when ``actors.num_actors=0``),
2. repeatedly take ``learner.batch_unrolls`` finished unrolls, resubmitting each
   actor at once with a reference to the newest weights in the object store,
3. replay the core from each unroll's start state, compute the loss, step,
4. publish the new weights; the run (``run_loop.Run``) logs and checkpoints.

With Ray the actors run while the learner learns, so training is asynchronous
and not bit-reproducible; ``num_actors=0`` is synchronous and deterministic.
"""
from __future__ import annotations

import collections
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from .actor import Actor, ActorResult, episode_means
from .env_guard import EnvFaultError
from .learner import at_progress, learner_step
from .prepare import Parts, prepare
from .run_dir import CHECKPOINT
from .run_loop import Run, StopClock


class NonFiniteLossError(ValueError):
    """Too many updates in a row with a non-finite loss or gradient."""


class ActorFailureError(ValueError):
    """One actor slot died ``actors.max_actor_restarts`` times in a row without delivering an unroll."""


class LocalActors:
    """One in-process actor, stepped synchronously: deterministic, for tests and debugging.
    (``weights`` and ``version``: as ``RayActors``'; this actor takes its weights with each request.)"""

    def __init__(self, cfg: dict, seed: int, weights: dict | None = None, version: int = 0):
        self.actor = Actor(cfg, 0, seed)

    def publish(self, weights: dict) -> dict:
        return weights

    def next_result(self, weights: dict, version: int) -> ActorResult:
        return self.actor.unroll(weights, version)

    def close(self) -> None:
        pass


class RayActors:
    """Ray actors with ``inflight_per_actor`` unroll requests queued each, so none waits on the learner.

    An actor that dies is replaced by a fresh one (new env seeds) and its lost
    unrolls are simply not counted; ``restarts`` counts the replacements. An
    actor that keeps dying before it delivers anything (e.g. its constructor
    raises) stops the run after ``actors.max_actor_restarts`` tries instead of
    being replaced forever. Starts Ray (``init_ray``) unless it runs, and stops it on ``close`` if it started it.
    """

    wait_notice_s = 30.0  # print a line when no unroll has arrived for this long

    def __init__(self, cfg: dict, seed: int, weights: dict, version: int):
        import ray

        self.ray = ray
        self.started_ray = init_ray(cfg["ray"], cfg["actors"]["num_actors"], cfg["actors"]["cpus_per_actor"])
        weights_ref = ray.put(weights)  # the first requests' weights
        self.cfg, self.seed = cfg, seed
        self.inflight = cfg["actors"]["inflight_per_actor"]
        # SPREAD: on a cluster the actors go to as many nodes as have room, not all onto the first. Inside a
        # placement group (a `memrl sweep` trial) they take the bundles reserved for them there instead.
        from ray.util import get_current_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        group = get_current_placement_group()
        strategy = PlacementGroupSchedulingStrategy(group, placement_group_capture_child_tasks=True) if group else "SPREAD"
        self.remote_actor = ray.remote(num_cpus=cfg["actors"]["cpus_per_actor"], scheduling_strategy=strategy)(Actor)
        num_actors = cfg["actors"]["num_actors"]
        self.where: list[Any] = [None] * num_actors  # per actor: a ref to {"node_id", "ip", "pid"}
        self.announced = [False] * num_actors
        self.actors = [self._start(i, seed) for i in range(num_actors)]
        self.pending: dict[Any, int] = {}
        self.restarts = 0
        self.max_restarts = cfg["actors"].get("max_actor_restarts", 3)  # runs saved before the option: 3
        self.deaths_in_a_row = [0] * len(self.actors)
        for index in range(len(self.actors)):
            self._submit(index, weights_ref, version)

    def _start(self, index: int, seed: int):
        actor = self.remote_actor.remote(self.cfg, index, seed)
        self.where[index] = actor.__ray_call__.remote(_where)  # runs right after the constructor
        self.announced[index] = False
        return actor

    def placement(self) -> list[dict | None]:
        """Where each actor runs: ``{"node_id", "ip", "pid"}``, or None for one that has not started."""
        places = []
        for ref in self.where:
            try:
                places.append(self.ray.get(ref, timeout=0))
            except Exception:  # noqa: BLE001  (not started yet, or died)
                places.append(None)
        return places

    def _submit(self, index: int, weights_ref, version: int) -> None:
        for _ in range(self.inflight):
            self.pending[self.actors[index].unroll.remote(weights_ref, version)] = index

    def _next_ready(self):
        """The longest-waiting finished request among each actor's oldest, or None after ``wait_notice_s``.

        An actor runs its requests in order, so only its oldest can be next. ``ray.wait`` alone would not
        do: among several ready refs it returns any, which both reorders an actor's unrolls and can serve
        one fast actor forever while another's unrolls sit ready.
        """
        oldest: dict[int, Any] = {}
        for ref, index in self.pending.items():  # insertion order is submission order
            oldest.setdefault(index, ref)
        heads = list(oldest.values())  # also in submission order
        ready, _ = self.ray.wait(heads, num_returns=len(heads), timeout=0)
        if not ready:
            ready, _ = self.ray.wait(heads, num_returns=1, timeout=self.wait_notice_s)
        ready = set(ready)
        return next((ref for ref in heads if ref in ready), None)

    def next_result(self, weights_ref, version: int) -> ActorResult:
        from ray.exceptions import NodeDiedError, OutOfMemoryError, RayActorError, RayTaskError, WorkerCrashedError

        # What a dead actor process looks like from here: killed, crashed, OOM-killed by Ray, or its node lost.
        actor_died = (RayActorError, OutOfMemoryError, WorkerCrashedError, NodeDiedError)
        since = time.monotonic()
        while True:
            ready = self._next_ready()
            if ready is None:  # say so rather than look hung (envs that take minutes to build or step)
                actors_cfg = self.cfg["actors"]
                print(
                    f"waiting for the actors: no unroll for {time.monotonic() - since:.0f} s (each unroll steps {actors_cfg['envs_per_actor']} "
                    f"envs x {actors_cfg['unroll_length']} steps; the first also builds the envs)",
                    flush=True,
                )
                continue
            index = self.pending.pop(ready)
            try:
                result = self.ray.get(ready)
            except actor_died as exc:
                self._replace(index, weights_ref, version, exc)
                continue
            except RayTaskError as exc:
                if isinstance(exc.cause, EnvFaultError):  # the env's own one-line message, not Ray's traceback
                    raise EnvFaultError(f"actor {index}: {exc.cause}") from None
                raise
            self.deaths_in_a_row[index] = 0
            if not self.announced[index]:
                place = self.placement()[index]
                if place is not None:
                    print(f"actor {index} runs on node {place['node_id'][:12]} ({place['ip']}, pid {place['pid']})", flush=True)
                self.announced[index] = True
            self.pending[self.actors[index].unroll.remote(weights_ref, version)] = index
            return result

    def _replace(self, index: int, weights_ref, version: int, exc: Exception) -> None:
        for ref in [r for r, i in self.pending.items() if i == index]:
            del self.pending[ref]
        self.restarts += 1
        self.deaths_in_a_row[index] += 1
        reason = _death_reason(exc)
        if self.deaths_in_a_row[index] > self.max_restarts:
            raise ActorFailureError(
                f"actor {index} died {self.deaths_in_a_row[index]} times in a row without delivering an unroll "
                f"(last: {reason}); fix the cause or raise actors.max_actor_restarts"
            )
        print(f"actor {index} died ({reason}); starting a replacement (restart {self.restarts})", flush=True)
        self.ray.kill(self.actors[index])
        self.actors[index] = self._start(index, self.seed + 7919 * self.restarts)
        self._submit(index, weights_ref, version)

    def publish(self, weights: dict):
        """The weights in the object store, once for every actor: a ref to pass to ``next_result``."""
        return self.ray.put(weights)

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        if self.started_ray:
            self.ray.shutdown()


def _where(actor: Actor) -> dict:
    """Run inside an actor process by ``__ray_call__``: its node and process."""
    import os

    import ray

    return {"node_id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address(), "pid": os.getpid()}


def _death_reason(exc: Exception) -> str:
    """One line on why an actor died: the error its constructor raised, else Ray's first line."""
    import re

    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(exc).__name__
    if getattr(exc, "actor_init_failed", False):  # Ray's message ends with the constructor's traceback
        raised = [line for line in lines if re.match(r"[\w.]+(Error|Exception|Exit|Interrupt)\b.*:", line)]
        return (raised or lines)[-1][:200]
    return lines[0][:200]


def init_ray(ray_cfg: dict, num_actors: int, cpus_per_actor: float) -> bool:
    """Connect to ``ray.address`` or start an embedded local cluster. True if we started Ray."""
    import ray

    if ray.is_initialized():
        return False
    if ray_cfg.get("address"):
        ray.init(address=ray_cfg["address"], log_to_driver=True)
    else:
        # Logical CPUs, not cores: actors and the learner share the machine.
        num_cpus = ray_cfg.get("num_cpus") or max(1, math.ceil(num_actors * cpus_per_actor))
        # address="local": always a new cluster of our own; without it Ray joins any other Ray
        # instance running on the machine (another run, a notebook) and refuses num_cpus.
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
    return True


def learner_threads(cfg: dict) -> int | None:
    """``learner.num_threads``, or where null the cores that local Ray actors leave free (at least 1); None (torch's
    default) when the actors run in-process or on a cluster. Why: on a small machine the learner's intra-op threads
    and the actors' processes share the cores, and a thread pool whose threads wait on each other while the actors
    hold the cores stalls the learner (issue 28's A/B: docs/results/throughput.md)."""
    actors = cfg["actors"]
    if cfg["learner"].get("num_threads"):
        return int(cfg["learner"]["num_threads"])
    if not actors["num_actors"] or cfg["ray"].get("address"):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - math.ceil(actors["num_actors"] * actors["cpus_per_actor"]))


def cpu_weights(agent: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in agent.state_dict().items()}


def train(cfg: dict, run_dir: Path, checkpoint: dict | None = None, quiet: bool = False,
          time_limit_s: float | None = None, on_log=None, parts: Parts | None = None) -> dict[str, float]:
    """Train until ``total_frames`` env frames (or ``time_limit_s`` seconds of training, counted from the
    first update: actor start-up excluded); returns the last logged metrics.

    ``parts``: from ``prepare(cfg, checkpoint)`` (made here when None). ``on_log(row, actors)``, if given,
    is called after every logged row (``memrl bench soak`` samples memory there).
    """
    parts = parts or prepare(cfg, checkpoint)
    agent, optimizer, device = parts.agent, parts.optimizer, parts.device
    learner_cfg, actors_cfg = cfg["learner"], cfg["actors"]
    counters = {"frames": 0, "updates": 0, "episodes": 0, "seconds": 0.0, "skipped_updates": 0, "env_errors": 0}
    counters.update(checkpoint["counters"] if checkpoint is not None else {})
    # A resumed run's actors get fresh env seeds, so they do not replay old episodes.
    actor_seed = cfg["seed"] + 1_000_003 * counters["updates"]
    recent = collections.deque(maxlen=cfg["log"]["episodes_window"])
    payload = lambda: {"model": agent.state_dict(), "optimizer": optimizer.state_dict(), "config": cfg,  # noqa: E731
                       "rng": {"torch": torch.get_rng_state()}}
    run = Run(run_dir, counters, StopClock("frames", cfg["total_frames"], time_limit_s, seconds_from_first_step=True),
              cfg["checkpoint"], payload, progress_line, log_interval_s=cfg["log"]["interval_s"], quiet=quiet,
              score=lambda: episode_means(recent)["mean_return"], tensorboard=cfg.get("tensorboard", True))
    actors, nonfinite_in_a_row, done = None, 0, run.done()
    threads = torch.get_num_threads()
    torch.set_num_threads(learner_threads(cfg) or threads)
    try:
        with run:
            weights = cpu_weights(agent)
            actors = (RayActors if actors_cfg["num_actors"] else LocalActors)(cfg, actor_seed, weights, counters["updates"])
            weights_ref = actors.publish(weights)
            while not done:
                results = [actors.next_result(weights_ref, counters["updates"]) for _ in range(learner_cfg["batch_unrolls"])]
                unroll = torch.cat([r.unroll for r in results], dim=1).to(device)
                start_state = torch.cat([r.start_state for r in results], dim=0).to(device)
                loss_cfg = at_progress(parts.loss, counters["frames"] / cfg["total_frames"])
                loss, losses, grad_norm, applied = learner_step(agent, optimizer, unroll, start_state, loss_cfg,
                                                                learner_cfg["max_grad_norm"])
                if applied:
                    nonfinite_in_a_row = 0
                else:  # skip the update: the weights (and the last checkpoint) stay good
                    counters["skipped_updates"] += 1
                    nonfinite_in_a_row += 1
                    if nonfinite_in_a_row >= learner_cfg["max_nonfinite_updates"]:
                        raise NonFiniteLossError(
                            f"{nonfinite_in_a_row} updates in a row had a non-finite loss or gradient; stopped. "
                            f"Last good checkpoint: {run_dir / CHECKPOINT if (run_dir / CHECKPOINT).exists() else 'none yet'}. "
                            "Lower learner.learning_rate or check the env's rewards"
                        )

                frames = (unroll.shape[0] - 1) * unroll.shape[1]
                counters["frames"] += frames
                run.window.add({"frames": frames, "unrolls": len(results),
                                "lag": sum(counters["updates"] - r.weights_version for r in results)})
                counters["updates"] += 1
                weights_ref = actors.publish(cpu_weights(agent))
                for r in results:
                    recent.extend(r.episodes)
                    counters["episodes"] += len(r.episodes)
                    counters["env_errors"] += r.env_errors
                done = run.step(frames)
                if run.log_due(done):
                    lag = run.window.sums["lag"] / run.window.sums["unrolls"]
                    run.log({**rl_row(counters, run, recent), "total_loss": loss.item(), "grad_norm": grad_norm.item(),
                             "policy_lag": lag, **{k: float(v) for k, v in losses.items()}, "entropy_cost": loss_cfg.entropy_cost,
                             "value_mean": float(agent.baseline.mean), "value_std": float(agent.baseline.std),
                             "skipped_updates": counters["skipped_updates"],
                             "actor_restarts": getattr(actors, "restarts", 0), "env_errors": counters["env_errors"]})
                    if on_log is not None:
                        on_log(run.last_row, actors)
                run.checkpoint_if_due(done)
    finally:
        if actors is not None:
            actors.close()
        torch.set_num_threads(threads)  # the caller's setting again (an in-process actor sets 1)
    return run.last_row


def rl_row(counters: dict, run: Run, recent) -> dict[str, float]:
    """The columns an RL run's metrics row starts with (IMPALA's and RLlib's); ``recent``: the last episodes."""
    return {"frames": counters["frames"], "updates": counters["updates"], "episodes": counters["episodes"],
            "time_s": round(run.seconds(), 2), "fps": run.window.per_second(run.window.sums["frames"]),
            **episode_means(recent)}


def progress_line(row: dict[str, float]) -> str:
    """An RL run's progress line (IMPALA's and RLlib's)."""
    return (
        f"frames {row['frames']:>10,} | {row['fps']:>7,.0f} fps | return {row['mean_return']:8.2f} | "
        f"success {row['mean_success']:5.2f} | loss {row['total_loss']:9.3f} | lag {row['policy_lag']:4.1f} | "
        f"{row['time_s']:6.0f} s"
    )
