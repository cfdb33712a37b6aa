"""Memory tasks: the grid Memory Maze's rules, the DeepMind Lab adapter (with a fake module), Memory Maze 3D."""
from __future__ import annotations

import collections

import numpy as np
import pytest

import envs
from envs.memory_maze import MOVES, TARGET_CHANNEL, WALL_CHANNEL, MemoryMazeEnv, generate_maze

# ---- grid Memory Maze: the maze ------------------------------------------------


def free_cells_reachable(walls: np.ndarray, start) -> set:
    seen, queue = {start}, collections.deque([start])
    while queue:
        row, column = queue.popleft()
        for d_row, d_column in MOVES:
            nxt = (row + d_row, column + d_column)
            if not walls[nxt] and nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


@pytest.mark.parametrize("size", [7, 9, 11, 13, 15])
def test_maze_is_walled_connected_and_has_rooms_for_every_target(size):
    rng = np.random.default_rng(size)
    for _ in range(20):
        walls, rooms = generate_maze(size, 6, 3, rng)
        assert walls.shape == (size + 2, size + 2)
        assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
        free = {tuple(cell) for cell in np.argwhere(~walls)}
        assert free_cells_reachable(walls, next(iter(free))) == free
        assert 3 <= len(rooms) <= 6
        for top, left, height, width in rooms:
            assert not walls[top : top + height, left : left + width].any()


def test_targets_sit_in_different_rooms_and_the_agent_on_a_free_cell():
    env = MemoryMazeEnv(size=11)
    for seed in range(30):
        env.reset(seed=seed)
        assert len(set(env.target_cells)) == env.num_targets == 4
        assert all(not env.walls[cell] for cell in env.target_cells)
        assert not env.walls[env.agent] and env.agent not in env.target_cells


@pytest.mark.parametrize(
    "kwargs, words",
    [({"size": 8}, ["size", "odd"]), ({"size": 5}, ["size", ">= 7"]), ({"num_targets": 1}, ["num_targets", ">= 2"]),
     ({"num_targets": 9}, ["num_targets", "<= 8"]), ({"max_rooms": 2}, ["max_rooms", ">= 3"]),
     ({"size": 7, "num_targets": 6}, ["6 rooms", "larger size"]), ({"view_size": 4}, ["view_size", "odd"]),
     ({"colours": 3}, ["colours", "num_targets"])],
)
def test_bad_arguments_give_one_line_errors(kwargs, words):
    with pytest.raises(ValueError) as error:
        envs.make("memrl/memory_maze", **kwargs)
    assert "\n" not in str(error.value) and all(w in str(error.value) for w in words), str(error.value)


@pytest.mark.parametrize("size, targets", [(9, 3), (11, 4), (13, 5), (15, 6)])
def test_default_target_count_follows_memory_maze(size, targets):
    env = envs.make("memrl/memory_maze", size=size)
    assert env.unwrapped.num_targets == targets
    assert env.observation_space.shape == (5, 5, 1 + 2 * targets)


# ---- grid Memory Maze: observation and rules ------------------------------------


def reference_observation(env: MemoryMazeEnv) -> np.ndarray:
    """Slow twin of the sliced window: one cell at a time from the readable state."""
    half, k = env.view_size // 2, env.num_targets
    observation = np.zeros((env.view_size, env.view_size, 1 + 2 * k), np.uint8)
    row, column = env.agent
    for i in range(env.view_size):
        for j in range(env.view_size):
            cell = (row + i - half, column + j - half)
            inside = 0 <= cell[0] < env.size + 2 and 0 <= cell[1] < env.size + 2
            if not inside or env.walls[cell]:
                observation[i, j, WALL_CHANNEL] = 1
            elif cell in env.target_cells:
                observation[i, j, TARGET_CHANNEL + env.target_cells.index(cell)] = 1
            observation[i, j, TARGET_CHANNEL + k + env.target] = 1
    return observation


@pytest.mark.parametrize("size, view_size", [(9, 5), (13, 3), (9, 9)])
def test_observation_matches_cell_by_cell_reference(size, view_size):
    env = MemoryMazeEnv(size=size, view_size=view_size, max_steps=300)
    observation, _ = env.reset(seed=2)
    rng = np.random.default_rng(2)
    targets_seen = set()
    for _ in range(env.max_steps):
        np.testing.assert_array_equal(observation, reference_observation(env))
        targets_seen.add(env.target)
        action = oracle_action(env) if rng.random() < 0.7 else int(rng.integers(4))
        observation, *_ = env.step(action)
    assert len(targets_seen) == env.num_targets  # every current-target plane was checked


def test_step_rules_walls_block_only_the_current_target_pays_and_the_next_differs():
    env = MemoryMazeEnv(size=9, max_steps=2000)
    env.reset(seed=5)
    rng = np.random.default_rng(5)
    rewards = 0.0
    for _ in range(env.max_steps):
        before, target = env.agent, env.target
        action = oracle_action(env) if rng.random() < 0.5 else int(rng.integers(4))
        _, reward, terminated, truncated, info = env.step(action)
        d_row, d_column = MOVES[action]
        aimed = (before[0] + d_row, before[1] + d_column)
        assert env.agent == (before if env.walls[aimed] else aimed)
        on_current = env.agent == env.target_cells[target]
        assert reward == (1.0 if on_current else 0.0)
        assert (env.target != target) == on_current  # a new target only after a reward, and never the same
        assert not terminated
        rewards += reward
    assert truncated and info == {"targets": env.targets_reached} and rewards == env.targets_reached > 50


def test_new_targets_are_uniform_over_the_others():
    env = MemoryMazeEnv(size=9, max_steps=8000)
    env.reset(seed=1)
    switches = collections.Counter()
    for _ in range(env.max_steps):
        target = env.target
        env.step(oracle_action(env))
        if env.target != target:
            switches[target, env.target] += 1
    assert set(switches) == {(a, b) for a in range(3) for b in range(3) if a != b}
    per_source = collections.defaultdict(list)
    for (a, _), n in switches.items():
        per_source[a].append(n)
    for counts in per_source.values():  # each source's two successors are equally likely
        assert abs(counts[0] - counts[1]) < 4 * np.sqrt(sum(counts)), switches


def test_episode_is_exactly_max_steps_and_truncated():
    env = envs.make("memrl/memory_maze", max_steps=37)
    env.reset(seed=0)
    ends = [env.step(0)[3] for _ in range(37)]
    assert ends == [False] * 36 + [True]


def test_render_shows_maze_targets_agent_and_target_colour_border():
    from envs.memory_maze import BORDER_PIXELS, TARGET_RGB, TILE_PIXELS

    env = envs.make("memrl/memory_maze", render_mode="rgb_array")
    env.reset(seed=3)
    image, core = env.render(), env.unwrapped
    side = (core.size + 2) * TILE_PIXELS + 2 * BORDER_PIXELS
    assert image.shape == (side, side, 3) and image.dtype == np.uint8
    assert (image[0] == TARGET_RGB[core.target]).all()  # the border is the current target's colour
    centre = lambda cell: image[BORDER_PIXELS + cell[0] * 8 + 4, BORDER_PIXELS + cell[1] * 8 + 4]  # noqa: E731
    assert centre(core.agent).tolist() == [255, 255, 255]
    for index, cell in enumerate(core.target_cells):
        assert centre(cell).tolist() == list(TARGET_RGB[index])


# ---- grid Memory Maze: scripted agents -------------------------------------------


def first_step(walls_or_free, start, goals) -> int | None:
    """First action of a shortest path from ``start`` to any cell in ``goals``; ``walls_or_free(cell)``
    is True where the agent may walk. None when no goal is reachable."""
    previous = {start: None}
    queue = collections.deque([start])
    while queue:
        cell = queue.popleft()
        if cell in goals and cell != start:
            while previous[cell][0] != start:
                cell = previous[cell][0]
            return previous[cell][1]
        for action, (d_row, d_column) in enumerate(MOVES):
            nxt = (cell[0] + d_row, cell[1] + d_column)
            if nxt not in previous and walls_or_free(nxt):
                previous[nxt] = (cell, action)
                queue.append(nxt)
    return None


def oracle_action(env: MemoryMazeEnv) -> int:
    """Walk the shortest path to the current target, reading the env's internal state."""
    action = first_step(lambda cell: not env.walls[cell], env.agent, {env.target_cells[env.target]})
    return 0 if action is None else action


class MappingAgent:
    """Remembers what its windows showed (walls, free cells, target colours) and plans on that map:
    to the current target if it has seen it, else to the nearest unseen cell. Uses observations only."""

    def __init__(self, env: MemoryMazeEnv, rng):
        self.env, self.rng, self.known, self.targets = env, rng, {}, {}

    def __call__(self, observation, position) -> int:
        k, half = self.env.num_targets, self.env.view_size // 2
        for i, j in np.ndindex(observation.shape[:2]):
            cell = (position[0] + i - half, position[1] + j - half)
            self.known[cell] = not observation[i, j, WALL_CHANNEL]
            for index in np.flatnonzero(observation[i, j, TARGET_CHANNEL : TARGET_CHANNEL + k]):
                self.targets[int(index)] = cell
        current = int(np.argmax(observation[0, 0, TARGET_CHANNEL + k :]))
        walkable = lambda cell: self.known.get(cell, True)  # noqa: E731  (unseen cells may be free)
        goals = {self.targets[current]} if current in self.targets else {
            (r, c) for r in range(self.env.size + 2) for c in range(self.env.size + 2) if (r, c) not in self.known
        }
        action = first_step(walkable, position, goals)
        return int(self.rng.integers(4)) if action is None else action


def memoryless_action(observation, rng, num_targets) -> int:
    """Walk to the current target when the window shows it, else a random move: no memory at all."""
    half = observation.shape[0] // 2
    current = int(np.argmax(observation[0, 0, TARGET_CHANNEL + num_targets :]))
    seen = np.argwhere(observation[..., TARGET_CHANNEL + current])
    if len(seen):
        free = lambda cell: 0 <= min(cell) and max(cell) < observation.shape[0] and not observation[cell + (0,)]  # noqa: E731
        action = first_step(free, (half, half), {tuple(seen[0])})
        if action is not None:
            return action
    return int(rng.integers(4))


def episode_return(env: MemoryMazeEnv, policy, seed: int) -> float:
    observation, _ = env.reset(seed=seed)
    total = 0.0
    for _ in range(env.max_steps):
        observation, reward, _, truncated, _ = env.step(policy(observation))
        total += reward
    assert truncated
    return total


@pytest.mark.learning
def test_remembering_target_locations_scores_far_more_than_not(margin):
    """Oracle (internal state) > mapping agent (memory of its views) >> memoryless > random."""
    env = MemoryMazeEnv(size=9, max_steps=500)
    rng = np.random.default_rng(0)
    seeds = range(4)
    returns = {"oracle": [], "mapping": [], "memoryless": [], "random": []}
    for seed in seeds:
        returns["oracle"].append(episode_return(env, lambda o: oracle_action(env), seed))
        mapper = MappingAgent(env, rng)
        returns["mapping"].append(episode_return(env, lambda o: mapper(o, env.agent), seed))
        returns["memoryless"].append(episode_return(env, lambda o: memoryless_action(o, rng, 3), seed))
        returns["random"].append(episode_return(env, lambda o: int(rng.integers(4)), seed))
    mean = {name: float(np.mean(values)) for name, values in returns.items()}
    print(f"returns per episode, seeds 0-3: {returns}")  # shown with pytest -s (docs/results/envs.md)
    margin("oracle return", mean["oracle"], above=50)
    margin("mapping / oracle return", mean["mapping"] / mean["oracle"], above=0.7)
    margin("mapping / memoryless return", mean["mapping"] / mean["memoryless"], above=2)
    margin("memoryless - random return", mean["memoryless"] - mean["random"], above=0)


# ---- DeepMind Lab adapter, against a FAKE deepmind_lab module --------------------
#
# deepmind_lab cannot be installed here (it is built from source with Bazel), so these tests
# inject a stand-in module. FakeLab is NOT DeepMind Lab: it only mimics the calls the adapter
# makes (Lab(level, observations, config, renderer), reset(seed), step(action, num_steps),
# is_running(), observations(), action_spec(), close()) with numbers chosen so that every
# translation is checkable: frame f of an episode shows the value f and pays reward f.

DMLAB_ACTION_NAMES = (  # DMLab's action components, in its order
    "LOOK_LEFT_RIGHT_PIXELS_PER_FRAME", "LOOK_DOWN_UP_PIXELS_PER_FRAME", "STRAFE_LEFT_RIGHT",
    "MOVE_BACK_FORWARD", "FIRE", "JUMP", "CROUCH",
)


class FakeLab:
    """FAKE stand-in for ``deepmind_lab.Lab`` (see above): records calls, ends after ``episode_frames``."""

    episode_frames = 10

    def __init__(self, level, observations, config=None, renderer="software"):
        if level.startswith("no/such"):  # DMLab's failure for an unknown level: a RuntimeError over several lines
            raise RuntimeError(f"Failed to open environment: [string \"{level}\"]:1: module '{level}' not found:\n"
                               "\tno field package.preload['no/such']\n\tstack traceback:\n\t[C]: in function 'require'")
        self.level, self.observation_names, self.config, self.renderer = level, observations, config, renderer
        self.seeds, self.actions, self.frame, self.running, self.closed = [], [], 0, False, False

    def action_spec(self):
        return [{"name": name, "min": -512, "max": 512} for name in DMLAB_ACTION_NAMES]

    def reset(self, episode=-1, seed=None):
        self.seeds.append(seed)
        self.frame, self.running = 0, True

    def step(self, action, num_steps=1):
        assert action.dtype == np.intc and action.shape == (7,)
        total = 0.0
        for _ in range(num_steps):
            if not self.running:
                break
            self.actions.append(action.copy())
            self.frame += 1
            total += self.frame
            self.running = self.frame < self.episode_frames
        return total

    def is_running(self):
        return self.running

    def observations(self):
        if not self.running:
            raise RuntimeError("FakeLab: no observations once the episode has ended (as in DMLab)")
        height, width = int(self.config["height"]), int(self.config["width"])
        return {"RGB_INTERLEAVED": np.full((height, width, 3), self.frame, dtype=np.uint8)}

    def close(self):
        self.closed = True


@pytest.fixture
def fake_deepmind_lab(monkeypatch):
    import sys
    import types

    fake = types.ModuleType("deepmind_lab")
    fake.__doc__ = "FAKE deepmind_lab for tests (not DeepMind Lab)"
    fake.Lab = FakeLab
    monkeypatch.setitem(sys.modules, "deepmind_lab", fake)
    monkeypatch.setattr(FakeLab, "episode_frames", 10)  # tests may change it; undone after each
    return fake


def test_dmlab_missing_module_gives_one_line_build_steps(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "deepmind_lab", None)  # makes `import deepmind_lab` fail
    with pytest.raises(ValueError) as error:
        envs.make("memrl/dmlab")
    message = str(error.value)
    assert "\n" not in message
    assert all(word in message for word in ("deepmind_lab", "bazel build", "build_pip_package", "pip install"))


def test_dmlab_unknown_level_is_one_line(fake_deepmind_lab):
    with pytest.raises(ValueError) as error:
        envs.make("memrl/dmlab", level="no/such/level")
    message = str(error.value)
    assert "\n" not in message and "'no/such/level'" in message and "game_scripts/levels" in message


def test_dmlab_builds_the_level_with_impala_settings(fake_deepmind_lab):
    env = envs.make("memrl/dmlab", level="contributed/dmlab30/rooms_watermaze", level_config={"datasetPath": "/d"})
    lab = env.unwrapped._lab
    assert lab.level == "contributed/dmlab30/rooms_watermaze" and lab.observation_names == ["RGB_INTERLEAVED"]
    assert lab.config == {"width": "96", "height": "72", "logLevel": "WARN", "datasetPath": "/d"}
    assert lab.renderer == "software"
    assert env.observation_space.shape == (72, 96, 3) and env.observation_space.dtype == np.uint8
    assert env.action_space.n == 9


# IMPALA's nine actions by name, as DMLab components (all others zero).
IMPALA_ACTIONS = [
    {"MOVE_BACK_FORWARD": 1},
    {"MOVE_BACK_FORWARD": -1},
    {"STRAFE_LEFT_RIGHT": -1},
    {"STRAFE_LEFT_RIGHT": 1},
    {"LOOK_LEFT_RIGHT_PIXELS_PER_FRAME": -20},
    {"LOOK_LEFT_RIGHT_PIXELS_PER_FRAME": 20},
    {"LOOK_LEFT_RIGHT_PIXELS_PER_FRAME": -20, "MOVE_BACK_FORWARD": 1},
    {"LOOK_LEFT_RIGHT_PIXELS_PER_FRAME": 20, "MOVE_BACK_FORWARD": 1},
    {"FIRE": 1},
]


@pytest.mark.parametrize("action", range(9))
def test_dmlab_action_is_held_for_four_frames_as_impala_components(fake_deepmind_lab, action):
    FakeLab.episode_frames = 100
    env = envs.make("memrl/dmlab")
    env.reset(seed=0)
    lab = env.unwrapped._lab
    env.step(np.int64(action))  # actions arrive from the actor as numpy ints
    expected = [IMPALA_ACTIONS[action].get(name, 0) for name in DMLAB_ACTION_NAMES]
    assert [a.tolist() for a in lab.actions] == [expected] * 4


@pytest.mark.parametrize("terminal, ends", [(False, (False, True)), (True, (True, False))])
def test_dmlab_rewards_sum_over_repeats_frames_convert_and_the_level_end_ends_the_episode(
    fake_deepmind_lab, terminal, ends
):
    FakeLab.episode_frames = 10  # 4 + 4 + 2 frames
    env = envs.make("memrl/dmlab", height=6, width=8, terminal_on_level_end=terminal, render_mode="rgb_array")
    observation, _ = env.reset(seed=1)
    assert observation.shape == (6, 8, 3) and observation.dtype == np.uint8 and (observation == 0).all()
    steps = [env.step(0) for _ in range(3)]
    assert [reward for _, reward, *_ in steps] == [1 + 2 + 3 + 4, 5 + 6 + 7 + 8, 9 + 10]
    assert [(o == v).all() for (o, *_), v in zip(steps, (4, 8, 8))] == [True] * 3  # the last frame seen at the end
    assert [(s[2], s[3]) for s in steps] == [(False, False), (False, False), ends]
    assert all(env.observation_space.contains(o) for o, *_ in steps)
    assert (env.render() == 8).all()
    env.reset()
    assert env.unwrapped._lab.frame == 0  # a new DMLab episode
    env.close()
    assert env.unwrapped._lab.closed


def test_dmlab_seeds_fix_the_episode_seeds(fake_deepmind_lab):
    def seeds(seed):
        env = envs.make("memrl/dmlab")
        env.reset(seed=seed)
        env.reset()
        return env.unwrapped._lab.seeds

    assert seeds(3) == seeds(3)
    assert seeds(3) != seeds(4)
    first, second = seeds(3)
    assert first != second and all(0 <= s < 2**31 for s in (first, second))


def test_dmlab_passes_the_gymnasium_checker(fake_deepmind_lab):
    import warnings

    from gymnasium.utils.env_checker import check_env

    FakeLab.episode_frames = 100
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(envs.make("memrl/dmlab", height=8, width=8).unwrapped)
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize(
    "kwargs, words",
    [({"renderer": "gpu"}, ["renderer", "software"]), ({"action_repeat": 0}, ["action_repeat", ">= 1"]),
     ({"height": 0}, ["height", ">= 1"]), ({"fps": 30}, ["fps", "level_config"])],
)
def test_dmlab_bad_arguments_give_one_line_errors(fake_deepmind_lab, kwargs, words):
    with pytest.raises(ValueError) as error:
        envs.make("memrl/dmlab", **kwargs)
    assert "\n" not in str(error.value) and all(word in str(error.value) for word in words), str(error.value)


# ---- Memory Maze 3D (needs the memory_maze extra) ---------------------------------


def test_memory_maze_3d_size_errors_are_one_line(monkeypatch):
    from envs.memory_maze_3d import size_name

    assert size_name(9) == size_name("9") == size_name("9x9") == "9x9"
    with pytest.raises(ValueError, match="9x9, 11x11, 13x13, 15x15"):
        size_name("10x10")


def test_memory_maze_3d_missing_package_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "memory_maze.tasks", None)
    with pytest.raises(ValueError) as error:
        envs.make("memrl/memory_maze_3d")
    assert "\n" not in str(error.value) and "pip install -e '.[memory_maze]'" in str(error.value)


@pytest.mark.slow  # ~10 s of CPU (MuJoCo import, a maze build, software rendering); minutes on a loaded box
def test_memory_maze_3d_steps_headless():
    """Smoke test of the real package: renders (EGL, software) and steps; skipped without the extra."""
    pytest.importorskip("memory_maze", reason="pip install -e '.[memory_maze]'")
    env = envs.make("memrl/memory_maze_3d", size="9x9")
    observation, _ = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    assert observation.std() > 0  # a rendered image, not a blank frame
    frames = [observation]
    for action in (1, 1, 2, 2, 1):
        observation, reward, terminated, truncated, _ = env.step(action)
        assert (reward, terminated, truncated) in ((0.0, False, False), (1.0, False, False))
        frames.append(observation)
    assert not np.array_equal(frames[0], frames[-1])  # moving and turning changes the view
    env.close()
