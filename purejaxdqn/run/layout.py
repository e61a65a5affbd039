"""Where every row's inputs live: padding, per-batch keys and hyperparameters, shardings.

The row axis is sharded over a one-axis device mesh (`NamedSharding`, no `pmap`); rows
that do not fill the last batch are padded with copies of row 0 (dropped before anything
is reported). Hyperparameters are any pytree: a leaf with one value per row is padded and
sharded with the rows, a scalar leaf is replicated. They travel into compiled programs as
the flat tuple of their leaves, rebuilt inside (`hparams_tree`).

`map_rows` maps a per-row function over a device's rows: `jax.vmap` written per device
(`shard_map`), with one row per device the unbatched function itself, so that such a row's
result is exactly its single-run result; a `single_device` program's rows are vmapped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from purejaxdqn.program import hparams_in_axes
from purejaxdqn.run.devices import row_sharding
from purejaxdqn.run.plan import BatchPlan
from purejaxdqn.run.states import place


@dataclass(frozen=True)
class Layout:
    """Every row's key and hyperparameters, padded and ready to place batch by batch.

    Attributes:
        plan: the batch plan.
        devices: the devices the rows are sharded over.
        rows: the sharding of a leading row axis over `devices`.
        replicated: the sharding of a value every device holds whole.
        order: the row (index into the caller's rows) of every padded row.
        key_rows: every padded row's key data.
        impl: the PRNG impl of the keys.
        hp_treedef: the tree structure of the hyperparameters.
        hp_axes: per hyperparameter leaf, 0 (one value per row) or None (shared).
        hp_leaves: the hyperparameter leaves, padded along rows where `hp_axes` is 0.
        single_device: rows are vmapped on one device instead of mapped per device.
    """

    plan: BatchPlan
    devices: list[jax.Device]
    rows: NamedSharding
    replicated: NamedSharding
    order: np.ndarray
    key_rows: np.ndarray
    impl: Any
    hp_treedef: Any
    hp_axes: tuple[int | None, ...]
    hp_leaves: tuple[np.ndarray, ...]
    single_device: bool

    @property
    def hp_shardings(self) -> tuple[NamedSharding, ...]:
        """The sharding of every hyperparameter leaf."""
        return tuple(self.rows if axis == 0 else self.replicated for axis in self.hp_axes)

    def window(self, index: int) -> slice:
        """The padded rows of batch `index`."""
        runs = self.plan.runs_per_batch
        return slice(index * runs, (index + 1) * runs)

    def pad(self, rows: np.ndarray) -> np.ndarray:
        """`rows` (one per caller's row) padded to every batch's rows."""
        return np.asarray(rows)[self.order]

    def batch_keys(self, index: int) -> jax.Array:
        """Batch `index`'s key data, placed on its devices."""
        return place(self.key_rows[self.window(index)], self.rows)

    def batch_hparams(self, index: int) -> tuple[jax.Array, ...]:
        """Batch `index`'s hyperparameter leaves, placed on its devices."""
        return tuple(
            place(leaf[self.window(index)] if axis == 0 else leaf, sharding)
            for leaf, axis, sharding in zip(
                self.hp_leaves, self.hp_axes, self.hp_shardings, strict=True
            )
        )

    def batch_state(self, leaves: list[np.ndarray], index: int) -> list[jax.Array]:
        """Batch `index`'s rows of padded state leaves, placed on its devices."""
        return [place(leaf[self.window(index)], self.rows) for leaf in leaves]

    def periods(self, first: int, length: int) -> jax.Array:
        """The log period indices `first`, ..., `first + length - 1`, on every device."""
        return place(np.arange(first, first + length, dtype=np.int32), self.replicated)

    def hparams_tree(self, leaves: tuple) -> Any:
        """The hyperparameter pytree holding `leaves`."""
        return self.hp_treedef.unflatten(leaves)

    def axes_tree(self) -> Any:
        """The hyperparameters' `vmap` in_axes, a tree with None leaves."""
        return self.hp_treedef.unflatten(self.hp_axes)

    def map_rows(self, fn: Callable, in_axes: tuple) -> Callable:
        """`jax.vmap(fn, in_axes)` over the rows of one batch, per device (see the module
        docstring).
        """
        if self.single_device:
            return jax.vmap(fn, in_axes)
        return per_device(fn, in_axes, self.plan.runs_per_device, self.rows)

    def cache_layout(self, chunk_length: int) -> list[Any]:
        """What the compiled programs depend on besides the program itself (for cache keys)."""
        return [
            self.plan.num_devices,
            self.plan.runs_per_batch,
            list(self.hp_axes),
            str(self.hp_treedef),
            str(self.impl),
            chunk_length,
            [device.device_kind for device in self.devices],
            [leaf.dtype.str for leaf in self.hp_leaves],
        ]


def make_layout(
    plan: BatchPlan,
    devices: list[jax.Device],
    keys: jax.Array,
    hparams: Any,
    single_device: bool,
) -> Layout:
    """The `Layout` of `plan` on `devices` (its first `plan.num_devices`).

    Args:
        plan: the batch plan.
        devices: the devices planned over.
        keys: typed PRNG keys, one per row.
        hparams: the hyperparameter pytree; a leaf is a scalar (shared) or has one value
            per row.
        single_device: rows are vmapped on one device (`Capabilities.single_device`).
    """
    num_runs = int(keys.shape[0])
    total = plan.runs_per_batch * plan.num_batches
    order = np.concatenate([np.arange(num_runs), np.zeros(total - num_runs, np.int64)])
    leaves, treedef = jax.tree.flatten(hparams)
    axes = tuple(treedef.flatten_up_to(hparams_in_axes(hparams)))
    rows = row_sharding(devices[: plan.num_devices])
    return Layout(
        plan=plan,
        devices=devices[: plan.num_devices],
        rows=rows,
        replicated=NamedSharding(rows.mesh, PartitionSpec()),
        order=order,
        key_rows=np.asarray(jax.random.key_data(keys))[order],
        impl=jax.random.key_impl(keys),
        hp_treedef=treedef,
        hp_axes=axes,
        hp_leaves=tuple(
            np.asarray(leaf)[order] if axis == 0 else np.asarray(leaf)
            for leaf, axis in zip(leaves, axes, strict=True)
        ),
        single_device=single_device,
    )


def per_device(fn: Callable, in_axes: tuple, runs_per_device: int, rows: NamedSharding) -> Callable:
    """`jax.vmap(fn, in_axes)` over the sharded row axis, written per device (`shard_map`):
    each device maps `fn` over its own rows, and with one row per device calls `fn` on it
    directly (a vmap over one row compiles and runs slower than the unbatched program,
    benchmarks/README.md; the two agree to float rounding).
    """
    axis = rows.spec[0]

    def spec(axes: Any) -> Any:
        return jax.tree.map(
            lambda a: PartitionSpec() if a is None else PartitionSpec(axis), axes, is_leaf=_is_none
        )

    def each_row(*args: Any) -> Any:
        if runs_per_device > 1:
            return jax.vmap(fn, in_axes)(*args)
        rows_only = [
            jax.tree.map(lambda a, x: x if a is None else _first(x), axes, arg, is_leaf=_is_none)
            for axes, arg in zip(in_axes, args, strict=True)
        ]
        return jax.tree.map(lambda x: x[None], fn(*rows_only))

    specs = tuple(spec(axes) for axes in in_axes)
    return jax.shard_map(
        each_row, mesh=rows.mesh, in_specs=specs, out_specs=PartitionSpec(axis), check_vma=False
    )


def _is_none(value: Any) -> bool:
    return value is None


def _first(tree: Any) -> Any:
    return jax.tree.map(lambda leaf: leaf[0], tree)
