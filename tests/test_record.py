"""evaluation/record.py: episodes as animated GIFs with the return so far drawn on each frame."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from evaluation.record import CAPTION_PIXELS, annotate, make_rendering_env, play_episode, record_episode, write_gif
from training.actor import build_agent
from training.config import compose
from training.run_dir import save_checkpoint


def payload_for(overrides: list[str]) -> dict:
    """A checkpoint payload (config + untrained weights), as `memrl train` writes."""
    cfg = compose("train", overrides)
    torch.manual_seed(0)
    env = make_rendering_env(cfg["env"])
    return {"config": cfg, "model": build_agent(env, cfg).state_dict()}


MAZE = ["env=memory_maze", "core=lstm", "env.max_steps=40", "core.hidden_size=16", "agent.encoder_size=16"]


def test_play_episode_runs_to_the_episode_end_and_sums_rewards():
    payload = payload_for(MAZE)
    env = make_rendering_env(payload["config"]["env"])
    agent = build_agent(env, payload["config"])
    agent.load_state_dict(payload["model"])
    frames = play_episode(agent, env, seed=3, max_steps=1000)
    assert [step for _, step, _ in frames] == list(range(41))  # the reset frame, then 40 steps to truncation
    assert frames[-1][2] == env.unwrapped.targets_reached  # +1 per target: the running return counts them
    assert all(later >= earlier for (_, _, earlier), (_, _, later) in zip(frames, frames[1:]))
    again = play_episode(agent, env, seed=3, max_steps=1000)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(frames, again, strict=True))  # seeded: same episode
    assert len(play_episode(agent, env, seed=3, max_steps=5)) == 6


def test_annotate_scales_the_frame_and_writes_the_return_in_the_caption():
    frame = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    image = np.asarray(annotate(frame, 3, 1.0))
    scale = 12  # the smaller side, 16 px, scaled up to >= 192
    assert image.shape == (16 * scale + CAPTION_PIXELS, 24 * scale, 3)
    np.testing.assert_array_equal(image[CAPTION_PIXELS:], np.kron(frame, np.ones((scale, scale, 1), np.uint8)))
    caption = image[:CAPTION_PIXELS]
    assert caption.any()  # text drawn
    assert not np.array_equal(caption, np.asarray(annotate(frame, 3, 2.0))[:CAPTION_PIXELS])


def test_gif_holds_every_frame_in_order(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [(np.full((8, 8, 3), colour, np.uint8), step, float(step)) for step, colour in enumerate(colours)]
    path = write_gif(frames, tmp_path / "a" / "episode.gif", fps=10)
    gif = Image.open(path)
    assert gif.n_frames == 3
    for index, colour in enumerate(colours):
        gif.seek(index)
        assert gif.convert("RGB").getpixel((100, 100)) == colour
        assert gif.info["duration"] == 100


def test_record_episode_writes_the_gif_for_a_checkpoint(tmp_path):
    payload = payload_for(MAZE)
    summary = record_episode(payload, tmp_path / "episode.gif", seed=1, max_steps=10)
    assert summary["gif_frames"] == 11 and Image.open(summary["gif"]).n_frames == 11


def test_evaluate_with_record_writes_the_gif_next_to_the_checkpoint(tmp_path):
    from evaluation.evaluate import evaluate

    payload = payload_for(MAZE)
    save_checkpoint(tmp_path / "checkpoint.pt", {**payload, "counters": {}})
    summary = evaluate(str(tmp_path), episodes=2, seed=0, num_envs=2, record=True, record_max_steps=8)
    assert summary["gif"] == str(tmp_path / "episode.gif") and Image.open(summary["gif"]).n_frames == 9


def test_env_without_rgb_rendering_gives_a_one_line_error():
    with pytest.raises(ValueError) as error:
        make_rendering_env({"name": "memrl/tmaze", "corridor_length": 3})
    assert "\n" not in str(error.value) and "does not render RGB" in str(error.value)


def test_memrl_eval_record_true_writes_and_names_the_gif(tmp_path, capsys):
    from training.cli import main

    save_checkpoint(tmp_path / "checkpoint.pt", {**payload_for(MAZE), "counters": {}})
    status = main(["eval", f"checkpoint={tmp_path}", "episodes=2", "envs=2", "record=true", "record_max_steps=5"])
    assert status == 0
    assert Image.open(tmp_path / "episode.gif").n_frames == 6
    assert f"6 frames): {tmp_path / 'episode.gif'}" in capsys.readouterr().out


def test_greedy_actors_take_the_most_probable_action_and_sampling_ones_do_not(tmp_path):
    from training.actor import Actor

    cfg = compose("train", ["env=select_nonmatching_object", "actors.envs_per_actor=4", "actors.unroll_length=30"])
    for greedy in (True, False):
        actor = Actor(cfg, actor_index=0, seed=0, greedy=greedy)  # untrained: near-uniform policy
        steps = actor.unroll().unroll[:-1]  # the last entry carries inputs only
        most_probable = actor.agent.greedy(steps["behaviour_logits"])
        assert torch.equal(steps["action"], most_probable) == greedy


def test_memrl_eval_greedy_true_says_so(tmp_path, capsys):
    from training.cli import main

    save_checkpoint(tmp_path / "checkpoint.pt", {**payload_for(MAZE), "counters": {}})
    assert main(["eval", f"checkpoint={tmp_path}", "episodes=2", "envs=2", "greedy=true"]) == 0
    assert "(greedy actions)" in capsys.readouterr().out
