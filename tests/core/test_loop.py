"""End-to-end properties of the training loop on a tiny CartPole config."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import leaves_equal

from purejaxdqn import DQNConfig, hparams_in_axes, make_train
from purejaxdqn.core import replay
from purejaxdqn.run.experiment import run_experiment


def _count_primitive(jaxpr, name: str) -> int:
    """Occurrences of primitive `name` in a jaxpr and every jaxpr nested in it."""
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == name
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    count += _count_primitive(inner, name)
    return count


@pytest.fixture(scope="module")
def three_seed_run(tiny_vmapped, tiny_config):
    keys = jax.random.split(jax.random.key(42), 3)
    return keys, tiny_vmapped(keys, tiny_config.hparams())


def test_metrics_and_evals_have_expected_shapes_and_counts(three_seed_run, tiny_config):
    _, result = three_seed_run
    metrics, evals = result.metrics, result.evals
    for name in ("episode_return", "episode_length", "episodes", "loss", "q_value", "epsilon"):
        assert metrics[name].shape == (3, tiny_config.num_log_points), name
    np.testing.assert_array_equal(metrics["env_steps"][0], [400, 800, 1200, 1600])
    # learning_starts=200 = 50 iterations of 4 env steps: the first period learns in 50 of 100
    np.testing.assert_array_equal(metrics["updates"][0], [50, 100, 100, 100])
    assert np.all(np.isfinite(metrics["loss"])) and np.all(metrics["episodes"] > 0)
    np.testing.assert_allclose(metrics["episode_return"], metrics["episode_length"])  # CartPole
    assert evals["return"].shape == (3, tiny_config.num_evals)
    assert evals["episode_returns"].shape == (3, tiny_config.num_evals, tiny_config.eval_episodes)
    np.testing.assert_array_equal(evals["env_steps"][0], [800, 1600])
    assert np.all((evals["return"] >= 1) & (evals["return"] <= tiny_config.eval_max_steps))
    buffer = result.runner_state.buffer
    # 1600 transitions into 512 slots: full, 128 per env
    assert int(buffer.size[0]) * tiny_config.num_envs == tiny_config.buffer_size


def test_same_key_gives_identical_results(tiny_single, tiny_config):
    hp = tiny_config.hparams()
    first = tiny_single(jax.random.key(7), hp)
    second = tiny_single(jax.random.key(7), hp)
    assert leaves_equal(first, second)


def test_vmap_over_seeds_equals_single_runs(three_seed_run, tiny_single, tiny_config):
    keys, batched = three_seed_run
    for i in range(3):
        single = tiny_single(keys[i], tiny_config.hparams())
        for name in ("episode_return", "episodes", "loss", "q_value"):
            np.testing.assert_allclose(
                batched.metrics[name][i], single.metrics[name], rtol=1e-4, err_msg=name
            )
        np.testing.assert_allclose(batched.evals["return"][i], single.evals["return"], rtol=1e-4)
        for b, s in zip(
            jax.tree.leaves(batched.runner_state.params),
            jax.tree.leaves(single.runner_state.params),
            strict=True,
        ):
            np.testing.assert_allclose(b[i], s, rtol=1e-4, atol=1e-6)


def test_different_seeds_differ(three_seed_run):
    _, result = three_seed_run
    kernel = jax.tree.leaves(result.runner_state.params)[-1]
    assert not np.allclose(kernel[0], kernel[1]) and not np.allclose(kernel[1], kernel[2])
    returns = result.metrics["episode_return"]
    assert not np.allclose(returns[0], returns[1]) and not np.allclose(returns[1], returns[2])


def test_vmapped_hyperparameters_equal_separate_settings(tiny_train, tiny_single, tiny_config):
    lrs = np.array([1e-3, 3e-3], np.float32)
    gammas = np.array([0.99, 0.9], np.float32)
    key = jax.random.key(3)
    hp = tiny_config.hparams(learning_rate=lrs, gamma=gammas)
    both = jax.jit(jax.vmap(tiny_train, in_axes=(None, hparams_in_axes(hp))))(key, hp)
    for i in range(2):
        single = tiny_single(key, tiny_config.hparams(learning_rate=lrs[i], gamma=gammas[i]))
        np.testing.assert_allclose(both.metrics["loss"][i], single.metrics["loss"], rtol=1e-4)
    assert not np.allclose(both.metrics["q_value"][0], both.metrics["q_value"][1])


def test_no_batched_cond_in_the_vmapped_loop(tiny_train, tiny_config):
    """Under vmap, a cond whose predicate is batched becomes a select running both branches;
    the loop's conds (learning starts, target update) must survive vmapping as conds."""
    keys = jax.random.split(jax.random.key(0), 2)
    single = jax.make_jaxpr(tiny_train)(keys[0], tiny_config.hparams()).jaxpr
    every_leaf_batched = {k: np.repeat(v, 2) for k, v in tiny_config.hparams()._asdict().items()}
    hp = tiny_config.hparams(**every_leaf_batched)
    batched = jax.make_jaxpr(jax.vmap(tiny_train, in_axes=(0, hparams_in_axes(hp))))(keys, hp).jaxpr
    conds = _count_primitive(single, "cond")
    assert conds >= 2
    assert _count_primitive(batched, "cond") == conds


def test_target_update_modes_hard_copy_and_polyak(tiny_config):
    # two iterations of 4 env steps; the first only collects, the second learns once and
    # then updates the target (interval = one iteration). With the same key the online
    # update is identical for every tau, so target(tau) = init + tau * (online - init).
    config = tiny_config.replace(
        total_timesteps=8,
        learning_starts=4,
        target_update_interval=4,
        num_log_points=1,
        eval_every=0,
        batch_size=4,
        buffer_size=8,
    )
    hp = config.hparams(tau=np.array([1.0, 0.5, 0.25], np.float32))
    train = jax.jit(jax.vmap(make_train(config), in_axes=(None, hparams_in_axes(hp))))
    state = train(jax.random.key(5), hp).runner_state
    pairs = list(
        zip(jax.tree.leaves(state.params), jax.tree.leaves(state.target_params), strict=True)
    )
    for online, target in pairs:
        np.testing.assert_array_equal(online[0], online[1])
        np.testing.assert_array_equal(target[0], online[0])  # hard copy
        init = 2 * target[1] - online[1]  # from tau = 0.5
        np.testing.assert_allclose(target[2], init + 0.25 * (online[2] - init), atol=1e-6)
    moved = [np.abs(o[0] - (2 * t[1] - o[1])).max() for o, t in pairs]
    assert max(moved) > 1e-5  # the online network did move away from the initial one


TINY_BREAKOUT = DQNConfig(
    env_id="Breakout-MinAtar",
    num_envs=2,
    total_timesteps=200,
    buffer_size=100,
    learning_starts=20,
    batch_size=8,
    num_log_points=1,
    eval_every=0,
    hidden_sizes=(8,),
    target_update_interval=10,
)


def test_compact_observation_storage_for_minatar():
    config = TINY_BREAKOUT
    train = make_train(config)
    shapes = jax.eval_shape(train, jax.random.key(0), config.hparams())
    buffer = shapes.runner_state.buffer
    # 50 slots per env plus the write-ahead slot; observations are not stored twice
    assert buffer.obs.shape == (51, 2, 10, 10, 4) and buffer.obs.dtype == jnp.uint8
    assert buffer.final_obs.dtype == jnp.uint8 and buffer.final_obs.shape[0] == 2
    assert replay.nbytes(buffer) <= 1.25 * 100 * 10 * 10 * 4


def test_learning_rate_annealing_decays_linearly_to_zero(tiny_config):
    from purejaxdqn.core.loop import make_optimizer

    # 4 learning iterations of one update each; constant gradients make Adam's
    # normalised step exactly 1, so each update moves the parameter by the current lr
    config = tiny_config.replace(
        total_timesteps=16,
        learning_starts=0,
        num_log_points=1,
        eval_every=0,
        buffer_size=16,
        batch_size=4,
        anneal_lr=True,
        max_grad_norm=None,
        adam_eps=1e-12,
    )
    assert config.num_updates == 4
    optimizer = make_optimizer(config, config.hparams(learning_rate=0.1))
    params = jnp.zeros(())
    state = optimizer.init(params)
    steps = []
    for _ in range(4):
        updates, state = optimizer.update(jnp.ones(()), state, params)
        steps.append(float(updates))
    np.testing.assert_allclose(steps, [-0.1, -0.075, -0.05, -0.025], rtol=1e-4)
    constant = make_optimizer(config.replace(anneal_lr=False), config.hparams(learning_rate=0.1))
    state = constant.init(params)
    for _ in range(4):
        updates, state = constant.update(jnp.ones(()), state, params)
        np.testing.assert_allclose(float(updates), -0.1, rtol=1e-4)


def test_minatar_runs_through_run_experiment_in_chunks():
    # gymnax MinAtar environments hold jnp arrays (their action sets); built lazily inside
    # execute's first trace they once kept tracers that broke every later compiled call.
    config = TINY_BREAKOUT.replace(
        total_timesteps=160, num_log_points=4, eval_every=2, eval_episodes=2
    )
    chunks = []
    experiment = run_experiment(config, 2, 0, on_chunk=lambda chunk: chunks.append(chunk) and False)
    assert [chunk.periods_done for chunk in chunks] == [1, 2, 3, 4]
    assert experiment.metrics["episode_return"].shape == (2, 4)
    assert np.isfinite(experiment.metrics["loss"]).all()
    assert experiment.evals["return"].shape == (2, 2)


@pytest.mark.parametrize(
    "changes",
    [
        {"buffer_size": 10**12},
        {"total_timesteps": 2**34},
        {"target_update_interval": 2**31},
        {"eval_episodes": 2**31},
        {"eval_max_steps": 2**31},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_check_sizes_names_the_field_past_int32(changes, tiny_config):
    from purejaxdqn.core.loop import check_sizes

    check_sizes(tiny_config)
    field, value = next(iter(changes.items()))
    with pytest.raises(ValueError, match=rf"^{field}={value} is not allowed: must be at most"):
        check_sizes(tiny_config.replace(**changes))


def test_check_sizes_counts_every_update(tiny_config):
    from purejaxdqn.core.loop import check_sizes

    config = tiny_config.replace(total_timesteps=2**24)  # 2**22 iterations of 4 env steps
    check_sizes(config.replace(gradient_steps=2**8))
    pattern = r"^gradient_steps=1024 is not allowed: over 4194304 iterations it makes 4294967296"
    with pytest.raises(ValueError, match=pattern):
        check_sizes(config.replace(gradient_steps=2**10))


def test_learn_writes_priorities_back_after_every_update(monkeypatch, tiny_config):
    """The learner carries the replay state through `Replay.update` after every optimizer
    step: a replay whose update marks the sampled items (reward set to 1000 + |TD error|)
    shows the marks of every update afterwards, and nothing else in the buffer changes."""
    from purejaxdqn.core import loop
    from purejaxdqn.core.replay import Replay, make_replay

    def marking_replay(*args, **kwargs) -> Replay:
        uniform = make_replay(*args, **kwargs)

        def update(buffer, indices, priorities, params):
            assert indices.shape == priorities.shape == (config.batch_size,)
            rewards = buffer.reward.reshape(-1).at[indices].set(1000.0 + priorities)
            return buffer._replace(reward=rewards.reshape(buffer.reward.shape))

        return uniform._replace(update=update)

    # 16 iterations of 4 env steps; only the last learns, with 3 updates of 32 samples
    config = tiny_config.replace(
        total_timesteps=64,
        learning_starts=60,
        target_update_interval=16,
        num_log_points=1,
        eval_every=0,
        gradient_steps=3,
    )
    key, hp = jax.random.key(0), config.hparams()
    uniform = jax.jit(loop.make_train(config))(key, hp).runner_state.buffer
    monkeypatch.setattr(loop, "make_replay", marking_replay)
    marked_run = jax.jit(loop.make_train(config))(key, hp).runner_state.buffer
    rewards, plain = np.asarray(marked_run.reward), np.asarray(uniform.reward)
    marked = rewards >= 1000.0
    # more items than one update samples: every update's marks were carried on
    assert config.batch_size < marked.sum() <= 3 * config.batch_size
    assert np.all(plain[marked] == 1.0)  # stored CartPole transitions, now marked
    np.testing.assert_array_equal(rewards[~marked], plain[~marked])
    jax.tree.map(
        np.testing.assert_array_equal,
        marked_run._replace(reward=None),
        uniform._replace(reward=None),
    )
