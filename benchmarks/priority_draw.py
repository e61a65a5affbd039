r"""Prioritized replay's draw and update: wide sum trees, a binary one and a cumulative sum.

    python benchmarks/priority_draw.py
    python benchmarks/priority_draw.py --capacities 10000 100000 --batches 32 --repeats 5
    python benchmarks/priority_draw.py --fanouts 8 16 --capacities 100000

Each variant keeps the N priorities (already raised to alpha) in its own state and runs,
per step, what one learner update does: draw B items in proportion to their priorities
(stratified, as the replay does), read their priorities (for the importance weights), and
write B new priorities back.

- wide F: `purejaxdqn.core.priorities` (the replay's sum tree) at fanout F: separate
  arrays per level, about log_F(N) levels; the draw takes a running sum over the F
  children of each draw's node per level, the update recomputes each touched parent from
  its F children.
- binary: the library's earlier sum tree, kept here only as a baseline (its algorithm is
  copied below, `BinaryTree`): one flat heap array, a descent of log2(N) levels in a
  `fori_loop` for the draw, and log2(N) levels of parents recomputed for the update.
- cumsum: a flat array; the draw is `jnp.cumsum` over all N priorities and
  `jnp.searchsorted`, the update a plain scatter.

Steps run inside a `lax.scan` of `--steps` steps (as in the training loop, without a
dispatch per step); each row is the median over `--repeats` warm, jitted calls, divided by
the steps. "update" times the write alone (the draw's share is the difference). Results go
to `results/priority_draw_<device>.json` and `.csv`.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from common import RESULTS_DIR, device_slug, markdown_table, run_metadata, write_results

from purejaxdqn.core import priorities

COLUMNS = [
    ("variant", "variant"),
    ("N", "capacity"),
    ("B", "batch_size"),
    ("draw+update us", "step_us"),
    ("update us", "update_us"),
    ("÷ binary", "step_vs_binary"),
]
Variant = tuple[Any, Callable, Callable]  # state, draw(state, key, B), write(state, items, v)


class BinaryTree:
    """BASELINE ONLY, not used by the library: the binary sum tree the replay used before
    the wide one, copied here to measure against.

    One flat float32 array in heap layout: node 1 is the root, node `i` has the children
    `2i` and `2i + 1`, and the `leaves = 2**depth >= num_items` leaves are the nodes
    `leaves ... 2 * leaves - 1`. A write recomputes each parent on the changed paths from
    its two children; a draw descends one level per iteration of a `fori_loop`, never
    into a subtree of zero mass while its sibling has some.
    """

    @staticmethod
    def init(num_items: int) -> jax.Array:
        """A tree of `num_items` zero priorities: (2 * leaves,) float32."""
        leaves = 1 << max(num_items - 1, 0).bit_length()
        return jnp.zeros((2 * leaves,), jnp.float32)

    @staticmethod
    def depth(tree: jax.Array) -> int:
        """log2 of the number of leaves."""
        return (tree.shape[0] // 2).bit_length() - 1

    @staticmethod
    def read(tree: jax.Array, items: jax.Array) -> jax.Array:
        """The priorities of `items`."""
        return tree[tree.shape[0] // 2 + items]

    @staticmethod
    def write(tree: jax.Array, items: jax.Array, values: jax.Array) -> jax.Array:
        """Set the leaves of `items`, then recompute their parents level by level."""
        node = items + tree.shape[0] // 2
        tree = tree.at[node].set(values.astype(tree.dtype))
        for _ in range(BinaryTree.depth(tree)):
            node = node // 2
            tree = tree.at[node].set(tree[2 * node] + tree[2 * node + 1])
        return tree

    @staticmethod
    def find(tree: jax.Array, mass: jax.Array) -> jax.Array:
        """The items at cumulative priority `mass`, descending one level per step."""

        def level(_: int, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
            node, mass = carry
            left = 2 * node
            left_mass, right_mass = tree[left], tree[left + 1]
            go_right = ((mass >= left_mass) & (right_mass > 0)) | (left_mass <= 0)
            return jnp.where(go_right, left + 1, left), jnp.where(go_right, mass - left_mass, mass)

        start = (jnp.ones(mass.shape, jnp.int32), mass)
        node, _ = jax.lax.fori_loop(0, BinaryTree.depth(tree), level, start)
        return node - tree.shape[0] // 2

    @staticmethod
    def draw(tree: jax.Array, key: jax.Array, batch_size: int) -> jax.Array:
        """`batch_size` items, stratified over the total mass."""
        offsets = jnp.arange(batch_size, dtype=jnp.float32) + jax.random.uniform(key, (batch_size,))
        return BinaryTree.find(tree, offsets * (tree[1] / batch_size))


def initial_priorities(num_items: int) -> jax.Array:
    return jax.random.uniform(jax.random.key(0), (num_items,)) + 0.01


def wide_variant(num_items: int, fanout: int) -> Variant:
    """The library's wide sum tree at `fanout`: its state, draw (items and their
    priorities, as the replay draws) and write.
    """
    tree = priorities.init(num_items, fanout)
    tree = priorities.write(tree, jnp.arange(num_items), initial_priorities(num_items))
    return tree, priorities.draw_with_priorities, priorities.write


def binary_variant(num_items: int) -> Variant:
    """The earlier binary sum tree (`BinaryTree`): its state, draw and write."""

    def draw(tree: jax.Array, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
        items = BinaryTree.draw(tree, key, batch_size)
        return items, BinaryTree.read(tree, items)

    tree = BinaryTree.write(
        BinaryTree.init(num_items), jnp.arange(num_items), initial_priorities(num_items)
    )
    return tree, draw, BinaryTree.write


def cumsum_variant(num_items: int) -> Variant:
    """A flat priority array's state, cumulative-sum draw and scatter write."""

    def draw(flat: jax.Array, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
        cumulative = jnp.cumsum(flat)
        offsets = jnp.arange(batch_size, dtype=jnp.float32) + jax.random.uniform(key, (batch_size,))
        mass = offsets * (cumulative[-1] / batch_size)
        items = jnp.minimum(jnp.searchsorted(cumulative, mass, side="right"), num_items - 1)
        return items, flat[items]

    def write(flat: jax.Array, items: jax.Array, values: jax.Array) -> jax.Array:
        return flat.at[items].set(values)

    return initial_priorities(num_items), draw, write


def variants(fanouts: list[int]) -> dict[str, Callable[[int], Variant]]:
    """Every variant measured, by name: the wide trees, the binary tree, the cumsum."""
    wide = {f"wide {f}": functools.partial(wide_variant, fanout=f) for f in fanouts}
    return {**wide, "binary": binary_variant, "cumsum": cumsum_variant}


def time_per_step(fn: Callable, state: Any, xs: tuple, repeats: int) -> float:
    """Median seconds per scan step of `jit(fn)(state, xs)` over `repeats` warm calls."""
    compiled = jax.jit(fn)
    jax.block_until_ready(compiled(state, xs))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(state, xs))
        times.append(time.perf_counter() - start)
    return statistics.median(times) / xs[0].shape[0]


def measure(
    name: str,
    make: Callable[[int], Variant],
    capacity: int,
    batch_size: int,
    steps: int,
    repeats: int,
) -> dict:
    """Microseconds per draw+update step and per update alone."""
    state, draw, write = make(capacity)
    keys = jax.random.split(jax.random.key(1), steps)
    items = jax.random.randint(jax.random.key(2), (steps, batch_size), 0, capacity)
    values = jax.random.uniform(jax.random.key(3), (steps, batch_size)) + 0.01

    def steps_of(step: Callable) -> Callable:
        def run(state: Any, xs: tuple) -> Any:
            return jax.lax.scan(lambda s, x: (step(s, *x), None), state, xs)[0]

        return run

    def draw_and_update(state: Any, key: jax.Array, new: jax.Array) -> Any:
        drawn, old = draw(state, key, batch_size)
        return write(state, drawn, new + 1e-3 * old)

    def update(state: Any, drawn: jax.Array, new: jax.Array) -> Any:
        return write(state, drawn, new)

    step = time_per_step(steps_of(draw_and_update), state, (keys, values), repeats)
    alone = time_per_step(steps_of(update), state, (items, values), repeats)
    return {
        "variant": name,
        "capacity": capacity,
        "batch_size": batch_size,
        "step_us": step * 1e6,
        "update_us": alone * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacities", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    parser.add_argument(
        "--fanouts", type=int, nargs="+", default=[4, 8, 16, 32, 64], help="wide tree fanouts"
    )
    parser.add_argument("--steps", type=int, default=100, help="draw+update steps per call")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    rows = []
    for capacity in args.capacities:
        for batch_size in args.batches:
            group = [
                measure(name, make, capacity, batch_size, args.steps, args.repeats)
                for name, make in variants(args.fanouts).items()
            ]
            binary = next(row for row in group if row["variant"] == "binary")["step_us"]
            for row in group:
                row["step_vs_binary"] = row["step_us"] / binary
            print(markdown_table(group, COLUMNS).split("\n", 2)[2], flush=True)
            rows.extend(group)
    print(markdown_table(rows, COLUMNS))
    meta = {
        **run_metadata(),
        "steps_per_call": args.steps,
        "repeats": args.repeats,
        "default_fanout": priorities.FANOUT,
    }
    json_path, _ = write_results(f"priority_draw_{device_slug()}", rows, meta, args.results_dir)
    print(f"wrote {json_path}")


if __name__ == "__main__":
    main()
