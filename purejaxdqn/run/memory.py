"""Device memory of one run (row), from shapes alone: the memory preflight's estimate.

`run_bytes(train, hparams)` traces `train` once (`jax.make_jaxpr`, no compiling) and adds

    2 x runner state                    the loop carry and its update
    + outputs                           metrics and evaluations
    + WORKSPACE_MARGIN x workspace      temporaries, see below
    + WORKSPACE_BYTES                   XLA's own small buffers

The workspace is the most memory any loop body or branch inside `train` holds at once
(a collect step, a gradient update, a greedy evaluation with its `eval_episodes`
environments, ...), found by walking its jaxpr in program order: a value holds its bytes
from the equation that makes it until its last use; loop carries, `dynamic_update_slice`
and scatters (the replay buffer's writes) reuse the buffer of an input that dies there.
XLA fuses most element-wise temporaries away but schedules and packs the rest its own way,
and its temporaries can pass this program-order peak (a Nature CNN update, whose patch
matrices it keeps for several network passes at once; benchmarks/README.md has the
measurement), hence `WORKSPACE_MARGIN`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.extend import core

from purejaxdqn.program import one_run

KEY_BYTES = 8  # a threefry PRNG key: two uint32 words
WORKSPACE_MARGIN = 2  # bound on XLA's temporaries over the program-order peak
WORKSPACE_BYTES = 16 * 2**10  # loop counters, tuples of buffer pointers, scalars
_LOOPS = ("scan", "while")


def nbytes(tree: Any) -> int:
    """Bytes of every array leaf of `tree` (arrays, shape structs or avals; a typed PRNG
    key counts `KEY_BYTES`).
    """
    total = 0
    for leaf in jax.tree.leaves(tree):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            itemsize = KEY_BYTES
        else:
            itemsize = np.dtype(leaf.dtype).itemsize
        total += math.prod(leaf.shape) * itemsize
    return total


def _inner_jaxprs(eqn: core.JaxprEqn) -> list[core.Jaxpr]:
    """The jaxprs an equation runs: loop bodies, branches, called functions."""
    found = []
    for value in eqn.params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, core.ClosedJaxpr):
                found.append(item.jaxpr)
            elif isinstance(item, core.Jaxpr):
                found.append(item)
    return found


def _reusable(eqn: core.JaxprEqn) -> dict[int, Any]:
    """Output position -> the input whose buffer that output may take over: a loop's
    carry, the array a `dynamic_update_slice` or scatter writes into, or an input a call
    or branch returns unchanged.
    """
    name = eqn.primitive.name
    if name == "dynamic_update_slice" or name.startswith("scatter"):
        return {0: eqn.invars[0]}
    if name == "scan":
        start = eqn.params["num_consts"]
        return {i: eqn.invars[start + i] for i in range(eqn.params["num_carry"])}
    if name == "while":
        start = eqn.params["cond_nconsts"] + eqn.params["body_nconsts"]
        return dict(enumerate(eqn.invars[start:]))
    offset = 1 if name == "cond" else 0  # a cond's first operand is the branch index
    bodies = [body for body in _inner_jaxprs(eqn) if len(body.outvars) == len(eqn.outvars)]
    reused = {}
    for position in range(len(eqn.outvars)):
        sources = {
            body.invars.index(body.outvars[position])
            if body.outvars[position] in body.invars
            else None
            for body in bodies
        }
        if len(sources) == 1 and None not in sources:
            reused[position] = eqn.invars[offset + sources.pop()]
    return reused


def peak_bytes(jaxpr: core.Jaxpr) -> int:
    """Most bytes `jaxpr` holds at once when run in program order, not counting its inputs.

    A value holds its bytes from its equation to its last use (outputs to the end). An
    equation that runs jaxprs adds their own peak: on top of its outputs for a loop (the
    stacked outputs are filled while the body runs), alongside them for a call or branch
    (which makes them).
    """
    last_use = {}
    for index, eqn in enumerate(jaxpr.eqns):
        for var in eqn.invars:
            if isinstance(var, core.Var):
                last_use[var] = index
    for var in jaxpr.outvars:
        if isinstance(var, core.Var):
            last_use[var] = len(jaxpr.eqns)
    held: dict[core.Var, int] = {}
    live = peak = 0
    for index, eqn in enumerate(jaxpr.eqns):
        inner = max((peak_bytes(body) for body in _inner_jaxprs(eqn)), default=0)
        made = 0
        reusable = _reusable(eqn)
        for position, out in enumerate(eqn.outvars):
            source = reusable.get(position)
            if isinstance(source, core.Var) and last_use.get(source) == index:
                held[out] = held.pop(source, 0)  # in place: the input dies here
            else:
                held[out] = nbytes(out.aval)
                made += held[out]
        if eqn.primitive.name in _LOOPS:
            peak = max(peak, live + made + inner)
        else:
            peak = max(peak, live + max(made, inner))
        live += made
        dead = {var for var in eqn.invars if isinstance(var, core.Var)}
        dead = {var for var in dead if last_use[var] == index}
        dead |= {out for out in eqn.outvars if out not in last_use}
        live -= sum(held.pop(var, 0) for var in dead)
    return peak


def workspace_bytes(jaxpr: core.Jaxpr) -> int:
    """The largest `peak_bytes` of the loops, branches and calls `jaxpr` runs: for `train`,
    the temporaries of its loops (collecting, updating, evaluating), leaving out the
    runner state and the outputs, which `run_bytes` counts apart.
    """
    return max((peak_bytes(body) for eqn in jaxpr.eqns for body in _inner_jaxprs(eqn)), default=0)


def run_bytes(train: Callable[[jax.Array, Any], Any], hparams: Any) -> int:
    """Estimated device memory of one row of `train` (see the module docstring).

    Args:
        train: `train(key, hp) -> (state, metrics, evals)`, a `TrainProgram`'s `train`.
        hparams: its hyperparameter pytree; a leaf may hold one value per row, and the
            first row's values are used (shapes do not depend on them).

    Raises:
        ValueError: a size overflows JAX's integers while tracing (`check_sizes` names
            the config field first when `train` comes from `make_train_program`).
    """
    try:
        closed, shapes = jax.make_jaxpr(train, return_shape=True)(
            jax.random.key(0), one_run(hparams)
        )
    except OverflowError as error:
        raise ValueError(
            f"one run's sizes overflow JAX's 32-bit integers ({str(error).splitlines()[0]}): "
            "reduce buffer_size, total_timesteps, eval_episodes or the network"
        ) from error
    state, metrics, evals = shapes
    outputs = nbytes((metrics, evals))
    workspace = workspace_bytes(closed.jaxpr)
    return 2 * nbytes(state) + outputs + WORKSPACE_MARGIN * workspace + WORKSPACE_BYTES
