"""The summary of a run: built once from its outputs, typed, and turned into JSON only when
written (`Summary.to_json`) or shown (`format_summary`).

Missing numbers are NaN in the `Summary` (a seed whose return is unknown, an IQM over a
missing seed) and null in JSON; nothing edits a summary after it is built.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from purejaxdqn import program as names
from purejaxdqn.outputs.stats import iqm

_VERSIONED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "gymnax", "numpy", "purejaxdqn")


@dataclass(frozen=True, eq=False)
class Summary:
    """What a run did and how well, per seed and over seeds.

    Attributes:
        env_id, num_seeds, seed, total_timesteps: the run.
        env_steps_done: env steps per seed done (fewer than `total_timesteps` when stopped).
        final_return_source: "greedy_eval" (the mean return of each seed's last greedy
            evaluation) or "training_episodes" (of the training episodes that ended in
            the last log period, when evaluation is off).
        final_eval_returns: (num_seeds,) final returns (float32 as computed); NaN for a seed
            with no finished episode or a diverged seed (its policy acts on NaN Q-values).
        solved_threshold: the return that counts as solved, or None.
        solved_env_steps: per seed, the env step of the first evaluation that reached the
            threshold (None: never); None without a threshold or evaluation.
        diverged_env_steps: per seed, the env step at which its loss, Q-values or
            parameters first went non-finite (None: never); None when not tracked.
        compile_seconds, run_seconds, watch_seconds: building and compiling; running;
            progress, logging and checkpoints between chunks.
        env_steps_run: env steps per seed that `run_seconds` covers.
        device, versions: the machine and the package versions.
        run_id: the run's id; layout: its device layout (`layout_of`); program_cache:
            "hit", "miss" or None.
        timing: "this run", or "whole sweep" when the timings are a sweep's.
        stop_reason: why a run stopped before its last step (e.g. a signal), or None.
    """

    env_id: str
    num_seeds: int
    seed: int
    total_timesteps: int
    env_steps_done: int
    final_return_source: str
    final_eval_returns: np.ndarray
    solved_threshold: float | None
    solved_env_steps: tuple[int | None, ...] | None
    diverged_env_steps: tuple[int | None, ...] | None
    compile_seconds: float
    run_seconds: float
    env_steps_run: int
    device: str
    versions: Mapping[str, str | None]
    run_id: str | None = None
    layout: Mapping[str, Any] | None = None
    program_cache: str | None = None
    watch_seconds: float = 0.0
    timing: str = "this run"
    stop_reason: str | None = None

    @property
    def stopped_early(self) -> bool:
        """Whether the run stopped before `total_timesteps`."""
        return self.env_steps_done < self.total_timesteps

    @property
    def iqm_final_eval_return(self) -> float:
        """IQM of the final returns over seeds; NaN if any seed's is missing."""
        return _over_seeds(iqm, self.final_returns())

    @property
    def mean_final_eval_return(self) -> float:
        """Mean of the final returns over seeds; NaN if any seed's is missing."""
        return _over_seeds(np.mean, self.final_returns())

    @property
    def fraction_solved(self) -> float | None:
        """Seeds whose final return reaches the threshold (a missing one does not), or None
        without a threshold.
        """
        if self.solved_threshold is None:
            return None
        return float(np.mean(self.final_returns() >= self.solved_threshold))

    def final_returns(self) -> np.ndarray:
        """The final returns as written (shortest decimals), as float64 with NaN: what the
        statistics over seeds are computed from, so they agree with summary.json's values.
        """
        written = [json_scalar(value) for value in self.final_eval_returns]
        return np.array([math.nan if v is None else v for v in written], np.float64)

    @property
    def num_diverged(self) -> int | None:
        """Seeds that went non-finite, or None when not tracked."""
        if self.diverged_env_steps is None:
            return None
        return sum(step is not None for step in self.diverged_env_steps)

    @property
    def env_steps_per_second(self) -> float | None:
        """Aggregate env steps per second (every seed) over `run_seconds`."""
        if not self.run_seconds:
            return None
        return self.num_seeds * self.env_steps_run / self.run_seconds

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dictionary written as summary.json (NaN and inf become null)."""
        data = {
            "env_id": self.env_id,
            "num_seeds": self.num_seeds,
            "seed": self.seed,
            "total_timesteps": self.total_timesteps,
            "env_steps_done": self.env_steps_done,
            "stopped_early": self.stopped_early,
            "final_return_source": self.final_return_source,
            "final_eval_returns": [json_scalar(v) for v in self.final_eval_returns],
            "iqm_final_eval_return": json_scalar(np.float64(self.iqm_final_eval_return)),
            "mean_final_eval_return": json_scalar(np.float64(self.mean_final_eval_return)),
            "solved_threshold": self.solved_threshold,
            "fraction_solved": self.fraction_solved,
            "solved_env_steps": _listed(self.solved_env_steps),
            "diverged_env_steps": _listed(self.diverged_env_steps),
            "num_diverged": self.num_diverged,
            "compile_seconds": self.compile_seconds,
            "run_seconds": self.run_seconds,
            "env_steps_per_second": self.env_steps_per_second,
            "device": self.device,
            "versions": dict(self.versions),
            "run_id": self.run_id,
            "layout": None if self.layout is None else dict(self.layout),
            "program_cache": self.program_cache,
            "watch_seconds": self.watch_seconds,
            "timing": self.timing,
            "stop_reason": self.stop_reason,
        }
        return data

    def replace(self, **changes: Any) -> Summary:
        """A new summary with `changes` (the summary itself never changes)."""
        return dataclasses.replace(self, **changes)


def _over_seeds(function: Any, values: np.ndarray) -> float:
    if not values.size:
        return math.nan
    return float(function(values))


def _listed(values: Sequence[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)


def summarise(
    config: Any,
    num_seeds: int,
    seed: int,
    metrics: Mapping[str, np.ndarray],
    evals: Mapping[str, np.ndarray],
    compile_seconds: float,
    run_seconds: float,
    env_steps_run: int | None = None,
    **context: Any,
) -> Summary:
    """The `Summary` of a run from its per-seed outputs.

    The final return of a seed is the mean return of its last greedy evaluation, or with
    evaluation disabled the mean return of the training episodes that finished in the last
    log period (NaN when none finished). A diverged seed's final return is NaN, so
    divergence is never averaged away: the IQM and mean over seeds are NaN then.

    Args:
        config: the run's config (`env_id`, `total_timesteps`, `solved_threshold` are read).
        num_seeds: number of seeds.
        seed: the base seed.
        metrics: per-log-point metrics, each (num_seeds, log points done).
        evals: greedy evaluations, each (num_seeds, num_evals[, eval_episodes]); may be empty.
        compile_seconds: compile time of the program.
        run_seconds: run time of the compiled program.
        env_steps_run: env steps per seed that `run_seconds` covers (default: all done).
        **context: further `Summary` fields (`run_id`, `layout`, `program_cache`,
            `watch_seconds`, `timing`, `stop_reason`).
    """
    has_evals = bool(evals) and np.shape(evals[names.EVAL_RETURN])[-1] > 0
    if has_evals:
        final = np.asarray(evals[names.EVAL_RETURN])[:, -1]
    else:
        final = np.asarray(metrics[names.EPISODE_RETURN])[:, -1]
    final = np.array(final, dtype=np.result_type(final, np.float32))  # a copy, kept float32
    diverged = diverged_steps(metrics)
    if diverged is not None:
        final[[step is not None for step in diverged]] = np.nan
    final[~np.isfinite(final)] = np.nan
    threshold = config.solved_threshold
    solved = None
    if threshold is not None and has_evals:
        solved = first_solved_steps(evals, threshold)
    done = int(np.asarray(metrics[names.ENV_STEPS])[0, -1])
    return Summary(
        env_id=config.env_id,
        num_seeds=int(num_seeds),
        seed=int(seed),
        total_timesteps=int(config.total_timesteps),
        env_steps_done=done,
        final_return_source="greedy_eval" if has_evals else "training_episodes",
        final_eval_returns=final,
        solved_threshold=None if threshold is None else float(threshold),
        solved_env_steps=solved,
        diverged_env_steps=diverged,
        compile_seconds=float(compile_seconds),
        run_seconds=float(run_seconds),
        env_steps_run=done if env_steps_run is None else int(env_steps_run),
        device=device_description(),
        versions=package_versions(),
        **context,
    )


def diverged_steps(metrics: Mapping[str, np.ndarray]) -> tuple[int | None, ...] | None:
    """Per seed, the env step at which its loss, Q-values or parameters first became
    non-finite (None: never); None for metrics without the divergence flag.
    """
    flags = metrics.get(names.NONFINITE_STEP)
    if flags is None:
        return None
    steps = []
    for row in np.asarray(flags):
        hits = row[row >= 0]
        steps.append(int(hits[0]) if hits.size else None)
    return tuple(steps)


def first_solved_steps(evals: Mapping[str, np.ndarray], threshold: float) -> tuple[int | None, ...]:
    """Per seed, the env step of the first evaluation whose mean return is at least
    `threshold`, or None if none is.
    """
    reached = np.asarray(evals[names.EVAL_RETURN]) >= threshold
    steps = np.asarray(evals[names.ENV_STEPS])
    return tuple(
        int(steps[seed, np.argmax(row)]) if row.any() else None for seed, row in enumerate(reached)
    )


def json_scalar(value: Any) -> Any:
    """A JSON/CSV-ready Python scalar: int, shortest-repr float, or None for NaN/inf."""
    value = np.asarray(value)
    if value.dtype == bool:
        return bool(value)
    if np.issubdtype(value.dtype, np.integer):
        return int(value)
    if not np.isfinite(value):
        return None
    if value.dtype == np.float32:
        # The shortest decimal that reads back as the same float32, not its float64 expansion
        # (0.1 rather than 0.10000000149011612).
        return float(str(value[()]))
    return float(value)


def device_description() -> str:
    """The JAX backend and device kind, e.g. 'cpu (cpu) x1' or 'gpu (NVIDIA H100) x1'."""
    devices = jax.devices()
    first = devices[0]
    return f"{first.platform} ({first.device_kind}) x{len(devices)}"


def package_versions(packages: Sequence[str] = _VERSIONED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of Python and `packages` (None for a missing package)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in packages:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def layout_of(plan: Any) -> dict[str, Any]:
    """The JSON-ready device layout of a run (a `BatchPlan`): devices, runs per device,
    batches.
    """
    return {
        "num_devices": plan.num_devices,
        "runs_per_device": plan.runs_per_device,
        "num_batches": plan.num_batches,
        "estimated_bytes_per_run": plan.bytes_per_run,
        "processes": jax.process_count(),
        "device_kind": jax.devices()[0].device_kind,
        # one run per device: each seed's result is its single-run result, whatever the
        # device and seed counts (on the same kind of machine)
        "layout_independent": plan.runs_per_device == 1,
    }


def _number(value: float | None, digits: int = 1) -> str:
    missing = value is None or not math.isfinite(value)
    return "n/a" if missing else f"{value:,.{digits}f}"


def format_diverged(summary: Summary | Mapping[str, Any]) -> str:
    """'none', or which seeds diverged and at which env step."""
    steps = _get(summary, "diverged_env_steps")
    if steps is None:
        return "not tracked"
    hits = [(seed, step) for seed, step in enumerate(steps) if step is not None]
    if not hits:
        return "none (every seed's loss, Q-values and parameters stayed finite)"
    listed = ", ".join(f"seed {seed} at {step:,}" for seed, step in hits[:8])
    more = f", ... ({len(hits) - 8} more)" if len(hits) > 8 else ""
    return (
        f"{len(hits)}/{len(steps)} seeds went non-finite: {listed}{more} env steps "
        "(their returns count as missing)"
    )


def _get(summary: Summary | Mapping[str, Any], name: str) -> Any:
    """A field of a `Summary`, or a key of a summary.json dictionary."""
    return summary.get(name) if isinstance(summary, Mapping) else getattr(summary, name)


def format_summary(summary: Summary | Mapping[str, Any]) -> str:
    """A short human-readable table of a `Summary` (or of a summary.json dictionary)."""
    get = lambda name: _get(summary, name)  # noqa: E731
    source = {
        "greedy_eval": "last greedy evaluation",
        "training_episodes": "training episodes of the last log period",
    }.get(get("final_return_source"), "final return")
    threshold = get("solved_threshold")
    if threshold is None:
        solved = "no threshold set"
    else:
        fraction, seeds = get("fraction_solved"), get("num_seeds")
        solved = f"{round(fraction * seeds)}/{seeds} seeds ({fraction:.0%}) reach {threshold:g}"
        first = [s for s in get("solved_env_steps") or [] if s is not None]
        if first:
            solved += f"; first reached at {min(first):,}-{max(first):,} env steps"
    steps = f"{get('total_timesteps'):,}"
    if get("stopped_early"):
        steps = f"{get('env_steps_done'):,} of {steps} (stopped early)"
    rows = [
        ("env", get("env_id")),
        ("seeds", f"{get('num_seeds')} (base seed {get('seed')})"),
        ("env steps per seed", steps),
        (
            "final return",
            f"IQM {_number(get('iqm_final_eval_return'))}, "
            f"mean {_number(get('mean_final_eval_return'))} ({source})",
        ),
        ("solved", solved),
        ("diverged", format_diverged(summary)),
        ("compile", f"{get('compile_seconds'):.1f} s"),
        ("run", f"{get('run_seconds'):.1f} s"),
        ("throughput", f"{_number(get('env_steps_per_second'), 0)} env steps/s"),
        ("device", get("device")),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
