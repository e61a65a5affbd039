"""Which XLA:CPU workarounds a program uses: one explicit choice per backend.

purejaxdqn was tuned on CPU, where three standard paths are slow and have replacements:

- `fast_threefry`: the training loop draws random numbers with `rng.FAST_THREEFRY` (the
  same numbers; XLA:CPU lowers JAX's own threefry as a loop);
- `patch_conv`: the CNNs compute their convolutions as patch matmuls (`PatchConv`, the
  same parameters; XLA:CPU runs a convolution vmapped over seeds as a slow grouped one);
- `cpu_run_caps`: `max_runs_per_device="auto"` caps the runs one CPU device takes per call
  (`CPU_RUNS_PER_DEVICE`, `CPU_BYTES_PER_DEVICE`); elsewhere only memory caps them.

On CPU all three are on; on GPU and TPU all are off (JAX's threefry, `nn.Conv`, memory
only), unless a measurement says otherwise. The platform asked about is the *target*: the
one `target(...)` sets (e.g. while tracing a program to export for another platform), else
`jax.default_backend()`. Tracing happens once per jitted function and argument shapes, so
trace a fresh function under each target.

Override, for A/B measurements: the environment variable `PUREJAXDQN_WORKAROUNDS` (read at
every call) or the `override` argument of `workarounds` / `target`, one of

- `auto` (or empty): the per-platform choice above;
- `cpu`: all on, on any platform; `standard` (or `none`): all off, on any platform;
- comma-separated `name=0|1` items changing single fields of the per-platform choice,
  e.g. `patch_conv=0` or `fast_threefry=1,cpu_run_caps=0`.

An explicit `override` argument wins over the environment variable.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass

import jax

ENV_VAR = "PUREJAXDQN_WORKAROUNDS"
ACCELERATOR_PLATFORMS = ("gpu", "cuda", "rocm", "tpu")


@dataclass(frozen=True)
class Workarounds:
    """The XLA:CPU workarounds a program uses (see the module docstring).

    Attributes:
        fast_threefry: draw the loop's random numbers with `rng.FAST_THREEFRY`.
        patch_conv: compute the CNNs' convolutions as `PatchConv` patch matmuls.
        cpu_run_caps: cap the runs per device of `max_runs_per_device="auto"`.
    """

    fast_threefry: bool
    patch_conv: bool
    cpu_run_caps: bool


CPU_PATHS = Workarounds(fast_threefry=True, patch_conv=True, cpu_run_caps=True)
STANDARD_PATHS = Workarounds(fast_threefry=False, patch_conv=False, cpu_run_caps=False)
_FIELDS = tuple(field.name for field in dataclasses.fields(Workarounds))

# (platform, override) set by `target`; None: jax.default_backend() and the env variable
_TARGET: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "purejaxdqn_backend_target", default=(None, None)
)


def _check_platform(platform: str) -> str:
    name = platform.lower()
    if name != "cpu" and name not in ACCELERATOR_PLATFORMS:
        raise ValueError(
            f"platform={platform!r} is not allowed: must be one of "
            f"{['cpu', *ACCELERATOR_PLATFORMS]}"
        )
    return name


@contextlib.contextmanager
def target(platform: str | None = None, override: str | None = None) -> Iterator[None]:
    """Within the block, `workarounds()` answers for `platform` (and `override`).

    Use it while tracing a program for another platform, e.g.
    `with target("cuda"): jax.export.export(jax.jit(fn), platforms=("cuda",))(...)`.

    Args:
        platform: 'cpu', 'gpu', 'cuda', 'rocm' or 'tpu'; None keeps the enclosing target.
        override: an override string (module docstring); None keeps the enclosing one.

    Raises:
        ValueError: an unknown platform or a malformed override.
    """
    outer_platform, outer_override = _TARGET.get()
    if platform is not None:
        platform = _check_platform(platform)
    if override is not None:
        apply_override(CPU_PATHS, override)  # check it now, not at the first trace
    token = _TARGET.set(
        (platform or outer_platform, outer_override if override is None else override)
    )
    try:
        yield
    finally:
        _TARGET.reset(token)


def target_platform() -> str:
    """The platform programs are traced for: the innermost `target`'s, else JAX's default."""
    platform = _TARGET.get()[0]
    return platform if platform is not None else jax.default_backend()


def apply_override(choice: Workarounds, override: str) -> Workarounds:
    """`choice` changed by an override string (see the module docstring).

    Raises:
        ValueError: naming the item that is not `auto`, `cpu`, `standard`, `none` or a
            `name=0|1` item with a field name of `Workarounds`.
    """
    text = override.strip().lower()
    if text in ("", "auto"):
        return choice
    if text == "cpu":
        return CPU_PATHS
    if text in ("standard", "none"):
        return STANDARD_PATHS
    changes = {}
    for item in text.split(","):
        name, _, value = item.strip().partition("=")
        if name not in _FIELDS or value not in ("0", "1"):
            raise ValueError(
                f"{ENV_VAR}={override!r} is not allowed: item {item.strip()!r} must be "
                f"name=0 or name=1 with a name in {list(_FIELDS)} (or the whole value "
                "'auto', 'cpu', 'standard' or 'none')"
            )
        changes[name] = value == "1"
    return dataclasses.replace(choice, **changes)


def workarounds(platform: str | None = None, override: str | None = None) -> Workarounds:
    """The workarounds for `platform`, then the override applied.

    Args:
        platform: a platform name (e.g. a device's `.platform`): all on for 'cpu', all off
            for any other ('gpu', 'cuda', 'rocm', 'tpu', ...); default `target_platform()`.
        override: an override string (module docstring); default the innermost `target`'s,
            else the `PUREJAXDQN_WORKAROUNDS` environment variable.

    Raises:
        ValueError: a malformed override.
    """
    platform = platform if platform is not None else target_platform()
    if override is None:
        override = _TARGET.get()[1]
    if override is None:
        override = os.environ.get(ENV_VAR, "")
    choice = CPU_PATHS if platform.lower() == "cpu" else STANDARD_PATHS
    return apply_override(choice, override)
