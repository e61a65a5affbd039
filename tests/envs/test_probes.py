"""Probe environments with known Q-values: the agent must learn them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxdqn import DQNConfig, hparams_in_axes, make_train
from purejaxdqn.core.loop import q_network_for
from purejaxdqn.envs.probes import (
    ActionMatchProbe,
    ConstantRewardProbe,
    CountdownProbe,
    TruncationProbe,
)

PROBE = DQNConfig(
    env_id="probe",
    num_envs=8,
    total_timesteps=16_000,
    buffer_size=2_000,
    learning_starts=400,
    batch_size=64,
    learning_rate=3e-3,
    target_update_interval=80,
    hidden_sizes=(16,),
    exploration_fraction=0.2,
    num_log_points=4,
    eval_every=4,
    eval_episodes=8,
    eval_max_steps=4,
)


def _learned_q(config, env, hp, keys, obs):
    train = jax.jit(jax.vmap(make_train(config, env), in_axes=(0, hparams_in_axes(hp))))
    result = train(keys, hp)
    spec_net = q_network_for(config, (1,), env.num_actions).module  # Q-values (the mean)
    q = jax.vmap(spec_net.apply, in_axes=(0, None))(result.runner_state.params, obs)
    return np.asarray(q), result


def test_constant_reward_probe_learns_q_equal_one():
    keys = jax.random.split(jax.random.key(0), 2)
    q, _ = _learned_q(PROBE, ConstantRewardProbe(), PROBE.hparams(), keys, jnp.ones((1, 1)))
    np.testing.assert_allclose(q[..., 0], 1.0, atol=0.05)


def test_truncation_bootstraps_from_the_final_observation():
    """Every step is truncated, none terminated: Q = 1 / (1 - gamma), not 1."""
    gammas = np.array([0.5, 0.75], np.float32)
    config = PROBE.replace(total_timesteps=32_000)
    hp = config.hparams(gamma=gammas)
    keys = jax.random.split(jax.random.key(1), 2)
    q, result = _learned_q(config, TruncationProbe(), hp, keys, jnp.ones((1, 1)))
    np.testing.assert_allclose(q[:, 0, 0], 1.0 / (1.0 - gammas), rtol=0.05)
    # the transitions really were truncations: episodes of length 1, never terminated
    buffer = result.runner_state.buffer
    assert not np.any(buffer.terminated) and np.all(buffer.truncated)
    np.testing.assert_array_equal(result.metrics["episode_length"], 1.0)


def test_action_match_probe_learns_the_rewarded_action():
    keys = jax.random.split(jax.random.key(2), 2)
    obs = jnp.array([[1.0], [-1.0]])
    q, result = _learned_q(PROBE, ActionMatchProbe(), PROBE.hparams(), keys, obs)
    np.testing.assert_allclose(q[:, 0], [[0.0, 1.0]] * 2, atol=0.1)  # obs +1: action 1
    np.testing.assert_allclose(q[:, 1], [[1.0, 0.0]] * 2, atol=0.1)  # obs -1: action 0
    np.testing.assert_array_equal(result.evals["return"], 1.0)  # greedy eval is perfect


@pytest.mark.parametrize(
    "probe", [ConstantRewardProbe, TruncationProbe, ActionMatchProbe, CountdownProbe]
)
def test_probes_follow_the_gymnax_step_api(probe):
    env = probe()
    params = env.default_params
    obs, state = env.reset(jax.random.key(0), params)
    length = getattr(probe, "LENGTH", 1)  # the countdown's episodes last LENGTH steps
    for step in range(length):
        out = env.step(jax.random.key(1 + step), state, 0, params)
        assert len(out) == 6 and out[0].shape == obs.shape == (1,)
        obs, state, reward, terminated, truncated, info = out
        assert float(reward) in (0.0, 1.0) and "final_observation" in info
        if step < length - 1:
            assert not (terminated or truncated)
    assert bool(terminated) != bool(truncated)  # each probe ends its episode one way only


# --- the DQN family: each component learns the probes' known values ---------------------

# C51's support must span the values: up to 1 / (1 - 0.75) = 4 on the truncation probe
C51 = {"distributional": "c51", "num_atoms": 21, "v_min": -1.0, "v_max": 5.0}
QR = {"distributional": "qr", "num_quantiles": 16}
FAMILY = {
    "n_step": {"n_step": 3},
    "prioritized": {"prioritized_replay": True},
    "c51": C51,
    "qr": QR,
    "rainbow": {
        **C51,
        "n_step": 3,
        "prioritized_replay": True,
        "noisy": True,
        "double_q": True,
        "dueling": True,
    },
    "qr_munchausen": {**QR, "n_step": 3, "munchausen": True},
}


@pytest.mark.parametrize("name", ["n_step", "rainbow"])
def test_countdown_probe_learns_n_step_returns(name):
    """Q after t steps is (1 - gamma**(4 - t)) / (1 - gamma): rewards summed with gamma**k,
    no bootstrap past the termination inside the window.
    """
    config = PROBE.replace(total_timesteps=24_000, **FAMILY[name])
    gamma = 0.9
    keys = jax.random.split(jax.random.key(3), 2)
    obs = jnp.array([[1.0], [0.75], [0.5], [0.25]])  # t = 0, 1, 2, 3
    q, _ = _learned_q(config, CountdownProbe(), config.hparams(gamma=gamma), keys, obs)
    expected = [(1 - gamma ** (4 - t)) / (1 - gamma) for t in range(4)]
    np.testing.assert_allclose(q[:, :, 0], [expected] * 2, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("name", ["c51", "qr", "prioritized", "n_step", "qr_munchausen"])
def test_family_bootstraps_through_truncation(name):
    """Every step truncated: Q = 1 / (1 - gamma) for each component (1 if it treated
    truncation as termination). Munchausen with one action: log pi = 0, the same value.
    """
    config = PROBE.replace(total_timesteps=32_000, **FAMILY[name])
    gammas = np.array([0.5, 0.75], np.float32)
    keys = jax.random.split(jax.random.key(1), 2)
    hp = config.hparams(gamma=gammas)
    q, _ = _learned_q(config, TruncationProbe(), hp, keys, jnp.ones((1, 1)))
    np.testing.assert_allclose(q[:, 0, 0], 1.0 / (1.0 - gammas), rtol=0.06)


@pytest.mark.parametrize("name", ["c51", "qr", "prioritized", "rainbow"])
def test_family_learns_the_rewarded_action(name):
    config = PROBE.replace(**FAMILY[name])
    keys = jax.random.split(jax.random.key(2), 2)
    obs = jnp.array([[1.0], [-1.0]])
    q, result = _learned_q(config, ActionMatchProbe(), config.hparams(), keys, obs)
    np.testing.assert_allclose(q[:, 0], [[0.0, 1.0]] * 2, atol=0.1)
    np.testing.assert_allclose(q[:, 1], [[1.0, 0.0]] * 2, atol=0.1)
    np.testing.assert_array_equal(result.evals["return"], 1.0)
