"""Running many independent (key, hyperparameters) rows of `train` on every device.

A row is one seed of one setting. `execute` runs rows as two compiled programs, `init` and
`run_periods` mapped over each device's rows, the latter called from a Python loop on
equal-length chunks of log periods (the runner state donated from one call to the next;
between chunks an `on_chunk` callback can show progress, log, checkpoint or stop the run),
with the row axis sharded over a device mesh (`NamedSharding`, no `pmap`):

- **Devices.** One process: the local devices (one per CPU core after
  `devices.use_all_cpu_cores()`, or the GPUs); at most one device per row. Several
  processes (`jax.distributed.initialize`): every device of every process, each process
  placing and running its own shard; the results are gathered to every process.
- **Padding.** Row counts that do not divide evenly are padded with copies of row 0; the
  copies are dropped before anything is returned, so they are never reported.
- **Memory preflight** (`plan_batches`, before compiling). The device memory a row needs
  is estimated from shapes alone (`memory.run_bytes`, no compiling): twice the state (loop
  carry and its update), the outputs, and the temporaries of an update and of an
  evaluation, from the traced program. When all rows do not fit,
  they run as equal sequential batches of the same compiled program; when one row per
  device does not fit, a `ValueError` says so before anything compiles.
- **Batches on CPU.** XLA:CPU runs a device's rows as one stream; past a few rows per
  device aggregate throughput falls (measured on a 2-core machine in one program:
  CartPole 108k env steps/s at 8 rows per device, 94k at 32, 68k at 128; Breakout-MinAtar,
  whose rows hold 100k-transition buffers, 7.6k at 2 rows per device, 7.2k at 8, 5.3k at
  32). `max_runs_per_device="auto"` therefore caps CPU batches at `CPU_RUNS_PER_DEVICE`
  rows per device, and at fewer when the rows' estimated memory passes
  `CPU_BYTES_PER_DEVICE`, and runs the rest as sequential batches; on accelerators it only
  caps by memory.

The split changes float rounding (per-device batch shapes) and nothing else, but RL
amplifies rounding, so a seed's return can differ with the number of rows per device. With
one row per device (`max_runs_per_device=1`) every row runs the unbatched program and its
result is exactly its single-run result, whatever the device and row counts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax import export
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

from purejaxdqn.core.config import HParams, hparams_in_axes
from purejaxdqn.core.loop import TrainFn, TrainProgram
from purejaxdqn.run import memory, program_cache
from purejaxdqn.run.devices import row_sharding

CPU_RUNS_PER_DEVICE = 8
CPU_BYTES_PER_DEVICE = 200 * 10**6  # auto cap on CPU: 2 MinAtar rows (buffer 100k) per device
MEMORY_FRACTION = 0.8  # of a device's memory the preflight lets the rows use


@dataclass(frozen=True)
class BatchPlan:
    """How `num_runs` rows are laid out: devices, rows per device, sequential batches.

    Attributes:
        num_runs: rows asked for (seeds x settings).
        num_devices: devices the row axis is sharded over.
        runs_per_device: rows each device runs per compiled call.
        num_batches: sequential calls of the compiled program.
        bytes_per_run: estimated device memory of one row.
        device_bytes: memory of one device, None if unknown.
    """

    num_runs: int
    num_devices: int
    runs_per_device: int
    num_batches: int
    bytes_per_run: int
    device_bytes: int | None

    @property
    def runs_per_batch(self) -> int:
        """Rows per compiled call (over all devices)."""
        return self.num_devices * self.runs_per_device

    @property
    def padding(self) -> int:
        """Copies of row 0 added so every batch fills every device; never reported."""
        return self.runs_per_batch * self.num_batches - self.num_runs

    def describe(self) -> str:
        """One line for logs, e.g. '64 runs: 4 batches of 16 (8 per device on 2 devices)'."""
        text = (
            f"{self.num_runs} run(s): {self.num_batches} batch(es) of {self.runs_per_batch} "
            f"({self.runs_per_device} per device on {self.num_devices} device(s)); "
            f"~{self.bytes_per_run / 2**20:.1f} MiB per run"
        )
        if self.padding:
            text += f"; {self.padding} padding run(s), not reported"
        return text


def estimate_run_bytes(train: TrainFn, hparams: HParams) -> int:
    """Estimated device memory of one row, from shapes alone (no compiling).

    `memory.run_bytes`: twice the runner state (the loop carry and its update), the
    outputs, and the temporaries of the largest loop body or branch (an update, a greedy
    evaluation over `eval_episodes` envs), from the jaxpr of `train`. It bounds XLA's own
    figure (`compiled.memory_analysis()` of the chunk program, per row) on CPU: CartPole
    preset 6.9 MiB estimated vs 3.7 MiB, Breakout-MinAtar preset 88 MiB vs 43 MiB, the
    CartPole preset with 2,000,000 evaluation episodes 3.8 GiB vs 1.7 GiB.

    Raises:
        ValueError: a size overflows JAX's 32-bit integers.
    """
    return memory.run_bytes(train, hparams)


def device_memory_bytes(device: jax.Device) -> int | None:
    """Memory one device may use, None when unknown.

    On accelerators, the allocator's limit; on CPU, the host's available memory shared
    evenly by its CPU devices.
    """
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        limit = stats.get("bytes_limit")
        return int(limit) if limit else None
    available = host_available_bytes()
    if available is None:
        return None
    cpu_devices = sum(1 for d in jax.local_devices() if d.platform == "cpu")
    return available // max(cpu_devices, 1)


def host_available_bytes() -> int | None:
    """The host's available memory (Linux MemAvailable, else free pages), None if unknown."""
    try:
        with open("/proc/meminfo") as file:
            fields = dict(line.split(":", 1) for line in file)
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
        available = pages * os.sysconf("SC_PAGE_SIZE") if pages else 0
    return available or None


def _check_max_runs(value: int | str | None) -> int | str | None:
    ok_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1
    if value is None or value == "auto" or ok_int:
        return value
    raise ValueError(
        f"max_runs_per_device={value!r} is not allowed: must be an integer >= 1, 'auto' "
        "(a measured cap on CPU, memory only on accelerators) or None (memory only)"
    )


def plan_batches(
    num_runs: int,
    bytes_per_run: int,
    *,
    max_runs_per_device: int | str | None = "auto",
    devices: list[jax.Device] | None = None,
    device_bytes: int | None = None,
) -> BatchPlan:
    """Choose devices, rows per device and sequential batches for `num_runs` rows.

    Args:
        num_runs: rows to run, >= 1.
        bytes_per_run: device memory one row needs (`estimate_run_bytes`).
        max_runs_per_device: cap on rows per device per call: an integer, "auto" (on CPU
            `CPU_RUNS_PER_DEVICE`, or fewer so that their estimated memory stays within
            `CPU_BYTES_PER_DEVICE`; memory only elsewhere) or None (memory only).
        devices: the devices to shard over (default: every device of every process).
        device_bytes: memory per device (default: `device_memory_bytes` of a local one).

    Returns:
        The `BatchPlan`. Batches are as few as the caps allow, and rows spread over them
        evenly, so padding is below one batch.

    Raises:
        ValueError: if one row per device does not fit in `MEMORY_FRACTION` of a device's
            memory (the message gives both figures), or for a bad `max_runs_per_device`.
    """
    cap = _check_max_runs(max_runs_per_device)
    devices = jax.devices() if devices is None else devices
    if jax.process_count() == 1:
        devices = devices[: min(len(devices), num_runs)]
    num_devices = len(devices)
    if device_bytes is None:  # every device alike: ask one this process can see
        local = [d for d in devices if d.process_index == jax.process_index()]
        device_bytes = device_memory_bytes((local or jax.local_devices())[0])
    if cap == "auto" and devices[0].platform == "cpu":
        by_bytes = CPU_BYTES_PER_DEVICE // max(bytes_per_run, 1)
        cap = max(1, min(CPU_RUNS_PER_DEVICE, by_bytes))
    elif cap == "auto":
        cap = None
    per_device_needed = -(-num_runs // num_devices)
    limit = per_device_needed if cap is None else min(cap, per_device_needed)
    if device_bytes is not None:
        fits = int(MEMORY_FRACTION * device_bytes // max(bytes_per_run, 1))
        if fits < 1:
            raise ValueError(
                f"one run needs ~{bytes_per_run / 2**30:.2f} GiB of device memory (replay "
                f"buffer, networks, optimizer state, environments) but a device offers "
                f"{MEMORY_FRACTION:.0%} of {device_bytes / 2**30:.2f} GiB: reduce "
                "buffer_size or num_envs, or use a device with more memory"
            )
        limit = min(limit, fits)
    num_batches = -(-per_device_needed // limit)
    runs_per_device = -(-per_device_needed // num_batches)  # spread evenly over batches
    return BatchPlan(
        num_runs=num_runs,
        num_devices=num_devices,
        runs_per_device=runs_per_device,
        num_batches=num_batches,
        bytes_per_run=int(bytes_per_run),
        device_bytes=device_bytes,
    )


@dataclass(frozen=True)
class Outputs:
    """What `execute` returns: per-row results as numpy arrays, and how they were made.

    Attributes:
        metrics: per-log-point metrics, each (num_runs, periods_done).
        evals: greedy evaluations, each (num_runs, evaluations done[, eval_episodes]).
        params: the online-network parameters at the end, leaves (num_runs, ...).
        plan: the batch layout used.
        compile_seconds: the memory preflight, tracing, lowering and compiling (once for
            every batch).
        run_seconds: initialising and running every batch until the outputs are ready
            (time spent in `on_chunk` is not counted; it is `watch_seconds`).
        compiled_bytes_per_run: XLA's own memory figure per row (temporaries + outputs +
            arguments of one batch's chunk program, divided by its rows), None if XLA
            gives none.
        program_cache: "hit" or "miss" when `program_key` was given and the cache is on,
            else None.
        periods_done: log periods done (the config's `num_log_points` unless stopped
            early), counting those before a resume.
        periods_run: log periods this call ran (what `run_seconds` measures).
        watch_seconds: time spent in `on_chunk` (progress, logging, checkpoints).
    """

    metrics: dict[str, np.ndarray]
    evals: dict[str, np.ndarray]
    params: Any
    plan: BatchPlan
    compile_seconds: float
    run_seconds: float
    compiled_bytes_per_run: float | None
    program_cache: str | None = None
    periods_done: int = 0
    periods_run: int = 0
    watch_seconds: float = 0.0


@dataclass(frozen=True)
class Chunk:
    """What `execute` hands `on_chunk` after each chunk of log periods (every batch).

    Attributes:
        periods_done: log periods finished so far (counting any resumed ones).
        num_periods: log periods in the whole run.
        metrics: this chunk's metrics, each (num_runs, periods in the chunk).
        evals: this chunk's evaluations, each (num_runs, evaluations in the chunk, ...).
        metrics_so_far: every period's metrics so far, each (num_runs, periods_done).
        evals_so_far: every evaluation so far.
        periods_run: log periods this `execute` call has run (fewer after a resume).
        run_seconds: time since this call started running.
        states: returns every row's runner state as a flat list of numpy arrays (the
            leaves of `state_shapes`, PRNG keys as key data), for checkpoints; call it
            only when needed, it copies the replay buffers.
        plan: the device layout of the run (a checkpoint records it; a resume keeps it).
    """

    periods_done: int
    num_periods: int
    metrics: dict[str, np.ndarray]
    evals: dict[str, np.ndarray]
    metrics_so_far: dict[str, np.ndarray]
    evals_so_far: dict[str, np.ndarray]
    periods_run: int
    run_seconds: float
    states: Callable[[], Any]
    plan: BatchPlan | None = None

    @property
    def env_steps(self) -> int:
        """Env steps per row done so far (counting any resumed ones)."""
        return int(self.metrics["env_steps"][0, -1])

    @property
    def env_steps_per_second(self) -> float:
        """Aggregate env steps per second (every row) of this call's run so far."""
        if self.run_seconds <= 0:
            return 0.0
        run_per_row = self.env_steps * self.periods_run / self.periods_done
        return self.metrics["env_steps"].shape[0] * run_per_row / self.run_seconds


@dataclass(frozen=True)
class Resume:
    """Where a resumed `execute` starts: the runner states of every row (a tree shaped
    like `state_shapes` or its flat list of leaves, with a leading row axis) after
    `periods_done` log periods, and the metrics and evaluations until then.
    """

    states: Any
    periods_done: int
    metrics: dict[str, np.ndarray]
    evals: dict[str, np.ndarray]


def _check_bridged(resume: Resume | None) -> None:
    if jax.process_count() > 1:
        raise ValueError("bridged environments (envpool, gymnasium) run in one process only")
    if resume is not None:
        raise ValueError(
            "resume is not allowed for a bridged environment: its simulators' state lives "
            "outside JAX and is not in checkpoints"
        )


def _place(rows: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from host rows that every process holds in full."""
    return jax.make_array_from_callback(rows.shape, sharding, lambda index: rows[index])


def _to_host(tree: Any) -> Any:
    """Numpy copies of a tree of (possibly multi-process) sharded arrays."""
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


def _memory_of(compiled: Any, rows: int) -> float | None:
    try:
        analysis = compiled.memory_analysis()
    except (NotImplementedError, RuntimeError):  # not every backend reports it
        return None
    if analysis is None:
        return None
    outputs = analysis.output_size_in_bytes - analysis.alias_size_in_bytes  # donated: shared
    return (analysis.argument_size_in_bytes + outputs + analysis.temp_size_in_bytes) / rows


def _is_key(leaf: Any) -> bool:
    return jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _keys_as_data(tree: Any) -> Any:
    """`tree` with typed PRNG keys replaced by their key data (plain uint32 arrays)."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def state_shapes(program: TrainProgram, hparams: HParams) -> Any:
    """One row's runner state as `jax.ShapeDtypeStruct`s, PRNG keys as key data (the form
    `Chunk.states()` gives and `Resume.states` takes), from shapes alone.
    """
    one_row = HParams(*(np.asarray(leaf).ravel()[0] for leaf in hparams))
    return jax.eval_shape(lambda: _keys_as_data(program.init(jax.random.key(0), one_row)))


def _join(parts: list[dict[str, np.ndarray]], length: int) -> dict[str, np.ndarray]:
    """Concatenate per-batch (or per-chunk) dicts along rows (axis 0), keep `length` rows."""
    return {name: np.concatenate([p[name] for p in parts])[:length] for name in parts[0]}


def _extend(before: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`before` with `new` appended along axis 1 (log points or evaluations)."""
    if not before:
        return dict(new)
    return {name: np.concatenate([before[name], new[name]], axis=1) for name in new}


def _per_device(fn: Callable, in_axes: tuple, plan: BatchPlan, rows: NamedSharding) -> Callable:
    """`jax.vmap(fn, in_axes)` over the sharded row axis, written per device (`shard_map`):
    each device maps `fn` over its own rows, and with one row per device calls `fn` on it
    directly. A vmap over one row compiles ~0.5 s slower and runs ~7% slower (CartPole
    classic, 2-core CPU) than the unbatched program; the two agree to float rounding.
    """
    axis = rows.spec[0]

    def spec(axes: Any) -> Any:
        return jax.tree.map(
            lambda a: PartitionSpec() if a is None else PartitionSpec(axis), axes, is_leaf=_is_none
        )

    def each_row(*args: Any) -> Any:
        if plan.runs_per_device > 1:
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


def execute(
    program: TrainProgram,
    keys: jax.Array,
    hparams: HParams,
    *,
    max_runs_per_device: int | str | None = "auto",
    progress: Callable[[str], None] | None = None,
    device_bytes: int | None = None,
    program_key: Any = None,
    periods_per_chunk: int | None = None,
    on_chunk: Callable[[Chunk], bool] | None = None,
    on_start: Callable[[], None] | None = None,
    resume: Resume | None = None,
    runs_per_device: int | None = None,
    offload_idle_batches: bool | None = None,
    devices: list[jax.Device] | None = None,
) -> Outputs:
    """Run `train(keys[i], hparams[i])` for every row i; return the metrics and evals.

    The run is two compiled programs over the sharded rows: `init`, then `run_periods`
    called from a Python loop on equal-length chunks of log periods, donating the runner
    state from one call to the next. The chunk length does not change the results (bit
    for bit), so progress reports and checkpoints cost nothing in reproducibility.

    Args:
        program: `make_train_program(config)`.
        keys: typed PRNG keys, shape (num_runs,), the same in every process.
        hparams: traced hyperparameters; a leaf is a scalar (shared) or has shape
            (num_runs,) (one value per row), the same in every process.
        max_runs_per_device: see `plan_batches`.
        progress: optional callback receiving one-line messages.
        device_bytes: memory per device for the preflight (default: measured).
        program_key: a JSON-able description of `program` (e.g. its full config) that
            names the programs in `program_cache` when JAX's persistent compilation cache
            is on (single process only); a later call with the same key and layout loads
            the traced programs and the memory estimate instead of tracing at all.
            None (default) traces every time.
        periods_per_chunk: log periods per compiled call; must divide the periods left.
            Default: 1 with `on_chunk`, else all of them in one call.
        on_chunk: called after every chunk with a `Chunk`; returning True stops the run
            there (the outputs then cover the periods done).
        on_start: called once everything is compiled, just before the first step (e.g.
            to stop treating a signal as "abandon" and start treating it as "stop after
            this chunk").
        resume: continue from a `Resume` (from a checkpoint) instead of initialising.
        runs_per_device: exactly this many rows per device per call (a resume keeps its
            run's layout: a row's float rounding depends on it); a `ValueError` before
            compiling when the devices or memory do not allow it. Default: chosen by
            `plan_batches`.
        offload_idle_batches: keep each batch's runner state in host memory while other
            batches run (every chunk runs every batch, so all rows advance together).
            Default: on when there are several batches on an accelerator, where batches
            exist because the rows do not fit in device memory together (one process only).
        devices: the devices to run on (default: every local device, or with several
            processes every device of every process; a bridged program uses the first).

    Returns:
        `Outputs` with every row in order; padding rows dropped.
    """
    say = progress or (lambda message: None)
    start = time.perf_counter()
    num_runs = int(keys.shape[0])
    impl = jax.random.key_impl(keys)
    num_periods = program.num_periods
    done = first_period = 0 if resume is None else resume.periods_done
    chunk_length = periods_per_chunk or (1 if on_chunk is not None else num_periods - done)
    if chunk_length < 1 or (num_periods - done) % chunk_length:
        raise ValueError(
            f"periods_per_chunk={periods_per_chunk} is not allowed: must be a positive "
            f"divisor of the {num_periods - done} log period(s) left"
        )
    cached = program_key is not None and program_cache.directory() is not None
    cached = cached and jax.process_count() == 1
    base_name = program_cache.key(program_key) if cached else None
    bytes_per_run = program_cache.load_estimate(base_name) if cached else None
    if bytes_per_run is None:
        bytes_per_run = estimate_run_bytes(program.train, hparams)
        if cached:
            program_cache.save_estimate(base_name, bytes_per_run)
    if program.bridged:
        _check_bridged(resume)
    if devices is None:
        devices = jax.devices() if jax.process_count() > 1 else jax.local_devices()
    plan = plan_batches(
        num_runs,
        bytes_per_run,
        max_runs_per_device=runs_per_device or (None if program.bridged else max_runs_per_device),
        devices=devices[:1] if program.bridged else devices,
        device_bytes=device_bytes,
    )
    if runs_per_device is not None and plan.runs_per_device != runs_per_device:
        raise ValueError(
            f"runs_per_device={runs_per_device} cannot be kept here: {plan.describe()} (fewer "
            "devices or less memory than the run had); its results would differ in rounding"
        )
    if program.bridged and plan.num_batches > 1:
        raise ValueError(
            f"{num_runs} runs of a bridged environment do not fit in one device's memory "
            f"together (~{bytes_per_run / 2**30:.2f} GiB each), and a simulator pool must "
            "run them in one call: use fewer seeds or a smaller buffer_size"
        )
    say(plan.describe())
    rows = row_sharding(devices[: plan.num_devices])
    replicated = NamedSharding(rows.mesh, PartitionSpec())

    total = plan.runs_per_batch * plan.num_batches
    order = np.concatenate([np.arange(num_runs), np.zeros(total - num_runs, np.int64)])
    key_rows = np.asarray(jax.random.key_data(keys))[order]
    axes = tuple(hparams_in_axes(hparams))
    hp_axes = HParams(*axes)
    leaves = [
        np.asarray(leaf)[order] if axis == 0 else np.asarray(leaf)
        for leaf, axis in zip(hparams, axes, strict=True)
    ]
    leaf_shardings = tuple(rows if axis == 0 else replicated for axis in axes)
    one_row = HParams(*(np.asarray(leaf).ravel()[0] for leaf in hparams))

    def map_rows(fn: Callable, in_axes: tuple) -> Callable:
        return jax.vmap(fn, in_axes) if program.bridged else _per_device(fn, in_axes, plan, rows)

    # Between calls the runner state travels as a flat list of arrays (keys as key data):
    # the traced-program cache can serialise that, not optax's or gymnax's state classes.
    def init_rows(key_data: jax.Array, hp_leaves: tuple) -> list[jax.Array]:
        keys = jax.random.wrap_key_data(key_data, impl=impl)
        state = map_rows(program.init, (0, hp_axes))(keys, HParams(*hp_leaves))
        return jax.tree.leaves(_keys_as_data(state))

    def chunk_rows(leaves: list, hp_leaves: tuple, periods: jax.Array) -> tuple:
        shapes = jax.eval_shape(program.init, jax.random.key(0, impl=impl), one_row)
        shape_leaves, treedef = jax.tree.flatten(shapes)
        state = treedef.unflatten(
            jax.random.wrap_key_data(x, impl=impl) if _is_key(s) else x
            for x, s in zip(leaves, shape_leaves, strict=True)
        )
        state, metrics, evals = map_rows(program.run_periods, (0, hp_axes, None))(
            state, HParams(*hp_leaves), periods
        )
        return jax.tree.leaves(_keys_as_data(state)), metrics, evals, state.params

    def window(index: int) -> slice:
        return slice(index * plan.runs_per_batch, (index + 1) * plan.runs_per_batch)

    def batch_hparams(index: int) -> tuple:
        return tuple(
            _place(leaf[window(index)] if axis == 0 else leaf, sharding)
            for leaf, axis, sharding in zip(leaves, axes, leaf_shardings, strict=True)
        )

    def chunk_periods(first: int) -> jax.Array:
        return _place(np.arange(first, first + chunk_length, dtype=np.int32), replicated)

    hps = [batch_hparams(index) for index in range(plan.num_batches)]
    first_keys = _place(key_rows[window(0)], rows)
    # Every output has a leading row axis; pinning it to `rows` keeps the state's layout
    # the same from one call to the next (XLA would replicate constant leaves otherwise).
    init_jit = jax.jit(init_rows, in_shardings=(rows, leaf_shardings), out_shardings=rows)
    chunk_jit = jax.jit(
        chunk_rows,
        in_shardings=(rows, leaf_shardings, replicated),
        out_shardings=rows,
        donate_argnums=0,
    )

    def carry_shapes_of(init: Callable) -> list[jax.ShapeDtypeStruct]:
        shapes = jax.eval_shape(init, first_keys, hps[0])
        return [jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rows) for s in shapes]

    periods_shape = jax.ShapeDtypeStruct((chunk_length,), np.int32, sharding=replicated)
    cache_status, carry_shapes = None, None
    if cached:
        layout = [plan.num_devices, plan.runs_per_batch, list(axes), str(impl), chunk_length]
        kinds = [device.device_kind for device in devices[: plan.num_devices]]
        name = program_cache.key(base_name, layout, kinds, [leaf.dtype.str for leaf in leaves])
        init_program = program_cache.load_program(name + "-init")
        chunk_program = program_cache.load_program(name + "-chunk")
        cache_status = "miss" if init_program is None or chunk_program is None else "hit"
        if cache_status == "miss":
            init_program = export.export(init_jit)(first_keys, hps[0])
            carry_shapes = carry_shapes_of(init_jit)
            chunk_program = export.export(chunk_jit)(carry_shapes, hps[0], periods_shape)
            program_cache.save_program(name + "-init", init_program)
            program_cache.save_program(name + "-chunk", chunk_program)
        init_jit = jax.jit(init_program.call)
        chunk_jit = jax.jit(chunk_program.call, donate_argnums=0)
    if carry_shapes is None:  # on a cache hit, from the loaded program: no tracing
        carry_shapes = carry_shapes_of(init_jit)
    init_compiled = init_jit.lower(first_keys, hps[0]).compile() if resume is None else None
    chunk_compiled = chunk_jit.lower(carry_shapes, hps[0], periods_shape).compile()
    compile_seconds = time.perf_counter() - start

    say(f"compiled in {compile_seconds:.1f} s; running...")
    if on_start is not None:
        on_start()
    start = time.perf_counter()
    if offload_idle_batches is None:  # batches on an accelerator exist for lack of memory
        offload_idle_batches = plan.num_batches > 1 and devices[0].platform != "cpu"
    offload = offload_idle_batches and jax.process_count() == 1

    def park(state: list) -> list:
        """A batch's state between its chunks: on the host when offloading."""
        return [np.asarray(leaf) for leaf in state] if offload else state

    def unpark(state: list) -> list:
        return [_place(leaf, rows) for leaf in state] if offload else state

    if resume is None:
        states = [
            park(init_compiled(first_keys if i == 0 else _place(key_rows[window(i)], rows), hp))
            for i, hp in enumerate(hps)
        ]
        metrics, evals = {}, {}
    else:
        padded = [np.asarray(leaf)[order] for leaf in jax.tree.leaves(resume.states)]
        states = [
            park([_place(leaf[window(index)], rows) for leaf in padded])
            for index in range(plan.num_batches)
        ]
        metrics, evals = dict(resume.metrics), dict(resume.evals)
    params: list[Any] = [None] * plan.num_batches

    def all_states() -> list[np.ndarray]:
        parts = [_to_host(state) for state in states]
        return [np.concatenate(leaf)[:num_runs] for leaf in zip(*parts, strict=True)]

    eval_every = program.eval_every
    watch_seconds = 0.0  # spent in on_chunk, not counted as run time
    while done < num_periods:
        periods = chunk_periods(done)
        outputs = []
        for index in range(plan.num_batches):
            state, chunk_metrics, chunk_evals, params[index] = chunk_compiled(
                unpark(states[index]), hps[index], periods
            )
            states[index] = park(state)
            outputs.append((chunk_metrics, chunk_evals))
        hosted = [_to_host(output) for output in outputs]
        new_metrics = _join([m for m, _ in hosted], num_runs)
        due = [i for i in range(chunk_length) if eval_every and (done + i + 1) % eval_every == 0]
        new_evals = {k: v[:, due] for k, v in _join([e for _, e in hosted], num_runs).items()}
        done += chunk_length
        metrics, evals = _extend(metrics, new_metrics), _extend(evals, new_evals)
        if on_chunk is None:
            continue
        watch_start = time.perf_counter()
        stop = on_chunk(
            Chunk(
                periods_done=done,
                num_periods=num_periods,
                metrics=new_metrics,
                evals=new_evals,
                metrics_so_far=metrics,
                evals_so_far=evals,
                periods_run=done - first_period,
                run_seconds=watch_start - start - watch_seconds,
                states=all_states,
                plan=plan,
            )
        )
        watch_seconds += time.perf_counter() - watch_start
        if stop:
            break
    if params[0] is not None:
        final_params = jax.tree.map(
            lambda *x: np.concatenate(x)[:num_runs], *[_to_host(p) for p in params]
        )
    else:  # a resume with nothing left to run: the checkpoint's parameters
        shapes = state_shapes(program, one_row)
        final_params = jax.tree.unflatten(
            jax.tree.structure(shapes), jax.tree.leaves(resume.states)
        ).params
    run_seconds = time.perf_counter() - start - watch_seconds

    return Outputs(
        metrics=metrics,
        evals=evals,
        params=final_params,
        plan=plan,
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
        compiled_bytes_per_run=_memory_of(chunk_compiled, plan.runs_per_batch),
        program_cache=cache_status,
        periods_done=done,
        periods_run=done - first_period,
        watch_seconds=watch_seconds,
    )
