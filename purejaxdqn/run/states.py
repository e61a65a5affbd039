"""The one codec of runner states: a program's state pytree <-> a flat list of arrays.

Between compiled calls, in checkpoints, in the traced-program cache and on resume, a
runner state (any pytree: optax's and an environment suite's state classes, typed PRNG
keys) travels as the flat list of its leaves, every typed PRNG key replaced by its key
data (plain uint32 arrays): `flatten`. `unflatten` rebuilds the tree from such a list and
the state's shapes (`jax.ShapeDtypeStruct`s): a leaf whose shape is a typed key (of any
impl) is wrapped back into a key of that impl; a leaf whose shape is key data stays data.
Leaves may carry leading (row) axes that the shapes do not have.

Here too: keeping a batch's state in host memory between its chunks (`park`, `unpark`)
and gathering sharded rows to the host, every process's shard included (`to_host`,
`gather_rows`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding

from purejaxdqn.program import TrainProgram, one_run


def is_key(leaf: Any) -> bool:
    """Whether `leaf` (an array or a shape struct) is a typed PRNG key."""
    return jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def keys_as_data(tree: Any) -> Any:
    """`tree` with typed PRNG keys replaced by their key data (plain uint32 arrays)."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)


def flatten(state: Any) -> list[Any]:
    """The leaves of `state` with typed PRNG keys as key data; a flat list passes as is."""
    return jax.tree.leaves(keys_as_data(state))


def data_shapes(shapes: Any) -> Any:
    """`shapes` (shape structs or arrays) with every typed key's shape replaced by its key
    data's: the shapes of what `flatten` makes of a state of these shapes.
    """
    return jax.tree.map(
        lambda shape: jax.eval_shape(jax.random.key_data, shape) if is_key(shape) else shape,
        shapes,
    )


def unflatten(leaves: Sequence[Any], shapes: Any) -> Any:
    """The state tree of `shapes` holding `leaves` (as `flatten` gives them), typed keys
    rebuilt where `shapes` has typed keys (of each one's own impl).

    Raises:
        ValueError: the number of leaves is not the number of leaves of `shapes`.
    """
    shape_leaves, treedef = jax.tree.flatten(shapes)
    if len(leaves) != len(shape_leaves):
        raise ValueError(
            f"{len(leaves)} state arrays given for a runner state of {len(shape_leaves)}"
        )
    return treedef.unflatten(
        jax.random.wrap_key_data(leaf, impl=shape.dtype) if is_key(shape) else leaf
        for leaf, shape in zip(leaves, shape_leaves, strict=True)
    )


def typed_shapes(program: TrainProgram, hparams: Any, impl: Any = None) -> Any:
    """One row's runner state as `jax.ShapeDtypeStruct`s, typed keys kept (the `shapes`
    `unflatten` rebuilds states from), from shapes alone.

    Args:
        program: the `TrainProgram`.
        hparams: its hyperparameters (one value per row or shared: the first row's).
        impl: the PRNG impl of the keys the rows start from (default: JAX's default).
    """
    return jax.eval_shape(program.init, jax.random.key(0, impl=impl), one_run(hparams))


def state_shapes(program: TrainProgram, hparams: Any, impl: Any = None) -> Any:
    """One row's runner state as `jax.ShapeDtypeStruct`s, PRNG keys as key data (the form
    `Chunk.states()` gives and `Resume.states` takes), from shapes alone.
    """
    return data_shapes(typed_shapes(program, hparams, impl))


class StateCodec:
    """`flatten` and `unflatten` for one program's runner state; the shapes are traced
    once, on first use (a run whose programs come from the traced-program cache never
    needs them).

    Args:
        program: the `TrainProgram`.
        hparams: its hyperparameters.
        impl: the PRNG impl of the rows' keys.
    """

    def __init__(self, program: TrainProgram, hparams: Any, impl: Any) -> None:
        self._shapes = functools.cache(lambda: typed_shapes(program, hparams, impl))

    @property
    def shapes(self) -> Any:
        """One row's state shapes, typed keys kept."""
        return self._shapes()

    def flatten(self, state: Any) -> list[Any]:
        """`flatten(state)`."""
        return flatten(state)

    def unflatten(self, leaves: Sequence[Any]) -> Any:
        """`unflatten(leaves, self.shapes)`: typed keys rebuilt."""
        return unflatten(leaves, self.shapes)

    def unflatten_data(self, leaves: Sequence[Any]) -> Any:
        """The state tree holding `leaves` as they are (keys stay key data), e.g. to read
        a checkpoint's parameters without touching a device.
        """
        return unflatten(leaves, data_shapes(self.shapes))


def park(leaves: list[Any], offload: bool) -> list[Any]:
    """A batch's state between its chunks: copied to host memory when `offload`."""
    return [np.asarray(leaf) for leaf in leaves] if offload else leaves


def unpark(leaves: list[Any], sharding: NamedSharding, offload: bool) -> list[Any]:
    """A parked batch's state back on its devices (rows sharded by `sharding`)."""
    return [place(leaf, sharding) for leaf in leaves] if offload else leaves


def place(rows: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from host rows that every process holds in full."""
    return jax.make_array_from_callback(rows.shape, sharding, lambda index: rows[index])


def to_host(tree: Any) -> Any:
    """Numpy copies of a tree of (possibly multi-process) sharded arrays."""
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


def gather_rows(batches: Sequence[list[Any]], num_runs: int) -> list[np.ndarray]:
    """Every row's state as one flat list of numpy arrays: each batch's leaves gathered
    to the host and joined along rows, padding rows dropped (the first `num_runs` kept).
    """
    parts = [to_host(leaves) for leaves in batches]
    return [np.concatenate(leaf)[:num_runs] for leaf in zip(*parts, strict=True)]
