import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY

from purejaxdqn.core.losses import (
    LOSS_FUNCTIONS,
    LossAux,
    double_next_value,
    make_loss,
    max_next_value,
    polyak_update,
    target_update_due,
    td_loss,
    td_target,
)
from purejaxdqn.core.networks import as_q_network
from purejaxdqn.core.replay import Sample, Transition

NEXT_Q_TARGET = jnp.array([[1.0, 3.0]] * 3)
REWARD = jnp.ones(3)
# ongoing, terminated, truncated (a truncated transition is stored as not terminated,
# with the true final observation as next_obs, so it bootstraps)
TERMINATED = jnp.array([False, True, False])


class Table(nn.Module):
    """A 'network' whose parameters are its Q-values: obs (B, 1) int row index -> q[obs]."""

    @nn.compact
    def __call__(self, obs):
        q = self.param("q", nn.initializers.zeros_init(), (3, 2))
        return q[obs[..., 0]]


NETWORK = as_q_network(Table())
OBS = jnp.array([[0], [1], [2]])


def _discount(gamma):
    return gamma * (1.0 - TERMINATED.astype(jnp.float32))


def _next_value(rule, next_q_online=None):
    """`rule`'s bootstrap value with the target table NEXT_Q_TARGET (and an online one)."""
    target_params = {"params": {"q": NEXT_Q_TARGET}}
    online = {"params": {"q": NEXT_Q_TARGET if next_q_online is None else next_q_online}}
    return rule(NETWORK, online, target_params, OBS)


def test_dqn_target_bootstraps_unless_terminated():
    target = td_target(REWARD, _discount(0.9), _next_value(max_next_value))
    np.testing.assert_allclose(target, [1 + 0.9 * 3, 1.0, 1 + 0.9 * 3], rtol=1e-6)


def test_double_dqn_target_uses_online_argmax_and_target_value():
    next_q_online = jnp.array([[5.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    next_value = _next_value(double_next_value, next_q_online)
    target = td_target(REWARD, _discount(0.9), next_value)
    np.testing.assert_allclose(target, [1 + 0.9 * 1, 1.0, 1 + 0.9 * 3], rtol=1e-6)


def test_gamma_zero_and_one():
    next_value = _next_value(max_next_value)
    np.testing.assert_allclose(td_target(REWARD, _discount(0.0), next_value), [1, 1, 1])
    np.testing.assert_allclose(td_target(REWARD, _discount(1.0), next_value), [4, 1, 4])


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


def _sample(weights=None, valid=None):
    batch = Transition(
        obs=OBS,
        action=jnp.array([0, 1, 1], jnp.int32),
        reward=REWARD,
        discount=_discount(0.5),
        next_obs=OBS,
        valid=valid,
    )
    weights = jnp.ones(3, jnp.float32) if weights is None else weights
    return Sample(batch, jnp.arange(3, dtype=jnp.int32), weights)


PARAMS = {"params": {"q": jnp.array([[1.0, 0.0], [0.0, 2.0], [0.0, 4.0]])}}
TARGET_PARAMS = {"params": {"q": NEXT_Q_TARGET}}


@pytest.mark.parametrize("double_q", [False, True])
def test_loss_table_gives_the_td_loss_td_errors_and_q_mean(double_q):
    config = TINY.replace(double_q=double_q, loss="mse")
    loss_fn = make_loss(config, NETWORK)
    loss, aux = loss_fn(PARAMS, TARGET_PARAMS, _sample(), config.hparams(), jax.random.key(0))
    assert isinstance(aux, LossAux)
    q_taken = np.array([1.0, 2.0, 4.0])
    # online argmax of rows 0, 1, 2: actions 0, 1, 1 -> target values 1, 3, 3 (DQN: 3, 3, 3)
    next_value = np.array([1.0, 3.0, 3.0]) if double_q else np.array([3.0, 3.0, 3.0])
    target = 1.0 + np.array([0.5, 0.0, 0.5]) * next_value
    np.testing.assert_allclose(aux.td_error, np.abs(q_taken - target), rtol=1e-6)
    np.testing.assert_allclose(aux.q_mean, q_taken.mean(), rtol=1e-6)
    np.testing.assert_allclose(loss, np.mean((q_taken - target) ** 2), rtol=1e-6)
    # the gradient flows through Q(s, a) only, not through the (online) target
    grads, _ = jax.grad(loss_fn, has_aux=True)(
        PARAMS, TARGET_PARAMS, _sample(), config.hparams(), jax.random.key(0)
    )
    expected = np.zeros((3, 2))
    expected[[0, 1, 2], [0, 1, 1]] = 2 * (q_taken - target) / 3
    np.testing.assert_allclose(grads["params"]["q"], expected, rtol=1e-6)


def test_loss_weights_scale_each_sample_and_valid_masks():
    config = TINY.replace(loss="huber")
    loss_fn = make_loss(config, NETWORK)
    hp = config.hparams(huber_delta=10.0)
    key = jax.random.key(0)
    plain, aux = loss_fn(PARAMS, TARGET_PARAMS, _sample(), hp, key)
    weights = jnp.array([2.0, 1.0, 0.0])
    weighted, _ = loss_fn(PARAMS, TARGET_PARAMS, _sample(weights), hp, key)
    per_sample = 0.5 * np.asarray(aux.td_error) ** 2  # inside huber_delta
    np.testing.assert_allclose(plain, per_sample.mean(), rtol=1e-6)
    np.testing.assert_allclose(weighted, (per_sample * np.asarray(weights)).mean(), rtol=1e-6)
    valid = jnp.array([True, False, True])
    masked, masked_aux = loss_fn(PARAMS, TARGET_PARAMS, _sample(valid=valid), hp, key)
    np.testing.assert_allclose(masked, per_sample[[0, 2]].mean(), rtol=1e-6)
    np.testing.assert_allclose(masked_aux.q_mean, (1.0 + 4.0) / 2, rtol=1e-6)


def test_loss_table_refuses_unknown_entries():
    assert sorted(LOSS_FUNCTIONS) == [
        "c51",
        "double_c51",
        "double_dqn",
        "double_qr_dqn",
        "dqn",
        "munchausen_c51",
        "munchausen_dqn",
        "munchausen_qr_dqn",
        "qr_dqn",
    ]
    with pytest.raises(ValueError, match="loss function 'retrace' is not known: must be one"):
        make_loss(TINY, NETWORK, name="retrace")
    make_loss(TINY, NETWORK, name="double_dqn")  # a known entry, asked for by name
    with pytest.raises(ValueError, match="loss='l1' is not allowed"):
        make_loss(_with_loss(TINY, "l1"), NETWORK)


def _with_loss(config, loss):
    """`config` with `loss` set, bypassing the config's own validation."""
    bad = config.replace()
    object.__setattr__(bad, "loss", loss)
    return bad


@pytest.mark.parametrize("double_q, kind", [(False, "mse"), (True, "huber")])
def test_loss_table_agrees_with_rlax_on_random_batches(double_q, kind):
    rlax = pytest.importorskip("rlax")
    batch_size, num_actions = 64, 5
    keys = jax.random.split(jax.random.key(7), 6)

    class Rows(nn.Module):
        @nn.compact
        def __call__(self, obs):
            q = self.param("q", nn.initializers.normal(3.0), (batch_size, num_actions))
            return q[obs[..., 0]]

    network = as_q_network(Rows())
    obs = jnp.arange(batch_size)[:, None]
    params = network.init(keys[0], obs)
    target_params = network.init(keys[1], obs)
    batch = Transition(
        obs=obs,
        action=jax.random.randint(keys[2], (batch_size,), 0, num_actions),
        reward=jax.random.normal(keys[3], (batch_size,)),
        discount=0.97 * jax.random.bernoulli(keys[4], 0.8, (batch_size,)),
        next_obs=jax.random.permutation(keys[5], obs),
    )
    sample = Sample(batch, jnp.arange(batch_size, dtype=jnp.int32), jnp.ones(batch_size))
    config = TINY.replace(double_q=double_q, loss=kind)
    hp = config.hparams(huber_delta=1.5)
    loss, aux = make_loss(config, network)(params, target_params, sample, hp, keys[0])

    q_tm1 = network.q_values(params, batch.obs)
    q_t_value = network.q_values(target_params, batch.next_obs)
    if double_q:
        q_t_selector = network.q_values(params, batch.next_obs)
        td = jax.vmap(rlax.double_q_learning)(
            q_tm1, batch.action, batch.reward, batch.discount, q_t_value, q_t_selector
        )
    else:
        td = jax.vmap(rlax.q_learning)(q_tm1, batch.action, batch.reward, batch.discount, q_t_value)
    np.testing.assert_allclose(aux.td_error, np.abs(td), rtol=1e-5, atol=1e-5)
    expected = rlax.huber_loss(td, 1.5) if kind == "huber" else jnp.square(td)
    np.testing.assert_allclose(loss, expected.mean(), rtol=1e-5)
