import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxdqn.core import replay

NUM_ENVS = 2
GAMMA = 0.5


def _step(buffer, t, terminated=(False, False), truncated=(False, False), final=None):
    """Add vector step t: env e sees obs 10*t + e; its final obs is `final` or 10*(t+1)+e."""
    obs = jnp.array([[10 * t + e, 0] for e in range(NUM_ENVS)], jnp.float32)
    final_obs = obs.at[:, 0].add(10) if final is None else jnp.asarray(final, jnp.float32)
    return replay.add(
        buffer,
        obs,
        jnp.array([t, t + 100], jnp.int32),
        jnp.array([t, -t], jnp.float32),
        jnp.asarray(terminated),
        jnp.asarray(truncated),
        final_obs,
    )


def _all_transitions(buffer):
    """Every stored transition, keyed by its action, via many uniform draws: (obs, reward,
    next obs, terminated), terminated read from the discount (0, else GAMMA)."""
    batch = replay.sample(buffer, jax.random.key(0), 4096, GAMMA).batch
    assert set(np.asarray(batch.discount).tolist()) <= {0.0, GAMMA}
    seen = {}
    for i in range(4096):
        seen[int(batch.action[i])] = (
            float(batch.obs[i, 0]),
            float(batch.reward[i]),
            float(batch.next_obs[i, 0]),
            float(batch.discount[i]) == 0.0,
        )
    return seen


def test_init_shapes_dtypes_and_side_ring_size():
    buffer = replay.init((3, 3), jnp.uint8, NUM_ENVS, capacity=8, max_episode_steps=3)
    assert buffer.obs.shape == (5, NUM_ENVS, 3, 3) and buffer.obs.dtype == jnp.uint8
    assert buffer.action.shape == (5, NUM_ENVS) and buffer.action.dtype == jnp.int32
    assert buffer.final_obs.shape == (3, NUM_ENVS, 3, 3)  # ceil(4 / 3) + 1
    assert replay.capacity_of(buffer) == 8
    assert int(buffer.position) == 0 and int(buffer.size) == 0
    no_limit = replay.init((2,), jnp.float32, NUM_ENVS, 8, max_episode_steps=None)
    assert no_limit.final_obs.shape[0] == 5


def test_init_rejects_capacity_not_multiple_of_num_envs():
    with pytest.raises(ValueError, match="buffer_size=7 .*multiple of num_envs=2"):
        replay.init((2,), jnp.float32, NUM_ENVS, 7, None)


def test_observations_stored_once_in_compact_dtype():
    capacity, obs_shape = 100_000, (10, 10, 4)
    buffer = jax.eval_shape(
        lambda: replay.init(obs_shape, jnp.uint8, 8, capacity, max_episode_steps=1000)
    )
    raw = capacity * np.prod(obs_shape)
    assert replay.nbytes(buffer) <= 1.25 * raw
    assert replay.nbytes(buffer) > raw


def test_successor_is_next_slot_and_ring_overwrites_oldest():
    buffer = replay.init((2,), jnp.float32, NUM_ENVS, capacity=6, max_episode_steps=None)
    for t in range(5):  # 5 steps into 3 slots per env: steps 0 and 1 are overwritten
        buffer = _step(buffer, t)
    assert int(buffer.size) == 3
    seen = _all_transitions(buffer)
    expected = {}
    for t in (2, 3, 4):
        expected[t] = (10 * t, t, 10 * (t + 1), False)
        expected[t + 100] = (10 * t + 1, -t, 10 * (t + 1) + 1, False)
    assert seen == expected


def test_truncated_step_bootstraps_from_final_obs_not_reset_obs():
    buffer = replay.init((2,), jnp.float32, NUM_ENVS, capacity=8, max_episode_steps=2)
    buffer = _step(buffer, 0)
    # env 0 truncates at t=1 with final obs 999; env 1 terminates with final obs 555
    buffer = _step(
        buffer, 1, terminated=(False, True), truncated=(True, False), final=[[999, 0], [555, 0]]
    )
    buffer = _step(buffer, 2)  # obs 20/21 are the reset observations
    seen = _all_transitions(buffer)
    assert seen[1] == (10, 1, 999, False)  # truncation: the true final observation
    assert seen[101][3] is True  # termination: flagged (its successor is never used)
    assert seen[0] == (0, 0, 10, False) and seen[2] == (20, 2, 30, False)


def test_final_obs_survive_while_their_slots_live():
    # time limit 2: every env truncates every second step; ring wraps several times
    buffer = replay.init((2,), jnp.float32, NUM_ENVS, capacity=10, max_episode_steps=2)
    for t in range(23):
        truncated = (t % 2 == 1, t % 2 == 1)
        final = [[1000 + t, 0], [2000 + t, 0]] if t % 2 else None
        buffer = _step(buffer, t, truncated=truncated, final=final)
    seen = _all_transitions(buffer)
    assert sorted(a for a in seen if a < 100) == list(range(18, 23))
    for t in range(18, 23):
        successor = 1000 + t if t % 2 else 10 * (t + 1)
        assert seen[t][2] == successor, (t, seen[t])
        assert seen[t + 100][2] == (2000 + t if t % 2 else 10 * (t + 1) + 1)


def test_sample_is_uniform_over_envs_and_slots():
    buffer = replay.init((2,), jnp.float32, NUM_ENVS, capacity=4, max_episode_steps=None)
    for t in range(3):  # fill 2 of 2 slots per env, one wrap
        buffer = _step(buffer, t)
    actions = np.asarray(replay.sample(buffer, jax.random.key(1), 40_000, GAMMA).batch.action)
    values, counts = np.unique(actions, return_counts=True)
    assert values.tolist() == [1, 2, 101, 102]
    expected, sd = 10_000, np.sqrt(40_000 * 0.25 * 0.75)
    assert np.all(np.abs(counts - expected) < 5 * sd), counts


def test_vmapped_add_uses_one_unbatched_write_position():
    def fill(x):
        buffer = replay.init((2,), jnp.float32, NUM_ENVS, 6, max_episode_steps=2)
        obs = jnp.stack([x, x], 1)
        flags = jnp.zeros(NUM_ENVS, bool)
        return replay.add(buffer, obs, jnp.zeros(2, jnp.int32), x, flags, flags, obs)

    xs = jnp.arange(10.0).reshape(5, 2)
    batched = jax.vmap(fill)(xs)
    for row in range(5):
        np.testing.assert_array_equal(batched.obs[row], fill(xs[row]).obs)
    # every write into the rings (4 slots) uses one start index shared by all seeds, not
    # per-seed indices (the final_obs side ring, 3 entries, is indexed per env by design)
    jaxpr = jax.make_jaxpr(jax.vmap(fill))(xs).jaxpr
    writes = [e for e in jaxpr.eqns if e.primitive.name in ("scatter", "dynamic_update_slice")]
    ring_writes = [e for e in writes if 4 in e.invars[0].aval.shape[:2]]
    assert len(ring_writes) == 7
    for eqn in ring_writes:
        operand, *rest = (v.aval for v in eqn.invars)
        index_sizes = [np.prod(a.shape) for a in rest if a.dtype == jnp.int32 and a.ndim <= 1]
        assert all(size <= operand.ndim for size in index_sizes), eqn


def test_reset_steps_are_stored_flagged_invalid():
    """An envpool-style reset step (its action ignored) keeps the rings aligned but is
    sampled with valid=False; buffers of gymnax envs carry no flag at all."""
    assert replay.init((2,), jnp.float32, NUM_ENVS, 8, None).valid is None
    buffer = replay.init((2,), jnp.float32, NUM_ENVS, 8, None, track_valid=True)
    obs = jnp.zeros((NUM_ENVS, 2), jnp.float32)
    for t, valid in enumerate([(True, True), (False, True), (True, True)]):
        buffer = replay.add(
            buffer,
            obs + t,
            jnp.array([t, t + 100], jnp.int32),
            jnp.zeros(NUM_ENVS),
            jnp.zeros(NUM_ENVS, bool),
            jnp.zeros(NUM_ENVS, bool),
            obs + t + 1,
            jnp.asarray(valid),
        )
    batch = replay.sample(buffer, jax.random.key(0), 512, GAMMA).batch
    invalid = set(np.asarray(batch.action)[~np.asarray(batch.valid)].tolist())
    assert invalid == {1}  # only env 0's step 1
    with pytest.raises(ValueError, match="valid must be given"):
        replay.add(
            buffer, obs, *([jnp.zeros(NUM_ENVS, jnp.int32)] * 2), *([obs[:, 0] > 0] * 2), obs
        )


def _filled(max_episode_steps=2):
    """Steps 0-2: at t=1 env 0 truncates (final obs 999), env 1 terminates (final obs 555)."""
    buffer = replay.init((2,), jnp.float32, NUM_ENVS, 8, max_episode_steps)
    buffer = _step(buffer, 0)
    buffer = _step(
        buffer, 1, terminated=(False, True), truncated=(True, False), final=[[999, 0], [555, 0]]
    )
    return _step(buffer, 2)


def test_discount_is_gamma_unless_terminated():
    """Ordinary and truncated transitions keep discount gamma (a truncation with its true
    final observation), a terminated one gets 0; gamma may be traced."""
    sample = jax.jit(replay.sample, static_argnums=(2, 4))(_filled(), jax.random.key(0), 512, 0.9)
    batch = sample.batch
    assert batch.discount.dtype == jnp.float32 and batch.discount.shape == (512,)
    by_action = {}
    columns = (batch.action, batch.discount, batch.next_obs[:, 0])
    for action, discount, next_obs in zip(*map(np.asarray, columns), strict=True):
        by_action[int(action)] = (float(discount), float(next_obs))
    assert sorted(by_action) == [0, 1, 2, 100, 101, 102]
    assert by_action[1] == (np.float32(0.9), 999.0)  # truncated: gamma, true final obs
    assert by_action[101][0] == 0.0  # terminated
    for ordinary in (0, 2, 100, 102):
        assert by_action[ordinary][0] == np.float32(0.9)
    assert by_action[0][1] == 10.0 and by_action[102][1] == 31.0


def test_uniform_sample_weights_are_one_and_indices_name_the_items():
    buffer = _filled()
    sample = replay.sample(buffer, jax.random.key(3), 256, GAMMA)
    assert sample.weights.dtype == jnp.float32 and sample.weights.shape == (256,)
    assert np.all(np.asarray(sample.weights) == 1.0)
    assert sample.indices.dtype == jnp.int32 and sample.indices.shape == (256,)
    flat_actions = np.asarray(buffer.action).reshape(-1)  # (slot, env) rows, flattened
    np.testing.assert_array_equal(flat_actions[sample.indices], sample.batch.action)
    flat_rewards = np.asarray(buffer.reward).reshape(-1)
    np.testing.assert_array_equal(flat_rewards[sample.indices], sample.batch.reward)


def test_uniform_update_returns_the_state_unchanged():
    buffer = _filled()
    sample = replay.sample(buffer, jax.random.key(3), 16, GAMMA)
    updated = replay.update(buffer, sample.indices, jnp.arange(16, dtype=jnp.float32))
    assert jax.tree.structure(updated) == jax.tree.structure(buffer)
    jax.tree.map(np.testing.assert_array_equal, updated, buffer)
    traced = jax.jit(replay.update)(buffer, sample.indices, jnp.ones(16, jnp.float32))
    jax.tree.map(np.testing.assert_array_equal, traced, buffer)


def test_make_replay_binds_the_layout_and_checks_it_when_built():
    made = replay.make_replay((2,), jnp.float32, NUM_ENVS, 8, 2)
    state = made.init()
    jax.tree.map(
        np.testing.assert_array_equal, state, replay.init((2,), jnp.float32, NUM_ENVS, 8, 2)
    )
    obs = jnp.ones((NUM_ENVS, 2), jnp.float32)
    flags = jnp.zeros(NUM_ENVS, bool)
    actions = jnp.array([3, 4], jnp.int32)
    state = made.add(state, obs, actions, jnp.ones(NUM_ENVS), flags, flags, obs + 1)
    params = replay.ReplayParams(gamma=0.9, alpha=0.6, beta=0.4)
    sample = made.sample(state, jax.random.key(0), 32, params)
    expected = replay.sample(
        replay.add(
            replay.init((2,), jnp.float32, NUM_ENVS, 8, 2),
            obs,
            actions,
            jnp.ones(NUM_ENVS),
            flags,
            flags,
            obs + 1,
        ),
        jax.random.key(0),
        32,
        0.9,
    )
    jax.tree.map(np.testing.assert_array_equal, sample, expected)
    assert made.update(state, sample.indices, sample.weights, params) is state
    with pytest.raises(ValueError, match="buffer_size=7 .*multiple of num_envs=2"):
        replay.make_replay((2,), jnp.float32, NUM_ENVS, 7, None)
    with pytest.raises(ValueError, match="frame_stack=4 needs an env with reset steps"):
        replay.make_replay((10, 10, 4), jnp.uint8, NUM_ENVS, 8, None, frame_stack=4)
