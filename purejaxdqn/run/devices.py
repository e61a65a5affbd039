"""Spreading seeds over local devices: every CPU core as a JAX device, and seed sharding.

XLA:CPU runs one device's program on one stream, so the small matrix products of a DQN
update leave most cores idle. Exposing each core as a CPU device and sharding the seed
axis over them (`jax.jit` with a `NamedSharding`, no `pmap`) runs the seeds' streams side
by side; on GPU/TPU the same sharding spreads seeds over the accelerators.

    from purejaxdqn.run.devices import use_all_cpu_cores
    use_all_cpu_cores()          # first thing, before JAX creates its backends
"""

from __future__ import annotations

import os
import warnings

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

SEED_AXIS = "seed"


def available_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def use_all_cpu_cores() -> bool:
    """Expose one JAX CPU device per available core, if the user has not chosen a count.

    Leaves things alone when `JAX_NUM_CPU_DEVICES` or XLA's
    `--xla_force_host_platform_device_count` is already set. Must run before JAX
    initialises its backends (before the first array is created); later it warns and does
    nothing.

    Returns:
        True if the device count was set by this call.
    """
    if "JAX_NUM_CPU_DEVICES" in os.environ:
        return False
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return False
    try:
        jax.config.update("jax_num_cpu_devices", available_cores())
    except RuntimeError:  # backends already initialised: too late to change
        if available_cores() > len(jax.devices("cpu")):
            warnings.warn(
                "use_all_cpu_cores() came after JAX started (an array was already made), so "
                f"it keeps {len(jax.devices('cpu'))} CPU device(s) for {available_cores()} "
                "cores: call it first thing, or set JAX_NUM_CPU_DEVICES",
                RuntimeWarning,
                stacklevel=2,
            )
        return False
    return True


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Join a multi-process JAX run (`jax.distributed.initialize`); call before using JAX.

    Arguments left as None are read from `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`
    and `JAX_PROCESS_ID` when set, else detected by JAX (SLURM, Open MPI, TPU pods).
    Afterwards `jax.devices()` lists every process's devices, and `execute.execute`
    shards runs over all of them.

    Raises:
        ValueError: if the layout is incomplete or JAX cannot join it, with JAX's reason.
    """
    if coordinator_address is None:
        coordinator_address = os.environ.get("JAX_COORDINATOR_ADDRESS")
    for name, value in (("JAX_NUM_PROCESSES", num_processes), ("JAX_PROCESS_ID", process_id)):
        text = os.environ.get(name)
        if value is None and text is not None and not text.strip().isdigit():
            raise ValueError(f"{name}={text!r} is not allowed: must be an integer >= 0")
    if num_processes is None and "JAX_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and "JAX_PROCESS_ID" in os.environ:
        process_id = int(os.environ["JAX_PROCESS_ID"])
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"could not join the multi-process run (coordinator_address="
            f"{coordinator_address!r}, num_processes={num_processes!r}, process_id="
            f"{process_id!r}): {error}"
        ) from error


def seed_sharding(num_seeds: int) -> NamedSharding:
    """Sharding of a leading seed axis over the most local devices that divide `num_seeds`.

    With 16 seeds on 2 devices each device runs 8 seeds; with 3 seeds on 2 devices one
    device runs all 3 (uneven splits are not padded).
    """
    devices = jax.local_devices()
    count = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
    return row_sharding(devices[:count])


def row_sharding(devices: list[jax.Device]) -> NamedSharding:
    """A leading (seed) axis split evenly over `devices`, on a one-axis mesh."""
    return NamedSharding(Mesh(np.array(devices), (SEED_AXIS,)), PartitionSpec(SEED_AXIS))
