"""A wide sum tree over item priorities: proportional draws and writes in a few levels, in JAX.

Layout. A tree is a tuple of flat float32 arrays, one per level, leaves first and the root
last. With fanout `F` (a power of two), level 0 holds the item priorities (item `j` is
entry `j`; the entries past the items stay 0), and entry `i` of level `l + 1` is the sum
of entries `F * i ... F * i + F - 1` of level `l`, its children. Every level but the root
is padded with zeros to a multiple of `F`, so the children of a node are one row of the
level reshaped to (-1, F); the level below the root has exactly `F` entries, and the
root, a (1,) array, is their sum. The fanout is read back from that level's size, so the
functions below need no other argument. The tree is a pytree like the rest of the replay
state: it vmaps over a leading seed axis and goes into checkpoints as it is.

Why wide. A binary tree over N items has log2(N) levels, and on CPU each level of a draw
or a write costs a gather or a scatter (and the launch of its kernel) of nearly fixed
cost however few items it touches. A tree of fanout F has log_F(N) levels: the draw does
more arithmetic per level (a running sum over F children) but pays the per-level cost
several times less often. Separate arrays per level (instead of one heap array) let a
write scatter into each level in place, level by level, with no loop over the levels.

Draw. `find` descends from the root: at each level it gathers the (B, F) children of each
draw's node, takes their running sum left to right, and goes to the first child whose
running sum exceeds the remaining mass, subtracting the mass of the children before it
(the child's index and the mass left come out of one reduction per level). Left to right,
one addition at a time: the running sum never decreases and stays the same across a zero
child, so the child chosen always has nonzero mass. When float rounding puts
the mass at or past the end of a node (the running sum of all its children), the descent
takes the node's last nonzero child and, below it, the last nonzero child at every level:
a zero-priority item is never returned unless the total is 0.

Write. `write` sets the leaves, then at every level recomputes each touched parent as the
sum of its `F` children (a gather of (K, F), a sum, a scatter), up to the root. The sums
are recomputed from the children, never updated by adding deltas, so they carry no drift:
a tree depends only on its leaves. Every sum is the same fixed pairwise sum, elementwise,
so a tree written inside `jax.vmap` is bitwise the one written alone.

Pure functions, vmappable over a leading seed axis like the rest of the replay state.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

FANOUT = 8
"""The default fanout: children per node (chosen by `benchmarks/priority_draw.py`)."""

Tree = tuple[jax.Array, ...]
"""A sum tree: its levels, leaves first, root last (see the module docstring)."""


def _check_fanout(fanout: int) -> None:
    if fanout < 2 or fanout & (fanout - 1):
        raise ValueError(f"fanout={fanout} is not allowed: must be a power of two >= 2")


def _round_up(n: int, fanout: int) -> int:
    return -(-n // fanout) * fanout


def level_sizes(num_items: int, fanout: int = FANOUT) -> tuple[int, ...]:
    """The sizes of the levels of a tree over `num_items` items, leaves first: each a
    multiple of `fanout`, the one below the root exactly `fanout`, then the root (1).
    """
    _check_fanout(fanout)
    sizes = [_round_up(max(num_items, 1), fanout)]
    while sizes[-1] > fanout:
        sizes.append(_round_up(sizes[-1] // fanout, fanout))
    return (*sizes, 1)


def init(num_items: int, fanout: int = FANOUT) -> Tree:
    """A tree of `num_items` zero priorities (a tuple of float32 arrays, leaves first)."""
    return tuple(jnp.zeros((size,), jnp.float32) for size in level_sizes(num_items, fanout))


def fanout_of(tree: Tree) -> int:
    """The fanout of `tree`: the size of the level below the root."""
    return tree[-2].shape[0]


def total(tree: Tree) -> jax.Array:
    """The sum of every priority (the root)."""
    return tree[-1][0]


def read(tree: Tree, items: jax.Array) -> jax.Array:
    """The priorities of `items` (int32 item indices, any shape)."""
    return tree[0][items]


def _children(level: jax.Array, nodes: jax.Array, fanout: int) -> jax.Array:
    """The (*nodes.shape, fanout) children in `level` of the parents `nodes`."""
    return level.reshape(-1, fanout)[nodes]


def _pairwise_sum(children: jax.Array) -> jax.Array:
    """The sum over the last axis (a power of two long), always added in the same pairs."""
    while children.shape[-1] > 1:
        half = children.shape[-1] // 2
        children = children[..., :half] + children[..., half:]
    return children[..., 0]


def write(tree: Tree, items: jax.Array, values: jax.Array) -> Tree:
    """Write `values` at `items` (both (K,)) and recompute the parents on their paths.

    An item given more than once must be given the same value each time (the caller
    resolves duplicates): the scatters are then deterministic, as every write to a node
    carries the same value.
    """
    fanout = fanout_of(tree)
    shift = fanout.bit_length() - 1
    nodes = items.astype(jnp.int32)
    levels = [tree[0].at[nodes].set(values.astype(tree[0].dtype))]
    for level in tree[1:-1]:
        nodes = nodes >> shift  # the parents, in the level above
        levels.append(level.at[nodes].set(_pairwise_sum(_children(levels[-1], nodes, fanout))))
    levels.append(_pairwise_sum(levels[-1])[None])  # the root: the sum of all F top nodes
    return tuple(levels)


def _running_sum(children: jax.Array) -> jax.Array:
    """The running sums along the last axis, added left to right one child at a time (so
    they never decrease over nonnegative children and stay the same across a zero one).
    """
    sums = [children[..., 0]]
    for k in range(1, children.shape[-1]):
        sums.append(sums[-1] + children[..., k])
    return jnp.stack(sums, axis=-1)


def _count_and_min(flags: jax.Array, values: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The number of true `flags` and the smallest of `values` along the last axis, in
    one reduction (one pass, where two reductions would each recompute their inputs).
    """

    def combine(a: tuple, b: tuple) -> tuple:
        return a[0] + b[0], jnp.minimum(a[1], b[1])

    init = (jnp.int32(0), jnp.float32(jnp.inf))
    operands = (flags.astype(jnp.int32), values)
    return jax.lax.reduce(operands, init, combine, (flags.ndim - 1,))


def _descend(tree: Tree, mass: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The items at cumulative priority `mass` (see `find`) and their priorities, taken
    from the leaves the descent gathered at its last level.
    """
    fanout = fanout_of(tree)
    shift = fanout.bit_length() - 1
    nodes = jnp.zeros(mass.shape, jnp.int32)
    for level in tree[-2::-1]:  # from the level below the root down to the leaves
        children = _children(level, nodes, fanout)
        running = _running_sum(children)
        end, mass = running[..., -1:], mass[..., None]
        # the children before the one taken; past the end, those before the last nonzero
        below = (mass >= running) & (running < end)
        # the mass left past the children before (mass less their running sum, the
        # smallest such difference); past the end inf, to take the last nonzero below
        rest = jnp.where(mass >= end, jnp.inf, jnp.where(below, mass - running, mass))
        child, mass = _count_and_min(below, rest)
        nodes = (nodes << shift) + child
    taken = jnp.arange(fanout) == child[..., None]
    return nodes, jnp.sum(jnp.where(taken, children, 0.0), axis=-1)  # one term: exact


def find(tree: Tree, mass: jax.Array) -> jax.Array:
    """The items at cumulative priority `mass` ((B,) floats in [0, total)): item `j` for
    mass in [sum of the priorities before j, that sum + priority j).

    The child taken at each level has nonzero mass, and when float rounding puts `mass`
    at or past the end of a node, the descent ends on the last nonzero item below it: a
    zero-priority item is never returned unless the total is 0 (then item 0).
    """
    return _descend(tree, mass)[0]


def _stratified_mass(tree: Tree, key: jax.Array, batch_size: int) -> jax.Array:
    offsets = jnp.arange(batch_size, dtype=jnp.float32) + jax.random.uniform(key, (batch_size,))
    return offsets * (total(tree) / batch_size)


def draw(tree: Tree, key: jax.Array, batch_size: int) -> jax.Array:
    """`batch_size` items, stratified: draw i falls uniformly in the i-th of `batch_size`
    equal segments of the total mass, so each item's expected count is `batch_size`
    times its share of the total, with less spread than independent draws.
    """
    return find(tree, _stratified_mass(tree, key, batch_size))


def draw_with_priorities(
    tree: Tree, key: jax.Array, batch_size: int
) -> tuple[jax.Array, jax.Array]:
    """`draw`, and the priorities of the items drawn (for importance weights).

    The priorities come from the leaves the descent gathered to pick the items, not from
    a second read of the tree: a read that nothing computed from the items depends on
    would be unordered against a later `write` at those items, and XLA would then copy
    the whole leaf level to keep it (instead of writing the tree in place).
    """
    return _descend(tree, _stratified_mass(tree, key, batch_size))
