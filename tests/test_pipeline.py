"""Actor-to-learner hand-off through the real Ray path, with the counter core and counter env.

The counter env observes the step count of its episode and the counter core
outputs the steps it has seen since the episode began, so replaying the core
from the state an actor sent must reproduce every observation exactly.
"""
import time

import torch

import envs
from training.actor import build_agent
from training.config import compose
from training.impala import RayActors, cpu_weights

T, B = 5, 3


def test_state_sent_with_each_unroll_matches_its_first_step_and_unrolls_join(ray_session):
    cfg = compose(
        "train",
        ["core=counter", "env=counter", "env.length=7", "actors.num_actors=2", f"actors.envs_per_actor={B}",
         f"actors.unroll_length={T}", "actors.inflight_per_actor=2"],
    )
    agent = build_agent(envs.make_from_config(cfg["env"]), cfg)
    actors = RayActors(cfg, seed=0, weights=cpu_weights(agent), version=0)
    weights_ref = actors.publish(cpu_weights(agent))
    last_entry, seen, resets_inside = {}, {0: 0, 1: 0}, 0
    try:
        deadline = time.time() + 300  # until both actors have delivered several unrolls
        while time.time() < deadline and min(seen.values()) < 3:
            time.sleep(0.5)  # let both queued unrolls of an actor finish, so several are ready at once
            result = actors.next_result(weights_ref, 0)
            unroll, state = result.unroll, result.start_state
            assert unroll.batch_size == torch.Size([T + 1, B])
            obs = unroll["obs"][..., 0]
            # The state sent is the state before step 0: it counts exactly obs[0] steps (unless step 0 resets).
            expected = torch.where(unroll["reset"][0], obs[0], state["count"][:, 0])
            torch.testing.assert_close(expected, obs[0])
            # The learner's replay from that state reproduces every observation, resets included.
            out, _, _ = agent.core(torch.zeros(T + 1, B, agent.core.input_size), state, unroll["reset"])
            torch.testing.assert_close(out[..., 0], obs)
            resets_inside += int(unroll["reset"][1:].sum())
            # Unrolls join without gaps: entry T of one is entry 0 of the next from the same actor.
            previous = last_entry.get(result.actor_index)
            if previous is not None:
                for key in ("obs", "reset", "prev_action", "prev_reward"):
                    torch.testing.assert_close(unroll[0][key], previous[key])
            last_entry[result.actor_index] = unroll[-1]
            seen[result.actor_index] += 1
    finally:
        actors.close()
    assert seen[0] >= 2 and seen[1] >= 2, f"both actors must deliver several unrolls, got {seen}"
    assert resets_inside > 0, "7-step episodes must end inside some unrolls, so replays cross resets"


def test_a_killed_actor_is_replaced_and_training_goes_on(ray_session):
    cfg = compose("train", ["core=counter", "env=counter", "actors.num_actors=2", "actors.envs_per_actor=2",
                            "actors.unroll_length=4"])
    agent = build_agent(envs.make_from_config(cfg["env"]), cfg)
    actors = RayActors(cfg, seed=0, weights=cpu_weights(agent), version=0)
    weights_ref = actors.publish(cpu_weights(agent))
    try:
        actors.next_result(weights_ref, 0)
        ray_session.kill(actors.actors[0])
        delivered = {0: 0, 1: 0}
        deadline = time.time() + 300  # a replacement needs a few seconds to start, more on a busy machine
        while time.time() < deadline:
            result = actors.next_result(weights_ref, 0)
            delivered[result.actor_index] += 1
            if min(delivered.values()) >= 3:
                break
        assert actors.restarts == 1
        assert min(delivered.values()) >= 3, f"the replacement actor must deliver unrolls, got {delivered}"
    finally:
        actors.close()
