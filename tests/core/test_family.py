"""The DQN family inside the one vmapped loop: every component combines, and the runtime's
guarantees hold with it (vmap equals single runs, same key same result, chunked equals one
call, resume is exact with the priority arrays and noise keys).
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from conftest import TINY, TINY_RAINBOW, leaves_equal

from purejaxdqn import hparams_in_axes, make_train_program
from purejaxdqn.core import replay as replay_lib
from purejaxdqn.run import checkpoint
from purejaxdqn.run.checkpoint import Checkpointer
from purejaxdqn.run.execute import execute, state_shapes
from purejaxdqn.run.memory import nbytes

RAINBOW = TINY_RAINBOW
# 3-step QR-DQN with Munchausen and prioritized replay
QR_MUNCHAUSEN = TINY.replace(
    n_step=3, distributional="qr", num_quantiles=8, munchausen=True, prioritized_replay=True
)
KEYS = jax.random.split(jax.random.key(5), 2)


@pytest.fixture(scope="module")
def rainbow_program():
    return make_train_program(RAINBOW)


@pytest.fixture(scope="module")
def rainbow_one_call(rainbow_program):
    return execute(rainbow_program, KEYS, RAINBOW.hparams())


def test_rainbow_learns_finite_values_and_keeps_priorities_per_seed(rainbow_one_call):
    metrics = rainbow_one_call.metrics
    assert np.all(np.isfinite(metrics["loss"])) and np.all(np.isfinite(metrics["q_value"]))
    assert metrics["episodes"].shape == (2, RAINBOW.num_log_points)


def test_rainbow_chunked_equals_one_call_and_resumes_bitwise(
    rainbow_program, rainbow_one_call, tmp_path
):
    saved = {}

    def save_after_two(chunk):  # the chunked run goes on to the end
        if chunk.periods_done == 2:
            saved["states"] = chunk.states()
            Checkpointer(tmp_path, checkpoint.identity("r", RAINBOW, 2, 5)).save(
                2, saved["states"], chunk.metrics_so_far, chunk.evals_so_far
            )
        return False

    # one period per compiled call
    chunked = execute(
        rainbow_program, KEYS, RAINBOW.hparams(), on_chunk=save_after_two, periods_per_chunk=1
    )
    assert chunked.periods_done == RAINBOW.num_log_points
    assert leaves_equal(chunked.metrics, rainbow_one_call.metrics)
    assert leaves_equal(chunked.params, rainbow_one_call.params)
    like = state_shapes(rainbow_program, RAINBOW.hparams())
    point = checkpoint.restore(tmp_path, like)
    # every leaf is in the checkpoint, keys and the sum tree of priorities included (the
    # tree no longer the initial one: updates wrote priorities back)
    assert leaves_equal(point.resume.states, saved["states"])
    leaves = np.asarray(point.resume.states.buffer.priority_tree[0])  # (seeds, items)
    assert len(np.unique(leaves[0])) > 10
    resumed = execute(rainbow_program, KEYS, RAINBOW.hparams(), resume=point.resume)
    assert leaves_equal(resumed.metrics, rainbow_one_call.metrics)
    assert leaves_equal(resumed.evals, rainbow_one_call.evals)
    assert leaves_equal(resumed.params, rainbow_one_call.params)


@functools.cache
def train_and_single(config):
    """The train function of `config` and its jit for one run, made once per module (the
    QR-Munchausen one serves two tests)."""
    train = make_train_program(config).train
    return train, jax.jit(train)


@pytest.mark.parametrize("config", [RAINBOW, QR_MUNCHAUSEN], ids=["rainbow", "qr_munchausen"])
def test_vmap_equals_single_runs_and_the_same_key_repeats(config):
    train, single = train_and_single(config)
    hp = config.hparams()
    batched = jax.jit(jax.vmap(train, in_axes=(0, None)))(KEYS, hp)
    for i in range(2):
        one = single(KEYS[i], hp)
        for name in ("episode_return", "loss", "q_value"):
            # vmapped and single programs round differently (XLA fuses them differently),
            # and Munchausen's q / tau (tau = 0.03) amplifies rounding as training goes on:
            # the first periods agree to 1e-4, the whole run to a few percent. A seed mixed
            # up with another, or a shared key, differs by far more from the first period.
            np.testing.assert_allclose(
                batched.metrics[name][i][:2], one.metrics[name][:2], rtol=1e-4, err_msg=name
            )
            np.testing.assert_allclose(
                batched.metrics[name][i], one.metrics[name], rtol=0.05, err_msg=name
            )
        again = single(KEYS[i], hp)
        assert leaves_equal(one, again)
    loss = np.asarray(batched.metrics["loss"])
    assert not np.allclose(loss[0], loss[1])  # the seeds differ
    # each seed has its own sum tree (levels leaves first, the root last, each with a
    # leading seed axis): the root holds its leaves' total; the seeds' differ
    levels = batched.runner_state.buffer.priority_tree
    leaves, root = np.asarray(levels[0]), np.asarray(levels[-1])[:, 0]
    np.testing.assert_allclose(root, leaves.sum(axis=1), rtol=1e-4)
    assert not np.array_equal(leaves[0], leaves[1])
    single_levels = one.runner_state.buffer.priority_tree
    single_leaves = np.asarray(single_levels[0])
    np.testing.assert_allclose(root[1], np.asarray(single_levels[-1])[0], rtol=0.05)  # total
    np.testing.assert_array_equal(leaves[1] > 0, single_leaves > 0)  # the same live items


def test_traced_family_hyperparameters_sweep_in_one_program():
    """per_alpha, per_beta and the Munchausen knobs vary per run like the learning rate."""
    config = QR_MUNCHAUSEN
    train, single = train_and_single(config)
    settings = {
        "per_alpha": np.array([0.0, 0.8], np.float32),
        "per_beta": np.array([0.4, 1.0], np.float32),
        "munchausen_alpha": np.array([0.0, 0.9], np.float32),
        "munchausen_tau": np.array([0.03, 0.1], np.float32),
    }
    hp = config.hparams(**settings)
    both = jax.jit(jax.vmap(train, in_axes=(None, hparams_in_axes(hp))))(KEYS[0], hp)
    for i in range(2):
        one = single(KEYS[0], config.hparams(**{k: v[i] for k, v in settings.items()}))
        np.testing.assert_allclose(both.metrics["loss"][i], one.metrics["loss"], rtol=1e-4)
    assert not np.allclose(both.metrics["loss"][0], both.metrics["loss"][1])


def test_the_memory_preflight_counts_the_priority_arrays():
    plain = RAINBOW.replace(prioritized_replay=False)
    with_priorities = nbytes(state_shapes(make_train_program(RAINBOW), RAINBOW.hparams()))
    without = nbytes(state_shapes(make_train_program(plain), plain.hparams()))
    slots = RAINBOW.buffer_size + RAINBOW.num_envs  # (capacity per env + 1) slots per env
    assert with_priorities - without >= 4 * slots  # at least one float32 per item
    buffer = state_shapes(make_train_program(RAINBOW), RAINBOW.hparams()).buffer
    assert replay_lib.nbytes(buffer) > replay_lib.nbytes(
        state_shapes(make_train_program(plain), plain.hparams()).buffer
    )
