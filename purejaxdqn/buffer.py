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

Bridged envs with reset steps (see `bridge`) also store a `valid` flag per slot: the
transition taken from an episode's final observation (a step that only reset the env) is
stored, so the rings stay aligned, and sampled with `valid=False`; the loss ignores it.

Truncation happens at most once per episode of `max_episode_steps` steps, so a side ring
of `ceil(capacity_per_env / max_episode_steps) + 1` entries outlives every slot that
points into it; without a time limit it gets one entry per slot.

Pure functions over `ReplayBuffer`: `init` allocates, `add` writes one vector step,
`sample` draws uniformly with replacement. The ring position depends only on how many
steps were added, so under `jax.vmap` over seeds it stays unbatched and the main writes
stay contiguous slices.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Transition(NamedTuple):
    """A batch of transitions; `next_obs` is the true successor observation."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    valid: jax.Array | None = None  # None: every transition is valid


class ReplayBuffer(NamedTuple):
    """Per-env rings (leading axes: slot, env) plus the side ring of final observations.

    Attributes:
        obs: (slots, num_envs, *obs_shape) observations, slots = capacity_per_env + 1.
        action, reward, terminated, truncated: (slots, num_envs) transition fields.
        final_index: (slots, num_envs) int32 index into `final_obs` of a truncated slot.
        final_obs: (final_slots, num_envs, *obs_shape) final observations of truncations.
        final_position: (num_envs,) int32 next side-ring entry of each env.
        position: () int32 slot the next transition goes to (the candidate slot).
        size: () int32 transitions stored per env, at most capacity_per_env.
        valid: (slots, num_envs) bool, or None when every transition is valid.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_index: jax.Array
    final_obs: jax.Array
    final_position: jax.Array
    position: jax.Array
    size: jax.Array
    valid: jax.Array | None = None


def final_slots_for(capacity_per_env: int, max_episode_steps: int | None) -> int:
    """Side-ring entries per env so no live truncated slot loses its final observation."""
    if max_episode_steps is None:
        return capacity_per_env + 1
    return math.ceil(capacity_per_env / max_episode_steps) + 1


def init(
    obs_shape: tuple[int, ...],
    obs_dtype: np.dtype | jnp.dtype,
    num_envs: int,
    capacity: int,
    max_episode_steps: int | None,
    track_valid: bool = False,
) -> ReplayBuffer:
    """Allocate a buffer of `capacity` transitions (a multiple of `num_envs`).

    Args:
        obs_shape: shape of one observation.
        obs_dtype: storage dtype of observations (e.g. uint8 for binary images).
        num_envs: environments written per `add`.
        capacity: transitions held when full, split evenly over the envs.
        max_episode_steps: the env's time limit (sizes the side ring), or None.
        track_valid: store a `valid` flag per transition (envs with reset steps).
    """
    if capacity % num_envs:
        raise ValueError(
            f"buffer_size={capacity} is not allowed: must be a multiple of num_envs={num_envs}"
        )
    per_env = capacity // num_envs
    slots, finals = per_env + 1, final_slots_for(per_env, max_episode_steps)

    def zeros(leading: int, dtype: jnp.dtype, shape: tuple[int, ...] = ()) -> jax.Array:
        return jnp.zeros((leading, num_envs, *shape), dtype)

    return ReplayBuffer(
        obs=zeros(slots, obs_dtype, obs_shape),
        action=zeros(slots, jnp.int32),
        reward=zeros(slots, jnp.float32),
        terminated=zeros(slots, bool),
        truncated=zeros(slots, bool),
        final_index=zeros(slots, jnp.int32),
        final_obs=zeros(finals, obs_dtype, obs_shape),
        final_position=jnp.zeros((num_envs,), jnp.int32),
        position=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
        valid=zeros(slots, bool) if track_valid else None,
    )


def capacity_of(buffer: ReplayBuffer) -> int:
    """Transitions the buffer holds when full (over all envs)."""
    slots, num_envs = buffer.action.shape
    return (slots - 1) * num_envs


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
) -> ReplayBuffer:
    """Write one vector step: every argument has leading axis num_envs.

    `obs` is the observation acted on and `final_obs` the observation the action led to
    (before any auto-reset). `valid` is required when the buffer tracks it.
    """
    if (valid is None) != (buffer.valid is None):
        raise ValueError("valid must be given exactly when the buffer tracks it")
    slots = buffer.action.shape[0]
    position = buffer.position
    successor = (position + 1) % slots

    def put(store: jax.Array, row: jax.Array, slot: jax.Array) -> jax.Array:
        start = (slot,) + (0,) * (store.ndim - 1)
        return jax.lax.dynamic_update_slice(store, row.astype(store.dtype)[None], start)

    final_obs = final_obs.astype(buffer.obs.dtype)
    envs = jnp.arange(action.shape[0])
    num_finals = buffer.final_obs.shape[0]
    return ReplayBuffer(
        obs=put(put(buffer.obs, obs, position), final_obs, successor),
        action=put(buffer.action, action, position),
        reward=put(buffer.reward, reward, position),
        terminated=put(buffer.terminated, terminated, position),
        truncated=put(buffer.truncated, truncated, position),
        final_index=put(buffer.final_index, buffer.final_position, position),
        final_obs=buffer.final_obs.at[buffer.final_position, envs].set(
            final_obs, unique_indices=True
        ),
        final_position=(buffer.final_position + truncated.astype(jnp.int32)) % num_finals,
        position=successor,
        size=jnp.minimum(buffer.size + 1, slots - 1),
        valid=None if valid is None else put(buffer.valid, valid, position),
    )


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Transition:
    """Draw `batch_size` stored transitions uniformly, with replacement."""
    slots, num_envs = buffer.action.shape
    size = jnp.maximum(buffer.size, 1)
    flat = jax.random.randint(key, (batch_size,), 0, size * num_envs)
    env, age = flat % num_envs, flat // num_envs
    slot = (buffer.position - size + age) % slots
    pair = buffer.obs[jnp.concatenate([slot, (slot + 1) % slots]), jnp.tile(env, 2)]
    truncated = buffer.truncated[slot, env]
    final = buffer.final_obs[buffer.final_index[slot, env], env]
    mask = truncated.reshape(truncated.shape + (1,) * (final.ndim - 1))
    return Transition(
        obs=pair[:batch_size],
        action=buffer.action[slot, env],
        reward=buffer.reward[slot, env],
        next_obs=jnp.where(mask, final, pair[batch_size:]),
        terminated=buffer.terminated[slot, env],
        valid=None if buffer.valid is None else buffer.valid[slot, env],
    )
