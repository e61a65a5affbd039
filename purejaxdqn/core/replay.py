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

Pure functions over `ReplayBuffer`: `init` allocates, `add` writes one vector step,
`sample` draws uniformly with replacement, `update` (priorities back) is the identity. The
ring position depends only on how many steps were added, so under `jax.vmap` over seeds it
stays unbatched and the main writes stay contiguous slices.

`make_replay` binds the static layout and returns them as a `Replay` (`init`, `add`,
`sample`, `update`), the interface the training loop uses: a different replay (n-step
returns, prioritized sampling) is another `make_*` returning a `Replay`. A sample carries
what the learner needs and no more: the transitions with their bootstrap `discount`
(gamma folded in), the sampled items' `indices` (for `update`) and importance `weights`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Transition(NamedTuple):
    """A batch of B sampled transitions, ready for the target `reward + discount * V(next_obs)`.

    Attributes:
        obs: (B, *obs_shape) the observations acted on, in the storage dtype.
        action: (B,) int32 actions taken.
        reward: (B,) float32 rewards received.
        discount: (B,) float32 `gamma**k * (1 - terminated)`, the factor of the bootstrap
            value, k the env steps the transition spans (1 here). Only termination zeroes
            it: a truncated transition keeps `gamma` and bootstraps from its true final
            observation.
        next_obs: (B, *obs_shape) the true successor observation (after a truncation the
            final observation, not the reset one), in the storage dtype.
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


def final_slots_for(capacity_per_env: int, max_episode_steps: int | None) -> int:
    """Side-ring entries per env so no live truncated slot loses its final observation."""
    if max_episode_steps is None:
        return capacity_per_env + 1
    return math.ceil(capacity_per_env / max_episode_steps) + 1


def check_layout(
    obs_shape: tuple[int, ...],
    num_envs: int,
    capacity: int,
    track_valid: bool,
    frame_stack: int,
) -> None:
    """Raise a ValueError unless `init` can lay these out (arguments as in `init`).

    Raises:
        ValueError: `capacity` is not a multiple of `num_envs`, or `frame_stack > 1`
            without `track_valid` or with observations whose last axis is not
            `frame_stack` frames.
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


def init(
    obs_shape: tuple[int, ...],
    obs_dtype: np.dtype | jnp.dtype,
    num_envs: int,
    capacity: int,
    max_episode_steps: int | None,
    track_valid: bool = False,
    frame_stack: int = 0,
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
    )


def _history(frame_stack: int) -> int:
    return max(frame_stack - 1, 0)


def capacity_of(buffer: ReplayBuffer, frame_stack: int = 0) -> int:
    """Transitions the buffer holds when full (over all envs)."""
    slots, num_envs = buffer.action.shape
    return (slots - 1 - _history(frame_stack)) * num_envs


def nbytes(buffer: ReplayBuffer) -> int:
    """Bytes of every array in the buffer (works on `jax.eval_shape` results too)."""
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
    must be the one the buffer was made with.
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


def sample(
    buffer: ReplayBuffer,
    key: jax.Array,
    batch_size: int,
    gamma: jax.Array | float,
    frame_stack: int = 0,
) -> Sample:
    """Draw `batch_size` stored transitions uniformly, with replacement.

    Args:
        buffer: the buffer (at least one transition added per env).
        key: PRNG key of the draw.
        batch_size: B, transitions drawn.
        gamma: the discount factor (traced), folded into each transition's `discount`.
        frame_stack: the one the buffer was made with.

    Returns:
        A `Sample`: the transitions, their flat indices and weights of exactly 1.
    """
    slots, num_envs = buffer.action.shape
    size = jnp.maximum(buffer.size, 1)
    flat = jax.random.randint(key, (batch_size,), 0, size * num_envs)
    env, age = flat % num_envs, flat // num_envs
    slot = (buffer.position - size + age) % slots
    both_slots, both_envs = jnp.concatenate([slot, (slot + 1) % slots]), jnp.tile(env, 2)
    if frame_stack > 1:
        pair = _stacks(buffer, both_slots, both_envs, frame_stack)
    else:
        pair = buffer.obs[both_slots, both_envs]
    next_obs = pair[batch_size:]
    if buffer.final_obs is not None:  # truncations bootstrap from the side ring
        truncated = buffer.truncated[slot, env]
        final = buffer.final_obs[buffer.final_index[slot, env], env]
        mask = truncated.reshape(truncated.shape + (1,) * (final.ndim - 1))
        next_obs = jnp.where(mask, final, next_obs)
    not_done = 1.0 - buffer.terminated[slot, env].astype(jnp.float32)
    batch = Transition(
        obs=pair[:batch_size],
        action=buffer.action[slot, env],
        reward=buffer.reward[slot, env],
        # gamma * not_done first: the target `reward + discount * next_value` then rounds
        # exactly as `reward + gamma * not_done * next_value` did
        discount=gamma * not_done,
        next_obs=next_obs,
        valid=None if buffer.valid is None else buffer.valid[slot, env],
    )
    indices = (slot * num_envs + env).astype(jnp.int32)
    return Sample(batch, indices, jnp.ones((batch_size,), jnp.float32))


def update(buffer: ReplayBuffer, indices: jax.Array, priorities: jax.Array) -> ReplayBuffer:
    """Write sampled items' priorities back: uniform replay keeps none, so `buffer` itself.

    Args:
        buffer: the buffer sampled from.
        indices: (B,) int32 `Sample.indices` of the items.
        priorities: (B,) float32 their new priorities (e.g. the |TD errors|).
    """
    del indices, priorities
    return buffer


class Replay(NamedTuple):
    """A replay buffer as pure functions over its state, which the caller carries.

    Built by `make_replay` (the uniform ring buffer of this module, state `ReplayBuffer`);
    another replay is another factory returning these four functions.

    Attributes:
        init: `init() -> state`, the empty buffer.
        add: `add(state, obs, action, reward, terminated, truncated, final_obs, valid=None)
            -> state`: one vector step, every argument with leading axis num_envs (see the
            module function `add`).
        sample: `sample(state, key, batch_size, gamma) -> Sample`: `batch_size` transitions,
            `gamma` (traced) folded into their `discount`.
        update: `update(state, indices, priorities) -> state`: the (B,) float32
            `priorities` of the sampled items `indices` (`Sample.indices`) written back,
            called after every optimizer step; the identity for uniform replay.
    """

    init: Callable[[], ReplayBuffer]
    add: Callable[..., ReplayBuffer]
    sample: Callable[[ReplayBuffer, jax.Array, int, jax.Array], Sample]
    update: Callable[[ReplayBuffer, jax.Array, jax.Array], ReplayBuffer]


def make_replay(
    obs_shape: tuple[int, ...],
    obs_dtype: np.dtype | jnp.dtype,
    num_envs: int,
    capacity: int,
    max_episode_steps: int | None,
    track_valid: bool = False,
    frame_stack: int = 0,
) -> Replay:
    """The uniform replay buffer of this module as a `Replay` (arguments as in `init`).

    Raises:
        ValueError: the layout is not possible (see `check_layout`), raised here, when the
            program is built, rather than when `init` is traced.
    """
    check_layout(obs_shape, num_envs, capacity, track_valid, frame_stack)
    layout = (obs_shape, obs_dtype, num_envs, capacity, max_episode_steps, track_valid)
    return Replay(
        init=functools.partial(init, *layout, frame_stack),
        add=functools.partial(add, frame_stack=frame_stack),
        sample=functools.partial(sample, frame_stack=frame_stack),
        update=update,
    )
