"""The two compiled programs of a run, `init` and a chunk of `run_periods` over every row
of one batch, and the traced-program cache that lets a repeated run skip tracing them.

This is the one module of the runtime that uses `jax.export`: when JAX's persistent
compilation cache is on, the program names itself (`program_key`), the run is in one
process and the program is `exportable`, the traced programs are kept on disk as
`jax.export` artifacts (`program_cache`), with the memory preflight's estimate; a later
run of the same program and layout loads them and goes straight to the (cached) compile.

Between calls the runner state travels as a flat list of arrays, keys as key data
(`states`): `jax.export` can serialise that, not an algorithm's or environment suite's
state classes. Every output has a leading row axis pinned to the row sharding, which
keeps the state's layout the same from one call to the next (XLA would replicate constant
leaves otherwise); the state is donated from one chunk to the next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax import export

from purejaxdqn.program import TrainProgram
from purejaxdqn.run import program_cache
from purejaxdqn.run.layout import Layout
from purejaxdqn.run.plan import estimate_run_bytes
from purejaxdqn.run.states import StateCodec


@dataclass(frozen=True)
class Compiled:
    """A run's compiled programs.

    Attributes:
        init: `init(key_data, hp_leaves) -> state leaves` over one batch, None on resume.
        chunk: `chunk(state leaves, hp_leaves, periods) -> (state leaves, metrics, evals,
            policy params)` over one batch; donates the state.
        cache_status: "hit" or "miss" when the traced-program cache was used, else None.
    """

    init: Any
    chunk: Any
    cache_status: str | None

    def compiled_bytes_per_run(self, rows: int) -> float | None:
        """XLA's memory figure of the chunk program divided by its `rows` (temporaries,
        outputs and arguments, the donated state counted once), None if XLA gives none.
        """
        return memory_of(self.chunk, rows)


def cache_name(program_key: Any, exportable: bool) -> str | None:
    """The traced-program cache's name of a program described by `program_key` (a
    JSON-able description, e.g. its full config), or None when the cache cannot serve it:
    no key, the cache off, several processes, or a program that cannot be exported.
    """
    if program_key is None or not exportable or program_cache.directory() is None:
        return None
    if jax.process_count() != 1:
        return None
    return program_cache.key(program_key)


def run_bytes(program: TrainProgram, hparams: Any, name: str | None) -> int:
    """The memory preflight's estimate of one row (`plan.estimate_run_bytes`), loaded from
    the traced-program cache under `name` when there, else traced and saved there.

    Raises:
        ValueError: a size overflows JAX's 32-bit integers.
    """
    bytes_per_run = program_cache.load_estimate(name) if name is not None else None
    if bytes_per_run is None:
        bytes_per_run = estimate_run_bytes(program.train, hparams)
        if name is not None:
            program_cache.save_estimate(name, bytes_per_run)
    return bytes_per_run


def _row_functions(
    program: TrainProgram, layout: Layout, codec: StateCodec
) -> tuple[Callable, Callable]:
    """`init` and `run_periods` over one batch's rows, states as flat lists of arrays."""
    row_axes = (0, layout.axes_tree())

    def init_rows(key_data: jax.Array, hp_leaves: tuple) -> list[jax.Array]:
        keys = jax.random.wrap_key_data(key_data, impl=layout.impl)
        init = layout.map_rows(program.init, row_axes)
        return codec.flatten(init(keys, layout.hparams_tree(hp_leaves)))

    def chunk_rows(leaves: list, hp_leaves: tuple, periods: jax.Array) -> tuple:
        run_periods = layout.map_rows(program.run_periods, (*row_axes, None))
        state, metrics, evals = run_periods(
            codec.unflatten(leaves), layout.hparams_tree(hp_leaves), periods
        )
        return codec.flatten(state), metrics, evals, program.policy_params(state)

    return init_rows, chunk_rows


def compile_programs(
    program: TrainProgram,
    layout: Layout,
    codec: StateCodec,
    chunk_length: int,
    name: str | None,
    with_init: bool,
) -> Compiled:
    """Trace (or load from the traced-program cache) and compile the run's programs.

    Args:
        program: the `TrainProgram`.
        layout: where the rows live.
        codec: the program's state codec.
        chunk_length: log periods per chunk call.
        name: `cache_name(...)`, None to trace without the cache.
        with_init: compile `init` too (not needed on resume).
    """
    init_rows, chunk_rows = _row_functions(program, layout, codec)
    rows, replicated = layout.rows, layout.replicated
    init_jit = jax.jit(init_rows, in_shardings=(rows, layout.hp_shardings), out_shardings=rows)
    chunk_jit = jax.jit(
        chunk_rows,
        in_shardings=(rows, layout.hp_shardings, replicated),
        out_shardings=rows,
        donate_argnums=0,
    )
    first_keys, first_hparams = layout.batch_keys(0), layout.batch_hparams(0)
    periods = jax.ShapeDtypeStruct((chunk_length,), np.int32, sharding=replicated)

    def carry_shapes_of(init: Callable) -> list[jax.ShapeDtypeStruct]:
        shapes = jax.eval_shape(init, first_keys, first_hparams)
        return [jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rows) for s in shapes]

    cache_status, carry_shapes = None, None
    if name is not None:
        name = program_cache.key(name, layout.cache_layout(chunk_length))
        init_program = program_cache.load_program(name + "-init")
        chunk_program = program_cache.load_program(name + "-chunk")
        cache_status = "miss" if init_program is None or chunk_program is None else "hit"
        if cache_status == "miss":
            init_program = export.export(init_jit)(first_keys, first_hparams)
            carry_shapes = carry_shapes_of(init_jit)
            chunk_program = export.export(chunk_jit)(carry_shapes, first_hparams, periods)
            program_cache.save_program(name + "-init", init_program)
            program_cache.save_program(name + "-chunk", chunk_program)
        init_jit = jax.jit(init_program.call)
        chunk_jit = jax.jit(chunk_program.call, donate_argnums=0)
    if carry_shapes is None:  # on a cache hit, from the loaded program: no tracing
        carry_shapes = carry_shapes_of(init_jit)
    init = init_jit.lower(first_keys, first_hparams).compile() if with_init else None
    chunk = chunk_jit.lower(carry_shapes, first_hparams, periods).compile()
    return Compiled(init=init, chunk=chunk, cache_status=cache_status)


def memory_of(compiled: Any, rows: int) -> float | None:
    """XLA's memory figure of a compiled program per row (arguments, outputs not aliased
    to donated arguments, temporaries), None when the backend reports none.
    """
    try:
        analysis = compiled.memory_analysis()
    except (NotImplementedError, RuntimeError):  # not every backend reports it
        return None
    if analysis is None:
        return None
    outputs = analysis.output_size_in_bytes - analysis.alias_size_in_bytes  # donated: shared
    return (analysis.argument_size_in_bytes + outputs + analysis.temp_size_in_bytes) / rows
