"""PQN through simulator bridges: every seed's envs in the one pool, vmapped seeds on Atari
(which purejaxql cannot do) and LunarLander's reset steps kept out of the loss.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from purejaxdqn.core.pqn import make_pqn_program
from purejaxdqn.core.pqn_config import PQNConfig

PONG = PQNConfig(
    env_id="PongNoFrameskip-v4",
    num_envs=2,
    num_steps=4,
    total_timesteps=2 * 4 * 4,
    num_epochs=1,
    num_minibatches=2,
    num_log_points=2,
    eval_every=0,
)
LANDER = PQNConfig(
    env_id="LunarLander-v3",
    num_envs=4,
    num_steps=16,
    total_timesteps=4 * 16 * 30,
    num_epochs=1,
    num_minibatches=2,
    hidden_sizes=(32,),
    num_log_points=3,
    eval_every=3,
    eval_episodes=2,
    eval_max_steps=100,
)


def _train(config: PQNConfig, keys: jax.Array):
    program = make_pqn_program(config)  # fresh simulators
    return jax.device_get(
        jax.jit(jax.vmap(program.train, in_axes=(0, None)))(keys, config.hparams())
    )


def test_vmapped_seeds_on_atari_each_equal_a_lone_run():
    keys = jax.random.split(jax.random.key(0), 2)
    both = _train(PONG, keys)
    assert np.isfinite(both.metrics["loss"]).all()
    assert not np.allclose(both.metrics["loss"][0], both.metrics["loss"][1])
    lone = _train(PONG.replace(env_seed=1), keys[1:])
    np.testing.assert_allclose(lone.metrics["loss"][0], both.metrics["loss"][1], rtol=1e-4)
    np.testing.assert_allclose(lone.metrics["q_value"][0], both.metrics["q_value"][1], rtol=1e-4)


@pytest.fixture(scope="module")
def lander_two_seeds():
    return _train(LANDER, jax.random.split(jax.random.key(1), 2))


def test_lunar_lander_trains_with_its_reset_steps_out_of_the_loss(lander_two_seeds):
    metrics, evals = lander_two_seeds.metrics, lander_two_seeds.evals
    assert np.isfinite(metrics["loss"]).all() and (metrics["episodes"].sum(1) > 4).all()
    assert (metrics["episode_length"] >= 1).all()  # reset steps add no length
    assert np.isfinite(evals["return"]).all() and evals["return"].shape == (2, 1)


def test_same_key_and_fresh_simulators_repeat(lander_two_seeds):
    again = _train(LANDER, jax.random.split(jax.random.key(1), 2))
    for name in ("loss", "episode_return", "episodes"):
        np.testing.assert_array_equal(again.metrics[name], lander_two_seeds.metrics[name])
