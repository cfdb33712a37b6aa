"""``memrl/memory_maze_3d``: the Memory Maze package (3D, MuJoCo) as a gymnasium env.

    pip install -e ".[memory_maze]"          # pinned memory-maze, dm-control, mujoco, labmaze, gym
    memrl train env=memory_maze_3d env.size=9x9

The standard image-only task (``MemoryMaze-9x9-v0`` in the package's own
registry): observation uint8 [64, 64, 3] from the agent's camera with the
current target's colour drawn as a border; Discrete(6) = noop, forward, left,
right, forward + left, forward + right; +1 per target reached. Episodes last
1000, 2000, 3000, 4000 steps (4 Hz) for sizes 9x9, 11x11, 13x13, 15x15 and end
with ``truncated=True`` (a time limit; the package's dm_env keeps discount 1).
The last step's ``info`` holds ``targets`` (targets reached). The grid twin
with the same rules, thousands of times faster, is ``memrl/memory_maze``.

Headless rendering: MuJoCo renders through EGL (``MUJOCO_GL=egl``, the
default set here before MuJoCo loads). On a CPU-only Linux box Mesa's EGL
renders in software (llvmpipe): it needs ``libegl1`` and works without a GPU
or a display. ``MUJOCO_GL=osmesa`` works too where ``libosmesa6`` is
installed. ``memory_maze`` imports the old ``gym`` package at import time only
to register its own ids; the extra pins it, and its notice on import is hidden.

Seeding: ``reset(seed=s)`` builds the maze generator from a seed drawn from
``s`` (building takes seconds); unseeded resets draw new mazes from it.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import os

import gymnasium
import numpy as np
from gymnasium import spaces

from .validation import check_int

SIZES = ("9x9", "11x11", "13x13", "15x15")
ACTIONS = ("noop", "forward", "left", "right", "forward_left", "forward_right")
INSTALL = (
    "the memory_maze package is not installed; pip install -e '.[memory_maze]' "
    "(pinned memory-maze, dm-control, mujoco, gym) and, on a headless box, apt-get install libegl1 (MUJOCO_GL=egl)"
)


def import_memory_maze_tasks():
    """``memory_maze.tasks``, or a one-line ValueError saying how to install it."""
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless; must be set before MuJoCo loads
    try:
        # memory_maze imports gym only to register its gym ids; gym prints a notice we do not act on.
        with contextlib.redirect_stderr(io.StringIO()):
            return importlib.import_module("memory_maze.tasks")
    except ImportError as error:
        raise ValueError(f"{INSTALL} ({error})") from None


def size_name(size) -> str:
    """9, "9", "9x9" -> "9x9"; anything else raises a one-line ValueError."""
    name = f"{size}x{size}" if isinstance(size, int) or str(size).isdigit() else str(size)
    if name not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)} (got {size!r}): Memory Maze's four mazes")
    return name


class MemoryMaze3DEnv(gymnasium.Env):
    """Memory Maze (3D) through ``memory_maze.tasks`` (details in the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        size: str = "9x9",
        camera_resolution: int = 64,
        good_visibility: bool = False,
        render_mode: str | None = None,
    ):
        self.size = size_name(size)
        check_int("camera_resolution", camera_resolution, 16, "the camera image is camera_resolution pixels square")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array' (got {render_mode!r})")
        self._tasks = import_memory_maze_tasks()
        self.camera_resolution = camera_resolution
        self.good_visibility = bool(good_visibility)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(len(ACTIONS))
        self.observation_space = spaces.Box(0, 255, (camera_resolution, camera_resolution, 3), dtype=np.uint8)
        self._env = None  # built on the first (or a seeded) reset
        self._image = np.zeros(self.observation_space.shape, dtype=np.uint8)
        self.targets_reached = 0

    def _build(self, seed: int):
        make_task = getattr(self._tasks, f"memory_maze_{self.size}")
        return make_task(
            image_only_obs=True, camera_resolution=self.camera_resolution,
            good_visibility=self.good_visibility, seed=seed,
        )

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None or self._env is None:
            if self._env is not None:
                self._env.close()
            self._env = self._build(int(self.np_random.integers(2**31 - 1)))
        self._image = np.asarray(self._env.reset().observation, dtype=np.uint8)
        self.targets_reached = 0
        return self._image, {}

    def step(self, action):
        time_step = self._env.step(int(action))
        self._image = np.asarray(time_step.observation, dtype=np.uint8)
        reward = float(time_step.reward or 0.0)
        self.targets_reached += reward > 0
        if not time_step.last():
            return self._image, reward, False, False, {}
        terminated = time_step.discount == 0.0  # never for Memory Maze: its episodes end on the clock
        return self._image, reward, bool(terminated), not terminated, {"targets": int(self.targets_reached)}

    def render(self):
        if self.render_mode != "rgb_array":
            gymnasium.logger.warn("render() needs render_mode='rgb_array'; returning None")
            return None
        return self._image.copy()

    def close(self):
        if self._env is not None:
            self._env.close()
            self._env = None
