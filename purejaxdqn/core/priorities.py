"""A sum tree over item priorities: O(log N) proportional draws and writes, in JAX.

The tree is one flat float32 array in heap layout: node 1 is the root, node `i` has the
children `2i` and `2i + 1`, and the `leaves = 2**depth >= num_items` leaves are nodes
`leaves ... 2 * leaves - 1` (item `j` is node `leaves + j`; node 0 and the leaves past the
items stay 0). Every parent is the sum of its two children, and `write` recomputes each
parent on the changed paths from its children rather than adding deltas, so the sums carry
no drift: a tree depends only on its leaves.

Pure functions, vmappable over a leading seed axis like the rest of the replay state.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def leaves_for(num_items: int) -> int:
    """The number of leaves of a tree over `num_items` items: the next power of two."""
    return 1 << max(num_items - 1, 0).bit_length()


def init(num_items: int) -> jax.Array:
    """A tree of `num_items` zero priorities: a (2 * leaves_for(num_items),) float32 array."""
    return jnp.zeros((2 * leaves_for(num_items),), jnp.float32)


def _depth(tree: jax.Array) -> int:
    return (tree.shape[0] // 2).bit_length() - 1


def total(tree: jax.Array) -> jax.Array:
    """The sum of every priority (the root)."""
    return tree[1]


def read(tree: jax.Array, items: jax.Array) -> jax.Array:
    """The priorities of `items` (int32 item indices, any shape)."""
    return tree[tree.shape[0] // 2 + items]


def write(tree: jax.Array, items: jax.Array, values: jax.Array) -> jax.Array:
    """Write `values` at `items` (both (K,)) and recompute the parents on their paths.

    An item given more than once must be given the same value each time (the caller
    resolves duplicates): the scatters are then deterministic, as every write to a node
    carries the same value.
    """
    node = items + tree.shape[0] // 2
    tree = tree.at[node].set(values.astype(tree.dtype))
    for _ in range(_depth(tree)):
        node = node // 2
        tree = tree.at[node].set(tree[2 * node] + tree[2 * node + 1])
    return tree


def find(tree: jax.Array, mass: jax.Array) -> jax.Array:
    """The items at cumulative priority `mass` ((B,) floats in [0, total)): item `j` for
    mass in [sum of the priorities before j, that sum + priority j).

    The descent never enters a subtree of zero mass while its sibling has some, so when
    float rounding puts `mass` at or past a subtree's end, it returns the last nonzero item
    there instead: a zero-priority item is never returned unless the total is 0.
    """
    leaves = tree.shape[0] // 2

    def level(_: int, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        node, mass = carry
        left = 2 * node
        left_mass, right_mass = tree[left], tree[left + 1]
        go_right = ((mass >= left_mass) & (right_mass > 0)) | (left_mass <= 0)
        return jnp.where(go_right, left + 1, left), jnp.where(go_right, mass - left_mass, mass)

    # a loop, not unrolled: XLA fuses an unrolled descent into a chain that recomputes
    # the earlier levels and copies the whole tree before the next write
    start = (jnp.ones(mass.shape, jnp.int32), mass)
    node, _ = jax.lax.fori_loop(0, _depth(tree), level, start)
    return node - leaves


def draw(tree: jax.Array, key: jax.Array, batch_size: int) -> jax.Array:
    """`batch_size` items, stratified: draw i falls uniformly in the i-th of `batch_size`
    equal segments of the total mass, so each item's expected count is `batch_size`
    times its share of the total, with less spread than independent draws.
    """
    offsets = jnp.arange(batch_size, dtype=jnp.float32) + jax.random.uniform(key, (batch_size,))
    return find(tree, offsets * (total(tree) / batch_size))
