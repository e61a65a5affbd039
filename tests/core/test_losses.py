import jax.numpy as jnp
import numpy as np
import pytest

from purejaxdqn.core.losses import polyak_update, target_update_due, td_loss, td_target

NEXT_Q_TARGET = jnp.array([[1.0, 3.0]] * 3)
REWARD = jnp.ones(3)
# ongoing, terminated, truncated (a truncated transition is stored as not terminated,
# with the true final observation as next_obs, so it bootstraps)
TERMINATED = jnp.array([False, True, False])


def test_dqn_target_bootstraps_unless_terminated():
    target = td_target(REWARD, TERMINATED, NEXT_Q_TARGET, 0.9)
    np.testing.assert_allclose(target, [1 + 0.9 * 3, 1.0, 1 + 0.9 * 3], rtol=1e-6)


def test_double_dqn_target_uses_online_argmax_and_target_value():
    next_q_online = jnp.array([[5.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    target = td_target(REWARD, TERMINATED, NEXT_Q_TARGET, 0.9, next_q_online)
    np.testing.assert_allclose(target, [1 + 0.9 * 1, 1.0, 1 + 0.9 * 3], rtol=1e-6)


def test_gamma_zero_and_one():
    np.testing.assert_allclose(td_target(REWARD, TERMINATED, NEXT_Q_TARGET, 0.0), [1, 1, 1])
    np.testing.assert_allclose(td_target(REWARD, TERMINATED, NEXT_Q_TARGET, 1.0), [4, 1, 4])


def test_losses():
    q, y = jnp.array([0.0, 0.0]), jnp.array([0.5, 3.0])
    assert float(td_loss(q, y, "mse", 1.0)) == pytest.approx((0.25 + 9.0) / 2)
    # Huber(delta=1): 0.5 * 0.5^2 inside; 1 * (3 - 0.5) outside
    assert float(td_loss(q, y, "huber", 1.0)) == pytest.approx((0.125 + 2.5) / 2)
    assert float(td_loss(q, y, "huber", 10.0)) == pytest.approx((0.125 + 4.5) / 2)
    with pytest.raises(ValueError, match="loss='l1'"):
        td_loss(q, y, "l1", 1.0)


def test_polyak_update():
    online, target = {"w": jnp.array([1.0, 3.0])}, {"w": jnp.array([0.0, 1.0])}
    np.testing.assert_allclose(polyak_update(online, target, 0.25)["w"], [0.25, 1.5])
    np.testing.assert_array_equal(polyak_update(online, target, 1.0)["w"], online["w"])


def _due(steps_per_iteration, interval, iterations):
    return [i for i in range(iterations) if target_update_due(i, steps_per_iteration, interval)]


def test_target_update_interval_not_divisible_by_iteration_steps():
    # 10 env steps per iteration, target every 25: crossings at 30, 50, 80, 100 steps
    assert _due(10, 25, 10) == [2, 4, 7, 9]
    # over a whole run: exactly total_steps // interval updates
    assert len(_due(10, 25, 1000)) == 10_000 // 25
    assert len(_due(7, 500, 1000)) == 7000 // 500


def test_target_update_every_iteration_when_interval_equals_iteration():
    assert _due(4, 4, 5) == [0, 1, 2, 3, 4]


def test_masked_loss_ignores_invalid_samples():
    q, y = jnp.array([0.0, 0.0, 0.0]), jnp.array([1.0, 100.0, 3.0])
    valid = jnp.array([True, False, True])
    assert float(td_loss(q, y, "mse", 1.0, valid)) == pytest.approx((1.0 + 9.0) / 2)
    assert float(td_loss(q, y, "mse", 1.0, jnp.zeros(3, bool))) == 0.0  # none valid: no NaN
    all_valid = td_loss(q, y, "huber", 1.0, jnp.ones(3, bool))
    assert float(all_valid) == pytest.approx(float(td_loss(q, y, "huber", 1.0)))
