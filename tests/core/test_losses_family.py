"""The DQN family's losses: C51, QR-DQN and Munchausen with each bootstrap rule, against
rlax and NumPy transcriptions of the papers' equations on random batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY

from purejaxdqn.core.losses import (
    HEADS,
    LOSS_FUNCTIONS,
    Evaluations,
    NextPolicy,
    double_next_value,
    loss_name,
    make_loss,
    masked_mean,
    max_next_value,
    munchausen_next,
    quantile_midpoints,
    td_loss,
    td_target,
)
from purejaxdqn.core.networks import (
    HeadConfig,
    HeadOutputs,
    QNetwork,
    head_config,
    make_q_network,
)
from purejaxdqn.core.replay import Sample, Transition

BATCH, OBS_DIM, ACTIONS = 16, 3, 4
# small supports so that targets fall outside them (clipping) and between atoms
FAMILY = TINY.replace(num_atoms=9, v_min=-2.0, v_max=2.0, num_quantiles=6)
KEY = jax.random.key(11)


def _config(distributional="none", double_q=False, munchausen=False, noisy=False, **kw):
    return FAMILY.replace(
        distributional=distributional, double_q=double_q, munchausen=munchausen, noisy=noisy, **kw
    )


def _setup(config, dueling=False, seed=0):
    """The config's network (an MLP over OBS_DIM features), online and target params, a
    random batch: terminated (discount 0), truncated and ongoing (discount 0.9**m) samples.
    """
    head = head_config(config)
    network = make_q_network("mlp", (OBS_DIM,), ACTIONS, (8,), dueling, head)
    keys = jax.random.split(jax.random.key(seed), 7)
    obs = 2 * jax.random.normal(keys[0], (BATCH, OBS_DIM))
    params = network.init(keys[1], obs)
    target_params = network.init(keys[2], obs)
    discount = jnp.where(jax.random.bernoulli(keys[3], 0.7, (BATCH,)), 0.9, 0.0)
    batch = Transition(
        obs=obs,
        action=jax.random.randint(keys[4], (BATCH,), 0, ACTIONS),
        reward=1.5 * jax.random.normal(keys[5], (BATCH,)),
        discount=discount.at[0].set(0.0).at[1].set(0.81),  # one terminated, one 2-step
        next_obs=2 * jax.random.normal(keys[6], (BATCH, OBS_DIM)),
    )
    weights = jnp.linspace(0.5, 1.5, BATCH)
    return network, params, target_params, Sample(batch, jnp.arange(BATCH), weights)


def _f64(x):
    return np.asarray(x, np.float64)


# --- plain and double DQN: the same program as before the family ---------------------


def _old_td_loss(config, network, next_value):
    """The TD loss as `make_loss` made it before C51/QR/Munchausen (kept as a reference)."""

    def loss_fn(params, target_params, sample, hp, key):
        batch = sample.batch
        bootstrap = next_value(
            network, jax.lax.stop_gradient(params), target_params, batch.next_obs
        )
        target = td_target(batch.reward, batch.discount, bootstrap)
        q = network.outputs(params, batch.obs).q_values
        q_taken = jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0]
        loss = td_loss(q_taken, target, config.loss, hp.huber_delta, batch.valid, sample.weights)
        return loss, (jnp.abs(q_taken - target), masked_mean(q_taken, batch.valid))

    return loss_fn


@pytest.mark.parametrize("double_q, kind, dueling", [(False, "mse", False), (True, "huber", True)])
def test_dqn_and_double_dqn_are_bit_for_bit_the_td_loss(double_q, kind, dueling):
    config = _config(double_q=double_q, loss=kind)
    network, params, target_params, sample = _setup(config, dueling)
    valid = jnp.arange(BATCH) % 5 != 0
    sample = sample._replace(batch=sample.batch._replace(valid=valid))
    hp = config.hparams(huber_delta=0.7)

    def run(loss_fn):
        (loss, aux), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
            params, target_params, sample, hp, KEY
        )
        return loss, tuple(aux), grads

    new = run(make_loss(config, network))
    old = run(_old_td_loss(config, network, double_next_value if double_q else max_next_value))
    jax.tree.map(np.testing.assert_array_equal, new, old)


# --- C51 and QR-DQN against rlax -------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Rlax categorical_cross_entropy:PendingDeprecationWarning")
@pytest.mark.parametrize("double_q, dueling", [(False, False), (True, True)])
def test_c51_agrees_with_rlax_on_random_batches(double_q, dueling):
    rlax = pytest.importorskip("rlax")
    config = _config("c51", double_q=double_q)
    network, params, target_params, sample = _setup(config, dueling)
    batch, hp = sample.batch, config.hparams()
    loss, aux = make_loss(config, network)(params, target_params, sample, hp, KEY)

    support = jnp.asarray(network.support)
    online = network.outputs(params, batch.obs)
    target_next = network.outputs(target_params, batch.next_obs).distribution
    atoms = jnp.broadcast_to(support, (BATCH, support.shape[0]))
    if double_q:
        selector = network.q_values(params, batch.next_obs)
        expected = jax.vmap(rlax.categorical_double_q_learning)(
            atoms, online.distribution, batch.action, batch.reward, batch.discount, atoms,
            target_next, selector,
        )  # fmt: skip
    else:
        expected = jax.vmap(rlax.categorical_q_learning)(
            atoms, online.distribution, batch.action, batch.reward, batch.discount, atoms,
            target_next,
        )  # fmt: skip
    np.testing.assert_allclose(aux.td_error, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, np.mean(sample.weights * expected), rtol=1e-5)
    q_taken = np.take_along_axis(online.q_values, batch.action[:, None], axis=1)[:, 0]
    np.testing.assert_allclose(aux.q_mean, q_taken.mean(), rtol=1e-5)


@pytest.mark.parametrize("double_q, dueling", [(False, True), (True, False)])
def test_qr_agrees_with_rlax_on_random_batches(double_q, dueling):
    rlax = pytest.importorskip("rlax")
    config = _config("qr", double_q=double_q)
    network, params, target_params, sample = _setup(config, dueling)
    batch, hp = sample.batch, config.hparams(huber_delta=0.5)
    loss, aux = make_loss(config, network)(params, target_params, sample, hp, KEY)

    # rlax takes quantiles first: (N, A)
    online = jnp.swapaxes(network.outputs(params, batch.obs).distribution, 1, 2)
    target_next = jnp.swapaxes(network.outputs(target_params, batch.next_obs).distribution, 1, 2)
    selector = target_next
    if double_q:
        selector = jnp.swapaxes(network.outputs(params, batch.next_obs).distribution, 1, 2)
    taus = jnp.broadcast_to(quantile_midpoints(6), (BATCH, 6))
    expected = jax.vmap(rlax.quantile_q_learning, in_axes=(0,) * 7 + (None,))(
        online, taus, batch.action, batch.reward, batch.discount, selector, target_next, 0.5
    )
    np.testing.assert_allclose(aux.td_error, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, np.mean(sample.weights * expected), rtol=1e-5)


def test_quantile_midpoints():
    np.testing.assert_allclose(quantile_midpoints(4), [0.125, 0.375, 0.625, 0.875])


# --- Munchausen against NumPy transcriptions -------------------------------------------


def _log_pi(q, tau):
    """log softmax(q / tau), float64."""
    z = q / tau
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _munchausen_parts(q_now, q_next, action, reward, hp):
    """Vieillard et al. (2020), eq. (2): r + alpha clip(tau log pi(a|s), l0, 0), and pi and
    -tau log pi at s' (pi = softmax(q_target / tau)).
    """
    alpha, tau, l0 = (
        float(hp.munchausen_alpha),
        float(hp.munchausen_tau),
        float(hp.munchausen_clip),
    )
    log_pi_now = _log_pi(q_now, tau)[np.arange(BATCH), action]
    bonus = alpha * np.clip(tau * log_pi_now, l0, 0.0)
    log_pi_next = _log_pi(q_next, tau)
    return reward + bonus, np.exp(log_pi_next), -tau * log_pi_next


def _numpy_batch(network, params, target_params, batch):
    """The networks' outputs and the batch, as float64 NumPy arrays."""
    target_now = network.outputs(target_params, batch.obs)
    target_next = network.outputs(target_params, batch.next_obs)
    online = network.outputs(params, batch.obs)
    return (
        jax.tree.map(_f64, (online, target_now, target_next)),
        np.asarray(batch.action),
        _f64(batch.reward),
        _f64(batch.discount),
    )


def _quantile_huber(quantiles, samples, kappa):
    """Dabney et al. (2018) quantile Huber loss (not divided by kappa), per sample."""
    taus = (2 * np.arange(quantiles.shape[-1]) + 1) / (2 * quantiles.shape[-1])
    delta = samples[:, None, :] - quantiles[:, :, None]
    huber = np.where(np.abs(delta) <= kappa, 0.5 * delta**2, kappa * (np.abs(delta) - 0.5 * kappa))
    return (np.abs(taus[:, None] - (delta < 0)) * huber).mean(-1).sum(-1)


def _project(atoms, probs, support):
    """Bellemare et al. (2017), algorithm 1: the projection of (atoms, probs) on support."""
    v_min, v_max = support[0], support[-1]
    spacing = (v_max - v_min) / (len(support) - 1)
    m = np.zeros(len(support))
    for atom, p in zip(atoms, probs, strict=True):
        b = (np.clip(atom, v_min, v_max) - v_min) / spacing
        lower, upper = int(np.floor(b)), int(np.ceil(b))
        if lower == upper:
            m[lower] += p
        else:
            m[lower] += p * (upper - b)
            m[upper] += p * (b - lower)
    return m


HPS = [{}, {"munchausen_tau": 0.5, "munchausen_alpha": 0.5, "munchausen_clip": -0.2}]


@pytest.mark.parametrize("overrides", HPS, ids=["defaults", "tau0.5"])
@pytest.mark.parametrize("distributional", ["none", "qr", "c51"])
def test_munchausen_agrees_with_the_papers_equation(distributional, overrides):
    config = _config(distributional, munchausen=True, loss="huber")
    network, params, target_params, sample = _setup(config, dueling=distributional == "qr")
    hp = config.hparams(huber_delta=0.8, **overrides)
    loss, aux = make_loss(config, network)(params, target_params, sample, hp, KEY)

    (online, now, nxt), action, reward, discount = _numpy_batch(
        network, params, target_params, sample.batch
    )
    rows = np.arange(BATCH)
    reward, pi, offset = _munchausen_parts(now.q_values, nxt.q_values, action, reward, hp)
    if distributional == "none":
        soft = (pi * (nxt.q_values + offset)).sum(-1)
        error = online.q_values[rows, action] - (reward + discount * soft)
        per_sample = np.where(np.abs(error) <= 0.8, 0.5 * error**2, 0.8 * (np.abs(error) - 0.4))
        np.testing.assert_allclose(aux.td_error, np.abs(error), rtol=1e-4, atol=1e-5)
    elif distributional == "qr":
        # M-IQN style: every target quantile j bootstraps from the pi-weighted theta_j
        soft = (pi[..., None] * (nxt.distribution + offset[..., None])).sum(1)
        samples = reward[:, None] + discount[:, None] * soft
        per_sample = _quantile_huber(online.distribution[rows, action], samples, 0.8)
        np.testing.assert_allclose(aux.td_error, per_sample, rtol=1e-4, atol=1e-5)
    else:
        support = np.linspace(-2.0, 2.0, 9)
        probs = np.exp(_log_pi(nxt.distribution, 1.0))
        # the pi-weighted mixture of each next action's projection of r + d (z + offset)
        target = np.zeros((BATCH, len(support)))
        for row in rows:
            for a in range(ACTIONS):
                atoms = reward[row] + discount[row] * (support + offset[row, a])
                target[row] += pi[row, a] * _project(atoms, probs[row, a], support)
        np.testing.assert_allclose(target.sum(-1), 1.0, rtol=1e-9)
        log_probs = _log_pi(online.distribution[rows, action], 1.0)
        per_sample = -(target * log_probs).sum(-1)
        np.testing.assert_allclose(aux.td_error, per_sample, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss, np.mean(_f64(sample.weights) * per_sample), rtol=1e-4)
    np.testing.assert_allclose(aux.q_mean, online.q_values[rows, action].mean(), rtol=1e-5)


def test_munchausen_rule_bonus_policy_and_soft_value():
    q_now = 2 * jax.random.normal(jax.random.key(3), (BATCH, ACTIONS))
    q_next = 2 * jax.random.normal(jax.random.key(4), (BATCH, ACTIONS))
    action = jax.random.randint(jax.random.key(5), (BATCH,), 0, ACTIONS)

    def policy(**overrides):
        evaluations = Evaluations(HeadOutputs(q_next), None, lambda: q_now)
        return munchausen_next(evaluations, action, FAMILY.hparams(**overrides))

    hp = FAMILY.hparams(munchausen_tau=0.5, munchausen_clip=-0.3)
    reward, pi, offset = _munchausen_parts(_f64(q_now), _f64(q_next), np.asarray(action), 0.0, hp)
    rule = policy(munchausen_tau=0.5, munchausen_clip=-0.3)
    assert rule.action is None
    np.testing.assert_allclose(rule.bonus, reward, rtol=1e-5, atol=1e-6)
    assert np.all(_f64(rule.bonus) >= 0.9 * -0.3 - 1e-6) and np.all(_f64(rule.bonus) <= 0)
    np.testing.assert_allclose(rule.probs, pi, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rule.probs.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(rule.offset, offset, rtol=1e-5, atol=1e-5)
    # alpha = 0: no bonus (soft Q-learning); a cold temperature: the soft value is the max
    assert np.all(_f64(policy(munchausen_alpha=0.0).bonus) == 0)
    cold = policy(munchausen_tau=1e-4)
    soft = (cold.probs * (q_next + cold.offset)).sum(-1)
    np.testing.assert_allclose(soft, q_next.max(-1), atol=1e-3)
    assert np.isfinite(_f64(cold.offset)).all() and np.isfinite(_f64(cold.bonus)).all()


# --- terminal and truncated samples ----------------------------------------------------


def test_terminal_targets_collapse_to_the_reward_and_truncated_ones_bootstrap():
    support = jnp.linspace(-1.0, 1.0, 5)  # spacing 0.5
    head = HEADS["c51"](TINY.replace(num_atoms=5, v_min=-1.0, v_max=1.0))
    logits = jax.random.normal(jax.random.key(0), (2, ACTIONS, 5))
    next_outputs = HeadOutputs(jnp.zeros((2, ACTIONS)), logits)
    greedy = NextPolicy(action=jnp.array([1, 2]))
    reward = jnp.array([0.3, 0.3])
    target = head.target(next_outputs, greedy, reward, jnp.array([0.0, 0.9]))
    # terminated: a point mass at r = 0.3, split between atoms 0 and 0.5
    np.testing.assert_allclose(target[0], [0, 0, 0.4, 0.6, 0], atol=1e-6)
    # truncated (discount 0.9 kept): the projection of r + 0.9 z under p(s', a*)
    probs = np.exp(_log_pi(_f64(logits[1, 2]), 1.0))
    expected = _project(0.3 + 0.9 * _f64(support), probs, _f64(support))
    np.testing.assert_allclose(target[1], expected, atol=1e-6)
    soft = NextPolicy(
        probs=jnp.full((2, ACTIONS), 1 / ACTIONS), offset=jnp.ones((2, ACTIONS)), bonus=None
    )
    np.testing.assert_allclose(
        head.target(next_outputs, soft, reward, jnp.zeros(2))[0], [0, 0, 0.4, 0.6, 0], atol=1e-6
    )
    quantiles = jax.random.normal(jax.random.key(1), (2, ACTIONS, 3))
    qr = HEADS["qr"](TINY)
    samples = qr.target(HeadOutputs(jnp.zeros((2, ACTIONS)), quantiles), greedy, reward,
                        jnp.array([0.0, 0.9]))  # fmt: skip
    np.testing.assert_allclose(samples[0], [0.3, 0.3, 0.3])
    np.testing.assert_allclose(samples[1], 0.3 + 0.9 * quantiles[1, 2], rtol=1e-6)


# --- weights, masks, noise, gradients, the table --------------------------------------


@pytest.mark.parametrize("distributional", ["c51", "qr"])
def test_distributional_losses_weight_and_mask_each_sample(distributional):
    config = _config(distributional)
    network, params, target_params, sample = _setup(config)
    loss_fn = make_loss(config, network)
    hp = config.hparams()
    _, plain = loss_fn(params, target_params, sample._replace(weights=jnp.ones(BATCH)), hp, KEY)
    valid = jnp.arange(BATCH) % 3 != 0
    masked = sample._replace(batch=sample.batch._replace(valid=valid))
    loss, aux = loss_fn(params, target_params, masked, hp, KEY)
    np.testing.assert_allclose(aux.td_error, plain.td_error, rtol=1e-6)  # unweighted
    per_sample = np.asarray(sample.weights * plain.td_error)
    np.testing.assert_allclose(loss, per_sample[np.asarray(valid)].mean(), rtol=1e-5)
    q = network.q_values(params, sample.batch.obs)
    q_taken = np.take_along_axis(np.asarray(q), np.asarray(sample.batch.action)[:, None], 1)
    np.testing.assert_allclose(aux.q_mean, q_taken[np.asarray(valid), 0].mean(), rtol=1e-5)


def _recording(network, seen):
    """`network` whose calls append (function, 'obs' / 'next_obs', key data) to `seen`."""

    def record(name, fn):
        def call(params, obs, noise_key=None):
            data = None if noise_key is None else tuple(np.asarray(jax.random.key_data(noise_key)))
            seen.append((name, obs, data))
            return fn(params, obs, noise_key)

        return call

    return QNetwork(
        network.module,
        network.init,
        record("q_values", network.q_values),
        record("outputs", network.outputs),
        network.support,
    )


@pytest.mark.parametrize("bootstrap", ["double", "munchausen"])
def test_noisy_loss_draws_independent_noise_for_online_target_and_selector(bootstrap):
    config = _config("qr", double_q=bootstrap == "double", munchausen=bootstrap == "munchausen",
                     noisy=True)  # fmt: skip
    network, params, target_params, sample = _setup(config)
    seen = []
    loss_fn = make_loss(config, _recording(network, seen))
    loss_fn(params, target_params, sample, config.hparams(), KEY)
    batch = sample.batch
    keys = {}
    for name, obs, data in seen:
        assert data is not None
        where = "obs" if obs is batch.obs else "next_obs"
        keys.setdefault((name, where), set()).add(data)
    assert all(len(k) == 1 for k in keys.values())
    online = keys.pop(("outputs", "obs"))
    target = keys.pop(("outputs", "next_obs"))
    if bootstrap == "double":
        other = keys.pop(("q_values", "next_obs"))  # the online network's choice at s'
    else:
        other = keys.pop(("q_values", "obs"))  # the target network at s: its noise at s'
        assert other == target
        other = set()
    assert not keys
    drawn = [*online, *target, *other]
    assert len(set(drawn)) == len(drawn)
    assert tuple(np.asarray(jax.random.key_data(KEY))) not in drawn


@pytest.mark.parametrize("noisy", [False, True])
def test_the_loss_key_is_the_noise_and_nothing_else(noisy):
    config = _config("c51", noisy=noisy)
    network, params, target_params, sample = _setup(config)
    loss_fn = jax.jit(make_loss(config, network))
    hp = config.hparams()
    first, _ = loss_fn(params, target_params, sample, hp, KEY)
    again, _ = loss_fn(params, target_params, sample, hp, KEY)
    other, _ = loss_fn(params, target_params, sample, hp, jax.random.key(12))
    np.testing.assert_array_equal(first, again)
    if noisy:
        assert first != other
    else:
        np.testing.assert_array_equal(first, other)


@pytest.mark.parametrize("name", sorted(LOSS_FUNCTIONS))
def test_every_loss_has_finite_gradients_on_the_online_network_only(name):
    distributional = "c51" if "c51" in name else "qr" if "qr" in name else "none"
    config = _config(distributional, noisy=name.startswith("munchausen"))
    network, params, target_params, sample = _setup(config, dueling=name.startswith("double"))
    loss_fn = make_loss(config, network, name=name)
    grad = jax.jit(jax.grad(loss_fn, argnums=(0, 1), has_aux=True))
    (grads, target_grads), _ = grad(params, target_params, sample, config.hparams(), KEY)
    leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(leaf)) for leaf in leaves)
    assert any(np.any(leaf != 0) for leaf in leaves)
    assert all(np.all(leaf == 0) for leaf in jax.tree.leaves(target_grads))


def test_loss_name_combines_the_bootstrap_and_the_head():
    assert loss_name(_config()) == "dqn"
    assert loss_name(_config(double_q=True)) == "double_dqn"
    assert loss_name(_config(munchausen=True)) == "munchausen_dqn"
    assert loss_name(_config("c51")) == "c51"
    assert loss_name(_config("c51", double_q=True)) == "double_c51"
    assert loss_name(_config("qr", munchausen=True, noisy=True)) == "munchausen_qr_dqn"
    assert loss_name(_config("qr", double_q=True)) == "double_qr_dqn"
    assert head_config(_config("qr", noisy=True)) == HeadConfig("qr", 9, -2.0, 2.0, 6, True, 0.5)
