"""A fixed-capacity replay buffer over a pytree of preallocated arrays.

Pure functions over `BufferState`: `init` allocates, `add` writes a batch at the ring
position (overwriting the oldest entries), `sample` draws uniformly with replacement from
the filled part. Position and size depend only on how many items were added, never on
data, so under `jax.vmap` over seeds they stay unbatched and writes stay contiguous slices.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Transition(NamedTuple):
    """One transition per leading index; `next_obs` is the true successor observation."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array


class BufferState(NamedTuple):
    """Replay storage (each leaf has leading axis `capacity`), next write index, fill."""

    data: Any
    position: jax.Array
    size: jax.Array


def init(example: Any, capacity: int) -> BufferState:
    """Allocate storage for `capacity` items shaped and typed like `example` (no batch axis)."""
    data = jax.tree.map(
        lambda leaf: jnp.zeros((capacity, *jnp.shape(leaf)), jnp.result_type(leaf)), example
    )
    return BufferState(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def capacity_of(state: BufferState) -> int:
    """Number of items the buffer holds when full."""
    return jax.tree.leaves(state.data)[0].shape[0]


def add(state: BufferState, batch: Any) -> BufferState:
    """Write `batch` (leading axis n <= capacity) at the ring position, oldest first out.

    When n divides the capacity every write is one contiguous slice, which assumes every
    call on this buffer adds the same n (as the training loop does); otherwise the
    indices wrap around the end of the ring.
    """
    capacity = capacity_of(state)
    n = jax.tree.leaves(batch)[0].shape[0]
    if n > capacity:
        raise ValueError(f"cannot add {n} items to a buffer of capacity {capacity}")
    if capacity % n == 0:

        def write(store: jax.Array, items: jax.Array) -> jax.Array:
            start = (state.position,) + (0,) * (store.ndim - 1)
            return jax.lax.dynamic_update_slice(store, items.astype(store.dtype), start)

    else:
        indices = (state.position + jnp.arange(n)) % capacity

        def write(store: jax.Array, items: jax.Array) -> jax.Array:
            return store.at[indices].set(items.astype(store.dtype), unique_indices=True)

    data = jax.tree.map(write, state.data, batch)
    position = (state.position + n) % capacity
    size = jnp.minimum(state.size + n, capacity)
    return BufferState(data, position, size)


def sample(state: BufferState, key: jax.Array, batch_size: int) -> Any:
    """Draw `batch_size` items uniformly, with replacement, from the filled entries."""
    indices = jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))
    return jax.tree.map(lambda store: store[indices], state.data)
