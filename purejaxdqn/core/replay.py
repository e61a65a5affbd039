"""The replay buffer: one ring of preallocated slots per environment, observations stored once.

Slot `i` of env `e` holds the observation seen at some step and the action, reward and
end flags of the transition taken from it. Its successor observation is the next slot's
observation, so every observation is stored once, in its compact dtype. Two cases differ:

- the newest transition's successor is written ahead into the next slot (the "candidate"
  slot, which is never sampled and is overwritten by the following step);
- after a *truncated* step the env auto-resets, so the next slot holds the reset
  observation; the true final observation, which truncation must bootstrap from, goes to
  a small per-env side ring `final_obs`, and the slot records where (`final_index`).
  Terminated transitions do not bootstrap, so their successor is never read.

Bridged envs with reset steps (envpool, see `bridge`) store a `valid` flag per slot
instead: the step after an episode's end only resets the env, so the next slot always holds
the true final observation and there is no side ring; that reset transition is stored, so
the rings stay aligned, and sampled with `valid=False` (the loss ignores it).

**Frame ring** (`frame_stack = k > 1`, for frame-stacked pixels from an env with reset
steps): each slot keeps only the newest frame of its observation (the last axis), so each
frame is stored once; `sample` rebuilds the k-frame stacks from the k - 1 slots before,
repeating a game's first frame where the stack would reach back past its start (the slot
before is a reset step), as the env itself does. k - 1 extra slots per ring keep the oldest
sampled slot's history from being overwritten.

Truncation happens at most once per episode of `max_episode_steps` steps, so a side ring
of `ceil(capacity_per_env / max_episode_steps) + 1` entries outlives every slot that
points into it; without a time limit it gets one entry per slot.

**n-step returns** (`n_step = n > 1`) are read at sample time from the same rings: a
sampled slot s sums the rewards of up to n consecutive transitions of its env,
`reward = sum_{k<m} gamma**k r_{s+k}`, and bootstraps from the successor observation of
step s + m - 1 with `discount = gamma**m (1 - terminated_{s+m-1})`. The window ends early,
m < n, at the episode's end step (terminated or truncated; it never crosses into the next
episode), before a reset step (`valid=False`), and at the newest written transition (the
candidate slot holds only its successor observation): a window near the newest end of the
buffer is a valid m-step target rather than one left out, so sampling stays exactly as
uniform (or prioritized) as with n = 1. Nothing is stored per n.

**Prioritized replay** (`prioritized`, proportional, Schaul et al. 2016) keeps a wide sum
tree (`priorities`) of `p**alpha` over the flat items `slot * num_envs + env` and the running
maximum of `p**alpha`. `add` enters each new transition at that maximum (0 for a reset
step), and gives 0 to the candidate slot and to the slot that leaves the live window, so
only live transitions are ever drawn. `sample` draws stratified by priority and returns
Schaul's normalised importance weights; `update` writes `(|priority| + eps)**alpha` back.
A sum tree rather than a cumulative sum per draw: a draw and an update cost a gather and
a scatter of B nodes per level instead of a pass over all N priorities; a wide one (many
children per node, a few levels) rather than a binary one, as on CPU each level costs
nearly the same however few nodes it touches (`benchmarks/priority_draw.py` compares them
and the cumulative sum, 10k to 1M items).

Pure functions over `ReplayBuffer`: `init` allocates, `add` writes one vector step,
`sample` draws with replacement (uniformly unless prioritized), `update` writes the
priorities back (the identity for uniform replay). The ring position depends only on how
many steps were added, so under `jax.vmap` over seeds it stays unbatched and the main
writes stay contiguous slices.

`make_replay` binds the static layout and returns them as a `Replay` (`init`, `add`,
`sample`, `update`), the interface the training loop uses, with the traced values of each
call (`ReplayParams`: gamma, alpha, beta) passed in. A sample carries what the learner
needs and no more: the transitions with their bootstrap `discount` (gamma folded in), the
sampled items' `indices` (for `update`) and importance `weights`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxdqn.core import priorities as sum_tree


class Transition(NamedTuple):
    """A batch of B sampled transitions, ready for the target `reward + discount * V(next_obs)`.

    Attributes:
        obs: (B, *obs_shape) the observations acted on, in the storage dtype.
        action: (B,) int32 actions taken.
        reward: (B,) float32 rewards received: the discounted sum
            `sum_{k<m} gamma**k r_k` of the m env steps the transition spans (m = 1 unless
            n-step, see the module docstring).
        discount: (B,) float32 `gamma**m * (1 - terminated)`, the factor of the bootstrap
            value, terminated read at the span's last step. Only termination zeroes it: a
            truncated transition keeps `gamma**m` and bootstraps from its true final
            observation.
        next_obs: (B, *obs_shape) the true successor observation of the span's last step
            (after a truncation the final observation, not the reset one), in the storage
            dtype.
        valid: (B,) bool, False for the reset steps of envs that have them (the loss
            ignores those), or None when every transition is valid.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: jax.Array
    valid: jax.Array | None = None


class Sample(NamedTuple):
    """What `sample` draws: transitions, where they are stored, and how much each counts.

    Attributes:
        batch: the B sampled `Transition`s.
        indices: (B,) int32 flat item indices `slot * num_envs + env` into the buffer's
            (slots, num_envs) rings, what `update` is given back to find the items.
        weights: (B,) float32 importance weights the loss multiplies each sample's loss by
            (all exactly 1 for uniform replay).
    """

    batch: Transition
    indices: jax.Array
    weights: jax.Array


class ReplayParams(NamedTuple):
    """The traced values a replay needs on each `sample` and `update` call (per seed under
    `jax.vmap`).

    Attributes:
        gamma: the discount factor, folded into each transition's `reward` and `discount`.
        alpha: the priority exponent (prioritized replay only): items are drawn in
            proportion to `priority**alpha`. Constant over a run: stored priorities keep
            the alpha they were written with.
        beta: the importance-weight exponent of this update (prioritized replay only).
    """

    gamma: jax.Array
    alpha: jax.Array
    beta: jax.Array


class ReplayBuffer(NamedTuple):
    """Per-env rings (leading axes: slot, env) plus the side ring of final observations.

    Attributes:
        obs: (slots, num_envs, *obs_shape) observations, slots = capacity_per_env + 1.
        action, reward, terminated, truncated: (slots, num_envs) transition fields.
        final_index: (slots, num_envs) int32 index into `final_obs` of a truncated slot.
        final_obs: (final_slots, num_envs, *obs_shape) final observations of truncations.
        final_position: (num_envs,) int32 next side-ring entry of each env.
            (The three side-ring fields are None for envs with reset steps.)
        position: () int32 slot the next transition goes to (the candidate slot).
        size: () int32 transitions stored per env, at most capacity_per_env.
        valid: (slots, num_envs) bool, or None when every transition is valid.
        priority_tree: a `priorities` sum tree (a tuple of arrays, one per level) of
            `priority**alpha` over the items `slot * num_envs + env` (0 for every item
            that may not be drawn), or None unless prioritized.
        max_priority: () float32 the largest `priority**alpha` written so far (1
            initially), given to new transitions; None unless prioritized.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_index: jax.Array | None
    final_obs: jax.Array | None
    final_position: jax.Array | None
    position: jax.Array
    size: jax.Array
    valid: jax.Array | None = None
    priority_tree: sum_tree.Tree | None = None
    max_priority: jax.Array | None = None


def final_slots_for(capacity_per_env: int, max_episode_steps: int | None) -> int:
    """Side-ring entries per env so no live truncated slot loses its final observation."""
    if max_episode_steps is None:
        return capacity_per_env + 1
    return math.ceil(capacity_per_env / max_episode_steps) + 1


def _check_n_step(n_step: int, per_env: int) -> None:
    if not 1 <= n_step <= per_env:
        raise ValueError(
            f"n_step={n_step} is not allowed: must be between 1 and the transitions the "
            f"buffer holds per env ({per_env} = buffer_size / num_envs)"
        )


def check_layout(
    obs_shape: tuple[int, ...],
    num_envs: int,
    capacity: int,
    track_valid: bool,
    frame_stack: int,
    n_step: int = 1,
) -> None:
    """Raise a ValueError unless `init` can lay these out (arguments as in `init`, and
    `n_step` as in `make_replay`).

    Raises:
        ValueError: `capacity` is not a multiple of `num_envs`, `frame_stack > 1`
            without `track_valid` or with observations whose last axis is not
            `frame_stack` frames, or `n_step` is not in [1, capacity / num_envs].
    """
    if capacity % num_envs:
        raise ValueError(
            f"buffer_size={capacity} is not allowed: must be a multiple of num_envs={num_envs}"
        )
    if frame_stack > 1 and (not track_valid or obs_shape[-1] != frame_stack):
        raise ValueError(
            f"frame_stack={frame_stack} needs an env with reset steps and observations whose "
            f"last axis stacks {frame_stack} frames (got shape {obs_shape})"
        )
    _check_n_step(n_step, capacity // num_envs)


def init(
    obs_shape: tuple[int, ...],
    obs_dtype: np.dtype | jnp.dtype,
    num_envs: int,
    capacity: int,
    max_episode_steps: int | None,
    track_valid: bool = False,
    frame_stack: int = 0,
    prioritized: bool = False,
) -> ReplayBuffer:
    """Allocate a buffer of `capacity` transitions (a multiple of `num_envs`).

    Args:
        obs_shape: shape of one observation.
        obs_dtype: storage dtype of observations (e.g. uint8 for binary images).
        num_envs: environments written per `add`.
        capacity: transitions held when full, split evenly over the envs.
        max_episode_steps: the env's time limit (sizes the side ring), or None.
        track_valid: the env has reset steps: store a `valid` flag per transition and
            no side ring.
        frame_stack: k > 1 stores each observation's newest frame only (a frame ring;
            needs `track_valid`); 0 or 1 stores whole observations.
        prioritized: keep a priority per item (a sum tree) for prioritized sampling.

    Raises:
        ValueError: see `check_layout`.
    """
    check_layout(obs_shape, num_envs, capacity, track_valid, frame_stack)
    per_env = capacity // num_envs
    slots = per_env + 1 + _history(frame_stack)
    finals = final_slots_for(per_env, max_episode_steps)
    stored_shape = obs_shape[:-1] if frame_stack > 1 else obs_shape

    def zeros(leading: int, dtype: jnp.dtype, shape: tuple[int, ...] = ()) -> jax.Array:
        return jnp.zeros((leading, num_envs, *shape), dtype)

    side_ring = not track_valid
    return ReplayBuffer(
        obs=zeros(slots, obs_dtype, stored_shape),
        action=zeros(slots, jnp.int32),
        reward=zeros(slots, jnp.float32),
        terminated=zeros(slots, bool),
        truncated=zeros(slots, bool),
        final_index=zeros(slots, jnp.int32) if side_ring else None,
        final_obs=zeros(finals, obs_dtype, obs_shape) if side_ring else None,
        final_position=jnp.zeros((num_envs,), jnp.int32) if side_ring else None,
        position=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
        valid=zeros(slots, bool) if track_valid else None,
        priority_tree=sum_tree.init(slots * num_envs) if prioritized else None,
        max_priority=jnp.ones((), jnp.float32) if prioritized else None,
    )


def _history(frame_stack: int) -> int:
    return max(frame_stack - 1, 0)


def capacity_of(buffer: ReplayBuffer, frame_stack: int = 0) -> int:
    """Transitions the buffer holds when full (over all envs)."""
    slots, num_envs = buffer.action.shape
    return (slots - 1 - _history(frame_stack)) * num_envs


def nbytes(buffer: ReplayBuffer) -> int:
    """Bytes of every array in the buffer, the priority tree included (works on
    `jax.eval_shape` results too).
    """
    leaves = jax.tree.leaves(buffer)
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in leaves)


def add(
    buffer: ReplayBuffer,
    obs: jax.Array,
    action: jax.Array,
    reward: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    final_obs: jax.Array,
    valid: jax.Array | None = None,
    frame_stack: int = 0,
) -> ReplayBuffer:
    """Write one vector step: every argument has leading axis num_envs.

    `obs` is the observation acted on and `final_obs` the observation the action led to
    (before any auto-reset). `valid` is required when the buffer tracks it; `frame_stack`
    must be the one the buffer was made with. A prioritized buffer gives the new
    transitions the largest priority so far (0 to reset steps) and 0 to the candidate
    slot and to the slot that leaves the live window.
    """
    if (valid is None) != (buffer.valid is None):
        raise ValueError("valid must be given exactly when the buffer tracks it")
    slots = buffer.action.shape[0]
    position = buffer.position
    successor = (position + 1) % slots

    def put(store: jax.Array, row: jax.Array, slot: jax.Array) -> jax.Array:
        start = (slot,) + (0,) * (store.ndim - 1)
        return jax.lax.dynamic_update_slice(store, row.astype(store.dtype)[None], start)

    def newest(observation: jax.Array) -> jax.Array:
        return observation[..., -1] if frame_stack > 1 else observation

    side = {}
    if buffer.final_obs is not None:
        envs = jnp.arange(action.shape[0])
        side = {
            "final_index": put(buffer.final_index, buffer.final_position, position),
            "final_obs": buffer.final_obs.at[buffer.final_position, envs].set(
                final_obs.astype(buffer.obs.dtype), unique_indices=True
            ),
            "final_position": (buffer.final_position + truncated.astype(jnp.int32))
            % buffer.final_obs.shape[0],
        }
    if buffer.priority_tree is not None:
        side["priority_tree"] = _enter_priorities(buffer, valid, frame_stack)
    return buffer._replace(
        obs=put(put(buffer.obs, newest(obs), position), newest(final_obs), successor),
        action=put(buffer.action, action, position),
        reward=put(buffer.reward, reward, position),
        terminated=put(buffer.terminated, terminated, position),
        truncated=put(buffer.truncated, truncated, position),
        position=successor,
        size=jnp.minimum(buffer.size + 1, slots - 1 - _history(frame_stack)),
        valid=None if valid is None else put(buffer.valid, valid, position),
        **side,
    )


def _enter_priorities(
    buffer: ReplayBuffer, valid: jax.Array | None, frame_stack: int
) -> sum_tree.Tree:
    """The priority tree after `add` writes a transition at `buffer.position`: the new
    items at the maximum priority (0 if a reset step); the new candidate slot and the slot
    the oldest transition leaves (a history slot of the frame ring, else the candidate
    itself) at 0.
    """
    slots, num_envs = buffer.action.shape
    position = buffer.position
    rows = [position, (position + 1) % slots]
    if _history(frame_stack):  # live slots: position - per_env + 1 ... position
        rows.append((position + 1 + _history(frame_stack)) % slots)
    envs = jnp.arange(num_envs, dtype=jnp.int32)
    items = jnp.concatenate([row * num_envs + envs for row in rows])
    entering = jnp.broadcast_to(buffer.max_priority, (num_envs,))
    if valid is not None:
        entering = jnp.where(valid, entering, 0.0)
    leaving = jnp.zeros(((len(rows) - 1) * num_envs,), jnp.float32)
    return sum_tree.write(buffer.priority_tree, items, jnp.concatenate([entering, leaving]))


def _stacks(buffer: ReplayBuffer, slot: jax.Array, env: jax.Array, k: int) -> jax.Array:
    """The k-frame observations at (slot, env): each slot's frame and the k - 1 before,
    the first frame of a game repeated where the stack reaches back past its start.
    """
    slots = buffer.action.shape[0]
    frame = buffer.obs[slot, env]
    frames, past_start = [frame], jnp.zeros(slot.shape, bool)
    for back in range(1, k):
        before = (slot - back) % slots
        past_start = past_start | ~buffer.valid[before, env]  # a reset step, or unwritten
        mask = past_start.reshape(past_start.shape + (1,) * (frame.ndim - 1))
        frame = jnp.where(mask, frame, buffer.obs[before, env])
        frames.append(frame)
    return jnp.stack(frames[::-1], axis=-1)


def _window(
    buffer: ReplayBuffer,
    slot: jax.Array,
    env: jax.Array,
    written: jax.Array,
    gamma: jax.Array | float,
    n_step: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The n-step span of each sampled (slot, env): its last slot, the discounted reward
    sum over it and `gamma**m` (m its length).

    `written` counts the transitions from `slot` to the newest one (at least 1). The span
    grows by one step while the step before did not end its episode, the step is written
    and, with `valid` flags, neither it nor the first step is a reset step.
    """
    slots = buffer.action.shape[0]
    last, reward = slot, buffer.reward[slot, env]
    scale = jnp.asarray(gamma, jnp.float32)  # gamma**k for the k-th step after the first
    bootstrap = jnp.broadcast_to(scale, slot.shape)
    extends = jnp.ones(slot.shape, bool) if buffer.valid is None else buffer.valid[slot, env]
    for k in range(1, n_step):
        step = (slot + k) % slots
        ended = buffer.terminated[last, env] | buffer.truncated[last, env]
        extends = extends & ~ended & (k < written)
        if buffer.valid is not None:
            extends = extends & buffer.valid[step, env]
        reward = reward + jnp.where(extends, scale * buffer.reward[step, env], 0.0)
        last = jnp.where(extends, step, last)
        scale = scale * gamma
        bootstrap = jnp.where(extends, scale, bootstrap)
    return last, reward, bootstrap


def _importance_weights(priorities: jax.Array, beta: jax.Array | float) -> jax.Array:
    """Schaul et al.'s `w_i = (N P(i))**-beta / max_j w_j` over the batch, computed as the
    equal `(p_i / p_min)**-beta / max_j (p_j / p_min)**-beta` (p the drawn items'
    `priorities`, p_min the batch's smallest): N and the total priority cancel, so neither
    rounds into the weights, and an empty tree gives weights 1 rather than NaN.
    """
    tiny = jnp.finfo(jnp.float32).tiny
    mass = jnp.maximum(priorities, tiny)
    weights = (mass / jnp.min(mass)) ** -beta
    return weights / jnp.max(weights)


def sample(
    buffer: ReplayBuffer,
    key: jax.Array,
    batch_size: int,
    gamma: jax.Array | float,
    frame_stack: int = 0,
    n_step: int = 1,
    beta: jax.Array | float = 1.0,
) -> Sample:
    """Draw `batch_size` stored transitions with replacement: uniformly, or in proportion
    to `priority**alpha` when the buffer is prioritized.

    A prioritized draw is stratified: draw i falls in the i-th of `batch_size` equal
    segments of the total priority (Schaul et al.'s scheme), so the batch follows the
    priorities more evenly than independent draws; items of priority 0 are never drawn.

    Args:
        buffer: the buffer (at least one transition added per env).
        key: PRNG key of the draw.
        batch_size: B, transitions drawn.
        gamma: the discount factor (traced), folded into each transition's `reward` and
            `discount`.
        frame_stack: the one the buffer was made with.
        n_step: n, the env steps each transition spans at most (see the module docstring).
        beta: the importance-weight exponent (prioritized buffers only).

    Returns:
        A `Sample`: the transitions, their flat indices and weights (exactly 1 unless
        prioritized).
    """
    slots, num_envs = buffer.action.shape
    _check_n_step(n_step, slots - 1 - _history(frame_stack))
    size = jnp.maximum(buffer.size, 1)
    if buffer.priority_tree is None:
        flat = jax.random.randint(key, (batch_size,), 0, size * num_envs)
        env, age = flat % num_envs, flat // num_envs
        slot = (buffer.position - size + age) % slots
        weights = jnp.ones((batch_size,), jnp.float32)
    else:
        items, drawn = sum_tree.draw_with_priorities(buffer.priority_tree, key, batch_size)
        items = jnp.minimum(items, slots * num_envs - 1)
        slot, env = items // num_envs, items % num_envs
        age = (slot - buffer.position + size) % slots
        weights = _importance_weights(drawn, beta)
    last, reward, bootstrap = slot, buffer.reward[slot, env], gamma
    if n_step > 1:
        last, reward, bootstrap = _window(buffer, slot, env, size - age, gamma, n_step)
    both_slots, both_envs = jnp.concatenate([slot, (last + 1) % slots]), jnp.tile(env, 2)
    if frame_stack > 1:
        pair = _stacks(buffer, both_slots, both_envs, frame_stack)
    else:
        pair = buffer.obs[both_slots, both_envs]
    next_obs = pair[batch_size:]
    if buffer.final_obs is not None:  # truncations bootstrap from the side ring
        truncated = buffer.truncated[last, env]
        final = buffer.final_obs[buffer.final_index[last, env], env]
        mask = truncated.reshape(truncated.shape + (1,) * (final.ndim - 1))
        next_obs = jnp.where(mask, final, next_obs)
    not_done = 1.0 - buffer.terminated[last, env].astype(jnp.float32)
    batch = Transition(
        obs=pair[:batch_size],
        action=buffer.action[slot, env],
        reward=reward,
        # gamma**m * not_done first: the target `reward + discount * next_value` then
        # rounds exactly as `reward + gamma * not_done * next_value` did (m = 1)
        discount=bootstrap * not_done,
        next_obs=next_obs,
        valid=None if buffer.valid is None else buffer.valid[slot, env],
    )
    indices = (slot * num_envs + env).astype(jnp.int32)
    return Sample(batch, indices, weights)


def update(
    buffer: ReplayBuffer,
    indices: jax.Array,
    priorities: jax.Array,
    alpha: jax.Array | float = 1.0,
    eps: float = 1e-6,
) -> ReplayBuffer:
    """Write sampled items' priorities back (uniform replay keeps none: `buffer` itself).

    Each item gets `(|priority| + eps)**alpha`. An item given more than once takes the
    priority of its last occurrence in `indices` (deterministic for any batch); an item
    whose priority is 0 (not live: written over since it was sampled, or a reset step)
    stays 0. The running maximum grows to the largest value written, and the tree's sums
    on the changed paths are recomputed from their children.

    Args:
        buffer: the buffer sampled from.
        indices: (B,) int32 `Sample.indices` of the items.
        priorities: (B,) their new priorities (e.g. the |TD errors|).
        alpha: the priority exponent (traced; the same for a whole run).
        eps: added to every |priority| so no live item becomes impossible to draw.
    """
    if buffer.priority_tree is None:
        return buffer
    tree = buffer.priority_tree
    order = jnp.arange(indices.shape[0])
    same = indices[:, None] == indices[None, :]
    last = jnp.max(jnp.where(same, order[None, :], -1), axis=1)  # last occurrence of each
    values = (jnp.abs(priorities.astype(jnp.float32))[last] + eps) ** alpha
    values = jnp.where(sum_tree.read(tree, indices) > 0, values, 0.0)
    return buffer._replace(
        priority_tree=sum_tree.write(tree, indices, values),
        max_priority=jnp.maximum(buffer.max_priority, jnp.max(values)),
    )


class Replay(NamedTuple):
    """A replay buffer as pure functions over its state, which the caller carries.

    Built by `make_replay` (the ring buffer of this module, state `ReplayBuffer`, uniform
    or prioritized, 1-step or n-step); another replay is another factory returning these
    four functions.

    Attributes:
        init: `init() -> state`, the empty buffer.
        add: `add(state, obs, action, reward, terminated, truncated, final_obs, valid=None)
            -> state`: one vector step, every argument with leading axis num_envs (see the
            module function `add`).
        sample: `sample(state, key, batch_size, params) -> Sample`: `batch_size`
            transitions, `params.gamma` folded into their `reward` and `discount`,
            `params.beta` the importance-weight exponent.
        update: `update(state, indices, priorities, params) -> state`: the (B,) float32
            `priorities` of the sampled items `indices` (`Sample.indices`) written back
            with exponent `params.alpha`, called after every optimizer step; the identity
            for uniform replay.
    """

    init: Callable[[], ReplayBuffer]
    add: Callable[..., ReplayBuffer]
    sample: Callable[[ReplayBuffer, jax.Array, int, ReplayParams], Sample]
    update: Callable[[ReplayBuffer, jax.Array, jax.Array, ReplayParams], ReplayBuffer]


def make_replay(
    obs_shape: tuple[int, ...],
    obs_dtype: np.dtype | jnp.dtype,
    num_envs: int,
    capacity: int,
    max_episode_steps: int | None,
    track_valid: bool = False,
    frame_stack: int = 0,
    n_step: int = 1,
    prioritized: bool = False,
    priority_eps: float = 1e-6,
) -> Replay:
    """The replay buffer of this module as a `Replay`.

    The layout arguments are those of `init`; `n_step` is n, the env steps a sampled
    transition spans at most (1: one-step); `prioritized` draws in proportion to
    `priority**alpha` (Schaul et al.'s proportional variant) instead of uniformly, and
    `priority_eps` is added to every |priority| written back.

    Raises:
        ValueError: the layout is not possible (see `check_layout`) or `priority_eps` is
            not positive, raised here, when the program is built, rather than when `init`
            is traced.
    """
    check_layout(obs_shape, num_envs, capacity, track_valid, frame_stack, n_step)
    if prioritized and not priority_eps > 0:
        raise ValueError(f"priority_eps={priority_eps} is not allowed: must be > 0")
    layout = (obs_shape, obs_dtype, num_envs, capacity, max_episode_steps, track_valid)

    def sample_(
        state: ReplayBuffer, key: jax.Array, batch_size: int, params: ReplayParams
    ) -> Sample:
        return sample(state, key, batch_size, params.gamma, frame_stack, n_step, params.beta)

    def update_(
        state: ReplayBuffer, indices: jax.Array, priorities: jax.Array, params: ReplayParams
    ) -> ReplayBuffer:
        return update(state, indices, priorities, params.alpha, priority_eps)

    return Replay(
        init=functools.partial(init, *layout, frame_stack, prioritized),
        add=functools.partial(add, frame_stack=frame_stack),
        sample=sample_,
        update=update_,
    )
