"""``memrl/select_nonmatching_object``: DMLab-30's Select Non-matching Object on a grid.

Rules (DMLab-30 ``rooms_select_nonmatching_object``, re-created in numpy so it
runs at tens of thousands of steps per second on one CPU core):

- Two separate rooms, each an interior of ``room_size`` x ``room_size`` cells
  surrounded by walls; ``num_objects`` object types.
- A trial draws object type A uniformly and B != A uniformly. Room 1 shows A
  on a random cell (a display: not walkable), a teleport pad on another random
  cell, and the agent on a third. Stepping onto the pad gives +1 and moves the
  agent to a random free cell of room 2, which holds A and B on random cells.
  Stepping onto B (the non-matching object) gives +10, onto A gives -10; either
  ends the trial, and the next trial starts at once in room 1 with new objects
  and positions. Room 2 alone does not tell which object to pick: only memory
  of room 1 does.
- Optional ``room_1_time_limit`` (not a DMLab rule; default off): after that many
  steps in room 1 without reaching the pad, the agent is moved to room 2 without
  the +1. Without it a memoryless agent beats chance on the success rate: while
  room 1's object is in view it can refuse to leave a trial it would lose (it
  prefers one object type in room 2 and stalls when room 1 shows that type until
  the episode ends), so the trials it completes are mostly ones it wins. With the
  limit every trial reaches room 2, where nothing tells the objects apart.
- Actions: Discrete(4) = up, down, left, right. Moving into a wall or the
  display is a no-op (the step still counts).
- Observation: the egocentric ``view_size`` x ``view_size`` window centred on
  the agent, uint8 one-hot channels [wall, pad, object_0 .. object_{num_objects-1}];
  cells outside the current room read as wall.
- Episodes last exactly ``max_steps`` steps and end with ``truncated=True``
  (``terminated`` is always False). The last step's ``info`` holds ``trials``
  (completed trials) and ``success`` (fraction of them where the agent chose
  the non-matching object; nan when none completed).
"""
from __future__ import annotations

import colorsys
import math

import gymnasium
import numpy as np
from gymnasium import spaces

from .validation import check_int

# Actions, as (row, column) moves.
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right

# Observation channels; object k is channel OBJECT_CHANNEL + k.
WALL_CHANNEL = 0
PAD_CHANNEL = 1
OBJECT_CHANNEL = 2

# What occupies an interior cell of the current room (a Python list, for speed).
EMPTY, DISPLAY, PAD, MATCHING, NONMATCHING = range(5)

REWARD_PAD = 1.0
REWARD_NONMATCHING = 10.0
REWARD_MATCHING = -10.0

# Rendering: pixels per cell and colours.
TILE_PIXELS = 8
WALL_RGB = (100, 100, 100)
FLOOR_RGB = (20, 20, 20)
PAD_RGB = (40, 90, 220)
AGENT_RGB = (255, 255, 255)


class SelectNonmatchingObjectEnv(gymnasium.Env):
    """Grid re-creation of DMLab-30 Select Non-matching Object (rules in the module docstring).

    Readable state, for scripted agents and tests: ``room`` (1 or 2), ``agent``
    (row, column) in the current room's interior, ``matching_object`` (A),
    ``nonmatching_object`` (B), and ``cell_of(what)`` for the display and pad
    (room 1) and the matching and non-matching objects (room 2).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(
        self,
        room_size: int = 3,
        num_objects: int = 4,
        view_size: int = 5,
        max_steps: int = 100,
        room_1_time_limit: int | None = None,
        render_mode: str | None = None,
    ):
        check_int("room_size", room_size, 2, "room 1 needs cells for the display, the pad and the agent")
        check_int("num_objects", num_objects, 2, "a trial needs two different object types")
        check_int("view_size", view_size, 1, "the window is centred on the agent")
        if view_size % 2 == 0:
            raise ValueError(f"view_size must be odd (got {view_size}); use e.g. 5 so the agent is at the centre")
        check_int("max_steps", max_steps, 1, "an episode needs at least one step")
        if room_1_time_limit is not None:
            check_int("room_1_time_limit", room_1_time_limit, 1, "use null for no limit")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array' (got {render_mode!r})")
        self.room_size = room_size
        self.num_objects = num_objects
        self.view_size = view_size
        self.max_steps = max_steps
        self.room_1_time_limit = room_1_time_limit
        self.render_mode = render_mode

        self.action_space = spaces.Discrete(len(MOVES))
        self.observation_space = spaces.Box(
            0, 1, (view_size, view_size, OBJECT_CHANNEL + num_objects), dtype=np.uint8
        )
        self._build_tables()
        self.room = 1
        self._cell = 0

    def _build_tables(self) -> None:
        """Per-room constants: the move table over interior cells and the walled, padded grid."""
        size = self.room_size
        # Interior cells are numbered row * size + column; _next_cell[cell][action] is where a move lands.
        self._next_cell = []
        for cell in range(size * size):
            row, column = divmod(cell, size)
            targets = []
            for d_row, d_column in MOVES:
                r, c = row + d_row, column + d_column
                targets.append(r * size + c if 0 <= r < size and 0 <= c < size else cell)
            self._next_cell.append(targets)
        # The room is drawn on a grid padded by half a window of wall on every side,
        # so the window around any interior cell is one slice, and outside reads as wall.
        self._margin = self.view_size // 2
        padded = size + 2 * self._margin
        self._walls = np.zeros((padded, padded, OBJECT_CHANNEL + self.num_objects), dtype=np.uint8)
        self._walls[..., WALL_CHANNEL] = 1
        self._walls[self._margin : self._margin + size, self._margin : self._margin + size, WALL_CHANNEL] = 0
        self._windows = [
            (slice(row, row + self.view_size), slice(column, column + self.view_size))
            for row, column in (divmod(cell, size) for cell in range(size * size))
        ]

    # ---- gymnasium API -------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._steps = 0
        self._trials = 0
        self._nonmatching_choices = 0
        self._start_trial()
        return self._observation(), {}

    def step(self, action):
        target = self._next_cell[self._cell][action]
        contents = self._contents[target]
        reward = 0.0
        if contents == EMPTY:
            self._cell = target
        elif contents == PAD:
            reward = REWARD_PAD
            self._enter_room_2()
        elif contents == NONMATCHING or contents == MATCHING:
            reward = REWARD_NONMATCHING if contents == NONMATCHING else REWARD_MATCHING
            self._trials += 1
            self._nonmatching_choices += contents == NONMATCHING
            self._start_trial()
        # DISPLAY blocks the move: the agent stays.
        if self.room == 1 and reward == 0.0:  # a step spent in room 1 (the pad would have moved us on)
            self._room_1_steps += 1
            if self.room_1_time_limit is not None and self._room_1_steps >= self.room_1_time_limit:
                self._enter_room_2()
        self._steps += 1
        truncated = self._steps >= self.max_steps
        info = {}
        if truncated:
            info["trials"] = self._trials
            info["success"] = self._nonmatching_choices / self._trials if self._trials else math.nan
        return self._observation(), reward, False, truncated, info

    def render(self):
        if self.render_mode != "rgb_array":
            gymnasium.logger.warn("render() needs render_mode='rgb_array'; returning None")
            return None
        return self._render_rooms()

    # ---- trials --------------------------------------------------------------

    def _start_trial(self) -> None:
        """New objects A != B and new cells in both rooms; the agent starts in room 1."""
        cells = self.room_size * self.room_size
        uniforms = self.np_random.random(2 * cells + 2)
        matching = int(uniforms[0] * self.num_objects)
        # B uniform over the other num_objects - 1 types.
        nonmatching = (matching + 1 + int(uniforms[1] * (self.num_objects - 1))) % self.num_objects
        # Three distinct cells per room: a random permutation's first three.
        room_1 = np.argsort(uniforms[2 : 2 + cells])[:3].tolist()
        room_2 = np.argsort(uniforms[2 + cells :])[:3].tolist()
        self.matching_object, self.nonmatching_object = matching, nonmatching
        display_cell, pad_cell, agent_cell_1 = room_1
        matching_cell, nonmatching_cell, agent_cell_2 = room_2

        self._room_1_contents = [EMPTY] * cells
        self._room_1_contents[display_cell] = DISPLAY
        self._room_1_contents[pad_cell] = PAD
        self._room_2_contents = [EMPTY] * cells
        self._room_2_contents[matching_cell] = MATCHING
        self._room_2_contents[nonmatching_cell] = NONMATCHING
        # The grids are rebuilt per trial and never written afterwards.
        self._room_1_grid = self._walls.copy()
        self._mark(self._room_1_grid, display_cell, OBJECT_CHANNEL + matching)
        self._mark(self._room_1_grid, pad_cell, PAD_CHANNEL)
        self._room_2_grid = self._walls.copy()
        self._mark(self._room_2_grid, matching_cell, OBJECT_CHANNEL + matching)
        self._mark(self._room_2_grid, nonmatching_cell, OBJECT_CHANNEL + nonmatching)
        self._room_2_agent_cell = agent_cell_2
        self._cells = {"display": display_cell, "pad": pad_cell, "matching": matching_cell, "nonmatching": nonmatching_cell}

        self.room = 1
        self._room_1_steps = 0
        self._contents, self._grid, self._cell = self._room_1_contents, self._room_1_grid, agent_cell_1

    def _enter_room_2(self) -> None:
        self.room = 2
        self._contents, self._grid, self._cell = self._room_2_contents, self._room_2_grid, self._room_2_agent_cell

    def _mark(self, grid: np.ndarray, cell: int, channel: int) -> None:
        row, column = divmod(cell, self.room_size)
        grid[row + self._margin, column + self._margin, channel] = 1

    def _observation(self) -> np.ndarray:
        """[view_size, view_size, 2 + num_objects] uint8 window centred on the agent."""
        return self._grid[self._windows[self._cell]].copy()

    # ---- state for scripted agents and rendering -----------------------------

    @property
    def agent(self) -> tuple[int, int]:
        """(row, column) of the agent in the current room's interior."""
        return divmod(self._cell, self.room_size)

    def cell_of(self, what: str) -> tuple[int, int]:
        """(row, column) of ``what`` in {"display", "pad"} (room 1) or {"matching", "nonmatching"} (room 2)."""
        return divmod(self._cells[what], self.room_size)

    def _render_rooms(self) -> np.ndarray:
        """RGB image [8 (size + 2), 8 (2 size + 5), 3] uint8: room 1 left, room 2 right, walls around each."""
        side = self.room_size + 2
        colours = object_colours(self.num_objects)
        tiles = np.zeros((side, 2 * side + 1, 3), dtype=np.uint8)  # black gap column between the rooms
        room_1 = {"display": colours[self.matching_object], "pad": PAD_RGB}
        room_2 = {"matching": colours[self.matching_object], "nonmatching": colours[self.nonmatching_object]}
        for left, things in ((0, room_1), (side + 1, room_2)):
            tiles[:, left : left + side] = WALL_RGB
            tiles[1 : side - 1, left + 1 : left + side - 1] = FLOOR_RGB
            for what, rgb in things.items():
                row, column = self.cell_of(what)
                tiles[row + 1, left + column + 1] = rgb
        image = np.kron(tiles, np.ones((TILE_PIXELS, TILE_PIXELS, 1), dtype=np.uint8))
        # The agent: a white square inside its cell.
        row, column = self.agent
        left = 0 if self.room == 1 else side + 1
        top_pixel = (row + 1) * TILE_PIXELS + TILE_PIXELS // 4
        left_pixel = (left + column + 1) * TILE_PIXELS + TILE_PIXELS // 4
        inset = TILE_PIXELS // 2
        image[top_pixel : top_pixel + inset, left_pixel : left_pixel + inset] = AGENT_RGB
        return image


def object_colours(count: int) -> list[tuple[int, int, int]]:
    """``count`` distinct saturated colours, evenly spaced in hue, avoiding the pad's blue."""
    colours = []
    for k in range(count):
        hue = 0.55 * k / count  # red .. cyan, leaving blue to the pad
        red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
        colours.append((int(red * 255), int(green * 255), int(blue * 255)))
    return colours
