"""Watch an agent: one episode as an animated GIF, the step and the return so far drawn on every frame.

    memrl eval checkpoint=runs/<run> record=true            # writes <run>/episode.gif

Works for any env that renders RGB frames (``render_mode="rgb_array"``): the
memrl grid envs, MiniGrid, gymnasium's classic control, DMLab and Memory Maze
3D (their camera image). The agent acts as in training and ``memrl eval``: it
samples its actions, and its core state is carried from step to step.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

import envs
from agents import AgentOutput, env_actions
from training.actor import add_time_dim, build_agent, stack_obs
from training.unroll import inputs_after_step

MIN_SIDE_PIXELS = 192  # small renders (a 5x5 grid at 8 px a cell) are scaled up to at least this
CAPTION_PIXELS = 14  # height of the caption strip above each frame


def make_rendering_env(env_cfg: dict):
    """The run's env with ``render_mode="rgb_array"``; a one-line ValueError if it cannot render RGB."""
    name = env_cfg.get("name")
    cannot = f"env {name!r} does not render RGB frames, so record=true cannot draw it; use an env with render_mode='rgb_array' (e.g. memrl/memory_maze)"
    try:
        env = envs.make_from_config({**env_cfg, "render_mode": "rgb_array"})
    except (ValueError, TypeError):
        raise ValueError(cannot) from None
    if "rgb_array" not in env.metadata.get("render_modes", []):
        raise ValueError(cannot)
    return env


class Step(NamedTuple):
    """One step of ``episode_steps``: the agent's output before it, its action, and the env's reward."""

    out: AgentOutput  # the agent's output at the observation it acted on ([1, 1, ...])
    env_action: Any  # the action as the env took it
    reward: float


@torch.no_grad()
def episode_steps(agent, env, observation, generator: torch.Generator, greedy: bool = False) -> Iterator[Step]:
    """The rest of the episode that ``observation`` (from ``env.reset``) starts, a ``Step`` at a time, as the
    actors play it: the core state carried from step to step, the previous action and reward fed back,
    actions sampled with ``generator`` (or the most probable ones with ``greedy``). Ends with the
    episode; stop early by leaving the loop."""
    state = agent.initial_state(1)
    reset, prev_action, prev_reward = torch.ones(1, dtype=torch.bool), agent.no_action(1), torch.zeros(1)
    while True:
        out = agent(add_time_dim(stack_obs([observation])), prev_action[None], prev_reward[None], reset[None], state)
        action = agent.greedy(out.logits[0]) if greedy else agent.sample(out.logits[0], generator)
        state = out.state
        [env_action] = env_actions(env.action_space, action.numpy())
        observation, reward, terminated, truncated, _ = env.step(env_action)
        yield Step(out, env_action, float(reward))
        if terminated or truncated:
            return
        reset, prev_action, prev_reward = inputs_after_step(
            action, torch.tensor([float(reward)]), torch.tensor([terminated]), torch.tensor([truncated]))


def play_episode(agent, env, seed: int, max_steps: int, greedy: bool = False) -> list[tuple[np.ndarray, int, float]]:
    """(frame, step, return so far) from the first observation to the episode's end or ``max_steps``;
    actions sampled from the policy, or its most probable ones with ``greedy``."""
    observation, _ = env.reset(seed=seed)
    total = 0.0
    frames = [(_rgb(env.render(), env), 0, total)]
    steps = episode_steps(agent, env, observation, torch.Generator().manual_seed(seed), greedy)
    for number, step in zip(range(1, max_steps + 1), steps):
        total += step.reward
        frames.append((_rgb(env.render(), env), number, total))
    return frames


def annotate(frame: np.ndarray, step: int, total: float) -> Image.Image:
    """The frame scaled up (nearest) to at least MIN_SIDE_PIXELS, under a caption 'step N  return R'."""
    height, width = frame.shape[:2]
    scale = max(1, -(-MIN_SIDE_PIXELS // min(height, width)))
    image = Image.fromarray(frame).resize((width * scale, height * scale), Image.NEAREST)
    canvas = Image.new("RGB", (image.width, image.height + CAPTION_PIXELS), (0, 0, 0))
    canvas.paste(image, (0, CAPTION_PIXELS))
    ImageDraw.Draw(canvas).text((3, 1), f"step {step}  return {total:.2f}", fill=(255, 255, 255), font=ImageFont.load_default())
    return canvas


def write_gif(frames: list[tuple[np.ndarray, int, float]], path: Path, fps: float) -> Path:
    images = [annotate(frame, step, total) for frame, step, total in frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path


def record_episode(payload: dict, path: Path, seed: int, max_steps: int, greedy: bool = False, fps: float = 8.0) -> dict:
    """Play one episode of the checkpoint ``payload``'s agent in its env and write it to ``path`` as a GIF."""
    if max_steps <= 0:
        raise ValueError(f"record_max_steps={max_steps} must be positive")
    cfg = payload["config"]
    env = make_rendering_env(cfg["env"])
    agent = build_agent(env, cfg)
    agent.load_state_dict(payload["model"])
    agent.eval()
    try:
        frames = play_episode(agent, env, seed, max_steps, greedy)
    finally:
        env.close()
    write_gif(frames, path, fps)
    return {"gif": str(path), "gif_frames": len(frames), "gif_return": frames[-1][2]}


def _rgb(frame, env) -> np.ndarray:
    if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3):
        raise ValueError(f"env {env.spec.id if env.spec else env!r} rendered {type(frame).__name__}, not an RGB array; record=true needs RGB frames")
    return frame.astype(np.uint8, copy=False)
