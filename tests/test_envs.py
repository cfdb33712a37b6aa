"""envs: the registry, select_nonmatching_object's rules, the T-maze, the counter, MiniGrid."""
from __future__ import annotations

import collections
import inspect
import math
import pathlib
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from omegaconf import OmegaConf

import envs
from envs.minigrid_adapter import MiniGridImageDirection
from envs.select_nonmatching_object import (
    MOVES,
    OBJECT_CHANNEL,
    PAD_CHANNEL,
    WALL_CHANNEL,
    SelectNonmatchingObjectEnv,
)

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs" / "env"
SNM = "memrl/select_nonmatching_object"


# ---- registry ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(envs.MEMRL_IDS))
def test_check_env_passes_without_warnings(name):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(envs.make(name).unwrapped)
    assert [str(w.message) for w in caught] == []


def test_unknown_id_error_names_id_lists_memrl_ids_and_mentions_gymnasium():
    with pytest.raises(ValueError) as error:
        envs.make("memrl/no_such_env")
    message = str(error.value)
    assert "\n" not in message
    assert "'memrl/no_such_env'" in message
    assert all(env_id in message for env_id in envs.MEMRL_IDS)
    assert "gymnasium" in message


@pytest.mark.parametrize(
    "name, kwargs, words",
    [
        (SNM, {"room_size": 0}, ["room_size", ">= 2"]),
        (SNM, {"num_objects": 1}, ["num_objects", ">= 2"]),
        (SNM, {"view_size": 4}, ["view_size", "odd"]),
        (SNM, {"max_steps": 0}, ["max_steps", ">= 1"]),
        (SNM, {"rooms": 3}, ["rooms", "room_size"]),  # unknown kwarg lists the valid ones
        ("memrl/tmaze", {"corridor_length": 0}, ["corridor_length", ">= 1"]),
        ("memrl/counter", {"length": -1}, ["length", ">= 1"]),
        ("CartPole-v1", {"colour": "red"}, ["colour", "CartPole-v1"]),
    ],
)
def test_bad_kwargs_give_one_line_value_error(name, kwargs, words):
    with pytest.raises(ValueError) as error:
        envs.make(name, **kwargs)
    message = str(error.value)
    assert "\n" not in message
    assert all(word in message for word in words), message


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_env_config_builds_and_steps(path):
    cfg = OmegaConf.load(path)
    if cfg.name in envs.OPTIONAL_MODULES:  # adapters: stepped in tests/test_envs_memory.py when installed
        pytest.skip(f"{cfg.name} needs the optional {envs.OPTIONAL_MODULES[cfg.name]} package")
    env = envs.make_from_config(cfg)
    observation, _ = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    observation, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(observation)


@pytest.mark.parametrize(
    "config, env_class",
    [
        ("select_nonmatching_object", "envs.select_nonmatching_object:SelectNonmatchingObjectEnv"),
        ("tmaze", "envs.tmaze:PassiveTMazeEnv"),
        ("counter", "envs.counter:CounterEnv"),
        ("memory_maze", "envs.memory_maze:MemoryMazeEnv"),
    ],
)
def test_memrl_configs_list_every_kwarg_with_its_default(config, env_class):
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / f"{config}.yaml"))
    assert envs.MEMRL_IDS[cfg.pop("name")] == env_class
    module, name = env_class.split(":")
    parameters = inspect.signature(getattr(__import__(module, fromlist=[name]), name)).parameters
    defaults = {key: p.default for key, p in parameters.items() if key != "render_mode"}
    assert cfg == defaults


def test_minigrid_wrapper_gives_image_and_direction_only():
    env = envs.make("MiniGrid-MemoryS7-v0")
    assert set(env.observation_space.spaces) == {"image", "direction"}
    assert env.observation_space["image"].shape == (7, 7, 3)
    assert env.observation_space["image"].dtype == np.uint8
    assert env.observation_space["direction"].n == 4
    observation, _ = env.reset(seed=3)
    assert set(observation) == {"image", "direction"}
    assert env.observation_space.contains(observation)
    # Turning left changes the direction by -1 (mod 4): the wrapper passes it through.
    turned, *_ = env.step(0)
    assert turned["direction"] == (observation["direction"] - 1) % 4


class EndsAsScripted(gymnasium.Env):
    """A MiniGrid-shaped env whose steps return the (reward, terminated, truncated) given to it."""

    observation_space = spaces.Dict({"image": spaces.Box(0, 255, (7, 7, 3), np.uint8), "direction": spaces.Discrete(4),
                                     "mission": spaces.Text(8)})
    action_space = spaces.Discrete(3)

    def __init__(self, steps):
        self.steps = iter(steps)

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return (self.observation_space.sample(), *next(self.steps), {})


def test_minigrid_wrapper_reports_success_at_the_end_of_an_episode_only():
    steps = [(0.0, False, False), (0.8, True, False), (0.0, True, False), (0.0, False, True)]
    env = MiniGridImageDirection(EndsAsScripted(steps))
    env.reset()
    infos = [env.step(0)[-1] for _ in steps]
    assert [info.get("success") for info in infos] == [None, 1.0, 0.0, 0.0]  # goal, wrong object, time limit
    real = envs.make("MiniGrid-MemoryS7-v0")
    real.reset(seed=0)
    rng = np.random.default_rng(0)
    while True:  # a random walk ends at an object or the time limit
        _, reward, terminated, truncated, info = real.step(int(rng.integers(3)))
        if terminated or truncated:
            break
        assert "success" not in info
    assert info["success"] == float(terminated and reward > 0)


# ---- select_nonmatching_object -------------------------------------------------


def path_to(env: SelectNonmatchingObjectEnv, goal, avoid) -> list[int]:
    """Breadth-first shortest list of actions from the agent to ``goal`` avoiding the cell ``avoid``."""
    start, size = env.agent, env.room_size
    previous = {start: None}
    queue = collections.deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            break
        for action, (d_row, d_column) in enumerate(MOVES):
            nxt = (cell[0] + d_row, cell[1] + d_column)
            if 0 <= nxt[0] < size and 0 <= nxt[1] < size and nxt != avoid and nxt not in previous:
                previous[nxt] = (cell, action)
                queue.append(nxt)
    actions, cell = [], goal
    while previous[cell] is not None:
        cell, action = previous[cell]
        actions.append(action)
    return actions[::-1]


def scripted_action(env: SelectNonmatchingObjectEnv, choose: str) -> int:
    """Next action to the pad (room 1), then to the ``choose`` object ("matching" or "nonmatching")."""
    if env.room == 1:
        return path_to(env, env.cell_of("pad"), env.cell_of("display"))[0]
    other = "matching" if choose == "nonmatching" else "nonmatching"
    return path_to(env, env.cell_of(choose), env.cell_of(other))[0]


def run_episode(env: SelectNonmatchingObjectEnv, policy, seed: int):
    """Rewards summed per completed trial, and the last step's info."""
    env.reset(seed=seed)
    trial_returns, running = [], 0.0
    for step in range(env.max_steps):
        _, reward, terminated, truncated, info = env.step(policy(env))
        assert not terminated
        assert truncated == (step == env.max_steps - 1)
        running += reward
        if abs(reward) == 10.0:
            trial_returns.append(running)
            running = 0.0
    return trial_returns, info


@pytest.mark.parametrize("choose, per_trial, success", [("nonmatching", 11.0, 1.0), ("matching", -9.0, 0.0)])
def test_scripted_agents_earn_the_trial_rewards(choose, per_trial, success):
    env = SelectNonmatchingObjectEnv()
    for seed in range(5):
        trial_returns, info = run_episode(env, lambda e: scripted_action(e, choose), seed)
        assert len(trial_returns) >= 10  # a 3x3 room takes at most 4 moves per room
        assert trial_returns == [per_trial] * len(trial_returns)
        assert info["trials"] == len(trial_returns)
        assert info["success"] == success


def test_no_completed_trial_gives_nan_success():
    env = SelectNonmatchingObjectEnv(max_steps=1)
    env.reset(seed=0)
    # One step cannot finish a trial (the pad and room 2 take at least two).
    *_, truncated, info = env.step(0)
    assert truncated and info["trials"] == 0 and math.isnan(info["success"])


@pytest.mark.learning
def test_random_agent_and_room_2_only_agent_succeed_half_the_time(margin):
    """Nothing in room 2 tells which object to pick; only memory of room 1 does."""
    env = SelectNonmatchingObjectEnv()
    rng = np.random.default_rng(0)
    random_actions = iter(rng.integers(0, 4, size=600 * env.max_steps).tolist())

    def lower_type_in_room_2(e):  # sees room 2 perfectly but has no memory of room 1
        if e.room == 1:
            return scripted_action(e, "nonmatching")
        lower_is_matching = e.matching_object < e.nonmatching_object
        return scripted_action(e, "matching" if lower_is_matching else "nonmatching")

    for policy, episodes in ((lambda e: next(random_actions), 600), (lower_type_in_room_2, 60)):
        trials = choices = 0
        for seed in range(episodes):
            _, info = run_episode(env, policy, seed)
            trials += info["trials"]
            choices += info["success"] * info["trials"] if info["trials"] else 0
        assert trials > 800
        margin("|success rate - 0.5|", abs(choices / trials - 0.5), below=0.05)


def test_trial_draws_are_uniform_and_rooms_independent():
    """A uniform, B uniform over the others, cells uniform, room 2's layout unrelated to room 1's."""
    env = SelectNonmatchingObjectEnv()
    pairs, display_cells, same_cell = collections.Counter(), collections.Counter(), 0
    draws = 3000
    for seed in range(draws):
        env.reset(seed=seed)
        pairs[env.matching_object, env.nonmatching_object] += 1
        display_cells[env.cell_of("display")] += 1
        same_cell += env.cell_of("matching") == env.cell_of("display")
        assert len({env.cell_of("display"), env.cell_of("pad"), env.agent}) == 3
    assert set(pairs) == {(a, b) for a in range(4) for b in range(4) if a != b}
    assert all(abs(n - draws / 12) < 75 for n in pairs.values()), pairs  # ~5 standard deviations
    assert all(abs(n - draws / 9) < 85 for n in display_cells.values()), display_cells
    assert abs(same_cell - draws / 9) < 85


def reference_observation(env: SelectNonmatchingObjectEnv) -> np.ndarray:
    """Slow twin of the sliced window: one cell at a time from the env's readable state."""
    half, size = env.view_size // 2, env.room_size
    objects = (
        {env.cell_of("display"): env.matching_object}
        if env.room == 1
        else {env.cell_of("matching"): env.matching_object, env.cell_of("nonmatching"): env.nonmatching_object}
    )
    observation = np.zeros((env.view_size, env.view_size, OBJECT_CHANNEL + env.num_objects), np.uint8)
    row, column = env.agent
    for i in range(env.view_size):
        for j in range(env.view_size):
            cell = (row + i - half, column + j - half)
            if not (0 <= cell[0] < size and 0 <= cell[1] < size):
                observation[i, j, WALL_CHANNEL] = 1
            elif cell in objects:
                observation[i, j, OBJECT_CHANNEL + objects[cell]] = 1
            elif env.room == 1 and cell == env.cell_of("pad"):
                observation[i, j, PAD_CHANNEL] = 1
    return observation


@pytest.mark.parametrize("room_size, view_size, num_objects", [(3, 5, 4), (4, 3, 3), (2, 7, 6)])
def test_observation_matches_cell_by_cell_reference(room_size, view_size, num_objects):
    env = SelectNonmatchingObjectEnv(room_size=room_size, view_size=view_size, num_objects=num_objects, max_steps=400)
    observation, _ = env.reset(seed=1)
    rng = np.random.default_rng(1)
    rooms_seen = set()
    for _ in range(env.max_steps):
        np.testing.assert_array_equal(observation, reference_observation(env))
        rooms_seen.add(env.room)
        # Mostly scripted, sometimes random, so walls, the display and both rooms are all visited.
        action = int(rng.integers(4)) if rng.random() < 0.5 else scripted_action(env, "nonmatching")
        observation, *_ = env.step(action)
    assert rooms_seen == {1, 2}


def test_default_view_shows_the_whole_current_room_and_only_it():
    env = SelectNonmatchingObjectEnv()
    observation, _ = env.reset(seed=4)
    for _ in range(300):
        objects = observation[..., OBJECT_CHANNEL:].sum(axis=(0, 1))
        assert (observation[..., WALL_CHANNEL] == 0).sum() == 9  # every interior cell, wherever the agent is
        if env.room == 1:  # the display (object A) and the pad
            assert objects.tolist() == [int(k == env.matching_object) for k in range(env.num_objects)]
            assert observation[..., PAD_CHANNEL].sum() == 1
        else:  # A and B, no pad
            expected = [int(k in (env.matching_object, env.nonmatching_object)) for k in range(env.num_objects)]
            assert objects.tolist() == expected
            assert observation[..., PAD_CHANNEL].sum() == 0
        observation, *_ = env.step(scripted_action(env, "nonmatching"))


def test_walls_and_display_block_moves_but_the_step_counts():
    env = SelectNonmatchingObjectEnv(max_steps=2)
    for seed in range(20):
        env.reset(seed=seed)
        row, column = env.agent
        display = env.cell_of("display")
        blocked = [
            action
            for action, (d_row, d_column) in enumerate(MOVES)
            if not (0 <= row + d_row < 3 and 0 <= column + d_column < 3) or (row + d_row, column + d_column) == display
        ]
        if not blocked:
            continue
        _, reward, _, truncated, _ = env.step(blocked[0])
        assert (env.room, env.agent, reward, truncated) == (1, (row, column), 0.0, False)
        *_, truncated, _ = env.step(blocked[0])
        assert truncated


@pytest.mark.learning
def test_room_1_time_limit_closes_the_stalling_channel_of_a_memoryless_agent(margin):
    """A memoryless agent that prefers object 0 and stalls in room 1 when it shows object 0 (a trial
    it would lose) completes mostly trials it wins; with the time limit every trial reaches room 2."""
    def stall_or_choose_object_0(e):
        if e.room == 1:
            if e.matching_object == 0:  # visible in room 1: the display
                return next(a for a in range(4) if e._next_cell[e._cell][a] == e._cell)  # bump a wall or the display
            return scripted_action(e, "nonmatching")
        return scripted_action(e, "matching" if e.matching_object == 0 else "nonmatching")  # room 2: object 0

    rates = {}
    for limit in (None, 4):
        env = SelectNonmatchingObjectEnv(room_size=2, num_objects=2, room_1_time_limit=limit)
        trials = wins = 0
        for seed in range(100):
            _, info = run_episode(env, stall_or_choose_object_0, seed)
            trials += info["trials"]
            wins += info["success"] * info["trials"] if info["trials"] else 0
        rates[limit] = wins / trials
    margin("success rate without the time limit", rates[None], above=0.9)  # the channel: only winning trials get completed
    margin("|success rate with the limit - 0.5|", abs(rates[4] - 0.5), below=0.05)


def test_room_1_time_limit_moves_the_agent_without_the_pad_reward():
    env = SelectNonmatchingObjectEnv(room_size=2, room_1_time_limit=3)
    env.reset(seed=0)
    stay = next(a for a in range(4) if env._next_cell[env._cell][a] == env._cell)
    steps = [env.step(stay)[1:3] + (env.room,) for _ in range(3)]
    assert steps == [(0.0, False, 1), (0.0, False, 1), (0.0, False, 2)]


def test_pad_gives_one_and_teleports_to_room_2():
    env = SelectNonmatchingObjectEnv()
    env.reset(seed=7)
    rewards = []
    while env.room == 1:
        rewards.append(env.step(scripted_action(env, "nonmatching"))[1])
    assert rewards[:-1] == [0.0] * (len(rewards) - 1) and rewards[-1] == 1.0
    assert env.agent not in (env.cell_of("matching"), env.cell_of("nonmatching"))


@pytest.mark.parametrize("name", sorted(envs.MEMRL_IDS))
def test_same_seed_same_episode(name):
    def record(seed):
        env = envs.make(name)
        actions = np.random.default_rng(5).integers(0, env.action_space.n, size=250).tolist()
        trace = [env.reset(seed=seed)[0]]
        for action in actions:
            observation, reward, terminated, truncated, _ = env.step(action)
            trace += [observation, reward, terminated, truncated]
            if terminated or truncated:
                trace.append(env.reset()[0])  # unseeded resets continue the seeded stream
        return trace

    first, again, other = record(11), record(11), record(12)
    same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))  # noqa: E731
    assert same(first, again)
    if name != "memrl/counter":  # the counter has no randomness
        assert not same(first, other)


@pytest.mark.parametrize("room_size, view_size", [(3, 5), (4, 1)])
def test_render_draws_both_rooms_objects_and_agent(room_size, view_size):
    env = envs.make(SNM, render_mode="rgb_array", room_size=room_size, view_size=view_size)
    env.reset(seed=2)
    image = env.render()
    assert image.dtype == np.uint8 and image.shape == ((room_size + 2) * 8, (2 * room_size + 5) * 8, 3)
    core = env.unwrapped
    white = np.argwhere((image == 255).all(axis=-1))
    row, column = core.agent
    assert set(map(tuple, white // 8)) == {(row + 1, column + 1)}  # the agent, in room 1
    # Room 1 shows A once; room 2 shows A and B: three object tiles, A's colour twice.
    from envs.select_nonmatching_object import object_colours

    colours = object_colours(core.num_objects)
    count = lambda rgb: int((image[4::8, 4::8] == rgb).all(axis=-1).sum())  # noqa: E731  (tile centres)
    assert count(colours[core.matching_object]) == 2 and count(colours[core.nonmatching_object]) == 1
    with pytest.warns(UserWarning, match="render_mode"):
        assert envs.make(SNM).unwrapped.render() is None  # no render_mode: nothing drawn


# ---- T-maze and counter --------------------------------------------------------


@pytest.mark.parametrize("correct", [True, False])
def test_tmaze_cue_corridor_choice(correct):
    env = envs.make("memrl/tmaze", corridor_length=6).unwrapped
    for seed in range(6):
        observation, _ = env.reset(seed=seed)
        cue = env.cue
        assert observation.tolist() == [float(cue == 0), float(cue == 1), 1.0, 0.0]
        for step in range(1, 7):  # passive: the action (here always 1) is ignored
            observation, reward, terminated, truncated, info = env.step(1)
            expected = [0.0, 0.0, 1.0, 0.0] if step < 6 else [0.0, 0.0, 0.0, 1.0]
            assert (observation.tolist(), reward, terminated, truncated, info) == (expected, 0.0, False, False, {})
        choice = cue if correct else 1 - cue
        _, reward, terminated, truncated, info = env.step(choice)
        assert (reward, terminated, truncated) == ((1.0 if correct else -1.0), True, False)
        assert info["success"] == float(correct)


@pytest.mark.learning
def test_tmaze_random_policy_succeeds_half_the_time(margin):
    env = envs.make("memrl/tmaze", corridor_length=3)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    successes = []
    for _ in range(1000):
        terminated = False
        while not terminated:
            _, _, terminated, _, info = env.step(int(rng.integers(2)))
        successes.append(info["success"])
        env.reset()
    margin("|success rate - 0.5|", abs(np.mean(successes) - 0.5), below=0.05)


@pytest.mark.parametrize("terminate", [False, True])
def test_counter_counts_and_ends_after_length(terminate):
    env = envs.make("memrl/counter", length=4, terminate=terminate)
    for _ in range(2):
        observation, _ = env.reset()
        assert observation.dtype == np.float32 and observation.tolist() == [0.0]
        for count in range(1, 5):
            observation, reward, terminated, truncated, _ = env.step(count % 2)
            done = count == 4
            assert (observation.tolist(), reward) == ([float(count)], 1.0)
            assert (terminated, truncated) == ((done, False) if terminate else (False, done))
