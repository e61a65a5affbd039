"""Running many independent (key, hyperparameters) rows of a `TrainProgram` on every device.

A row is one seed of one setting. `execute` runs rows as two compiled programs, `init` and
`run_periods` mapped over each device's rows, the latter called from a Python loop on
equal-length chunks of log periods (the runner state donated from one call to the next;
between chunks an `on_chunk` callback can show progress, log, checkpoint or stop the run),
with the row axis sharded over a device mesh (`NamedSharding`, no `pmap`). It composes:

- `plan`: the memory preflight (before compiling) and the batch plan: devices, rows per
  device, sequential batches, padding rows (copies of row 0, never reported), and the
  chunk length;
- `layout`: every batch's keys and hyperparameters (any pytree) placed on its devices;
- `compile`: the two programs, traced or loaded from the traced-program cache;
- `states`: the runner state as a flat list of arrays between calls, in checkpoints and on
  resume; idle batches parked in host memory; rows gathered from every process.

The runtime asks the program what it can do (`program.capabilities`), never which
algorithm or environment it runs: a `single_device` program runs every row in one call on
one device of one process, vmapped; one that is not `checkpointable` cannot resume; one
that is not `exportable` is never put in the traced-program cache.

Devices: with one process, the local devices (one per CPU core after
`devices.use_all_cpu_cores()`, or the GPUs), at most one per row; with several processes
(`jax.distributed.initialize`), every device of every process, each process placing and
running its own shard, the results gathered to every process.

The split changes float rounding (per-device batch shapes) and nothing else, but RL
amplifies rounding, so a seed's return can differ with the number of rows per device. With
one row per device (`max_runs_per_device=1`) every row runs the unbatched program and its
result is exactly its single-run result, whatever the device and row counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from purejaxdqn.program import ENV_STEPS, Capabilities, TrainProgram
from purejaxdqn.run import compile, states
from purejaxdqn.run.layout import Layout, make_layout
from purejaxdqn.run.plan import (  # noqa: F401 (re-exported: callers import them here)
    CPU_BYTES_PER_DEVICE,
    CPU_RUNS_PER_DEVICE,
    MEMORY_FRACTION,
    BatchPlan,
    chunk_length,
    device_memory_bytes,
    estimate_run_bytes,
    host_available_bytes,
    plan_batches,
    plan_run,
)
from purejaxdqn.run.states import StateCodec, state_shapes  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class Outputs:
    """What `execute` returns: per-row results as numpy arrays, and how they were made.

    Attributes:
        metrics: per-log-point metrics, each (num_runs, periods_done).
        evals: greedy evaluations, each (num_runs, evaluations done[, eval_episodes]).
        params: the policy parameters at the end (`program.policy_params` of the final
            state), leaves (num_runs, ...).
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
            only when needed, it copies every row's whole state.
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
        return int(self.metrics[ENV_STEPS][0, -1])

    @property
    def env_steps_per_second(self) -> float:
        """Aggregate env steps per second (every row) of this call's run so far."""
        if self.run_seconds <= 0:
            return 0.0
        run_per_row = self.env_steps * self.periods_run / self.periods_done
        return self.metrics[ENV_STEPS].shape[0] * run_per_row / self.run_seconds


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


def _check_capabilities(capabilities: Capabilities, resume: Resume | None) -> None:
    """Refuse what the program cannot do: several processes for a `single_device` one, a
    resume for one that is not `checkpointable`.
    """
    if capabilities.single_device and jax.process_count() > 1:
        raise ValueError(
            "this program runs on one device of one process (its environments are a "
            "simulator pool outside JAX, e.g. a bridged envpool or gymnasium environment)"
        )
    if not capabilities.checkpointable and resume is not None:
        raise ValueError(
            "resume is not allowed for this program: part of its state lives outside JAX "
            "(e.g. a bridged environment's simulators) and is not in checkpoints"
        )


def _offload(requested: bool | None, plan: BatchPlan, platform: str) -> bool:
    """Whether idle batches wait in host memory: as `requested` (one process only); by
    default when there are several batches on an accelerator, where batches exist because
    the rows do not fit in device memory together.
    """
    if requested is None:
        requested = plan.num_batches > 1 and platform != "cpu"
    return requested and jax.process_count() == 1


def _join(parts: list[dict[str, np.ndarray]], length: int) -> dict[str, np.ndarray]:
    """Concatenate per-batch (or per-chunk) dicts along rows (axis 0), keep `length` rows."""
    return {name: np.concatenate([p[name] for p in parts])[:length] for name in parts[0]}


def _extend(before: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`before` with `new` appended along axis 1 (log points or evaluations)."""
    if not before:
        return dict(new)
    return {name: np.concatenate([before[name], new[name]], axis=1) for name in new}


class _Batches:
    """Every batch's runner state, advanced chunk by chunk, and the outputs so far.

    Args:
        program: the `TrainProgram`.
        layout: where the rows live.
        compiled: the compiled programs.
        chunk_length: log periods per chunk.
        offload: keep each batch's state in host memory while the others run.
        resume: start from this instead of initialising.
    """

    def __init__(
        self,
        program: TrainProgram,
        layout: Layout,
        compiled: compile.Compiled,
        chunk_length: int,
        offload: bool,
        resume: Resume | None,
    ) -> None:
        self.program, self.layout, self.compiled = program, layout, compiled
        self.chunk_length, self.offload = chunk_length, offload
        self.num_runs = layout.plan.num_runs
        batches = range(layout.plan.num_batches)
        self.hparams = [layout.batch_hparams(index) for index in batches]
        if resume is None:
            self.states = [
                states.park(compiled.init(layout.batch_keys(index), self.hparams[index]), offload)
                for index in batches
            ]
            self.done, self.metrics, self.evals = 0, {}, {}
        else:
            padded = [layout.pad(leaf) for leaf in states.flatten(resume.states)]
            self.states = [
                states.park(layout.batch_state(padded, index), offload) for index in batches
            ]
            self.done = resume.periods_done
            self.metrics, self.evals = dict(resume.metrics), dict(resume.evals)
        self.params: list[Any] = [None] * layout.plan.num_batches

    def all_states(self) -> list[np.ndarray]:
        """Every row's runner state, flat, on the host (`Chunk.states`)."""
        return states.gather_rows(self.states, self.num_runs)

    def run_chunk(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Run the next chunk on every batch; return its metrics and due evaluations."""
        periods = self.layout.periods(self.done, self.chunk_length)
        outputs = []
        for index, hparams in enumerate(self.hparams):
            leaves = states.unpark(self.states[index], self.layout.rows, self.offload)
            leaves, metrics, evals, self.params[index] = self.compiled.chunk(
                leaves, hparams, periods
            )
            self.states[index] = states.park(leaves, self.offload)
            outputs.append((metrics, evals))
        hosted = [states.to_host(output) for output in outputs]
        metrics = _join([m for m, _ in hosted], self.num_runs)
        every, first = self.program.eval_every, self.done
        due = [i for i in range(self.chunk_length) if every and (first + i + 1) % every == 0]
        evals = {k: v[:, due] for k, v in _join([e for _, e in hosted], self.num_runs).items()}
        self.done += self.chunk_length
        self.metrics, self.evals = _extend(self.metrics, metrics), _extend(self.evals, evals)
        return metrics, evals

    def final_params(self, codec: StateCodec, resume: Resume | None) -> Any:
        """Every row's policy parameters (`program.policy_params`) on the host; on a
        resume with nothing left to run, the checkpoint's.
        """
        if self.params[0] is not None:
            hosted = [states.to_host(params) for params in self.params]
            return jax.tree.map(lambda *x: np.concatenate(x)[: self.num_runs], *hosted)
        state = codec.unflatten_data(states.flatten(resume.states))
        return jax.tree.map(np.asarray, self.program.policy_params(state))


def _run_chunks(
    batches: _Batches,
    on_chunk: Callable[[Chunk], bool] | None,
    start: float,
) -> float:
    """Run chunks until every period is done or `on_chunk` returns True; return the time
    spent in `on_chunk`.
    """
    first_period, num_periods = batches.done, batches.program.num_periods
    watch_seconds = 0.0  # spent in on_chunk, not counted as run time
    while batches.done < num_periods:
        metrics, evals = batches.run_chunk()
        if on_chunk is None:
            continue
        watch_start = time.perf_counter()
        stop = on_chunk(
            Chunk(
                periods_done=batches.done,
                num_periods=num_periods,
                metrics=metrics,
                evals=evals,
                metrics_so_far=batches.metrics,
                evals_so_far=batches.evals,
                periods_run=batches.done - first_period,
                run_seconds=watch_start - start - watch_seconds,
                states=batches.all_states,
                plan=batches.layout.plan,
            )
        )
        watch_seconds += time.perf_counter() - watch_start
        if stop:
            break
    return watch_seconds


def execute(
    program: TrainProgram,
    keys: jax.Array,
    hparams: Any,
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
        program: a `TrainProgram` (e.g. `make_train_program(config)`).
        keys: typed PRNG keys, shape (num_runs,), the same in every process.
        hparams: the program's hyperparameter pytree; a leaf is a scalar (shared) or has
            shape (num_runs,) (one value per row), the same in every process.
        max_runs_per_device: see `plan_batches`.
        progress: optional callback receiving one-line messages.
        device_bytes: memory per device for the preflight (default: measured).
        program_key: a JSON-able description of `program` (e.g. its full config) that
            names the programs in `program_cache` when JAX's persistent compilation cache
            is on (single process only, `exportable` programs only); a later call with the
            same key and layout loads the traced programs and the memory estimate instead
            of tracing at all. None (default) traces every time.
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
            processes every device of every process; a `single_device` program uses the
            first).

    Returns:
        `Outputs` with every row in order; padding rows dropped.

    Raises:
        ValueError: before compiling, for a bad `periods_per_chunk`, `max_runs_per_device`
            or `runs_per_device`, rows that do not fit the devices' memory, or what the
            program's capabilities do not allow.
    """
    say = progress or (lambda message: None)
    start = time.perf_counter()
    capabilities = program.capabilities
    done = 0 if resume is None else resume.periods_done
    length = chunk_length(program.num_periods - done, periods_per_chunk, on_chunk is not None)
    name = compile.cache_name(program_key, capabilities.exportable)
    bytes_per_run = compile.run_bytes(program, hparams, name)
    _check_capabilities(capabilities, resume)
    if devices is None:
        devices = jax.devices() if jax.process_count() > 1 else jax.local_devices()
    plan = plan_run(
        int(keys.shape[0]),
        bytes_per_run,
        capabilities,
        devices,
        max_runs_per_device=max_runs_per_device,
        runs_per_device=runs_per_device,
        device_bytes=device_bytes,
    )
    say(plan.describe())
    layout = make_layout(plan, devices, keys, hparams, capabilities.single_device)
    codec = StateCodec(program, hparams, layout.impl)
    compiled = compile.compile_programs(program, layout, codec, length, name, resume is None)
    compile_seconds = time.perf_counter() - start

    say(f"compiled in {compile_seconds:.1f} s; running...")
    if on_start is not None:
        on_start()
    start = time.perf_counter()
    offload = _offload(offload_idle_batches, plan, devices[0].platform)
    batches = _Batches(program, layout, compiled, length, offload, resume)
    watch_seconds = _run_chunks(batches, on_chunk, start)
    params = batches.final_params(codec, resume)
    run_seconds = time.perf_counter() - start - watch_seconds
    return Outputs(
        metrics=batches.metrics,
        evals=batches.evals,
        params=params,
        plan=plan,
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
        compiled_bytes_per_run=compiled.compiled_bytes_per_run(plan.runs_per_batch),
        program_cache=compiled.cache_status,
        periods_done=batches.done,
        periods_run=batches.done - done,
        watch_seconds=watch_seconds,
    )
