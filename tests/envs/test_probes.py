"""Probe environments with known Q-values: the agent must learn them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxdqn import DQNConfig, hparams_in_axes, make_train
from purejaxdqn.core.networks import make_network
from purejaxdqn.envs.probes import ActionMatchProbe, ConstantRewardProbe, TruncationProbe

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
    spec_net = make_network(
        config.network, (1,), env.num_actions, config.hidden_sizes, config.dueling
    )
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


@pytest.mark.parametrize("probe", [ConstantRewardProbe, TruncationProbe, ActionMatchProbe])
def test_probes_follow_the_gymnax_step_api(probe):
    env = probe()
    params = env.default_params
    obs, state = env.reset(jax.random.key(0), params)
    out = env.step(jax.random.key(1), state, 0, params)
    assert len(out) == 6 and out[0].shape == obs.shape == (1,)
    _, _, reward, terminated, truncated, info = out
    assert float(reward) in (0.0, 1.0) and "final_observation" in info
    assert bool(terminated) != bool(truncated)  # each probe ends its episode one way only
