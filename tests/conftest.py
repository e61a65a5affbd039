"""Shared tiny configurations and compiled train functions (compiled once per session)."""

from __future__ import annotations

import jax
import pytest

from purejaxdqn import DQNConfig
from purejaxdqn.train import make_train_program

# 4 envs x 400 iterations, 4 log points of 100 iterations, greedy eval every 2 log points.
TINY = DQNConfig(
    env_id="CartPole-v1",
    num_envs=4,
    total_timesteps=1600,
    buffer_size=512,
    learning_starts=200,
    batch_size=32,
    target_update_interval=100,
    hidden_sizes=(16,),
    num_log_points=4,
    eval_every=2,
    eval_episodes=2,
    eval_max_steps=100,
    learning_rate=1e-3,
)


@pytest.fixture(scope="session")
def tiny_config() -> DQNConfig:
    return TINY


@pytest.fixture(scope="session")
def tiny_program():
    """The train program (init, run_periods, train) of TINY."""
    return make_train_program(TINY)


@pytest.fixture(scope="session")
def tiny_train(tiny_program):
    """The pure train function of TINY."""
    return tiny_program.train


@pytest.fixture(scope="session")
def tiny_single(tiny_train):
    """jit(train) for one seed."""
    return jax.jit(tiny_train)


@pytest.fixture(scope="session")
def tiny_vmapped(tiny_train):
    """jit(vmap(train)) over keys, hparams shared."""
    return jax.jit(jax.vmap(tiny_train, in_axes=(0, None)))
