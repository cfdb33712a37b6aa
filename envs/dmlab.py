"""``memrl/dmlab``: DeepMind Lab levels (DMLab-30 and others) through the ``deepmind_lab`` module.

    memrl train env=dmlab env.level=contributed/dmlab30/rooms_select_nonmatching_object

What the adapter does, as IMPALA (Espeholt et al. 2018, ``scalable_agent``) did:

- Actions: Discrete(9), IMPALA's action set (``ACTION_SET``): forward, backward,
  strafe left, strafe right, look left, look right, look left + forward,
  look right + forward, fire. Each maps to DMLab's 7 integer action
  components (look left/right pixels, look down/up pixels, strafe, move, fire,
  jump, crouch).
- Action repeat: each action is held for ``action_repeat`` (default 4) frames
  (DMLab's own ``num_steps``); the step's reward is the sum over those frames.
- Observation: ``RGB_INTERLEAVED``, uint8 [height, width, 3], 72 x 96 by default.
- Episodes end when the level stops running (``is_running()`` is False). DMLab
  does not say why; the DMLab-30 levels end on their own timer, which the agent
  does not observe, so the end is reported as ``truncated=True`` and the value
  bootstraps. ``terminal_on_level_end=true`` reports ``terminated=True``
  instead, as ``scalable_agent`` did. After the end DMLab has no observation,
  so the last step returns the last frame seen.
- Seeding: ``reset(seed=s)`` seeds the env's generator; each episode's DMLab
  seed is drawn from it, so a seed fixes the sequence of levels' layouts.

``deepmind_lab`` is not on PyPI: it is built from source with Bazel (see
``BUILD_STEPS``); without it, ``envs.make("memrl/dmlab")`` raises one line
saying how. The translation logic is tested with a fake module in
``tests/test_envs_memory.py``.
"""
from __future__ import annotations

import importlib

import gymnasium
import numpy as np
from gymnasium import spaces

from .validation import check_int

# IMPALA's action set: (look left/right, look down/up, strafe left/right, move back/forward, fire, jump, crouch).
ACTION_SET = (
    (0, 0, 0, 1, 0, 0, 0),  # forward
    (0, 0, 0, -1, 0, 0, 0),  # backward
    (0, 0, -1, 0, 0, 0, 0),  # strafe left
    (0, 0, 1, 0, 0, 0, 0),  # strafe right
    (-20, 0, 0, 0, 0, 0, 0),  # look left
    (20, 0, 0, 0, 0, 0, 0),  # look right
    (-20, 0, 0, 1, 0, 0, 0),  # look left + forward
    (20, 0, 0, 1, 0, 0, 0),  # look right + forward
    (0, 0, 0, 0, 1, 0, 0),  # fire
)
OBSERVATION = "RGB_INTERLEAVED"
RENDERERS = ("software", "hardware")

BUILD_STEPS = (
    "the deepmind_lab module is not installed (it is not on PyPI; build it from source: install Bazel, then "
    "git clone https://github.com/google-deepmind/lab && cd lab && "
    "bazel build -c opt --python_version=PY3 //python/pip_package:build_pip_package && "
    "./bazel-bin/python/pip_package/build_pip_package /tmp/dmlab_pkg && "
    "pip install /tmp/dmlab_pkg/deepmind_lab-*.whl; see docs/results/envs.md)"
)


def import_deepmind_lab():
    """The ``deepmind_lab`` module, or a one-line ValueError with the build steps."""
    try:
        return importlib.import_module("deepmind_lab")
    except ImportError:
        raise ValueError(BUILD_STEPS) from None


class DeepMindLabEnv(gymnasium.Env):
    """A DeepMind Lab level as a gymnasium env (details in the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        level: str = "contributed/dmlab30/rooms_select_nonmatching_object",
        height: int = 72,
        width: int = 96,
        action_repeat: int = 4,
        renderer: str = "software",
        terminal_on_level_end: bool = False,
        level_config: dict | None = None,
        render_mode: str | None = None,
    ):
        if not isinstance(level, str) or not level:
            raise ValueError(f"level must be a DMLab level name (got {level!r}); e.g. contributed/dmlab30/rooms_watermaze")
        check_int("height", height, 1, "the observation is height x width pixels")
        check_int("width", width, 1, "the observation is height x width pixels")
        check_int("action_repeat", action_repeat, 1, "each action is held for this many frames")
        if renderer not in RENDERERS:
            raise ValueError(f"renderer must be one of {RENDERERS} (got {renderer!r}); software needs no GPU")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array' (got {render_mode!r})")
        deepmind_lab = import_deepmind_lab()
        config = {"width": str(width), "height": str(height), "logLevel": "WARN"}
        config.update({key: str(value) for key, value in (level_config or {}).items()})
        self.level = level
        self.action_repeat = action_repeat
        self.terminal_on_level_end = bool(terminal_on_level_end)
        self.render_mode = render_mode
        try:
            self._lab = deepmind_lab.Lab(level, [OBSERVATION], config=config, renderer=renderer)
        except RuntimeError as error:  # DMLab's message spans several lines of Lua traceback
            first = next((line.strip() for line in str(error).splitlines() if line.strip()), "no message")
            raise ValueError(f"DMLab could not load level {level!r} ({first}); env.level is a path under DMLab's "
                             "game_scripts/levels, e.g. contributed/dmlab30/rooms_select_nonmatching_object") from None
        self._actions = [np.array(action, dtype=np.intc) for action in ACTION_SET]
        self.action_space = spaces.Discrete(len(ACTION_SET))
        self.observation_space = spaces.Box(0, 255, (height, width, 3), dtype=np.uint8)
        self._frame = np.zeros(self.observation_space.shape, dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._lab.reset(seed=int(self.np_random.integers(2**31 - 1)))
        self._frame = self._observe()
        return self._frame, {}

    def step(self, action):
        reward = float(self._lab.step(self._actions[int(action)], num_steps=self.action_repeat))
        if self._lab.is_running():
            self._frame = self._observe()
            return self._frame, reward, False, False, {}
        ended = (True, False) if self.terminal_on_level_end else (False, True)
        return self._frame, reward, *ended, {}

    def render(self):
        if self.render_mode != "rgb_array":
            gymnasium.logger.warn("render() needs render_mode='rgb_array'; returning None")
            return None
        return self._frame.copy()

    def close(self):
        self._lab.close()

    def _observe(self) -> np.ndarray:
        frame = np.asarray(self._lab.observations()[OBSERVATION], dtype=np.uint8)
        if frame.shape != self.observation_space.shape:
            raise ValueError(f"DMLab returned a {frame.shape} frame, expected {self.observation_space.shape}")
        return frame
