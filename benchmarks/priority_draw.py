r"""Prioritized replay's draw and update: a sum tree against a cumulative sum, on this device.

    python benchmarks/priority_draw.py
    python benchmarks/priority_draw.py --capacities 10000 100000 --batches 32 --repeats 5

Each variant keeps the N priorities (already raised to alpha) in its own state and runs,
per step, what one learner update does: draw B items in proportion to their priorities
(stratified, as the replay does), read their priorities (for the importance weights), and
write B new priorities back.

- tree: `purejaxdqn.core.priorities` (the replay's sum tree): descent of depth log2(N) for
  the draw, leaves written and their paths recomputed for the update.
- cumsum: a flat array; the draw is `jnp.cumsum` over all N priorities and
  `jnp.searchsorted`, the update a plain scatter.

Steps run inside a `lax.scan` of `--steps` steps (as in the training loop, without a
dispatch per step); each row is the median over `--repeats` warm, jitted calls, divided by
the steps. "update" times the write alone (the draw's share is the difference). Results go
to `results/priority_draw_<device>.json` and `.csv`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

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
]


def tree_variant(num_items: int) -> tuple[jax.Array, Callable, Callable]:
    """The sum tree's state, draw (items and their priorities) and write."""

    def draw(tree: jax.Array, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
        items = priorities.draw(tree, key, batch_size)
        return items, priorities.read(tree, items)

    tree = priorities.write(
        priorities.init(num_items),
        jnp.arange(num_items),
        jax.random.uniform(jax.random.key(0), (num_items,)) + 0.01,
    )
    return tree, draw, priorities.write


def cumsum_variant(num_items: int) -> tuple[jax.Array, Callable, Callable]:
    """A flat priority array's state, cumulative-sum draw and scatter write."""

    def draw(flat: jax.Array, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
        cumulative = jnp.cumsum(flat)
        offsets = jnp.arange(batch_size, dtype=jnp.float32) + jax.random.uniform(key, (batch_size,))
        mass = offsets * (cumulative[-1] / batch_size)
        items = jnp.minimum(jnp.searchsorted(cumulative, mass, side="right"), num_items - 1)
        return items, flat[items]

    def write(flat: jax.Array, items: jax.Array, values: jax.Array) -> jax.Array:
        return flat.at[items].set(values)

    flat = jax.random.uniform(jax.random.key(0), (num_items,)) + 0.01
    return flat, draw, write


VARIANTS = {"tree": tree_variant, "cumsum": cumsum_variant}


def time_per_step(fn: Callable, state: jax.Array, xs: tuple, repeats: int) -> float:
    """Median seconds per scan step of `jit(fn)(state, xs)` over `repeats` warm calls."""
    compiled = jax.jit(fn)
    jax.block_until_ready(compiled(state, xs))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(state, xs))
        times.append(time.perf_counter() - start)
    return statistics.median(times) / xs[0].shape[0]


def measure(variant: str, capacity: int, batch_size: int, steps: int, repeats: int) -> dict:
    """Microseconds per draw+update step and per update alone."""
    state, draw, write = VARIANTS[variant](capacity)
    keys = jax.random.split(jax.random.key(1), steps)
    items = jax.random.randint(jax.random.key(2), (steps, batch_size), 0, capacity)
    values = jax.random.uniform(jax.random.key(3), (steps, batch_size)) + 0.01

    def steps_of(step: Callable) -> Callable:
        def run(state: jax.Array, xs: tuple) -> jax.Array:
            return jax.lax.scan(lambda s, x: (step(s, *x), None), state, xs)[0]

        return run

    def draw_and_update(state: jax.Array, key: jax.Array, new: jax.Array) -> jax.Array:
        drawn, old = draw(state, key, batch_size)
        return write(state, drawn, new + 1e-3 * old)

    def update(state: jax.Array, drawn: jax.Array, new: jax.Array) -> jax.Array:
        return write(state, drawn, new)

    step = time_per_step(steps_of(draw_and_update), state, (keys, values), repeats)
    alone = time_per_step(steps_of(update), state, (items, values), repeats)
    return {
        "variant": variant,
        "capacity": capacity,
        "batch_size": batch_size,
        "step_us": step * 1e6,
        "update_us": alone * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacities", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--steps", type=int, default=100, help="draw+update steps per call")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    rows = []
    for capacity in args.capacities:
        for batch_size in args.batches:
            for variant in VARIANTS:
                rows.append(measure(variant, capacity, batch_size, args.steps, args.repeats))
                print(markdown_table(rows[-1:], COLUMNS).splitlines()[-1], flush=True)
    print(markdown_table(rows, COLUMNS))
    meta = {**run_metadata(), "steps_per_call": args.steps, "repeats": args.repeats}
    json_path, _ = write_results(f"priority_draw_{device_slug()}", rows, meta, args.results_dir)
    print(f"wrote {json_path}")


if __name__ == "__main__":
    main()
