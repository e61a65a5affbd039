"""n-step returns read from the replay's rings, checked against rlax and a plain reference.

A simulated trajectory (random rewards, terminations, time-limit truncations) is written
into a buffer that wraps; every live transition is then sampled and its target
`reward + discount * V(next_obs)`, for a linear V, compared with
`rlax.n_step_bootstrapped_returns` over the env's sequence (cut after truncations, which
rlax has no notion of, and at reset steps), and its fields with a plain Python reference.
"""

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from purejaxdqn.core import replay

NUM_ENVS = 2
CAPACITY = 24  # 12 transitions per env
STEPS = 31  # the rings wrap
TIME_LIMIT = 5
GAMMA = 0.9
WEIGHTS = np.array([0.7, -0.3, 0.2, 0.5, -0.1, 0.4, 0.3, -0.6], np.float32)


def value(obs):
    """The linear value function the targets bootstrap from."""
    flat = np.asarray(obs, np.float64).reshape(len(obs), -1)
    return flat @ WEIGHTS[: flat.shape[1]].astype(np.float64)


@dataclass
class Step:
    """One env's transition as the env produced it (`successor` before any auto-reset)."""

    obs: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    successor: np.ndarray
    valid: bool


def simulate(style, seed=0):
    """Roll out NUM_ENVS envs for STEPS vector steps.

    style: 'gymnax' (auto-reset inside the step, truncations by time limit), 'valid' (an
    envpool-style reset step after every end) or 'frames' ('valid' with 4-frame stacks of
    2-value frames, a game's first frame repeated at its start).
    Returns the per-step add arguments and each env's list of `Step`s.
    """
    rng = np.random.default_rng(seed)
    frames = style == "frames"
    shape = (2, 4) if frames else (3,)

    def fresh():
        if frames:
            return np.repeat(rng.normal(size=(2, 1)), 4, axis=1).astype(np.float32)
        return rng.normal(size=shape).astype(np.float32)

    obs = [fresh() for _ in range(NUM_ENVS)]
    length = [0] * NUM_ENVS
    needs_reset = [False] * NUM_ENVS
    adds, history = [], [[] for _ in range(NUM_ENVS)]
    for t in range(STEPS):
        columns = {k: [] for k in ("obs", "action", "reward", "term", "trunc", "final", "valid")}
        for e in range(NUM_ENVS):
            if needs_reset[e]:  # envpool: this step only resets
                step = Step(obs[e], 0.0, False, False, fresh(), False)
                needs_reset[e] = False
            else:
                if frames:
                    frame = rng.normal(size=(2, 1)).astype(np.float32)
                    successor = np.concatenate([obs[e][:, 1:], frame], axis=1)
                else:
                    successor = fresh()
                length[e] += 1
                terminated = bool(rng.random() < 0.15)
                truncated = not terminated and length[e] == TIME_LIMIT
                step = Step(obs[e], float(rng.normal()), terminated, truncated, successor, True)
                if terminated or truncated:
                    length[e] = 0
                    needs_reset[e] = style != "gymnax"
            history[e].append(step)
            next_obs = step.successor
            if style == "gymnax" and (step.terminated or step.truncated):
                next_obs = fresh()  # auto-reset: the next step acts on a reset observation
            for name, item in zip(
                columns,
                (step.obs, t * 10 + e, step.reward, step.terminated, step.truncated,
                 step.successor, step.valid),
                strict=True,
            ):  # fmt: skip
                columns[name].append(item)
            obs[e] = next_obs
        adds.append({k: np.asarray(v) for k, v in columns.items()})
    return shape, adds, history


def fill(style, n_step, frame_stack=0, seed=0):
    """The simulated trajectory in a `make_replay` buffer, and its per-env history."""
    shape, adds, history = simulate(style, seed)
    track_valid = style != "gymnax"
    made = replay.make_replay(
        shape, jnp.float32, NUM_ENVS, CAPACITY, TIME_LIMIT, track_valid, frame_stack, n_step
    )
    state, add = made.init(), jax.jit(made.add)
    for a in adds:
        valid = a["valid"] if track_valid else None
        state = add(
            state, a["obs"], a["action"], a["reward"], a["term"], a["trunc"], a["final"], valid
        )
    return made, state, history


def params(gamma=GAMMA):
    return replay.ReplayParams(gamma=jnp.float32(gamma), alpha=jnp.float32(0.6), beta=0.4)


def every_transition(made, state, batch_size=4096):
    """Every live transition, keyed by (t, env), from one large uniform batch."""
    sample = jax.jit(made.sample, static_argnums=2)(state, jax.random.key(0), batch_size, params())
    batch = jax.tree.map(np.asarray, sample.batch)
    seen = {}
    for i, action in enumerate(batch.action):
        t, e = divmod(int(action), 10)
        seen[t, e] = jax.tree.map(lambda x, i=i: None if x is None else x[i], batch)
    return seen


def reference(steps, i, n, gamma=GAMMA):
    """Plain Python n-step transition from steps[i] (the env's live steps, oldest first):
    (reward, discount, next_obs).
    """
    reward, m = 0.0, 0
    for k in range(n):
        j = i + k
        if j >= len(steps) or (k > 0 and not steps[j].valid):
            break
        reward += gamma**k * steps[j].reward
        m += 1
        if steps[j].terminated or steps[j].truncated:
            break
    last = steps[i + m - 1]
    return reward, gamma**m * (1.0 - last.terminated), last.successor


def rlax_targets(steps, n, gamma=GAMMA):
    """rlax's n-step targets over the env's live steps, the sequence cut after each
    truncation and at reset steps (whose targets are not compared): {position: target}.
    """
    targets, segment = {}, []

    def flush():
        if segment:
            rewards = jnp.array([steps[j].reward for j in segment], jnp.float32)
            discounts = jnp.array([gamma * (1 - steps[j].terminated) for j in segment])
            values = jnp.asarray(value(np.stack([steps[j].successor for j in segment])))
            out = rlax.n_step_bootstrapped_returns(
                rewards, discounts.astype(jnp.float32), values.astype(jnp.float32), n
            )
            targets.update(zip(segment, np.asarray(out), strict=True))
            segment.clear()

    for j, step in enumerate(steps):
        if not step.valid:
            flush()
            continue
        segment.append(j)
        if step.truncated:
            flush()
    flush()
    return targets


@pytest.mark.parametrize("n_step", [1, 3, 5])
@pytest.mark.parametrize(
    "style, frame_stack", [("gymnax", 0), ("valid", 0), ("frames", 0), ("frames", 4)]
)
def test_n_step_targets_match_rlax_and_reference(style, frame_stack, n_step):
    made, state, history = fill(style, n_step, frame_stack)
    seen = every_transition(made, state)
    live = CAPACITY // NUM_ENVS
    checked = 0
    for e in range(NUM_ENVS):
        steps = history[e][-live:]
        first_t = STEPS - live
        expected_targets = rlax_targets(steps, n_step)
        assert {t for t, env in seen if env == e} == set(range(first_t, STEPS))
        for i, step in enumerate(steps):
            got = seen[first_t + i, e]
            np.testing.assert_array_equal(got.obs, step.obs)
            if style != "gymnax":
                assert bool(got.valid) == step.valid
            if not step.valid:
                continue  # a reset step: the loss ignores it
            reward, discount, next_obs = reference(steps, i, n_step)
            np.testing.assert_allclose(got.reward, reward, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got.discount, discount, rtol=1e-6)
            if discount:  # a terminated window's successor is never read (gymnax: not kept)
                np.testing.assert_array_equal(got.next_obs, next_obs)
            target = got.reward + got.discount * value(got.next_obs[None])[0]
            np.testing.assert_allclose(target, expected_targets[i], rtol=1e-5, atol=1e-5)
            checked += 1
    assert checked > 15


def test_trajectories_cover_every_case():
    """The simulated data has the cases the n-step test must see, inside its windows."""
    for style in ("gymnax", "valid", "frames"):
        _, _, history = simulate(style)
        live = [s for steps in history for s in steps[-CAPACITY // NUM_ENVS :]]
        assert any(s.terminated for s in live) and any(s.truncated for s in live), style
        assert any(not s.valid for s in live) == (style != "gymnax"), style


def test_frame_ring_n_step_equals_whole_observations():
    """The frame ring rebuilds the stacks at a window's end exactly as stored stacks."""
    ring_made, ring, _ = fill("frames", 3, frame_stack=4, seed=4)
    whole_made, whole, _ = fill("frames", 3, frame_stack=0, seed=4)
    key = jax.random.key(7)
    got = ring_made.sample(ring, key, 1024, params())
    expected = whole_made.sample(whole, key, 1024, params())
    jax.tree.map(np.testing.assert_array_equal, got.batch, expected.batch)  # same draws


def test_hand_computed_windows():
    """One env, gamma 0.5, n = 3, rewards 1, 2, 4, ...: a termination at t=2, a
    truncation at t=4 (final obs 99), newest transition t=6."""
    made = replay.make_replay((1,), jnp.float32, 1, 8, 3, n_step=3)
    state = made.init()
    for t in range(7):
        final = 99.0 if t == 4 else t + 1.0
        state = made.add(
            state,
            jnp.array([[t]], jnp.float32),
            jnp.array([t], jnp.int32),
            jnp.array([2.0**t]),
            jnp.array([t == 2]),
            jnp.array([t == 4]),
            jnp.array([[final]], jnp.float32),
        )
    sample = made.sample(state, jax.random.key(0), 512, params(0.5))
    got = {}
    for a, r, d, o in zip(*map(np.asarray, sample.batch[1:5]), strict=True):
        got[int(a)] = (float(r), float(d), float(o[0]))
    assert got == {
        0: (1 + 0.5 * 2 + 0.25 * 4, 0.0, 3.0),  # ends at the termination (t=2)
        1: (2 + 0.5 * 4, 0.0, 3.0),
        2: (4.0, 0.0, 3.0),
        3: (8 + 0.5 * 16, 0.25, 99.0),  # ends at the truncation: final obs, gamma**2
        4: (16.0, 0.5, 99.0),
        5: (32 + 0.5 * 64, 0.25, 7.0),  # the newest end of the buffer: m = 2
        6: (64.0, 0.5, 7.0),
    }


def test_gamma_is_traced_per_seed_under_vmap():
    made, state, _ = fill("gymnax", 3)
    gammas = jnp.array([0.5, 0.99], jnp.float32)

    def draw(gamma):
        p = replay.ReplayParams(gamma=gamma, alpha=jnp.float32(0.6), beta=jnp.float32(0.4))
        return made.sample(state, jax.random.key(1), 64, p).batch

    batched = jax.jit(jax.vmap(draw))(gammas)
    for row, gamma in enumerate(gammas):
        alone = draw(gamma)
        np.testing.assert_allclose(batched.reward[row], alone.reward, rtol=1e-6)
        np.testing.assert_allclose(batched.discount[row], alone.discount, rtol=1e-6)
    assert not np.allclose(batched.reward[0], batched.reward[1])


def test_n_step_keeps_uniform_draws():
    """n only changes what is read: the same items are drawn with the same weights."""
    made1, state, _ = fill("valid", 1)
    made3 = replay.make_replay((3,), jnp.float32, NUM_ENVS, CAPACITY, TIME_LIMIT, True, 0, 3)
    one = made1.sample(state, jax.random.key(5), 256, params())
    three = made3.sample(state, jax.random.key(5), 256, params())
    np.testing.assert_array_equal(one.indices, three.indices)
    np.testing.assert_array_equal(one.weights, three.weights)
    np.testing.assert_array_equal(one.batch.obs, three.batch.obs)


@pytest.mark.parametrize("n_step", [0, -1, 13])
def test_n_step_out_of_range_is_refused(n_step):
    with pytest.raises(ValueError, match=f"n_step={n_step} is not allowed"):
        replay.make_replay((3,), jnp.float32, NUM_ENVS, CAPACITY, TIME_LIMIT, n_step=n_step)
    buffer = replay.init((3,), jnp.float32, NUM_ENVS, CAPACITY, TIME_LIMIT)
    with pytest.raises(ValueError, match=f"n_step={n_step} is not allowed"):
        replay.sample(buffer, jax.random.key(0), 4, GAMMA, n_step=n_step)
    replay.make_replay((3,), jnp.float32, NUM_ENVS, CAPACITY, TIME_LIMIT, n_step=12)
