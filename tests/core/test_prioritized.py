"""Proportional prioritized replay: priorities in, draws and importance weights out."""

import jax
import jax.numpy as jnp
import jax.scipy.stats
import numpy as np
import pytest

from purejaxdqn.core import priorities as sum_tree
from purejaxdqn.core import replay

NUM_ENVS = 2
EPS = 1e-6


def params(alpha=0.6, beta=0.4, gamma=0.9):
    return replay.ReplayParams(
        gamma=jnp.float32(gamma), alpha=jnp.float32(alpha), beta=jnp.float32(beta)
    )


def build(steps, capacity=16, track_valid=False, frame_stack=0, n_step=1, prioritized=True):
    """A buffer after `steps` vector steps of random data; with `track_valid`, a reset
    step (valid=False) follows every end. Actions name the step: 10 * t + env."""
    rng = np.random.default_rng(0)
    shape = (3, frame_stack) if frame_stack > 1 else (3,)
    made = replay.make_replay(
        shape, jnp.float32, NUM_ENVS, capacity, 4, track_valid, frame_stack, n_step,
        prioritized, EPS,
    )  # fmt: skip
    state, add = made.init(), jax.jit(made.add)
    reset_next = np.zeros(NUM_ENVS, bool)
    for t in range(steps):
        ended = rng.random(NUM_ENVS) < 0.3
        terminated = ended & (rng.random(NUM_ENVS) < 0.5) & ~reset_next
        truncated = ended & ~terminated & ~reset_next
        valid = ~reset_next if track_valid else None
        state = add(
            state,
            rng.normal(size=(NUM_ENVS, *shape)).astype(np.float32),
            (10 * t + np.arange(NUM_ENVS)).astype(np.int32),
            rng.normal(size=NUM_ENVS).astype(np.float32),
            terminated,
            truncated,
            rng.normal(size=(NUM_ENVS, *shape)).astype(np.float32),
            valid,
        )
        if track_valid:
            reset_next = terminated | truncated
    return made, state


def leaves(state):
    """The priority of every item (slot * NUM_ENVS + env)."""
    items = state.action.size
    return np.asarray(sum_tree.read(state.priority_tree, jnp.arange(items)))


def live_items(state, frame_stack=0):
    """Flat indices of the live transitions, valid or not."""
    slots = state.action.shape[0]
    size, position = int(state.size), int(state.position)
    live_slots = [(position - size + age) % slots for age in range(size)]
    return np.array([s * NUM_ENVS + e for s in live_slots for e in range(NUM_ENVS)])


def counts_of(made, state, p, batches=200, batch_size=64):
    keys = jax.random.split(jax.random.key(11), batches)
    draw = jax.jit(jax.vmap(lambda k: made.sample(state, k, batch_size, p).indices))
    indices = np.asarray(draw(keys)).reshape(-1)
    return np.bincount(indices, minlength=state.action.size)


def chi_square_p(counts, expected_mass):
    """p-value of the counts under the distribution proportional to expected_mass."""
    support = expected_mass > 0
    assert counts[~support].sum() == 0, "drew an item of probability 0"
    expected = counts.sum() * expected_mass[support] / expected_mass[support].sum()
    statistic = ((counts[support] - expected) ** 2 / expected).sum()
    return float(jax.scipy.stats.chi2.sf(statistic, support.sum() - 1))


def test_state_fields_and_memory():
    made, state = build(0)
    uniform = replay.make_replay((3,), jnp.float32, NUM_ENVS, 16, 4).init()
    assert uniform.priority_tree is None and uniform.max_priority is None
    assert float(state.max_priority) == 1.0 and state.max_priority.dtype == jnp.float32
    items = state.action.size  # 9 slots x 2 envs
    assert items == 18
    sizes = tuple(level.shape for level in state.priority_tree)
    assert sizes == tuple((size,) for size in sum_tree.level_sizes(items))
    assert all(level.dtype == jnp.float32 for level in state.priority_tree)
    assert not any(np.any(level) for level in state.priority_tree)
    extra = sum(sum_tree.level_sizes(items)) * 4 + 4
    assert replay.nbytes(state) == replay.nbytes(uniform) + extra
    shapes = jax.eval_shape(made.init)
    assert replay.nbytes(shapes) == replay.nbytes(state)


def test_new_items_enter_at_the_max_priority_so_far():
    made, state = build(3)
    live = live_items(state)
    np.testing.assert_array_equal(np.flatnonzero(leaves(state)), np.sort(live))
    assert np.all(leaves(state)[live] == 1.0)  # initial maximum
    p = params(alpha=0.5)
    state = made.update(state, jnp.asarray(live[:2]), jnp.array([8.0, 3.0]), p)
    top = (8.0 + EPS) ** 0.5
    assert float(state.max_priority) == pytest.approx(top, rel=1e-6)
    state = made.update(state, jnp.asarray(live[2:3]), jnp.array([0.5]), p)
    assert float(state.max_priority) == pytest.approx(top, rel=1e-6)  # a running maximum
    newest = int(state.position) * NUM_ENVS + np.arange(NUM_ENVS)
    state = made.add(state, *build_step(t=99))
    np.testing.assert_allclose(leaves(state)[newest], top, rtol=1e-6)


def build_step(t, valid=None):
    obs = jnp.full((NUM_ENVS, 3), t, jnp.float32)
    flags = jnp.zeros(NUM_ENVS, bool)
    actions = (10 * t + jnp.arange(NUM_ENVS)).astype(jnp.int32)
    return obs, actions, jnp.ones(NUM_ENVS), flags, flags, obs + 1, valid


@pytest.mark.parametrize(
    "track_valid, frame_stack, n_step", [(False, 0, 1), (True, 0, 3), (True, 4, 3)]
)
def test_only_live_valid_items_have_priority_and_are_drawn(track_valid, frame_stack, n_step):
    """Unwritten slots, the candidate slot, the frame ring's history slots and reset
    steps keep priority 0 and are never drawn, before and after the rings wrap."""
    for steps in (5, 23):
        made, state = build(steps, 16, track_valid, frame_stack, n_step)
        live = live_items(state, frame_stack)
        valid = np.ones(state.action.size, bool)
        if track_valid:
            valid = np.asarray(state.valid).reshape(-1)
        expected = np.zeros(state.action.size, bool)
        expected[live] = True
        expected &= valid
        np.testing.assert_array_equal(leaves(state) > 0, expected)
        assert track_valid == (not valid[live].all())  # the data has reset steps
        counts = counts_of(made, state, params())
        np.testing.assert_array_equal(counts > 0, expected)


def test_an_item_overwritten_since_its_draw_stays_at_zero():
    made, state = build(8)  # full: 8 transitions per env
    oldest = live_items(state)[:NUM_ENVS]
    state = made.add(state, *build_step(t=50))  # the oldest slot becomes the candidate
    assert not np.any(leaves(state)[oldest])
    state = made.update(state, jnp.asarray(oldest), jnp.array([5.0, 5.0]), params())
    assert not np.any(leaves(state)[oldest]) and float(state.max_priority) == 1.0


def set_priorities(made, state, live, seed, alpha):
    """Give every live item a random priority; returns the state and the expected mass."""
    priorities = np.random.default_rng(seed).uniform(0.05, 3.0, len(live)).astype(np.float32)
    state = made.update(state, jnp.asarray(live), jnp.asarray(priorities), params(alpha))
    mass = np.zeros(state.action.size)
    mass[live] = (priorities.astype(np.float64) + EPS) ** alpha
    return state, mass


def test_draws_follow_priorities_chi_square():
    """Draw counts fit P(i) = p_i**alpha / sum: a test that wrong priorities fail."""
    made, state = build(20)
    live = live_items(state)
    state, mass = set_priorities(made, state, live, seed=1, alpha=0.7)
    counts = counts_of(made, state, params(alpha=0.7))
    assert chi_square_p(counts, mass) > 1e-3
    # the same counts against wrong priorities: another alpha, or shuffled
    assert chi_square_p(counts, mass ** (1.0 / 0.7)) < 1e-6
    shuffled = mass.copy()
    shuffled[live] = np.random.default_rng(2).permutation(mass[live])
    assert chi_square_p(counts, shuffled) < 1e-6


def test_alpha_zero_draws_uniformly_over_live_items_with_unit_weights():
    made, state = build(20, track_valid=True)
    live = live_items(state)
    state, mass = set_priorities(made, state, live, seed=3, alpha=0.0)
    valid = np.asarray(state.valid).reshape(-1)
    expected = np.where(mass > 0, 1.0, 0.0) * valid
    np.testing.assert_array_equal(leaves(state), expected)
    counts = counts_of(made, state, params(alpha=0.0))
    assert chi_square_p(counts, expected) > 1e-3
    sample = made.sample(state, jax.random.key(0), 64, params(alpha=0.0, beta=1.0))
    np.testing.assert_array_equal(sample.weights, 1.0)


@pytest.mark.parametrize("beta", [0.0, 0.4, 1.0])
def test_weights_are_schauls_normalised_importance_weights(beta):
    made, state = build(20)
    live = live_items(state)
    state, mass = set_priorities(made, state, live, seed=4, alpha=0.6)
    sample = made.sample(state, jax.random.key(5), 32, params(beta=beta))
    probability = mass[np.asarray(sample.indices)] / mass.sum()
    weights = (len(live) * probability) ** -beta
    np.testing.assert_allclose(sample.weights, weights / weights.max(), rtol=1e-5)
    assert sample.weights.dtype == jnp.float32 and float(jnp.max(sample.weights)) == 1.0


def test_update_writes_back_and_the_last_duplicate_wins():
    made, state = build(20)
    live = live_items(state)
    indices = jnp.asarray([live[0], live[1], live[0], live[2], live[1]])
    values = jnp.array([1.0, -2.0, 3.0, 0.0, 5.0])  # |.| is taken
    p = params(alpha=0.5)
    updated = made.update(state, indices, values, p)
    got = leaves(updated)
    np.testing.assert_allclose(got[live[:3]], (np.array([3.0, 5.0, 0.0]) + EPS) ** 0.5, rtol=1e-6)
    untouched = np.setdiff1d(np.arange(got.size), live[:3])
    np.testing.assert_array_equal(got[untouched], leaves(state)[untouched])
    again = jax.jit(made.update)(state, indices, values, p)
    jax.tree.map(np.testing.assert_array_equal, again, updated)
    # a permutation that keeps each item's last occurrence gives the same state
    order = np.array([1, 0, 3, 2, 4])
    permuted = made.update(state, indices[order], values[order], p)
    jax.tree.map(np.testing.assert_array_equal, permuted, updated)
    # ... and equals writing the winners once
    once = made.update(state, indices[2:], values[2:], p)
    jax.tree.map(np.testing.assert_array_equal, once, updated)


def test_tree_sums_are_recomputed_not_accumulated():
    """After many adds and updates every node is the sum of its children, and the tree
    equals one built from scratch from its leaves, bit for bit (no drift)."""
    made, state = build(12, capacity=100)  # 102 items: 3 levels below the root at fanout 8
    rng = np.random.default_rng(6)

    @jax.jit
    def cycle(state, t, priorities):
        sample = made.sample(state, jax.random.key(t), 8, params())
        state = made.update(state, sample.indices, priorities, params())
        return made.add(state, *build_step(t=100 + t))

    for t in range(60):
        state = cycle(state, t, jnp.asarray(rng.exponential(size=8)))
    tree = [np.asarray(level) for level in state.priority_tree]
    fanout = sum_tree.fanout_of(state.priority_tree)
    assert len(tree) >= 3 and fanout == sum_tree.FANOUT
    for children, parents in zip(tree[:-1], tree[1:], strict=True):
        sums = children.reshape(-1, fanout).sum(axis=1, dtype=np.float64)
        np.testing.assert_allclose(parents, np.pad(sums, (0, parents.size - sums.size)), rtol=1e-6)
    assert len(np.unique(tree[0])) > 20  # many distinct priorities
    rebuilt = sum_tree.write(sum_tree.init(state.action.size), jnp.arange(tree[0].size), tree[0])
    jax.tree.map(np.testing.assert_array_equal, rebuilt, tuple(tree))


@pytest.mark.parametrize("fanout", [2, 4, sum_tree.FANOUT, 64])
def test_draw_never_returns_a_zero_leaf_past_rounding(fanout):
    """Mass at or beyond the total (float rounding) ends on the last nonzero item, also
    when the last nonzero item is the last of its node (or of its node's parent)."""
    priorities = [0, 1, 0, 2, 0, 0, 3, 0.0]
    tree = sum_tree.write(sum_tree.init(8, fanout), jnp.arange(8), jnp.array(priorities))
    total = float(sum_tree.total(tree))
    mass = jnp.array([0.0, 0.999, 1.0, 2.999, 3.0, 5.9999, 6.0, total, total * 1.01, np.inf])
    np.testing.assert_array_equal(sum_tree.find(tree, mass), [1, 1, 3, 3, 6, 6, 6, 6, 6, 6])
    # many levels, nonzero items at the start of the last but one node only
    tree = sum_tree.write(sum_tree.init(300, fanout), jnp.arange(3), jnp.array([1.0, 2.0, 0.0]))
    tree = sum_tree.write(tree, jnp.array([299]), jnp.array([0.0]))
    assert len(tree) >= 3
    # (every call draws 10 masses: find's eager ops compile once for the three trees)
    mass = jnp.array([0.0, 0.5, 1.0, 2.0, 2.9999, 3.0, 3.5, 4.0, 100.0, np.inf])
    np.testing.assert_array_equal(sum_tree.find(tree, mass), [0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    # an empty tree returns item 0 (the caller keeps it in range)
    empty = sum_tree.init(300, fanout)
    np.testing.assert_array_equal(sum_tree.find(empty, mass), np.zeros(10))


def reference_find(priorities, mass):
    """Item j with cumsum[j - 1] <= mass < cumsum[j] (a plain cumulative sum and a binary
    search), past the end the last nonzero item."""
    cumulative = np.cumsum(priorities.astype(np.float64))
    items = np.searchsorted(cumulative, mass, side="right")
    return np.minimum(items, np.flatnonzero(priorities)[-1])


# Every case draws this many masses, so the eager ops of `find` on (draws, fanout) shapes
# compile once per fanout and serve every item count and both priority sets.
NUM_MASSES = 16384


@pytest.mark.parametrize("fanout", [2, 8, 16, 32, 64])
@pytest.mark.parametrize("num_items", [1, 5, 77, 1000, 4099])
def test_wide_tree_draws_the_items_a_cumulative_sum_does(fanout, num_items):
    """`find` agrees with a cumulative sum and a binary search over the priorities, at
    every fanout and for item counts that are not powers of the fanout: exactly where
    every partial sum is exact (small integer priorities, zeros among them), and up to
    float ties at the boundaries between items for random float priorities."""
    rng = np.random.default_rng(num_items * 100 + fanout)
    integer = rng.integers(0, 8, num_items) * (rng.random(num_items) < 0.7)
    integer[rng.integers(num_items)] = 5  # not all zero
    floats = rng.exponential(size=num_items).astype(np.float32) * (rng.random(num_items) < 0.8)
    floats[rng.integers(num_items)] = 1.0
    for priorities, exact in ((integer.astype(np.float32), True), (floats, False)):
        tree = sum_tree.init(num_items, fanout)
        tree = sum_tree.write(tree, jnp.arange(num_items), jnp.asarray(priorities))
        total = float(priorities.astype(np.float64).sum())
        np.testing.assert_allclose(float(sum_tree.total(tree)), total, rtol=1e-5)
        whole = np.arange(int(total) + 1, dtype=np.float32)  # every boundary, for integers
        whole = whole[whole < np.float32(total)]
        assert NUM_MASSES - whole.size >= 2000  # and at least 2000 uniform masses
        uniform = rng.random(NUM_MASSES - whole.size, dtype=np.float32) * np.float32(total)
        mass = np.concatenate([np.where(uniform < np.float32(total), uniform, 0), whole])
        got = np.asarray(sum_tree.find(tree, jnp.asarray(mass)))
        assert np.all(priorities[got] > 0)
        expected = reference_find(priorities, mass)
        if exact:
            np.testing.assert_array_equal(got, expected)
            continue
        # floats: a draw may differ only where its mass is a float rounding from the
        # boundary between the two items
        cumulative = np.cumsum(priorities.astype(np.float64))
        differ = got != expected
        boundary = cumulative[np.minimum(got, expected)]
        assert np.all(np.abs(mass[differ] - boundary[differ]) <= 1e-5 * total)
        assert differ.mean() < 0.01


@pytest.mark.parametrize("fanout", [2, sum_tree.FANOUT, 32])
def test_draw_with_priorities_returns_the_drawn_items_priorities(fanout):
    """The priorities the draw returns (taken from the leaves its descent gathered) are
    the drawn items' own, and the items are `draw`'s."""
    rng = np.random.default_rng(fanout)
    priorities = rng.exponential(size=777).astype(np.float32) * (rng.random(777) < 0.6)
    tree = sum_tree.write(sum_tree.init(777, fanout), jnp.arange(777), jnp.asarray(priorities))
    key = jax.random.key(4)
    items, drawn = jax.jit(sum_tree.draw_with_priorities, static_argnums=2)(tree, key, 256)
    np.testing.assert_array_equal(items, sum_tree.draw(tree, key, 256))
    np.testing.assert_array_equal(drawn, priorities[np.asarray(items)])
    assert np.all(np.asarray(drawn) > 0)


def test_vmap_over_seeds_keeps_each_seeds_priorities():
    made, state = build(20)
    live = jnp.asarray(live_items(state))
    seeds = jax.tree.map(lambda x: jnp.stack([x, x]), state)
    priorities = jnp.stack(
        [jnp.where(jnp.arange(live.size) < 4, 10.0, 0.01), jnp.linspace(0.1, 2.0, live.size)]
    )
    p = params(alpha=1.0)

    def step(state, priorities, key):
        state = made.update(state, live, priorities, p)
        return state, made.sample(state, key, 64, p)

    keys = jax.random.split(jax.random.key(3), 2)
    batched_state, batched = jax.jit(jax.vmap(step))(seeds, priorities, keys)
    for seed in range(2):
        alone_state, alone = step(state, priorities[seed], keys[seed])
        picked = jax.tree.map(lambda x, seed=seed: x[seed], (batched_state, batched))
        jax.tree.map(np.testing.assert_array_equal, picked, (alone_state, alone))
    first = np.asarray(batched.indices[0])
    assert np.isin(first, np.asarray(live[:4])).mean() > 0.8  # seed 0's priorities
    assert np.isin(np.asarray(batched.indices[1]), np.asarray(live[:4])).mean() < 0.3


@pytest.mark.parametrize(
    "track_valid, frame_stack, n_step", [(False, 0, 3), (True, 0, 3), (True, 4, 2)]
)
def test_prioritized_reads_the_same_transitions_as_uniform(track_valid, frame_stack, n_step):
    """Prioritized sampling only changes which items are drawn: each item's transition
    (n-step, side ring, frame ring) is what uniform replay reads for it."""
    made, state = build(23, 16, track_valid, frame_stack, n_step)
    uniform_made, uniform = build(23, 16, track_valid, frame_stack, n_step, prioritized=False)
    everything = uniform_made.sample(uniform, jax.random.key(0), 2048, params())
    by_index = {int(i): n for n, i in enumerate(np.asarray(everything.indices))}
    sample = jax.jit(made.sample, static_argnums=2)(state, jax.random.key(1), 128, params())
    rows = np.array([by_index[int(i)] for i in np.asarray(sample.indices)])
    expected = jax.tree.map(lambda x: np.asarray(x)[rows], everything.batch)
    jax.tree.map(np.testing.assert_array_equal, sample.batch, expected)


def test_whole_cycle_compiles_in_a_scan():
    """add, sample and update jit together inside a scan (as in the training loop)."""
    made, state = build(6, track_valid=True)

    def cycle(state, t):
        state = made.add(state, *build_step(t, valid=jnp.ones(NUM_ENVS, bool)))
        sample = made.sample(state, jax.random.fold_in(jax.random.key(0), t), 16, params())
        return made.update(state, sample.indices, sample.batch.reward, params()), None

    state, _ = jax.jit(lambda s: jax.lax.scan(cycle, s, jnp.arange(10)))(state)
    assert float(sum_tree.total(state.priority_tree)) > 0


def test_priority_eps_must_be_positive():
    with pytest.raises(ValueError, match="priority_eps=0.0 is not allowed"):
        replay.make_replay((3,), jnp.float32, NUM_ENVS, 16, 4, prioritized=True, priority_eps=0.0)
