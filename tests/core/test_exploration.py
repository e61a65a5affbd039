import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxdqn.core.exploration import epsilon_at, epsilon_greedy


def test_linear_schedule():
    eps = [float(epsilon_at("linear", s, 1000, 1.0, 0.1, 0.5)) for s in (0, 250, 500, 900)]
    np.testing.assert_allclose(eps, [1.0, 0.55, 0.1, 0.1], rtol=1e-6)


def test_exponential_schedule():
    eps = [float(epsilon_at("exponential", s, 1000, 1.0, 0.1, 0.2)) for s in (0, 200, 10_000)]
    np.testing.assert_allclose(eps, [1.0, 0.1 + 0.9 * np.exp(-1), 0.1], rtol=1e-6)


def test_unknown_schedule():
    with pytest.raises(ValueError, match="exploration_schedule='cosine'"):
        epsilon_at("cosine", 0, 10, 1.0, 0.0, 0.5)


def test_epsilon_greedy_extremes_and_rate():
    q = jnp.tile(jnp.array([[0.0, 2.0, 1.0]]), (30_000, 1))
    greedy = epsilon_greedy(jax.random.key(0), q, 0.0)
    assert np.all(np.asarray(greedy) == 1)
    uniform = np.bincount(np.asarray(epsilon_greedy(jax.random.key(1), q, 1.0)), minlength=3)
    assert np.all(np.abs(uniform / 30_000 - 1 / 3) < 0.02), uniform
    half = np.asarray(epsilon_greedy(jax.random.key(2), q, 0.5))
    assert abs(np.mean(half == 1) - (0.5 + 0.5 / 3)) < 0.02
