import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents import Agent, UnsupportedSpaceError, build_encoder


def sample_batch(space, lead):
    if isinstance(space, spaces.Tuple):  # as the actor stacks it: a dict keyed by position
        return {str(i): sample_batch(s, lead) for i, s in enumerate(space.spaces)}
    if isinstance(space, spaces.Dict):
        return {k: sample_batch(space[k], lead) for k in space.spaces}
    samples = [space.sample() for _ in range(int(np.prod(lead)))]
    return torch.as_tensor(np.stack(samples)).reshape(*lead, *np.shape(samples[0]))


SPACES = {
    "image_hwc": spaces.Box(0, 255, (7, 7, 3), np.uint8),
    "image_chw_large": spaces.Box(0, 255, (3, 72, 96), np.uint8),
    "image_onehot_more_channels_than_pixels": spaces.Box(0, 1, (5, 5, 6), np.uint8),
    "vector": spaces.Box(-1, 1, (5,), np.float32),
    "vector_unbounded": spaces.Box(-np.inf, np.inf, (4,), np.float32),
    "discrete": spaces.Discrete(6, start=2),
    "multidiscrete": spaces.MultiDiscrete([3, 4]),
    "dict": spaces.Dict({"image": spaces.Box(0, 255, (7, 7, 3), np.uint8), "direction": spaces.Discrete(4)}),
    "box_rank_2": spaces.Box(-1, 1, (2, 3), np.float32),
    "box_rank_4": spaces.Box(0, 1, (2, 3, 4, 5), np.float32),
    "box_scalar": spaces.Box(-2, 2, (), np.float32),
    "tuple": spaces.Tuple([spaces.Discrete(2), spaces.Discrete(4)]),  # POPGym's Autoencode
    "dict_in_tuple": spaces.Tuple([spaces.Dict({"a": spaces.Discrete(3), "b": spaces.Box(-1, 1, (2,))}), spaces.Discrete(2)]),
}


@pytest.mark.parametrize("name", SPACES)
def test_encoder_for_each_space_gives_features_that_depend_on_the_observation(name):
    space = SPACES[name]
    space.seed(0)
    torch.manual_seed(0)
    encoder = build_encoder(space, 32)
    obs = sample_batch(space, (3, 4))
    feats = encoder(obs)
    assert feats.shape == (3, 4, encoder.output_size)
    assert torch.isfinite(feats).all()
    # Different observations give different features (the encoder really reads its input).
    flat = feats.reshape(12, -1)
    assert (flat[1:] - flat[:1]).abs().sum() > 0


@pytest.mark.parametrize(
    "space",
    [spaces.Text(10), spaces.MultiDiscrete([[2, 3], [4, 5]]), spaces.Tuple([]), spaces.Dict({}), spaces.Tuple([spaces.Text(3)])],
)
def test_unsupported_observation_space_is_a_one_line_error(space):
    with pytest.raises(UnsupportedSpaceError) as info:
        build_encoder(space, 16)
    message = str(info.value)
    assert "\n" not in message and ("not supported" in message or "empty" in message)


@pytest.mark.parametrize("action_space", [spaces.Discrete(4), spaces.MultiDiscrete([3, 2, 5])])
def test_agent_sampling_log_prob_and_entropy(action_space):
    torch.manual_seed(0)
    agent = Agent(spaces.Box(-1, 1, (3,), np.float32), action_space, core={"name": "lstm", "hidden_size": 16})
    T, B = 4, 5
    n = len(agent.action_sizes)
    out = agent(torch.randn(T, B, 3), torch.zeros(T, B, n, dtype=torch.long), torch.zeros(T, B),
                torch.zeros(T, B, dtype=torch.bool), agent.initial_state(B))
    assert out.logits.shape == (T, B, sum(agent.action_sizes)) and out.values.shape == (T, B)
    actions = agent.sample(out.logits, torch.Generator().manual_seed(1))
    assert actions.shape == (T, B, n)
    for i, size in enumerate(agent.action_sizes):
        assert ((actions[..., i] >= 0) & (actions[..., i] < size)).all()
    greedy = agent.greedy(out.logits)
    assert torch.equal(greedy, torch.stack([p.argmax(-1) for p in agent.split_logits(out.logits)], -1))
    # log_prob of a joint action = sum of per-component log-probs, checked by enumeration for one step.
    parts = agent.split_logits(out.logits[0, 0])
    manual = sum(torch.log_softmax(p, -1)[actions[0, 0, i]] for i, p in enumerate(parts))
    torch.testing.assert_close(agent.log_prob(out.logits, actions)[0, 0], manual)
    manual_entropy = sum(torch.distributions.Categorical(logits=p).entropy() for p in parts)
    torch.testing.assert_close(agent.entropy(out.logits)[0, 0], manual_entropy)


@pytest.mark.parametrize("prev_action_input, prev_reward_input", [(True, True), (False, True), (True, False), (False, False)])
def test_previous_action_and_reward_reach_the_core_unless_left_out(prev_action_input, prev_reward_input):
    torch.manual_seed(0)
    agent = Agent(spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(3), core={"name": "feedforward", "hidden_size": 8},
                  prev_action_input=prev_action_input, prev_reward_input=prev_reward_input)
    assert agent.core.input_size == agent.encoder.output_size + 3 * prev_action_input + prev_reward_input
    obs = torch.randn(1, 1, 3)
    state = agent.initial_state(1)
    reset = torch.zeros(1, 1, dtype=torch.bool)
    base = agent(obs, torch.zeros(1, 1, 1, dtype=torch.long), torch.zeros(1, 1), reset, state).logits
    other_action = agent(obs, torch.ones(1, 1, 1, dtype=torch.long), torch.zeros(1, 1), reset, state).logits
    other_reward = agent(obs, torch.zeros(1, 1, 1, dtype=torch.long), torch.ones(1, 1), reset, state).logits
    assert torch.equal(base, other_action) != prev_action_input
    assert torch.equal(base, other_reward) != prev_reward_input


@pytest.mark.parametrize("shape, channels_last", [((7, 7, 3), True), ((72, 96, 3), True), ((5, 5, 6), True), ((3, 72, 96), False)])
def test_image_layout(shape, channels_last):
    encoder = build_encoder(spaces.Box(0, 255, shape, np.uint8), 16)
    assert encoder.channels_last == channels_last
    channels = shape[2] if channels_last else shape[0]
    assert encoder.conv[0].in_channels == channels
