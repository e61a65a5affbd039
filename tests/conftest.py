"""Shared tiny configurations and compiled train functions (compiled once per session)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from purejaxdqn import DQNConfig, get_preset
from purejaxdqn.cli.options import option_name
from purejaxdqn.core.loop import make_train_program
from purejaxdqn.outputs.report import Summary, summarise
from purejaxdqn.run import states
from purejaxdqn.run.experiment import Experiment

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

# Rainbow on TINY: double + dueling + 3-step + prioritized + C51 (11 atoms) + noisy nets
TINY_RAINBOW = TINY.replace(
    double_q=True,
    dueling=True,
    n_step=3,
    prioritized_replay=True,
    distributional="c51",
    num_atoms=11,
    v_min=0.0,
    v_max=100.0,
    noisy=True,
    exploration_final_eps=0.0,
)


def cli_options(config: DQNConfig) -> list[str]:
    """Command-line options that turn the CartPole preset into `config`."""
    base, options = get_preset("CartPole-v1"), []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value != getattr(base, field.name):
            if isinstance(value, tuple):
                text = ",".join(map(str, value))
            elif isinstance(value, bool) or value is None:
                text = str(value).lower()
            else:
                text = str(value)
            options += [option_name(field.name), text]
    return ["--env", "CartPole-v1", *options]


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


def synthetic_experiment(config, episode_return, evals):
    """An `Experiment` of made-up outputs (no training): returns per seed and log point."""
    num_seeds, points = episode_return.shape
    steps = np.tile(np.arange(1, points + 1, dtype=np.int32) * 100, (num_seeds, 1))
    metrics = {
        "env_steps": steps,
        "episode_return": episode_return.astype(np.float32),
        "episodes": np.ones((num_seeds, points), np.int32),
    }
    summary = summarise(config, num_seeds, 7, metrics, evals, 1.5, 2.0)
    assert isinstance(summary, Summary)
    return Experiment(config, num_seeds, 7, metrics, evals, 1.5, 2.0, summary)


def _close(a, b) -> bool:
    """Integers equal; floats equal up to the rounding that batch shapes change."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "iub":
        return bool(np.array_equal(a, b))
    return bool(np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True))


def all_close(first: dict, second: dict) -> bool:
    """Two dicts of arrays with the same keys, each pair `_close`."""
    assert sorted(first) == sorted(second)
    return all(_close(first[name], second[name]) for name in first)


def leaves_equal(a, b) -> bool:
    """Same tree of leaves, dtypes and values, bit for bit (NaN equal to NaN; typed PRNG
    keys compared by their key data)."""
    a, b = jax.tree.leaves(states.keys_as_data(a)), jax.tree.leaves(states.keys_as_data(b))
    return len(a) == len(b) and all(
        np.asarray(x).dtype == np.asarray(y).dtype
        and np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(a, b, strict=True)
    )
