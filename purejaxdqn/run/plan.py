"""How many rows run where: the memory preflight, rows per device, batches and chunks.

A row is one run (one seed of one setting). Before anything compiles, `plan_batches` lays
`num_runs` rows out over the devices from the device memory one row needs, estimated from
shapes alone (`estimate_run_bytes`):

- **Devices.** One process: at most one device per row. Several processes: every device
  of every process.
- **Padding.** Row counts that do not divide evenly are padded with copies of row 0; the
  copies are dropped before anything is returned, so they are never reported.
- **Batches.** When all rows do not fit, they run as equal sequential batches of the same
  compiled program; when one row per device does not fit, a `ValueError` says so.
- **Batches on CPU.** XLA:CPU runs a device's rows as one stream, and past a few rows per
  device aggregate throughput falls (benchmarks/README.md has the measurements), so
  `max_runs_per_device="auto"` caps CPU batches at `CPU_RUNS_PER_DEVICE` rows per device,
  and at fewer when the rows' estimated memory passes `CPU_BYTES_PER_DEVICE`, and runs the
  rest as sequential batches; on accelerators it only caps by memory.

`chunk_length` checks how many log periods each compiled call runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax

from purejaxdqn import backend
from purejaxdqn.checks import check_int
from purejaxdqn.program import Capabilities
from purejaxdqn.run import memory

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


def estimate_run_bytes(train: Callable[[jax.Array, Any], Any], hparams: Any) -> int:
    """Estimated device memory of one row, from shapes alone (no compiling).

    `memory.run_bytes`: twice the runner state (the loop carry and its update), the
    outputs, and the temporaries of the largest loop body or branch (an update, a greedy
    evaluation over `eval_episodes` envs), from the jaxpr of `train`. It bounds XLA's own
    figure (`compiled.memory_analysis()` of the chunk program, per row) on CPU
    (benchmarks/README.md compares the two).

    Args:
        train: `train(key, hp) -> (state, metrics, evals)` of a `TrainProgram`.
        hparams: its hyperparameter pytree (one value per row or shared; the first row's
            values are used).

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
    """`value` if it is an integer >= 1, "auto" or None, else a ValueError naming it."""
    if isinstance(value, str) and value == "auto":
        return value
    return check_int(
        "max_runs_per_device",
        value,
        1,
        or_none=True,
        allowed="an integer >= 1, 'auto' (a measured cap on CPU, memory only on "
        "accelerators) or None (memory only)",
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
    if cap == "auto" and backend.workarounds(devices[0].platform).cpu_run_caps:
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


def plan_run(
    num_runs: int,
    bytes_per_run: int,
    capabilities: Capabilities,
    devices: list[jax.Device],
    *,
    max_runs_per_device: int | str | None,
    runs_per_device: int | None,
    device_bytes: int | None,
) -> BatchPlan:
    """`plan_batches` for a program: a `single_device` program gets the first device and
    every row in one call; `runs_per_device` (a resumed run's layout) is kept exactly.

    Raises:
        ValueError: as `plan_batches`; `runs_per_device` cannot be kept on these devices;
            a `single_device` program's rows do not fit in one call.
    """
    single = capabilities.single_device
    plan = plan_batches(
        num_runs,
        bytes_per_run,
        max_runs_per_device=runs_per_device or (None if single else max_runs_per_device),
        devices=devices[:1] if single else devices,
        device_bytes=device_bytes,
    )
    if runs_per_device is not None and plan.runs_per_device != runs_per_device:
        raise ValueError(
            f"runs_per_device={runs_per_device} cannot be kept here: {plan.describe()} (fewer "
            "devices or less memory than the run had); its results would differ in rounding"
        )
    if single and plan.num_batches > 1:
        raise ValueError(
            f"{num_runs} runs do not fit in one device's memory together (~"
            f"{bytes_per_run / 2**30:.2f} GiB each), and this program (e.g. a bridged "
            "environment's simulator pool) must run them in one call: use fewer seeds or a "
            "smaller buffer_size"
        )
    return plan


def chunk_length(periods_left: int, periods_per_chunk: int | None, chunked: bool) -> int:
    """Log periods per compiled call: `periods_per_chunk`, else 1 when `chunked` (a
    callback watches every period), else every period left in one call.

    Raises:
        ValueError: `periods_per_chunk` is not a positive divisor of `periods_left`.
    """
    length = periods_per_chunk or (1 if chunked else periods_left)
    if length < 1 or periods_left % length:
        raise ValueError(
            f"periods_per_chunk={periods_per_chunk} is not allowed: must be a positive "
            f"divisor of the {periods_left} log period(s) left"
        )
    return length
