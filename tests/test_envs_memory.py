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


def test_remembering_target_locations_scores_far_more_than_not():
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
    assert mean["oracle"] > 50, mean
    assert mean["mapping"] > 0.7 * mean["oracle"], mean
    assert mean["mapping"] > 2 * mean["memoryless"], mean
    assert mean["memoryless"] > mean["random"], mean
