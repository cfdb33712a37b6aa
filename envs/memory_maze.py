"""``memrl/memory_maze``: the Memory Maze rules on a grid, fast enough for a CPU.

Rules (Memory Maze, Pasukonis et al. 2022, re-created in numpy; the 3D
original is ``memrl/memory_maze_3d``):

- A random maze of ``size`` x ``size`` interior cells (odd, 9 to 15 as in
  Memory Maze; any odd size >= 7 works) inside an outer wall: a spanning-tree
  maze over the odd cells with up to ``max_rooms`` open rooms (3 or 5 cells a
  side) carved into it. A new maze every episode.
- ``num_targets`` K coloured targets (default (size - 3) / 2, Memory Maze's
  3, 4, 5, 6 for sizes 9, 11, 13, 15), one per room in K different rooms. The
  agent spawns on a random free cell.
- One target is the current one, drawn uniformly. Stepping onto it gives +1 and
  draws a new current target uniformly from the *other* K - 1 (Memory Maze
  skips the target the agent is touching). Other targets are walkable and give
  nothing. Targets never move within an episode, so an agent that remembers
  where each colour is walks straight there; one that does not must search.
- Actions: Discrete(4) = up, down, left, right (moves on the grid; a move into
  a wall is a no-op that still costs the step).
- Observation: uint8 [view_size, view_size, 1 + 2K], the egocentric window
  centred on the agent (north up; walls do not occlude). Channels: wall, then
  K one-hot target colours, then K constant planes one-hot in the current
  target's colour (Memory Maze draws it as a coloured border of the image).
  Cells outside the maze read as wall.
- Episodes last exactly ``max_steps`` steps and end with ``truncated=True``.
  The last step's ``info`` holds ``targets`` (targets reached this episode).

Readable state for scripted agents and tests: ``walls`` (bool [size + 2,
size + 2], outer wall included), ``agent`` and ``target_cells`` (row, column in
that grid), ``target`` (index of the current target), ``targets_reached``.
"""
from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from .validation import check_int

# Actions, as (row, column) moves.
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right

WALL_CHANNEL = 0
TARGET_CHANNEL = 1  # target k's colour is channel TARGET_CHANNEL + k; the current-target planes follow

REWARD_TARGET = 1.0
ROOM_SIDES = (3, 5)  # room side lengths in cells (odd, so rooms align with the maze's odd cells)
MAZE_DRAWS = 200  # mazes drawn before giving up on fitting a room per target

# Rendering: pixels per cell and colours (targets take Memory Maze's palette, then two more).
TILE_PIXELS = 8
BORDER_PIXELS = 4
WALL_RGB = (110, 100, 60)
FLOOR_RGB = (30, 40, 90)
AGENT_RGB = (255, 255, 255)
VIEW_RGB = (200, 200, 200)
TARGET_RGB = (
    (197, 44, 35), (115, 197, 102), (45, 162, 251), (108, 122, 231),
    (255, 224, 68), (255, 148, 124), (230, 80, 200), (40, 200, 190),
)


class MemoryMazeEnv(gymnasium.Env):
    """Grid Memory Maze (rules in the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(
        self,
        size: int = 9,
        num_targets: int | None = None,
        max_rooms: int = 6,
        view_size: int = 5,
        max_steps: int = 500,
        render_mode: str | None = None,
    ):
        check_int("size", size, 7, "the maze needs room for rooms and corridors")
        if size % 2 == 0:
            raise ValueError(f"size must be odd (got {size}); Memory Maze's sizes are 9, 11, 13, 15")
        num_targets = (size - 3) // 2 if num_targets is None else num_targets
        check_int("num_targets", num_targets, 2, "a new target must differ from the one just reached")
        if num_targets > len(TARGET_RGB):
            raise ValueError(f"num_targets must be <= {len(TARGET_RGB)} (got {num_targets}): one colour per target")
        check_int("max_rooms", max_rooms, num_targets, "every target sits in its own room (set max_rooms >= num_targets)")
        check_int("view_size", view_size, 1, "the window is centred on the agent")
        if view_size % 2 == 0:
            raise ValueError(f"view_size must be odd (got {view_size}); use e.g. 5 so the agent is at the centre")
        check_int("max_steps", max_steps, 1, "an episode needs at least one step")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array' (got {render_mode!r})")
        # Fail at construction, not at the first reset, when the targets cannot get a room each.
        generate_maze(size, max_rooms, num_targets, np.random.default_rng(0))
        self.size = size
        self.num_targets = num_targets
        self.max_rooms = max_rooms
        self.view_size = view_size
        self.max_steps = max_steps
        self.render_mode = render_mode

        self.action_space = spaces.Discrete(len(MOVES))
        self.observation_space = spaces.Box(0, 1, (view_size, view_size, 1 + 2 * num_targets), dtype=np.uint8)
        # Cells are numbered in the grid padded by half a window of wall on every side,
        # so every window is one slice and outside reads as wall.
        self._margin = view_size // 2
        self._side = size + 2 + 2 * self._margin
        # The window of padded cell (row, column) starts half a window up and left of it
        # (only cells inside the outer wall are ever the agent's, so the slices stay in the grid).
        self._windows = [
            (slice(row - self._margin, row + self._margin + 1), slice(column - self._margin, column + self._margin + 1))
            for row, column in (divmod(cell, self._side) for cell in range(self._side * self._side))
        ]
        self._offsets = [d_row * self._side + d_column for d_row, d_column in MOVES]
        self.walls = np.ones((size + 2, size + 2), dtype=bool)
        self.target_cells: list[tuple[int, int]] = []
        self.target = 0
        self.targets_reached = 0
        self._cell = 0

    # ---- gymnasium API -------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.walls, rooms = generate_maze(self.size, self.max_rooms, self.num_targets, self.np_random)
        chosen = self.np_random.permutation(len(rooms))[: self.num_targets]
        self.target_cells = [_random_cell_in(rooms[index], self.np_random) for index in chosen]
        free = np.argwhere(~self.walls).tolist()
        free = [tuple(cell) for cell in free if tuple(cell) not in self.target_cells]
        self._build_episode_tables()
        self._cell = self._padded(free[int(self.np_random.integers(len(free)))])
        self._set_target(int(self.np_random.integers(self.num_targets)))
        self.targets_reached = 0
        self._steps = 0
        return self._observation(), {}

    def step(self, action):
        target = self._next_cell[self._cell][action]
        self._cell = target
        reward = 0.0
        if self._target_at.get(target) == self.target:
            reward = REWARD_TARGET
            self.targets_reached += 1
            # Uniform over the other K - 1 targets.
            self._set_target((self.target + 1 + int(self.np_random.integers(self.num_targets - 1))) % self.num_targets)
        self._steps += 1
        truncated = self._steps >= self.max_steps
        info = {"targets": self.targets_reached} if truncated else {}
        return self._observation(), reward, False, truncated, info

    def render(self):
        if self.render_mode != "rgb_array":
            gymnasium.logger.warn("render() needs render_mode='rgb_array'; returning None")
            return None
        return self._render_maze()

    # ---- episode tables ------------------------------------------------------

    def _padded(self, cell: tuple[int, int]) -> int:
        return (cell[0] + self._margin) * self._side + cell[1] + self._margin

    def _build_episode_tables(self) -> None:
        """The move table, the target lookup and one observation grid per current target."""
        channels = 1 + 2 * self.num_targets
        walls = np.ones((self._side, self._side), dtype=bool)
        inner = slice(self._margin, self._margin + self.size + 2)
        walls[inner, inner] = self.walls
        flat_walls = walls.ravel().tolist()
        # _next_cell[cell][action]: where a move lands (the same cell when blocked).
        self._next_cell = [
            [cell if flat_walls[cell + offset] else cell + offset for offset in self._offsets]
            if not flat_walls[cell]  # free cells sit inside the outer wall, so cell + offset is in the grid
            else [cell] * len(MOVES)
            for cell in range(self._side * self._side)
        ]
        self._target_at = {self._padded(cell): index for index, cell in enumerate(self.target_cells)}
        base = np.zeros((self._side, self._side, channels), dtype=np.uint8)
        base[..., WALL_CHANNEL] = walls
        for index, (row, column) in enumerate(self.target_cells):
            base[row + self._margin, column + self._margin, TARGET_CHANNEL + index] = 1
        self._grids = []
        for index in range(self.num_targets):
            grid = base.copy()
            grid[..., TARGET_CHANNEL + self.num_targets + index] = 1
            self._grids.append(grid)

    def _set_target(self, index: int) -> None:
        self.target = index
        self._grid = self._grids[index]

    def _observation(self) -> np.ndarray:
        """[view_size, view_size, 1 + 2K] uint8 window centred on the agent."""
        return self._grid[self._windows[self._cell]].copy()

    # ---- readable state and rendering ----------------------------------------

    @property
    def agent(self) -> tuple[int, int]:
        """(row, column) of the agent in the maze grid (outer wall at row and column 0)."""
        row, column = divmod(self._cell, self._side)
        return row - self._margin, column - self._margin

    def _render_maze(self) -> np.ndarray:
        """RGB [8 (size + 2) + 8, same, 3] uint8: the maze, targets (current one full-size), agent,
        its view window, and a border in the current target's colour (as Memory Maze's image has)."""
        tiles = np.where(self.walls[..., None], np.array(WALL_RGB, np.uint8), np.array(FLOOR_RGB, np.uint8))
        image = np.kron(tiles, np.ones((TILE_PIXELS, TILE_PIXELS, 1), dtype=np.uint8))
        for index, (row, column) in enumerate(self.target_cells):
            inset = 0 if index == self.target else TILE_PIXELS // 4
            top, left = row * TILE_PIXELS + inset, column * TILE_PIXELS + inset
            image[top : top + TILE_PIXELS - 2 * inset, left : left + TILE_PIXELS - 2 * inset] = TARGET_RGB[index]
        row, column = self.agent
        quarter = TILE_PIXELS // 4
        image[row * TILE_PIXELS + quarter : (row + 1) * TILE_PIXELS - quarter,
              column * TILE_PIXELS + quarter : (column + 1) * TILE_PIXELS - quarter] = AGENT_RGB
        _draw_box(image, (row - self._margin) * TILE_PIXELS, (column - self._margin) * TILE_PIXELS,
                  self.view_size * TILE_PIXELS, VIEW_RGB)
        framed = np.empty((image.shape[0] + 2 * BORDER_PIXELS, image.shape[1] + 2 * BORDER_PIXELS, 3), np.uint8)
        framed[...] = TARGET_RGB[self.target]
        framed[BORDER_PIXELS:-BORDER_PIXELS, BORDER_PIXELS:-BORDER_PIXELS] = image
        return framed


def generate_maze(size: int, max_rooms: int, min_rooms: int, rng: np.random.Generator):
    """A random maze with rooms: (walls bool [size + 2, size + 2], rooms as (top, left, height, width)).

    A randomised depth-first spanning tree over the odd cells (so every free
    cell is reachable), then up to ``max_rooms`` rooms opened on top of it,
    separated by at least one wall. Draws again until there are ``min_rooms``.
    """
    for _ in range(MAZE_DRAWS):
        walls = _spanning_tree_maze(size, rng)
        rooms = _carve_rooms(walls, size, max_rooms, rng)
        if len(rooms) >= min_rooms:
            return walls, rooms
    raise ValueError(
        f"could not fit {min_rooms} rooms (one per target) in a {size}x{size} maze in {MAZE_DRAWS} draws; "
        "use fewer num_targets or a larger size"
    )


def _spanning_tree_maze(size: int, rng: np.random.Generator) -> np.ndarray:
    nodes = (size + 1) // 2  # odd cells 1, 3, .., size per side
    walls = np.ones((size + 2, size + 2), dtype=bool)
    visited = np.zeros((nodes, nodes), dtype=bool)
    start = (int(rng.integers(nodes)), int(rng.integers(nodes)))
    stack = [start]
    visited[start] = True
    walls[2 * start[0] + 1, 2 * start[1] + 1] = False
    while stack:
        row, column = stack[-1]
        options = [
            (row + d_row, column + d_column)
            for d_row, d_column in MOVES
            if 0 <= row + d_row < nodes and 0 <= column + d_column < nodes and not visited[row + d_row, column + d_column]
        ]
        if not options:
            stack.pop()
            continue
        nxt = options[int(rng.integers(len(options)))]
        visited[nxt] = True
        walls[2 * nxt[0] + 1, 2 * nxt[1] + 1] = False
        walls[row + nxt[0] + 1, column + nxt[1] + 1] = False  # the wall between the two odd cells
        stack.append(nxt)
    return walls


def _carve_rooms(walls: np.ndarray, size: int, max_rooms: int, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """Open up to ``max_rooms`` rectangles on odd cells, each at least one wall apart; returns them."""
    rooms: list[tuple[int, int, int, int]] = []
    taken = np.zeros_like(walls)
    for _ in range(8 * max_rooms):
        if len(rooms) == max_rooms:
            break
        height, width = (ROOM_SIDES[int(rng.integers(len(ROOM_SIDES)))] for _ in range(2))
        if height > size or width > size:
            continue
        top = 1 + 2 * int(rng.integers((size - height) // 2 + 1))
        left = 1 + 2 * int(rng.integers((size - width) // 2 + 1))
        # A one-cell wall ring must stay free of other rooms.
        if taken[top - 1 : top + height + 1, left - 1 : left + width + 1].any():
            continue
        taken[top : top + height, left : left + width] = True
        walls[top : top + height, left : left + width] = False
        rooms.append((top, left, height, width))
    return rooms


def _random_cell_in(room: tuple[int, int, int, int], rng: np.random.Generator) -> tuple[int, int]:
    top, left, height, width = room
    return top + int(rng.integers(height)), left + int(rng.integers(width))


def _draw_box(image: np.ndarray, top: int, left: int, side: int, rgb) -> None:
    """A one-pixel square outline, clipped to the image."""
    height, width = image.shape[:2]
    bottom, right = top + side - 1, left + side - 1
    rows = slice(max(top, 0), min(bottom, height - 1) + 1)
    columns = slice(max(left, 0), min(right, width - 1) + 1)
    for row in (top, bottom):
        if 0 <= row < height:
            image[row, columns] = rgb
    for column in (left, right):
        if 0 <= column < width:
            image[rows, column] = rgb
