import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxdqn import buffer as replay


def _items(start: int, n: int) -> dict:
    values = jnp.arange(start, start + n)
    return {
        "x": values.astype(jnp.float32),
        "obs": jnp.stack([values, -values], 1).astype(jnp.uint8),
    }


def _example() -> dict:
    return {"x": jnp.zeros((), jnp.float32), "obs": jnp.zeros((2,), jnp.uint8)}


def test_init_allocates_capacity_with_item_dtypes():
    state = replay.init(_example(), 6)
    assert state.data["x"].shape == (6,) and state.data["x"].dtype == jnp.float32
    assert state.data["obs"].shape == (6, 2) and state.data["obs"].dtype == jnp.uint8
    assert int(state.position) == 0 and int(state.size) == 0


def test_add_wraps_around_and_overwrites_oldest_contiguous_path():
    state = replay.init(_example(), 6)  # 3 divides 6: slice writes
    for start in (1, 4, 7):
        state = replay.add(state, _items(start, 3))
    # items 1..9 written; 1..3 overwritten by 7..9
    np.testing.assert_array_equal(state.data["x"], [7, 8, 9, 4, 5, 6])
    np.testing.assert_array_equal(state.data["obs"][:, 0], [7, 8, 9, 4, 5, 6])
    assert int(state.position) == 3 and int(state.size) == 6


def test_add_wraps_around_when_batch_does_not_divide_capacity():
    state = replay.init(_example(), 5)
    state = replay.add(state, _items(1, 3))
    assert int(state.size) == 3
    state = replay.add(state, _items(4, 3))  # writes slots 3, 4, 0
    np.testing.assert_array_equal(state.data["x"], [6, 2, 3, 4, 5])
    assert int(state.position) == 1 and int(state.size) == 5


def test_add_rejects_batch_larger_than_capacity():
    with pytest.raises(ValueError, match="capacity 2"):
        replay.add(replay.init(_example(), 2), _items(0, 3))


def test_sample_only_draws_filled_entries_with_replacement():
    state = replay.add(replay.init(_example(), 100), _items(1, 3))
    batch = replay.sample(state, jax.random.key(0), 64)  # more draws than items: replacement
    assert set(np.asarray(batch["x"]).tolist()) == {1.0, 2.0, 3.0}
    np.testing.assert_array_equal(batch["obs"][:, 0], batch["x"].astype(np.uint8))


def test_sample_is_uniform():
    state = replay.add(replay.init(_example(), 4), _items(0, 4))
    draws = np.asarray(replay.sample(state, jax.random.key(1), 40_000)["x"]).astype(int)
    counts = np.bincount(draws, minlength=4)
    expected, sd = 10_000, np.sqrt(40_000 * 0.25 * 0.75)
    assert np.all(np.abs(counts - expected) < 5 * sd), counts


def test_vmapped_add_uses_one_unbatched_write_position():
    def fill(x):
        state = replay.init(_example(), 6)
        return replay.add(state, {"x": x, "obs": jnp.zeros((3, 2), jnp.uint8)})

    xs = jnp.arange(15.0).reshape(5, 3)
    batched = jax.vmap(fill)(xs)
    for row in range(5):
        np.testing.assert_array_equal(batched.data["x"][row], fill(xs[row]).data["x"])
    # the write index is shared by all seeds: no per-seed gather/scatter indices
    jaxpr = jax.make_jaxpr(jax.vmap(fill))(xs).jaxpr
    writes = [e for e in jaxpr.eqns if e.primitive.name in ("scatter", "dynamic_update_slice")]
    assert writes
    for eqn in writes:
        index_shapes = [v.aval.shape for v in eqn.invars[1:] if v.aval.dtype == jnp.int32]
        assert all(np.prod(shape) <= 2 for shape in index_shapes), index_shapes
