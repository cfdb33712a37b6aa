"""Reliability: envs that raise, multi-node Ray, checkpoint retention, the bad-input table.

The faulty env is the counter env (observation = steps taken this episode,
reward 1 per step) that raises on its ``fail_every``-th step, counted per env
instance; a replaced env starts counting again. With ``fail_every`` above the
episode length some episodes finish between errors (a flaky env); below it, none
do (a broken env).
"""
import re
import sys
import time

import gymnasium
import numpy as np
import pytest
import torch

from envs.counter import CounterEnv
from training import cli, impala, prepare
from training.actor import Actor
from training.config import compose
from training.env_guard import EnvFaultError, GuardedEnv
from training.run_dir import load_checkpoint, read_metrics

FAULTY = "memrl-test/faulty"


class FaultyEnv(CounterEnv):
    def __init__(self, length: int = 7, terminate: bool = False, fail_every: int = 0, fail_reset_every: int = 0):
        super().__init__(length, terminate)
        self.fail_every, self.fail_reset_every = fail_every, fail_reset_every
        self.steps = self.resets = 0

    def reset(self, *, seed=None, options=None):
        self.resets += 1
        if self.fail_reset_every and self.resets % self.fail_reset_every == 0:
            raise ConnectionError("simulator went away\nsecond line of a long message")
        return super().reset(seed=seed, options=options)

    def step(self, action):
        self.steps += 1
        if self.fail_every and self.steps % self.fail_every == 0:
            raise RuntimeError(f"boom at step {self.steps}")
        return super().step(action)


def register_faulty() -> None:
    if FAULTY not in gymnasium.registry:
        gymnasium.register(id=FAULTY, entry_point=FaultyEnv)


register_faulty()


class BrokenActor(Actor):
    def __init__(self, cfg, actor_index, seed):
        raise OSError("cannot open display :0\nsecond line")


class FaultyActor(Actor):
    """The real actor, in a Ray worker that has the faulty env registered (the registry is per process)."""

    def __init__(self, cfg, actor_index, seed):
        register_faulty()
        super().__init__(cfg, actor_index, seed)


class SlowStartActor(FaultyActor):
    """Takes 2 s to build, like an env that compiles a maze and a render context."""

    def __init__(self, cfg, actor_index, seed):
        time.sleep(2)
        super().__init__(cfg, actor_index, seed)


def guarded(max_errors=3, **kwargs):
    built = []

    def make():
        built.append(FaultyEnv(length=5, **kwargs))
        return built[-1]

    return GuardedEnv(make, max_errors, FAULTY), built


def test_a_step_error_cuts_the_episode_at_the_last_good_observation_and_replaces_the_env(capsys):
    env, built = guarded(fail_every=12)  # episodes of 5 steps: 2 finish, then step 12 raises
    obs, _ = env.reset(seed=1)
    for _ in range(11):
        obs, reward, terminated, truncated, info = env.step(0)
        if truncated:
            obs, _ = env.reset()
    assert obs[0] == 1.0 and env.errors == 0
    obs, reward, terminated, truncated, info = env.step(0)
    assert (obs[0], reward, terminated, truncated) == (1.0, 0.0, False, True), "cut at the last good observation"
    assert info["env_error"] == "RuntimeError: boom at step 12"
    assert env.errors == 1 and len(built) == 1
    obs, _ = env.reset()
    assert len(built) == 2 and env.env is built[1], "the next reset builds a fresh env"
    assert obs[0] == 0.0 and env.step(0)[0][0] == 1.0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"env {FAULTY} raised in step (RuntimeError: boom at step 12); replacing it (1 errors so far, 1 in a row)"]


def test_an_env_that_never_finishes_an_episode_stops_after_max_errors():
    env, built = guarded(max_errors=3, fail_every=3)  # raises before any 5-step episode ends
    env.reset(seed=0)
    with pytest.raises(EnvFaultError) as error:
        for _ in range(100):
            if env.step(0)[3]:
                env.reset()
    message = str(error.value)
    assert len(built) == 3 and env.errors == 3
    assert "\n" not in message and "raised 3 times without finishing an episode" in message
    assert "RuntimeError: boom at step 3" in message and "actors.max_env_errors" in message


def test_a_flaky_env_never_stops_the_run_because_finished_episodes_clear_the_count():
    env, _ = guarded(max_errors=2, fail_every=12)
    env.reset(seed=0)
    for _ in range(200):
        if env.step(0)[3]:
            env.reset()
    assert env.errors == 200 // 12 and env.errors_in_a_row <= 1


def test_reset_errors_are_retried_on_a_fresh_env_and_rebuilt_envs_are_seeded():
    env, built = guarded(max_errors=3, fail_reset_every=2)
    env.reset(seed=5)
    env.step(0)
    obs, _ = env.reset()  # the second reset of this env raises: a fresh env is built and reset instead
    assert obs[0] == 0.0 and env.errors == 1 and len(built) == 2
    seed = built[1].np_random_seed
    again, again_built = guarded(max_errors=3, fail_reset_every=2)
    again.reset(seed=5)
    again.reset()
    assert again_built[1].np_random_seed == seed, "a rebuilt env's seed derives from the first reset's seed"
    with pytest.raises(EnvFaultError, match=r"in reset: ConnectionError: simulator went away\); fix the env"):
        guarded(max_errors=1, fail_reset_every=1)[0].reset(seed=0)


TRAIN = ["train", "env=counter", f"env.name={FAULTY}", "env.length=5", "core.hidden_size=8", "agent.encoder_size=8",
         "actors.num_actors=0", "actors.envs_per_actor=2", "actors.unroll_length=6", "log.interval_s=0",
         "tensorboard=false"]


def test_training_goes_on_through_env_errors_and_counts_them(tmp_path, capsys):
    argv = [*TRAIN, "+env.fail_every=12", "total_frames=240", f"run_root={tmp_path}"]
    assert cli.main(argv) == 0
    [run] = list(tmp_path.iterdir())
    metrics = read_metrics(run)
    # 2 envs x 120 steps, each raising on every 12th of its steps: 10 errors each.
    assert metrics["env_errors"][-1] == 20
    # Cut episodes are left out of the return statistics: every finished episode returned exactly 5.
    assert set(metrics["mean_return"]) == {5.0}
    assert "replacing it" in capsys.readouterr().out


def test_a_broken_env_stops_training_with_one_line(tmp_path, capsys):
    argv = [*TRAIN, "+env.fail_every=3", "actors.max_env_errors=4", "total_frames=100000", f"run_root={tmp_path}"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "raised 4 times without finishing an episode" in err, err


@pytest.fixture
def faulty_ray_actors(monkeypatch, ray_session):
    from ray import cloudpickle  # Ray's own copy pickles actor classes, not the cloudpickle package

    # Ray workers cannot import this test module by name: ship its classes by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    started = []

    def start(*overrides, actor_class=FaultyActor):
        monkeypatch.setattr(impala, "Actor", actor_class)
        cfg = compose("train", ["env=counter", f"env.name={FAULTY}", "env.length=5", "core.hidden_size=8",
                                "agent.encoder_size=8", "actors.num_actors=1", "actors.envs_per_actor=2",
                                "actors.unroll_length=6", *overrides])
        from training.actor import build_agent

        weights = impala.cpu_weights(build_agent(FaultyEnv(length=5), cfg))
        started.append(impala.RayActors(cfg, 0, weights, 0))
        return started[-1], started[-1].publish(weights)

    yield start
    for actors in started:
        actors.close()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_env_errors_in_ray_actors_are_counted_and_a_broken_env_stops_the_learner(faulty_ray_actors):
    actors, weights_ref = faulty_ray_actors("+env.fail_every=12")
    errors = sum(actors.next_result(weights_ref, 0).env_errors for _ in range(8))  # 2 envs x 48 steps
    assert errors == 8 and actors.restarts == 0

    actors, weights_ref = faulty_ray_actors("+env.fail_every=3", "actors.max_env_errors=2")
    deadline = time.time() + 120
    with pytest.raises(EnvFaultError) as error:
        while time.time() < deadline:
            actors.next_result(weights_ref, 0)
    message = str(error.value)
    assert "\n" not in message and message.startswith("actor 0: env memrl-test/faulty raised 2 times"), message
    assert actors.restarts == 0, "an env fault is not an actor death: no replacement loop"


def test_an_actor_that_dies_on_every_start_stops_the_run_instead_of_restarting_forever(faulty_ray_actors):
    actors, weights_ref = faulty_ray_actors("actors.max_actor_restarts=2", actor_class=BrokenActor)
    deadline = time.time() + 120
    with pytest.raises(impala.ActorFailureError) as error:
        while time.time() < deadline:
            actors.next_result(weights_ref, 0)
    message = str(error.value)
    assert "\n" not in message and actors.restarts == 3, message
    assert message.startswith("actor 0 died 3 times in a row without delivering an unroll (last: ")
    assert "OSError: cannot open display :0" in message and "actors.max_actor_restarts" in message


def test_the_learner_says_it_is_waiting_while_no_unroll_arrives(faulty_ray_actors, capsys):
    actors, weights_ref = faulty_ray_actors(actor_class=SlowStartActor)
    actors.wait_notice_s = 1.0
    start = time.monotonic()
    actors.next_result(weights_ref, 0)
    elapsed = time.monotonic() - start
    pattern = r"waiting for the actors: no unroll for (\d+) s \(each unroll steps 2 envs x 6 steps; the first also builds the envs\)"
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("waiting")]
    seconds = [int(re.fullmatch(pattern, line).group(1)) for line in lines]
    assert seconds and seconds[0] == 1 and seconds == sorted(seconds) and seconds[-1] <= elapsed + 1, lines
    assert len(seconds) <= elapsed + 1, "one line per notice interval, not one per poll"


def test_envs_that_would_not_fit_in_memory_are_a_one_line_error_with_a_setting_that_fits():
    cfg = compose("train", ["env=memory_maze_3d"])  # 2 actors x 16 envs of ~900 MiB
    for available_mib, fix in ((20 * 1024, "actors.envs_per_actor=11"),
                               (1500, "actors.num_actors=1 actors.envs_per_actor=1"),
                               (500, "free memory first: a single env needs that much")):
        with pytest.raises(ValueError) as error:
            prepare.check_memory(cfg, available_mib)
        message = str(error.value)
        assert "\n" not in message and message.startswith("memrl/memory_maze_3d takes about 900 MiB per env: 2 actor(s) x 16 envs")
        assert message.endswith(fix), message
        if "=" in fix:  # the suggested setting fits
            prepare.check_memory(compose("train", ["env=memory_maze_3d", *fix.split()]), available_mib)
    prepare.check_memory(cfg, 40 * 1024)
    prepare.check_memory(compose("train", ["env=memory_maze_3d", "ray.address=auto"]), 500)  # actors run elsewhere
    prepare.check_memory(compose("train", ["env=counter"]), 1)  # no measured footprint: nothing to check


def test_multi_node_cluster_actors_spread_over_nodes_and_survive_losing_one(tmp_path):
    """A real three-node Ray cluster on this machine; `memrl train ray.address=...` joins it as a separate process.

    Both actors must land on different nodes; removing the worker node under one
    of them must get it replaced on a node still there, and training goes on
    until Ctrl-C, which saves a checkpoint.
    """
    import signal
    import subprocess
    import threading

    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    proc = None
    try:
        cluster.wait_for_nodes()
        nodes = {node.node_id[:12] for node in cluster.list_all_nodes()}
        assert len(nodes) == 3
        argv = [sys.executable, "-m", "training.cli", "train", "env=counter", "core.hidden_size=8",
                "agent.encoder_size=8", "actors.num_actors=2", "actors.envs_per_actor=2", "actors.unroll_length=10",
                "total_frames=1000000000", "log.interval_s=1", "tensorboard=false",
                f"ray.address={cluster.address}", f"run_root={tmp_path}"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        watchdog = threading.Timer(240, proc.kill)  # a hang fails the test instead of blocking it
        watchdog.start()
        lines, placed, removed, progress_after = [], [], None, 0
        for line in proc.stdout:
            lines.append(line.rstrip())
            if " runs on node " in line:
                placed.append(line.split(" runs on node ")[1].split()[0])
            if len(placed) == 2 and removed is None:
                [removed] = [w for w in workers if w.node_id[:12] in placed][:1]
                cluster.remove_node(removed)
            if len(placed) == 3 and line.startswith("frames"):
                progress_after += 1
                if progress_after == 2:
                    proc.send_signal(signal.SIGINT)
        watchdog.cancel()
        log = "\n".join(lines)
        assert proc.wait() == 130, log
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        cluster.shutdown()
    assert "Connecting to existing Ray cluster" in log, "the learner must join the cluster, not start its own"
    assert len(placed) == 3, log
    assert set(placed) <= nodes and placed[0] != placed[1], f"actors must spread over nodes: {placed}"
    assert "actor 0 died" in log or "actor 1 died" in log, log
    assert placed[2] != removed.node_id[:12], "the replacement must run on a node that is still there"
    [run] = list(tmp_path.iterdir())
    checkpoint = load_checkpoint(run / "checkpoint.pt")
    metrics = read_metrics(run)
    assert metrics["actor_restarts"][-1] == 1 and checkpoint["counters"]["frames"] >= metrics["frames"][-1] > 0


@pytest.mark.parametrize("ignore_sigint_first", [False, True])
def test_sigterm_or_sigint_of_a_background_job_checkpoints_and_exits_130(tmp_path, ignore_sigint_first):
    """SIGTERM is what schedulers send; a shell's background job starts with SIGINT ignored."""
    import signal
    import subprocess
    import threading

    argv = [sys.executable, "-m", "training.cli", "train", "env=counter", "core.hidden_size=8", "agent.encoder_size=8",
            "actors.num_actors=0", "actors.envs_per_actor=2", "actors.unroll_length=5", "total_frames=1000000000",
            "log.interval_s=0.5", "checkpoint.interval_s=1000", "tensorboard=false", f"run_root={tmp_path}"]
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint_first else None
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=ignore)
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip())
        if line.startswith("frames") and sum(x.startswith("frames") for x in lines) == 2:
            proc.send_signal(signal.SIGINT if ignore_sigint_first else signal.SIGTERM)
    watchdog.cancel()
    assert proc.wait() == 130, "\n".join(lines)
    [run] = list(tmp_path.iterdir())
    assert load_checkpoint(run / "checkpoint.pt")["counters"]["frames"] > 0  # written on the way out


def test_retention_keeps_the_last_k_and_the_best_as_links_to_what_was_written(tmp_path):
    argv = ["train", "env=tmaze", "env.corridor_length=2", "core.hidden_size=8", "agent.encoder_size=8",
            "actors.num_actors=0", "actors.envs_per_actor=4", "actors.unroll_length=8", "total_frames=640",
            "log.interval_s=0", "checkpoint.interval_s=0", "checkpoint.keep_last=2", "tensorboard=false",
            f"run_root={tmp_path}"]
    assert cli.main(argv) == 0
    [run] = list(tmp_path.iterdir())
    names = sorted(p.name for p in run.glob("*.pt"))
    metrics = read_metrics(run)  # log and checkpoint after every update: one row per checkpoint
    frames = [int(f) for f in metrics["frames"]]
    assert names == sorted(["checkpoint.pt", "checkpoint-best.pt", *(f"checkpoint-{f:012d}.pt" for f in frames[-2:])])
    latest = load_checkpoint(run / "checkpoint.pt")
    assert latest["counters"]["frames"] == frames[-1] == 640
    assert (run / f"checkpoint-{frames[-1]:012d}.pt").samefile(run / "checkpoint.pt")
    older = load_checkpoint(run / f"checkpoint-{frames[-2]:012d}.pt")
    assert older["counters"]["frames"] == frames[-2], "an older kept checkpoint keeps its own content"
    best = load_checkpoint(run / "checkpoint-best.pt")
    returns = np.array(metrics["mean_return"])
    assert best["counters"]["best_return"] == pytest.approx(np.nanmax(returns), abs=1e-4)
    assert best["counters"]["frames"] == frames[int(np.nanargmax(returns))]
    assert not list(run.glob(".*tmp*")), "no temporary files left behind"


def test_a_failed_save_leaves_the_previous_checkpoint_and_no_debris(tmp_path):
    from training.run_dir import save_run_checkpoint

    good = {"model": {"w": torch.ones(2)}, "config": {}, "counters": {"frames": 10}}
    save_run_checkpoint(tmp_path, good, keep_last=1)
    with pytest.raises(Exception):
        save_run_checkpoint(tmp_path, {**good, "model": {"w": lambda: None}, "counters": {"frames": 20}}, keep_last=1)
    assert torch.equal(load_checkpoint(tmp_path / "checkpoint.pt")["model"]["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-000000000010.pt", "checkpoint.pt"]


def test_resume_with_other_sizes_is_one_line_and_leaves_the_run_untouched(tmp_path, capsys):
    argv = ["train", "env=counter", "core.hidden_size=8", "agent.encoder_size=8", "actors.num_actors=0",
            "actors.envs_per_actor=2", "actors.unroll_length=4", "total_frames=16", "tensorboard=false",
            f"run_root={tmp_path}"]
    assert cli.main(argv) == 0
    [run] = list(tmp_path.iterdir())
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert cli.main(["train", f"resume={run}", "core.hidden_size=16", "total_frames=32"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not fit the configured lstm agent" in err and "size mismatch" in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


class PickledCode:
    """A checkpoint payload that would run code on load (touch a file) if loading allowed pickled code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


# (argv, text the one-line error must contain). {run}: an existing run folder; {runs}: its run_root;
# {bad_run}: a run folder whose checkpoint.pt is truncated; {empty}: an empty folder; {files}: bad checkpoint files.
BAD_INPUT_TABLE = [
    # CLI and config values
    ("train env=counter total_frames=-5", "total_frames must be an integer >= 1 (got -5)"),
    ("train env=counter actors.num_actors=-1", "actors.num_actors must be an integer >= 0 (got -1)"),
    ("train env=counter actors.envs_per_actor=0", "actors.envs_per_actor must be an integer >= 1"),
    ("train env=counter actors.unroll_length=0", "actors.unroll_length must be an integer >= 1"),
    ("train env=counter learner.batch_unrolls=0", "learner.batch_unrolls must be an integer >= 1"),
    ("train env=counter actors.max_env_errors=0", "actors.max_env_errors must be an integer >= 1"),
    ("train env=counter checkpoint.keep_last=-1", "checkpoint.keep_last must be an integer >= 0"),
    ("train env=counter seed=abc", "seed must be an integer >= 0 (got 'abc')"),
    ("train env=counter actors.cpus_per_actor=0", "actors.cpus_per_actor must be a number > 0 (got 0)"),
    ("train env=counter learner.learning_rate=-1", "learner.learning_rate must be a number > 0 (got -1)"),
    ("train env=counter learner.learning_rate=abc", "learner.learning_rate must be a number > 0 (got 'abc')"),
    ("train env=counter learner.loss.discount=1.5", "learner.loss.discount must be a number in [0, 1] (got 1.5)"),
    ("train core=nope", "Could not find 'core/nope' Available: "),
    ("train env=counter device=tpu9", "device='tpu9' is not a torch device"),
    ("train env=counter backend=nope", "backend='nope' is not known"),
    ("train experiment=nope", "Could not find 'experiment/nope'"),
    ("train env=counter core=sam core.no_such_key=1", "(Key 'no_such_key' is not in struct); check the spelling"),
    # resume and checkpoints
    ("train resume={empty}", "does not exist"),
    ("train resume={run} core=sam", "resume continues the run's own core/env/agent"),
    ("train resume={run} actors.nope=3", "Key 'nope' is not in struct"),
    ("train resume={run} core.hidden_size=16", "checkpoint does not fit the configured lstm agent"),
    ("train resume={bad_run}", "is corrupt or not a memrl checkpoint"),
    ("eval checkpoint={files}/truncated.pt", "is corrupt or not a memrl checkpoint"),
    ("eval checkpoint={files}/pickled_code.pt", "Weights only load failed"),
    ("eval checkpoint={files}/other_core.pt", "does not fit its own config"),
    ("eval checkpoint={files}/plain_tensor.pt", "is not a memrl checkpoint (no model/config entries)"),
    ("eval checkpoint={run} episodes=0", "episodes=0 must be positive"),
    # envs
    ("train env=tmaze env.corridor_length=0", "corridor_length must be an integer >= 1 (got 0)"),
    ("train env=counter env.length=0", "length must be an integer >= 1 (got 0)"),
    ("train env=counter env.terminate=maybe", "terminate must be true or false (got 'maybe')"),
    ("train env=counter +env.colour=red", "unknown argument(s) ['colour'] for env 'memrl/counter'"),
    ("train env=dmlab", "the deepmind_lab module is not installed"),
    ("train env=counter env.name=MiniGrid-Nope-v0", "unknown env 'MiniGrid-Nope-v0'"),
    ("train env=counter env.name=memrl-test/TextObservation-v0 ~env.length ~env.terminate",
     "is not supported by the encoder; supported: Box"),  # an observation of free text
    # data loaders and other commands
    ("supervised task=babi", "task=babi needs its data: pass task.path="),
    ("supervised task=babi task.path=/no/such/folder", "task.path=/no/such/folder is not a folder"),
    ("supervised task=language task.path=/no/such/file.txt", "does not exist"),
    ("supervised task=speech task.path={empty}", "holds no .wav files"),
    ("supervised core=nope", "Could not find 'core/nope'"),
    ("plot run_dir={empty}", "is neither a run folder nor a folder of runs"),
]


@pytest.fixture(scope="module")
def bad_input_world(tmp_path_factory):
    import shutil

    root = tmp_path_factory.mktemp("bad_input")
    runs = root / "runs"
    argv = ["train", "env=counter", "core.hidden_size=8", "agent.encoder_size=8", "actors.num_actors=0",
            "actors.envs_per_actor=2", "actors.unroll_length=4", "total_frames=16", "tensorboard=false",
            f"run_root={runs}", "name=existing"]
    assert cli.main(argv) == 0
    [run] = list(runs.iterdir())
    bad_run = runs / "bad"
    shutil.copytree(run, bad_run)
    checkpoint = (run / "checkpoint.pt").read_bytes()
    (bad_run / "checkpoint.pt").write_bytes(checkpoint[: len(checkpoint) // 2])
    files, empty = root / "files", root / "empty"
    files.mkdir()
    empty.mkdir()
    (files / "truncated.pt").write_bytes(checkpoint[:300])
    torch.save({"model": PickledCode(root / "code_ran"), "config": {}}, files / "pickled_code.pt")
    other = torch.load(run / "checkpoint.pt", weights_only=True)
    other["config"]["core"] = {"name": "feedforward"}
    torch.save(other, files / "other_core.pt")
    torch.save(torch.ones(3), files / "plain_tensor.pt")
    return {"root": root, "runs": runs, "run": run, "bad_run": bad_run, "files": files, "empty": empty}


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("line, expected", BAD_INPUT_TABLE, ids=[line for line, _ in BAD_INPUT_TABLE])
def test_bad_input_table(line, expected, bad_input_world, capsys):
    world = bad_input_world
    argv = line.format(**{k: v for k, v in world.items()}).split()
    if argv[0] in ("train", "supervised") and not any(a.startswith("resume=") for a in argv):
        argv.append(f"run_root={world['runs']}")
    before = snapshot(world["root"])
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert expected in err, err
    assert snapshot(world["root"]) == before, "bad input must leave run folders (and every other file) untouched"
    assert not (world["root"] / "code_ran").exists(), "loading a checkpoint must never run pickled code"
    with capsys.disabled():  # the table in docs/results/reliability.md is this output
        print(f"\nBAD-INPUT\t{line}\t{err.replace(str(world['root']), '<tmp>')}")


def test_bench_soak_smoke_samples_learner_and_actor_memory(tmp_path):
    import json

    out, series = tmp_path / "soak.json", tmp_path / "series.json"
    argv = ["bench", "soak", "cores=[lstm]", "env=counter", "duration_s=12", "sample_interval_s=1", "warmup_s=0",
            "num_actors=1", "envs_per_actor=2", "unroll_length=5", "batch_unrolls=1", "overrides=['core.hidden_size=8','agent.encoder_size=8']",
            f"out={out}", f"series_out={series}"]
    assert cli.main(argv) == 0
    [row] = json.loads(out.read_text())
    samples = json.loads(series.read_text())
    assert row["core"] == "lstm" and row["samples"] >= 3 and row["frames"] > 0
    assert all(s["learner_rss_mib"] > 50 and s["actors_sampled"] == 1 and s["actors_rss_mib"] > 50 for s in samples)
    assert np.isfinite(row["learner_rss_slope_mib_per_min"]) and row["fps_last_over_first"] > 0
