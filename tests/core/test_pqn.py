"""PQN: Q(lambda) targets against rlax, truncation against termination, the probes, the
networks' LayerNorm, the config's checks, and the runtime's guarantees (vmap equals
single runs, the same key repeats, chunked equals one call, resume is exact).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import rlax
from conftest import leaves_equal

from purejaxdqn import hparams_in_axes
from purejaxdqn.core.lambda_returns import q_lambda_targets
from purejaxdqn.core.networks import make_network
from purejaxdqn.core.pqn import (
    Rollout,
    make_pqn_optimizer,
    make_pqn_program,
    max_truncations_per_rollout,
    next_values,
)
from purejaxdqn.core.pqn_config import PQNConfig
from purejaxdqn.core.pqn_presets import PQN_PRESETS, adapt_pqn, pqn_config_for
from purejaxdqn.envs.probes import CountdownProbe, TruncationProbe
from purejaxdqn.run import checkpoint
from purejaxdqn.run.checkpoint import Checkpointer
from purejaxdqn.run.execute import execute, state_shapes

TINY_PQN = PQNConfig(
    num_envs=4,
    num_steps=8,
    total_timesteps=4 * 8 * 12,
    num_epochs=2,
    num_minibatches=2,
    hidden_sizes=(16, 16),
    num_log_points=4,
    eval_every=2,
    eval_episodes=2,
    eval_max_steps=20,
)
KEYS = jax.random.split(jax.random.key(7), 2)


# --- Q(lambda) targets -----------------------------------------------------------------


def _random_rollout(seed: int, steps: int = 12, envs: int = 5, actions: int = 3):
    rng = np.random.default_rng(seed)
    ends = rng.random((steps, envs))
    terminated = ends < 0.15
    truncated = (ends >= 0.15) & (ends < 0.3)
    assert terminated.any() and truncated.any()
    return {
        "rewards": rng.normal(size=(steps, envs)).astype(np.float32),
        "terminated": terminated,
        "truncated": truncated,
        "q_t": rng.normal(size=(steps, envs, actions)).astype(np.float32),
        "q_tm1": rng.normal(size=(steps, envs, actions)).astype(np.float32),
        "a_tm1": rng.integers(0, actions, size=(steps, envs)),
    }


@pytest.mark.parametrize("lam", [0.0, 0.65, 1.0])
def test_q_lambda_targets_equal_rlax_with_episode_ends_inside(lam):
    """rlax's lambda-returns with discount gamma (0 at a termination) and lambda cut to 0 at
    every episode end; its q_lambda TD errors are target - Q(s, a).
    """
    r = _random_rollout(int(lam * 100))
    gamma = 0.9
    values = r["q_t"].max(axis=-1)
    ours = np.asarray(
        q_lambda_targets(
            jnp.asarray(r["rewards"]),
            jnp.asarray(r["terminated"]),
            jnp.asarray(r["truncated"]),
            jnp.asarray(values),
            gamma,
            lam,
        )
    )
    discount = gamma * (1.0 - r["terminated"])
    lambdas = lam * (1.0 - (r["terminated"] | r["truncated"]))
    per_env = jax.vmap(rlax.lambda_returns, in_axes=1, out_axes=1)
    expected = per_env(r["rewards"], discount, values, lambdas)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    td = jax.vmap(rlax.q_lambda, in_axes=(1, 1, 1, 1, 1, 1), out_axes=1)(
        r["q_tm1"], r["a_tm1"], r["rewards"], discount, r["q_t"], lambdas
    )
    chosen = np.take_along_axis(r["q_tm1"], r["a_tm1"][..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(ours - chosen, td, rtol=1e-5, atol=1e-5)


def test_q_lambda_targets_by_hand_at_the_ends_of_episodes():
    """One env, 4 steps: a termination at t=1, a truncation at t=2, a plain last step."""
    rewards = jnp.array([[1.0], [2.0], [3.0], [4.0]])
    terminated = jnp.array([[False], [True], [False], [False]])
    truncated = jnp.array([[False], [False], [True], [False]])
    values = jnp.array([[10.0], [20.0], [30.0], [40.0]])
    gamma, lam = 0.5, 0.8
    g = np.asarray(q_lambda_targets(rewards, terminated, truncated, values, gamma, lam))[:, 0]
    g3 = 4.0 + gamma * 40.0  # the rollout's last step bootstraps fully
    g2 = 3.0 + gamma * 30.0  # truncated: bootstraps from the final observation only
    g1 = 2.0  # terminated: no bootstrap
    g0 = 1.0 + gamma * ((1 - lam) * 10.0 + lam * g1)
    np.testing.assert_allclose(g, [g0, g1, g2, g3], rtol=1e-6)
    # purejaxql's recursion treats the truncation as a termination: its target there is 3.0
    assert abs(g[2] - 3.0) > 10


def _purejaxql_targets(rewards, done, next_q, last_q, gamma, lam):
    """purejaxql's pqn_gymnax.py target recursion, transcribed in NumPy (done = terminated
    or truncated; next_q[t] = max Q of the observation after step t as it acted).
    """
    steps = len(rewards)
    out = np.zeros_like(rewards)
    ret = rewards[-1] + gamma * last_q * (1 - done[-1])
    out[-1] = ret
    q_next = last_q * (1 - done[-1])
    for t in range(steps - 2, -1, -1):
        q_next = next_q[t]
        boot = rewards[t] + gamma * (1 - done[t]) * q_next
        ret = boot + gamma * lam * (ret - q_next)
        ret = (1 - done[t]) * ret + done[t] * rewards[t]
        out[t] = ret
    return out


def test_without_episode_ends_we_match_purejaxql_and_with_truncations_we_do_not():
    r = _random_rollout(3)
    gamma, lam = 0.99, 0.65
    values = r["q_t"].max(axis=-1)
    no_ends = np.zeros_like(r["terminated"])
    ours = q_lambda_targets(
        jnp.asarray(r["rewards"]), jnp.asarray(no_ends), jnp.asarray(no_ends), values, gamma, lam
    )
    theirs = _purejaxql_targets(r["rewards"], no_ends, values, values[-1], gamma, lam)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    # terminations only: the same targets; truncations: ours bootstrap, theirs stop
    term = jnp.asarray(r["terminated"])
    ours = q_lambda_targets(jnp.asarray(r["rewards"]), term, no_ends, values, gamma, lam)
    done = r["terminated"].astype(np.float32)
    theirs = _purejaxql_targets(r["rewards"], done, values, values[-1], gamma, lam)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    trunc = r["truncated"]
    ours = np.asarray(
        q_lambda_targets(jnp.asarray(r["rewards"]), no_ends, trunc, values, gamma, lam)
    )
    theirs = _purejaxql_targets(r["rewards"], trunc * 1.0, values, values[-1], gamma, lam)
    bootstrapped = r["rewards"] + gamma * values
    np.testing.assert_allclose(ours[trunc], bootstrapped[trunc], rtol=1e-5)
    np.testing.assert_allclose(theirs[trunc], r["rewards"][trunc])


# --- probes ---------------------------------------------------------------------------

PROBE = PQNConfig(
    env_id="probe",
    num_envs=8,
    num_steps=8,
    total_timesteps=8 * 8 * 160,
    num_epochs=2,
    num_minibatches=2,
    learning_rate=1e-2,
    anneal_lr=False,
    reward_scale=1.0,
    hidden_sizes=(16,),
    exploration_fraction=0.2,
    num_log_points=4,
    eval_every=0,
)


def _learned_q(config, env, hp, obs):
    program = make_pqn_program(config, env)
    train = jax.jit(jax.vmap(program.train, in_axes=(0, hparams_in_axes(hp))))
    result = train(KEYS, hp)
    network = config.q_network((1,), env.num_actions)
    q = jax.vmap(network.q_values, in_axes=(0, None))(result.runner_state.params, obs)
    return np.asarray(q)


def test_truncation_probe_bootstraps_through_truncation():
    """Every step is truncated: Q = 1 / (1 - gamma); purejaxql's targets would give 1."""
    gammas = np.array([0.5, 0.75], np.float32)
    hp = PROBE.hparams(gamma=gammas, lam=0.5)
    q = _learned_q(PROBE, TruncationProbe(), hp, jnp.ones((1, 1)))
    np.testing.assert_allclose(q[:, 0, 0], 1.0 / (1.0 - gammas), rtol=0.05)


class _TruncationAsTermination(TruncationProbe):
    """The truncation probe with its time limit reported as a termination, as gymnax < 1.0
    (and purejaxql on top of it) reports every episode end.
    """

    def step(self, key, state, action, params=None):  # noqa: D102
        obs, state, reward, terminated, truncated, info = super().step(key, state, action, params)
        return obs, state, reward, terminated | truncated, jnp.zeros_like(truncated), info


def test_truncation_treated_as_termination_learns_one():
    """The same probe, its truncations reported as terminations: Q = 1, the wrong value."""
    hp = PROBE.hparams(gamma=0.75, lam=0.5)
    q = _learned_q(PROBE, _TruncationAsTermination(), hp, jnp.ones((1, 1)))
    np.testing.assert_allclose(q[:, 0, 0], 1.0, rtol=0.05)


def test_countdown_probe_learns_its_values_through_lambda_returns():
    """Episodes of 4 steps, reward 1 each: Q(t) = (1 - gamma^(4 - t)) / (1 - gamma)."""
    gamma = 0.9
    hp = PROBE.hparams(gamma=gamma, lam=0.8)
    length = CountdownProbe.LENGTH
    obs = jnp.asarray((length - np.arange(length))[:, None] / length, jnp.float32)
    q = _learned_q(PROBE, CountdownProbe(), hp, obs)
    expected = (1 - gamma ** (length - np.arange(length))) / (1 - gamma)
    np.testing.assert_allclose(q[:, :, 0], np.broadcast_to(expected, (2, length)), rtol=0.05)


# --- networks, optimizer and config -------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "obs_shape"),
    [("mlp", (4,)), ("minatar_cnn", (10, 10, 4)), ("nature_cnn", (84, 84, 4))],
)
def test_layer_norm_before_every_relu_and_none_without(kind, obs_shape):
    obs = jnp.ones((2, *obs_shape), jnp.uint8 if kind == "nature_cnn" else jnp.float32)
    normed = make_network(kind, obs_shape, 3, (8,), False, norm="layer_norm")
    plain = make_network(kind, obs_shape, 3, (8,), False)
    params = normed.init(jax.random.key(0), obs)["params"]
    norms = [name for name in params if name.startswith("LayerNorm")]
    hidden = {"mlp": 1, "minatar_cnn": 2, "nature_cnn": 4}[kind]  # hidden layers
    assert len(norms) == hidden
    assert not any(n.startswith("LayerNorm") for n in plain.init(jax.random.key(0), obs)["params"])
    q = normed.apply({"params": params}, obs)
    assert q.shape == (2, 3) and bool(jnp.all(jnp.isfinite(q)))
    with pytest.raises(ValueError, match="norm='batch' is not allowed"):
        make_network(kind, obs_shape, 3, (8,), False, norm="batch")


def test_the_optimizer_is_radam_clipped_and_decayed_to_zero():
    config = TINY_PQN
    hp = config.hparams()
    params = {"w": jnp.ones(3)}
    optimizer = make_pqn_optimizer(config, hp)
    grads = {"w": jnp.array([300.0, 0.0, -400.0])}  # norm 500 -> clipped to 10
    radam = optax.radam(hp.learning_rate)
    clipped = jax.tree.map(lambda g: g * 10.0 / 500.0, grads)
    expected, _ = radam.update(clipped, radam.init(params), params)
    update = jax.jit(optimizer.update)
    state = optimizer.init(params)
    first, state = update(grads, state, params)
    np.testing.assert_allclose(first["w"], expected["w"], rtol=1e-6)
    for _ in range(config.num_updates - 1):
        last, state = update(grads, state, params)
    assert np.all(np.abs(np.asarray(last["w"])) < 0.05 * np.abs(np.asarray(first["w"])) + 1e-12)
    after, _ = update(grads, state, params)  # past the run's updates the rate is 0
    np.testing.assert_allclose(after["w"], 0.0)


def test_config_rejects_what_cannot_run_naming_the_field():
    with pytest.raises(ValueError, match="num_minibatches=3 is not allowed: must divide"):
        TINY_PQN.replace(num_minibatches=3)
    with pytest.raises(ValueError, match="total_timesteps=400 is not allowed"):
        TINY_PQN.replace(total_timesteps=400)
    with pytest.raises(ValueError, match="lam=1.5 is not allowed"):
        TINY_PQN.hparams(lam=1.5)
    with pytest.raises(ValueError, match="norm='batch_norm' is not allowed"):
        TINY_PQN.replace(norm="batch_norm")
    assert PQNConfig.from_dict(TINY_PQN.to_dict()) == TINY_PQN


def test_presets_name_their_envs_and_adapt_keeps_given_fields():
    assert pqn_config_for("CartPole-v1").solved_threshold == 475.0
    assert pqn_config_for("Breakout-MinAtar").network == "minatar_cnn"
    assert pqn_config_for("ALE/Breakout-v5").network == "nature_cnn"
    # every preset keeps flax's LeCun-normal kernels (He-normal, purejaxql's CNN init, did
    # worse on MinAtar); compare.py sets he_normal itself to match purejaxql
    for env_id in ("CartPole-v1", "Breakout-MinAtar", "ALE/Breakout-v5"):
        assert pqn_config_for(env_id).kernel_init == "lecun_normal"
    assert pqn_config_for("MountainCar-v0") == PQNConfig(env_id="MountainCar-v0")
    for name, preset in PQN_PRESETS.items():
        assert preset.env_id == name
    config, notes = adapt_pqn(PQN_PRESETS["CartPole-v1"], {"num_envs": 20})
    assert config.num_envs == 20 and config.total_timesteps == 20 * 64 * 20 * 19
    assert any(note.startswith("total_timesteps") for note in notes)


# --- the runtime's guarantees -------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_program():
    return make_pqn_program(TINY_PQN)


@pytest.fixture(scope="module")
def one_call(tiny_program):
    return execute(tiny_program, KEYS, TINY_PQN.hparams())


def test_metrics_are_finite_and_the_seeds_differ(one_call):
    metrics = one_call.metrics
    assert metrics["loss"].shape == (2, TINY_PQN.num_log_points)
    assert np.all(np.isfinite(metrics["loss"])) and np.all(metrics["episodes"] > 0)
    np.testing.assert_array_equal(metrics["updates"], 3 * 2 * 2)
    np.testing.assert_array_equal(metrics["env_steps"][0], [96, 192, 288, 384])
    assert not np.allclose(metrics["loss"][0], metrics["loss"][1])
    assert one_call.evals["return"].shape == (2, 2)


def test_chunked_equals_one_call_and_resume_is_exact(tiny_program, one_call, tmp_path):
    hp = TINY_PQN.hparams()
    saved = {}

    def save_after_two(chunk):  # the chunked run goes on to the end
        if chunk.periods_done == 2:
            saved["states"] = chunk.states()
            Checkpointer(tmp_path, checkpoint.identity("p", TINY_PQN, 2, 7)).save(
                2, saved["states"], chunk.metrics_so_far, chunk.evals_so_far
            )
        return False

    # one period per compiled call
    chunked = execute(tiny_program, KEYS, hp, on_chunk=save_after_two, periods_per_chunk=1)
    assert chunked.periods_done == TINY_PQN.num_log_points
    assert leaves_equal(chunked.metrics, one_call.metrics)
    assert leaves_equal(chunked.params, one_call.params)
    point = checkpoint.restore(tmp_path, state_shapes(tiny_program, hp))
    assert leaves_equal(point.resume.states, saved["states"])  # optimizer and keys included
    resumed = execute(tiny_program, KEYS, hp, resume=point.resume)
    assert leaves_equal(resumed.metrics, one_call.metrics)
    assert leaves_equal(resumed.evals, one_call.evals)
    assert leaves_equal(resumed.params, one_call.params)


def test_vmap_equals_single_runs_and_the_same_key_repeats(tiny_program):
    lams = np.array([0.3, 0.9], np.float32)
    hp = TINY_PQN.hparams(lam=lams)
    batched = jax.jit(jax.vmap(tiny_program.train, in_axes=(0, hparams_in_axes(hp))))(KEYS, hp)
    single = jax.jit(tiny_program.train)
    for i in range(2):
        one = single(KEYS[i], TINY_PQN.hparams(lam=lams[i]))
        for name in ("episode_return", "loss", "q_value"):
            np.testing.assert_allclose(
                batched.metrics[name][i], one.metrics[name], rtol=1e-4, err_msg=name
            )
        assert leaves_equal(one, single(KEYS[i], TINY_PQN.hparams(lam=lams[i])))


def _rollout_with_episode_ends(num_steps, num_envs, limit, seed):
    """A rollout of random 3-vector observations whose episodes end at random (termination
    with probability 0.15) or at `limit` steps (truncation); after an end, the step's
    next observation is its own (final) one and the next step acts on a reset one.
    """
    rng = np.random.default_rng(seed)
    length = rng.integers(max(0, limit - num_steps), limit, num_envs)  # some truncate
    obs = rng.normal(size=(num_steps + 1, num_envs, 3)).astype(np.float32)
    next_obs = obs[1:].copy()
    terminated = np.zeros((num_steps, num_envs), bool)
    truncated = np.zeros((num_steps, num_envs), bool)
    for t in range(num_steps):
        length += 1
        terminated[t] = rng.random(num_envs) < 0.15
        truncated[t] = (length == limit) & ~terminated[t]
        ended = terminated[t] | truncated[t]
        next_obs[t, ended] = rng.normal(size=(ended.sum(), 3))  # the true final observation
        length[ended] = 0
    return obs, next_obs, terminated, truncated


def _max_q(obs):  # exact row by row, whatever the batch shape
    return jnp.max(obs * jnp.array([1.0, -2.0, 0.5]), axis=-1)


@pytest.mark.parametrize(
    ("num_steps", "limit", "seed"), [(16, 4, 0), (16, 5, 1), (16, 100, 2), (4, 2, 3), (9, 3, 4)]
)
def test_next_values_reuse_the_acting_pass_and_equal_a_full_pass(num_steps, limit, seed):
    obs, next_obs, terminated, truncated = _rollout_with_episode_ends(num_steps, 6, limit, seed)
    bound = max_truncations_per_rollout(num_steps, limit)
    assert truncated.sum(axis=0).max() <= bound
    rollout = Rollout(
        obs=jnp.asarray(obs[:-1]),
        action=jnp.zeros((num_steps, 6), jnp.int32),
        reward=jnp.zeros((num_steps, 6)),
        terminated=jnp.asarray(terminated),
        truncated=jnp.asarray(truncated),
        next_obs=jnp.asarray(next_obs),
        valid=jnp.ones((num_steps, 6), bool),
        value=_max_q(jnp.asarray(obs[:-1])),
    )
    calls = []

    def counted(batch):
        calls.append(batch.shape[:-1])
        return _max_q(batch)

    values = np.asarray(jax.jit(lambda r: next_values(counted, r, bound))(rollout))
    full = np.asarray(_max_q(jnp.asarray(next_obs)))
    assert truncated.any() and terminated.any()
    # equal wherever the target uses it (a termination multiplies it by a zero discount)
    np.testing.assert_array_equal(values[~terminated], full[~terminated])
    if 1 + bound < num_steps:  # the acting pass was reused: only last steps and finals
        assert sorted(calls) == sorted([(6,), (bound, 6)])
    else:
        assert calls == [(num_steps, 6)]
    # without a time limit there is no bound: one pass over every next observation
    assert max_truncations_per_rollout(num_steps, None) is None
    np.testing.assert_array_equal(np.asarray(next_values(_max_q, rollout, None)), full)
