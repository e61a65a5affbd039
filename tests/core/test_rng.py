"""FAST_THREEFRY draws exactly the numbers of JAX's default threefry keys."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxdqn import make_train
from purejaxdqn.core import rng

SHAPES = [(), (1,), (3,), (4, 5), (7, 3, 2)]


def _pair(seed: int = 42) -> tuple[jax.Array, jax.Array]:
    key = jax.random.key(seed)
    fast = rng.to_fast(key)
    assert jax.random.key_impl(fast) != jax.random.key_impl(key)
    return key, fast


@pytest.mark.parametrize("shape", SHAPES)
def test_split_and_draws_equal_default_threefry(shape):
    key, fast = _pair()
    data = jax.random.key_data
    np.testing.assert_array_equal(
        data(jax.random.split(key, shape)), data(jax.random.split(fast, shape))
    )
    for dtype in (jnp.uint8, jnp.uint16, jnp.uint32):
        np.testing.assert_array_equal(
            jax.random.bits(key, shape, dtype), jax.random.bits(fast, shape, dtype)
        )
    draws = (
        lambda k: jax.random.uniform(k, shape),
        lambda k: jax.random.normal(k, shape),
        lambda k: jax.random.randint(k, shape, 0, 7),
        lambda k: jax.random.bernoulli(k, 0.3, shape),
    )
    for draw in draws:
        np.testing.assert_array_equal(draw(key), draw(fast))
    # under jit: every draw in one program per key implementation
    all_draws = jax.jit(lambda k: [draw(k) for draw in draws])
    for by_key, by_fast in zip(all_draws(key), all_draws(fast), strict=True):
        np.testing.assert_array_equal(by_key, by_fast)


@pytest.mark.parametrize("data", [0, 1, 12345, 2**31 + 5, 2**32 - 1])
def test_fold_in_equals_default_threefry(data):
    key, fast = _pair(7)
    np.testing.assert_array_equal(
        jax.random.key_data(jax.random.fold_in(key, data)),
        jax.random.key_data(jax.random.fold_in(fast, data)),
    )


def test_vmapped_draws_equal_default_threefry():
    keys = jax.random.split(jax.random.key(3), 5)

    @jax.jit
    @jax.vmap
    def draw(k):
        first, second = jax.random.split(k)
        return jax.random.uniform(first, (3,)) + jax.random.randint(second, (3,), 0, 9)

    np.testing.assert_array_equal(draw(keys), draw(rng.to_fast(keys)))


def test_round_trip_keeps_key_data_and_leaves_other_keys_alone():
    key = jax.random.key(5)
    back = rng.from_fast(rng.to_fast(key), like=key)
    assert back.dtype == key.dtype
    np.testing.assert_array_equal(jax.random.key_data(back), jax.random.key_data(key))
    rbg = jax.random.key(5, impl="rbg")
    assert rng.to_fast(rbg) is rbg
    raw = jax.random.PRNGKey(5)  # legacy uint32 key
    assert rng.to_fast(raw) is raw


def test_hash_matches_threefry_reference_vector():
    # Known-answer test from the Threefry paper (Salmon et al. 2011), also in JAX's tests.
    words = jnp.asarray([0x13198A2E, 0x03707344, 0x243F6A88, 0x85A308D3], jnp.uint32)
    out = rng.threefry2x32_hash(*words)
    np.testing.assert_array_equal(np.asarray(out), [0xC4923A9C, 0x483DF7A0])


def test_cpu_lowering_has_no_loop():
    key = rng.to_fast(jax.random.key(0))
    text = jax.jit(lambda k: jax.random.uniform(k, (4,))).lower(key).as_text()
    assert "while" not in text
    slow = jax.jit(lambda k: jax.random.uniform(k, (4,))).lower(jax.random.key(0)).as_text()
    assert ("while" in slow) == (jax.default_backend() == "cpu")


def test_training_draws_the_numbers_of_default_keys(monkeypatch, tiny_config, tiny_single):
    """The train loop switches to FAST_THREEFRY inside; with the switch turned off (JAX's
    own threefry lowering) the run is the same bit for bit, and its state keeps the
    caller's key type.
    """
    key = jax.random.key(11)
    fast_run = tiny_single(key, tiny_config.hparams())
    monkeypatch.setattr(rng, "to_fast", lambda k: k)
    plain_run = jax.jit(make_train(tiny_config))(key, tiny_config.hparams())
    assert fast_run.runner_state.key.dtype == key.dtype
    leaves = jax.tree.leaves((fast_run.metrics, fast_run.evals, fast_run.runner_state.params))
    plain = jax.tree.leaves((plain_run.metrics, plain_run.evals, plain_run.runner_state.params))
    for fast_leaf, plain_leaf in zip(leaves, plain, strict=True):
        np.testing.assert_array_equal(fast_leaf, plain_leaf)


@pytest.mark.parametrize("seed", [0, 7, 2**32, 2**64 - 1, np.int64(3), np.uint64(2**64 - 1)])
def test_check_seed_accepts_integers_below_2_to_the_64(seed):
    checked = rng.check_seed(seed)
    assert type(checked) is int and checked == int(seed)


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, 3.0, True, np.bool_(False), None, "3", [3]])
def test_check_seed_refuses_anything_else_naming_the_option(seed):
    message = (
        f"--seed={seed!r} is not allowed: must be an integer in [0, 2**64) "
        "(0 to 18446744073709551615)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        rng.check_seed(seed, name="--seed")


def _chi_square_p(counts: np.ndarray) -> float:
    """p-value of `counts` under the uniform distribution over its cells."""
    expected = counts.sum() / counts.size
    statistic = ((counts - expected) ** 2 / expected).sum()
    return float(jax.scipy.stats.chi2.sf(statistic, counts.size - 1))


@pytest.mark.parametrize("n", [0, 1, 2, 5, 128, 2048, 3000, 70_000])
def test_permutation_orders_every_index_once(n):
    order = np.asarray(rng.permutation(jax.random.key(n), n))
    assert order.dtype == np.int32
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    if n > 2:
        assert not np.array_equal(order, np.arange(n))


def test_permutation_is_a_function_of_the_key_and_vmaps():
    keys = jax.random.split(jax.random.key(7), 3)
    draw = jax.jit(jax.vmap(lambda key: rng.permutation(key, 2048)))
    batched = np.asarray(draw(keys))
    for key, row in zip(keys, batched, strict=True):
        np.testing.assert_array_equal(np.asarray(rng.permutation(key, 2048)), row)
    np.testing.assert_array_equal(np.asarray(draw(keys)), batched)
    assert not np.array_equal(batched[0], batched[1])
    fast = rng.permutation(rng.to_fast(keys[0]), 2048)  # the loop's keys draw the same
    np.testing.assert_array_equal(np.asarray(fast), batched[0])


def test_permutation_draws_every_ordering_equally_often():
    # one round of packed sorting (n = 5: 3 index bits, 29 random bits)
    orders = np.asarray(
        jax.jit(jax.vmap(lambda key: rng.permutation(key, 5)))(
            jax.random.split(jax.random.key(1), 60_000)
        )
    )
    codes = (orders * 5 ** np.arange(5)).sum(axis=1)
    _, counts = np.unique(codes, return_counts=True)
    assert counts.size == 120 and _chi_square_p(counts) > 1e-3
    # and a wrong draw fails the same test: the first index kept in place
    pinned = orders[orders[:, 0] == 0]
    _, pinned_counts = np.unique((pinned * 5 ** np.arange(5)).sum(axis=1), return_counts=True)
    assert pinned_counts.size < 120


def test_permutation_over_several_rounds_moves_every_index_uniformly():
    # n = 2048 takes two rounds (11 index bits, 21 random bits each); where index 0 lands
    # and which index lands first are both uniform over the 2048 positions
    orders = np.asarray(
        jax.jit(jax.vmap(lambda key: rng.permutation(key, 2048)))(
            jax.random.split(jax.random.key(2), 20_000)
        )
    )
    first = np.bincount(orders[:, 0], minlength=2048)
    where_zero = np.bincount(np.argmax(orders == 0, axis=1), minlength=2048)
    assert _chi_square_p(first) > 1e-3 and _chi_square_p(where_zero) > 1e-3

    # the same test fails a packed sort with too few random bits (6), whose ties keep the
    # index order: index 0 then lands first among its bucket's ~32 elements
    def tie_prone(key: jax.Array) -> jax.Array:
        bits = jax.random.bits(key, (2048,), jnp.uint32) & np.uint32(0xFC000000)
        return jnp.sort(bits | jnp.arange(2048, dtype=jnp.uint32)) & np.uint32(2047)

    skewed = np.asarray(jax.jit(jax.vmap(tie_prone))(jax.random.split(jax.random.key(2), 20_000)))
    skewed_zero = np.bincount(np.argmax(skewed == 0, axis=1), minlength=2048)
    assert _chi_square_p(skewed_zero) < 1e-6


def test_permutation_past_the_packed_size_is_jax_permutation(monkeypatch):
    monkeypatch.setattr(rng, "_MAX_PACKED_INDEX_BITS", 2)
    key = jax.random.key(3)
    np.testing.assert_array_equal(
        np.asarray(rng.permutation(key, 10)), np.asarray(jax.random.permutation(key, 10))
    )
