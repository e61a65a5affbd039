"""Run one configuration over many seeds, time it, summarise it, and write it to disk.

    experiment = run_experiment(config, num_seeds=8)     # vmapped over 8 keys
    print(format_summary(experiment.summary))
    write_run(experiment, "runs/cartpole")               # config.json, metrics.csv, ...

Compilation and execution are timed separately (`compile_seconds`, `run_seconds`), so
`env_steps_per_second` measures the compiled program only.
"""

from __future__ import annotations

import csv
import functools
import importlib.metadata
import io
import json
import math
import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from purejaxdqn.core import rng
from purejaxdqn.core.config import DQNConfig, HParams, check_hparams
from purejaxdqn.core.loop import NONFINITE_METRIC, TrainProgram, make_train_program
from purejaxdqn.envs import bridge
from purejaxdqn.outputs.policy import save_params
from purejaxdqn.outputs.rundir import (
    RUN_CONFIG_FILE,
    SUMMARY_FILE,
    RunFolder,
    RunRecord,
    new_run_id,
    read_record,
    write_atomic,
    write_record,
)
from purejaxdqn.outputs.stats import iqm
from purejaxdqn.run import program_cache
from purejaxdqn.run.execute import BatchPlan, Chunk, Outputs, Resume, execute

_VERSIONED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "gymnax", "numpy", "purejaxdqn")


@dataclass(frozen=True)
class Experiment:
    """The outcome of `run_experiment`: one config trained over `num_seeds` seeds.

    Attributes:
        config: the configuration every seed ran.
        num_seeds: number of seeds (the leading axis of every array).
        seed: the base seed; seed `i` uses `jax.random.split(jax.random.key(seed),
            num_seeds)[i]`.
        metrics: per-log-point metrics, each of shape (num_seeds, num_log_points).
        evals: greedy evaluations, each (num_seeds, num_evals), except `episode_returns`
            (num_seeds, num_evals, eval_episodes); empty when evaluation is disabled.
        compile_seconds: building the train function, the memory preflight, tracing,
            lowering and compiling the vmapped train function (or loading them from the
            caches).
        run_seconds: executing the compiled function (every batch) until its outputs are
            ready.
        summary: JSON-ready summary, see `summarise`.
        plan: how the seeds were laid out over devices and sequential batches.
        params: the online-network parameters at the end, leaves (num_seeds, ...); None
            for an experiment assembled without them.
        run_id: the run's id (`rundir.new_run_id`), recorded in its folder and checkpoints.
    """

    config: DQNConfig
    num_seeds: int
    seed: int
    metrics: dict[str, np.ndarray]
    evals: dict[str, np.ndarray]
    compile_seconds: float
    run_seconds: float
    summary: dict[str, Any]
    plan: BatchPlan | None = None
    params: Any = None
    run_id: str | None = None


def check_num_seeds(num_seeds: Any) -> int:
    """`num_seeds` as an int, or a ValueError naming it unless it is an integer >= 1."""
    if isinstance(num_seeds, bool) or not isinstance(num_seeds, (int, np.integer)):
        raise ValueError(f"num_seeds={num_seeds!r} is not allowed: must be an integer >= 1")
    if num_seeds < 1:
        raise ValueError(f"num_seeds={num_seeds!r} is not allowed: must be an integer >= 1")
    return int(num_seeds)


def enable_compile_cache(directory: str | Path) -> None:
    """Keep compiled programs in `directory` (JAX's persistent compilation cache).

    Every program is cached however fast it compiled, so a second run of the same config,
    seed count and device set loads its executable from disk instead of compiling it. The
    same works without this call by setting `JAX_COMPILATION_CACHE_DIR` (JAX then caches
    programs that took at least a second to compile).
    """
    jax.config.update("jax_compilation_cache_dir", str(Path(directory).expanduser()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def run_experiment(
    config: DQNConfig,
    num_seeds: int,
    seed: int = 0,
    hparams: HParams | None = None,
    env: Any = None,
    env_params: Any = None,
    *,
    max_runs_per_device: int | str | None = "auto",
    progress: Callable[[str], None] | bool | None = None,
    on_chunk: Callable[[Chunk], bool] | None = None,
    on_start: Callable[[], None] | None = None,
    periods_per_chunk: int | None = None,
    resume: Resume | None = None,
    runs_per_device: int | None = None,
    num_devices: int | None = None,
    run_id: str | None = None,
) -> Experiment:
    """Train `config` on `num_seeds` seeds at once: a vmapped `init` program, then a
    vmapped program run on chunks of log periods (`parallel.execute`).

    The seeds are sharded over every device (`parallel.execute`): on a GPU host over its
    accelerators, on CPU over the cores when `devices.use_all_cpu_cores()` ran at start-up
    (the `purejaxdqn` command does), and over every process's devices after
    `jax.distributed.initialize`. A memory preflight splits them into sequential batches
    when they do not all fit (and on CPU past `max_runs_per_device`). The layout changes
    float rounding, and RL amplifies rounding: with `max_runs_per_device=1` every seed's
    result is exactly its single-run result for any device count and seed count on the
    same kind of machine (`layout_independent` in the summary).

    Args:
        config: the run configuration.
        num_seeds: number of independent seeds, an integer >= 1.
        seed: base seed, an integer in [0, 2**64); the per-seed keys are
            `jax.random.split(rng.seed_key(seed), num_seeds)` (`seed_key` is
            `jax.random.key` below 2**32).
        hparams: traced hyperparameters (default `config.hparams()`, shared by every seed).
            A leaf of shape (num_seeds,) gives each seed its own value. Range-checked like
            `config.hparams(...)`.
        env: optional gymnax-style environment object, passed to `make_train`.
        env_params: its params, passed to `make_train`.
        max_runs_per_device: cap on seeds per device per compiled call (see
            `parallel.plan_batches`): an integer, "auto" or None (memory only).
        progress: True prints progress messages and a progress bar (a line per few log
            points when stderr is not a terminal) to stderr; or a callback receiving the
            one-line messages (e.g. `print`); None/False: silent.
        on_chunk: called after every compiled chunk of log periods with a
            `parallel.Chunk` (progress bars, logging, checkpoints); returning True stops
            the run there. The results are the same bit for bit however it is chunked.
        on_start: called once compiled, before the first step (see `parallel.execute`).
        periods_per_chunk: log periods per compiled call (default: 1 with `on_chunk`,
            else all).
        resume: continue from a `parallel.Resume` (a checkpoint) instead of starting.
        runs_per_device: keep exactly this many seeds per device (a resume keeps its
            run's layout); see `parallel.execute`.
        num_devices: use at most this many local devices (default: all of them).
        run_id: the run's id (default: a new one).

    Returns:
        The `Experiment`, with outputs and final parameters as numpy arrays (the rest of
        the final runner state is dropped).

    Raises:
        ValueError: for a bad `num_seeds`, `seed` or `hparams`, anything `make_train`
            rejects, or a run too large for the device; all raised before compiling.
    """
    num_seeds = check_num_seeds(num_seeds)
    seed = rng.check_seed(seed)
    hparams = config.hparams() if hparams is None else hparams
    check_hparams(hparams, num_seeds)
    say, on_chunk, display = _progress(progress, on_chunk, config)

    program, program_key = lazy_program(config, env, env_params)
    say(f"compiling {num_seeds} seed(s) of {config.env_id}...")
    try:
        outputs = execute(
            program,
            jax.random.split(rng.seed_key(seed), num_seeds),
            hparams,
            max_runs_per_device=max_runs_per_device,
            progress=say,
            program_key=program_key,
            on_chunk=on_chunk,
            on_start=on_start,
            periods_per_chunk=periods_per_chunk,
            resume=resume,
            runs_per_device=runs_per_device,
            devices=None if num_devices is None else jax.local_devices()[:num_devices],
        )
    finally:
        if display is not None:
            display.close()
    return experiment_from(config, num_seeds, seed, outputs, run_id=run_id or new_run_id())


def _progress(
    progress: Callable[[str], None] | bool | None,
    on_chunk: Callable[[Chunk], bool] | None,
    config: DQNConfig,
) -> tuple[Callable[[str], None], Callable[[Chunk], bool] | None, Any]:
    """The message callback, the chunk callback and the progress display (or None) that
    `run_experiment`'s `progress` asks for; `progress=True` shows the display after every
    chunk and then calls `on_chunk`.
    """
    if progress is not True:
        return progress or (lambda message: None), on_chunk, None
    from purejaxdqn.run.monitor import ProgressDisplay

    display = ProgressDisplay(config.env_id, config.total_timesteps)

    def show_then_watch(chunk: Chunk) -> bool:
        display(chunk)
        return bool(on_chunk(chunk)) if on_chunk is not None else False

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    return say, show_then_watch, display


def lazy_program(
    config: DQNConfig, env: Any = None, env_params: Any = None
) -> tuple[TrainProgram, dict[str, Any] | None]:
    """`make_train_program(config, env, env_params)`, built on first use, and its key.

    A run whose traced programs are in `program_cache` never uses it, so it neither builds
    the environment (importing its suite) nor traces. The key is the full config, or None
    for a custom environment object, which has no stable name.
    """
    built = functools.cache(lambda: make_train_program(config, env, env_params))
    program = TrainProgram(
        init=lambda key, hp: built().init(key, hp),
        run_periods=lambda state, hp, periods: built().run_periods(state, hp, periods),
        train=lambda key, hp: built().train(key, hp),
        num_periods=config.num_log_points,
        eval_every=config.eval_every,
        bridged=env is None and bridge.is_bridged(config.env_id),
    )
    # a bridged program holds live simulators: nothing to export or load in another process
    cacheable = env is None and env_params is None and not program.bridged
    return program, {"config": config.to_dict()} if cacheable else None


def built_before(config: DQNConfig) -> bool:
    """Whether `program_cache` holds this config's memory estimate, i.e. an earlier run
    built (and so checked) its train function. False when the cache is off.
    """
    if program_cache.directory() is None:
        return False
    _, program_key = lazy_program(config)
    return program_cache.load_estimate(program_cache.key(program_key)) is not None


def experiment_from(
    config: DQNConfig,
    num_seeds: int,
    seed: int,
    outputs: Outputs,
    rows: slice = slice(None),
    compile_seconds: float | None = None,
    run_id: str | None = None,
) -> Experiment:
    """The `Experiment` of `rows` of `outputs` (`num_seeds` runs of `config`), summarised.

    `compile_seconds` defaults to `outputs.compile_seconds`; the run time is the whole
    `execute` call's. The summary records `program_cache` ("hit", "miss" or None).
    """
    metrics = {name: value[rows] for name, value in outputs.metrics.items()}
    evals = {name: value[rows] for name, value in outputs.evals.items()}
    if compile_seconds is None:
        compile_seconds = outputs.compile_seconds
    summary = summarise(
        config,
        num_seeds,
        seed,
        metrics,
        evals,
        compile_seconds,
        outputs.run_seconds,
        env_steps_run=outputs.periods_run
        * config.iterations_per_log_point
        * config.steps_per_iteration,
    )
    summary["run_id"] = run_id
    summary["layout"] = layout_of(outputs.plan)
    summary["program_cache"] = outputs.program_cache
    summary["watch_seconds"] = outputs.watch_seconds
    return Experiment(
        config=config,
        num_seeds=num_seeds,
        seed=seed,
        metrics=metrics,
        evals=evals,
        compile_seconds=compile_seconds,
        run_seconds=outputs.run_seconds,
        summary=summary,
        plan=outputs.plan,
        params=(
            None if outputs.params is None else jax.tree.map(lambda x: x[rows], outputs.params)
        ),
        run_id=run_id,
    )


def layout_of(plan: BatchPlan) -> dict[str, Any]:
    """The JSON-ready device layout of a run: devices, runs per device, batches."""
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


def _stat(function: Callable[[np.ndarray], float], values: np.ndarray) -> float | None:
    return json_scalar(np.float64(function(values))) if values.size else None


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


def summarise(
    config: DQNConfig,
    num_seeds: int,
    seed: int,
    metrics: Mapping[str, np.ndarray],
    evals: Mapping[str, np.ndarray],
    compile_seconds: float,
    run_seconds: float,
    env_steps_run: int | None = None,
) -> dict[str, Any]:
    """The JSON-ready summary of a run.

    The final return of a seed is the mean return of its last greedy evaluation
    (`final_return_source` "greedy_eval"); with evaluation disabled it is the mean return of
    the training episodes that finished in the last log period ("training_episodes"), which
    is None when none finished. IQM, mean and fraction solved are over all seeds, so a
    missing (None) return makes the IQM and mean None and counts as not solved.
    `solved_env_steps` gives, per seed, the env step of the first greedy evaluation whose
    mean return reached the threshold (None: never, or no threshold or evaluation).
    `diverged_env_steps` gives, per seed, the env step at which its loss, Q-values or
    parameters first became non-finite (None: never); a diverged seed's final return is
    None (its policy acts on NaN Q-values), so divergence is never averaged away.

    Args:
        config: the run configuration.
        num_seeds: number of seeds.
        seed: the base seed.
        metrics: per-log-point metrics, each (num_seeds, log points done).
        evals: greedy evaluations, each (num_seeds, num_evals[, eval_episodes]); may be empty.
        compile_seconds: compile time of the vmapped train function.
        run_seconds: run time of the compiled function.
        env_steps_run: env steps per seed that `run_seconds` covers (default: all done).

    Returns:
        A dictionary of plain Python values (floats, ints, strings, lists, None).
    """
    has_evals = bool(evals) and np.shape(evals["return"])[-1] > 0
    if has_evals:
        final = np.asarray(evals["return"])[:, -1]
        source = "greedy_eval"
    else:
        final = np.asarray(metrics["episode_return"])[:, -1]
        source = "training_episodes"
    diverged = diverged_steps(metrics)
    final_returns = [
        None if diverged and diverged[k] is not None else json_scalar(v)
        for k, v in enumerate(final)
    ]
    as_floats = np.array([math.nan if v is None else v for v in final_returns], np.float64)
    threshold = config.solved_threshold
    fraction_solved = None
    solved_steps: list[int | None] | None = None
    if threshold is not None:
        fraction_solved = float(np.mean(as_floats >= threshold))  # NaN compares False
        if has_evals:
            solved_steps = first_solved_steps(evals, threshold)
    env_steps_done = int(np.asarray(metrics["env_steps"])[0, -1])
    if env_steps_run is None:
        env_steps_run = env_steps_done
    steps_per_second = num_seeds * env_steps_run / run_seconds if run_seconds else None
    return {
        "env_id": config.env_id,
        "num_seeds": int(num_seeds),
        "seed": int(seed),
        "total_timesteps": int(config.total_timesteps),
        "env_steps_done": env_steps_done,
        "stopped_early": env_steps_done < config.total_timesteps,
        "final_return_source": source,
        "final_eval_returns": final_returns,
        "iqm_final_eval_return": _stat(iqm, as_floats),
        "mean_final_eval_return": _stat(np.mean, as_floats),
        "solved_threshold": None if threshold is None else float(threshold),
        "fraction_solved": fraction_solved,
        "solved_env_steps": solved_steps,
        "diverged_env_steps": diverged,
        "num_diverged": None if diverged is None else sum(s is not None for s in diverged),
        "compile_seconds": float(compile_seconds),
        "run_seconds": float(run_seconds),
        "env_steps_per_second": steps_per_second,
        "device": device_description(),
        "versions": package_versions(),
    }


def diverged_steps(metrics: Mapping[str, np.ndarray]) -> list[int | None] | None:
    """Per seed, the env step at which its loss, Q-values or parameters first became
    non-finite (None: never); None for metrics without the divergence flag.
    """
    flags = metrics.get(NONFINITE_METRIC)
    if flags is None:
        return None
    steps = []
    for row in np.asarray(flags):
        hits = row[row >= 0]
        steps.append(int(hits[0]) if hits.size else None)
    return steps


def first_solved_steps(evals: Mapping[str, np.ndarray], threshold: float) -> list[int | None]:
    """Per seed, the env step of the first evaluation whose mean return is at least
    `threshold`, or None if none is.
    """
    reached = np.asarray(evals["return"]) >= threshold
    steps = np.asarray(evals["env_steps"])
    return [
        int(steps[seed, np.argmax(row)]) if row.any() else None for seed, row in enumerate(reached)
    ]


def _csv_cell(value: Any) -> Any:
    value = json_scalar(value)
    return "" if value is None else value


def _long_csv(columns: list[str], data: Mapping[str, np.ndarray], num_seeds: int) -> str:
    """One row per (seed, index along axis 1) of the (num_seeds, n) arrays in `data`."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["seed", *columns])
    if data:
        length = np.shape(data[columns[0]])[1]
        for seed in range(num_seeds):
            for index in range(length):
                writer.writerow([seed, *(_csv_cell(data[c][seed, index]) for c in columns)])
    return text.getvalue()


def _json_text(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


class ResultsNotWritten(OSError):
    """Some result files could not be written (a full disk, permissions).

    Attributes:
        folder: the run folder.
        saved: names of the files that were written.
        failed: (name, error) of every file that was not.
    """

    def __init__(self, folder: Path, saved: list[str], failed: list[tuple[str, OSError]]):
        self.folder, self.saved, self.failed = folder, saved, failed
        reasons = "; ".join(f"{folder / name}: {error.strerror or error}" for name, error in failed)
        super().__init__(
            f"could not write {reasons}; saved: {', '.join(saved) or 'nothing'} in {folder}"
        )


def write_run(experiment: Experiment, output_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write one run folder: config.json, metrics.csv, evals.csv, summary.json and
    (when the experiment has them) params.msgpack.

    - `config.json`: `config.to_dict()` plus `num_seeds`, `seed` and `run_id` (kept as it
      is when the folder already records this run, e.g. with the command's run options).
    - `metrics.csv`: one row per (seed, log point): `seed, env_steps`, then every other
      metric in name order.
    - `evals.csv`: one row per (seed, evaluation): `seed, env_steps, return, length`
      (only the header when evaluation is disabled).
    - `summary.json`: `experiment.summary`.
    - `params.msgpack`: every seed's final online-network parameters
      (`policy.load_policy` reads them back).

    `seed` in the CSVs is the seed's index, 0 to num_seeds - 1. NaN is an empty cell in the
    CSVs and null in JSON. The small files are written first, each atomically (a reader
    never sees half a file), and a failure on one does not stop the others.

    Args:
        experiment: what `run_experiment` returned.
        output_dir: the folder, created if needed. It must be new, empty, or this run's own
            (its config.json has `experiment.run_id`). It is locked while being written.
        overwrite: delete another run's files (results, checkpoints) there first.

    Returns:
        The folder, as a `Path`.

    Raises:
        rundir.FolderError: the folder holds another run, or is in use by another process.
        ResultsNotWritten: some files could not be written; the message names them, why,
            and what was saved.
    """
    folder = Path(output_dir)
    own = _records_run(folder, experiment.run_id)
    with RunFolder(folder, overwrite=overwrite, resume=own, what="output folder"):
        return write_run_files(experiment, folder, keep_config=own)


def _records_run(folder: Path, run_id: str | None) -> bool:
    """Whether `folder`'s config.json records the run `run_id` (None never matches)."""
    if run_id is None or not (folder / RUN_CONFIG_FILE).is_file():
        return False
    try:
        return read_record(folder).run_id == run_id
    except (OSError, ValueError):
        return False


def write_run_files(experiment: Experiment, folder: Path, keep_config: bool = False) -> Path:
    """Write `write_run`'s files into `folder`, which the caller owns (`rundir.RunFolder`);
    `keep_config` leaves an existing config.json (this run's own) as it is.
    """
    metric_columns = [
        "env_steps",
        *sorted(k for k in experiment.metrics if k not in ("env_steps", NONFINITE_METRIC)),
    ]
    record = RunRecord(experiment.config, experiment.num_seeds, experiment.seed, experiment.run_id)
    writers: list[tuple[str, Callable[[], Any]]] = [
        (
            "metrics.csv",
            lambda: _long_csv(metric_columns, experiment.metrics, experiment.num_seeds),
        ),
        (
            "evals.csv",
            lambda: _long_csv(
                ["env_steps", "return", "length"], experiment.evals, experiment.num_seeds
            ),
        ),
        (SUMMARY_FILE, lambda: _json_text(experiment.summary)),
    ]
    saved, failed = [], []
    if not keep_config:
        writers.insert(0, (RUN_CONFIG_FILE, lambda: write_record(folder, record)))
    if experiment.params is not None:
        writers.append(("params.msgpack", lambda: save_params(folder, experiment.params)))
    for name, write in writers:
        try:
            content = write()
            if isinstance(content, str):
                write_atomic(folder / name, content)
        except OSError as error:
            failed.append((name, error))
        else:
            saved.append(name)
    if failed:
        raise ResultsNotWritten(folder, saved, failed)
    return folder


def _number(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def format_diverged(summary: Mapping[str, Any]) -> str:
    """'none', or which seeds diverged and at which env step (from a summary)."""
    steps = summary.get("diverged_env_steps")
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


def format_summary(summary: Mapping[str, Any]) -> str:
    """A short human-readable table of a summary made by `summarise`."""
    source = {
        "greedy_eval": "last greedy evaluation",
        "training_episodes": "training episodes of the last log period",
    }.get(summary.get("final_return_source"), "final return")
    threshold = summary.get("solved_threshold")
    if threshold is None:
        solved = "no threshold set"
    else:
        num_solved = round(summary["fraction_solved"] * summary["num_seeds"])
        solved = (
            f"{num_solved}/{summary['num_seeds']} seeds "
            f"({summary['fraction_solved']:.0%}) reach {threshold:g}"
        )
        first = [s for s in summary.get("solved_env_steps") or [] if s is not None]
        if first:
            solved += f"; first reached at {min(first):,}-{max(first):,} env steps"
    steps = f"{summary['total_timesteps']:,}"
    if summary.get("stopped_early"):
        steps = f"{summary['env_steps_done']:,} of {steps} (stopped early)"
    rows = [
        ("env", summary["env_id"]),
        ("seeds", f"{summary['num_seeds']} (base seed {summary['seed']})"),
        ("env steps per seed", steps),
        (
            "final return",
            f"IQM {_number(summary['iqm_final_eval_return'])}, "
            f"mean {_number(summary['mean_final_eval_return'])} ({source})",
        ),
        ("solved", solved),
        ("diverged", format_diverged(summary)),
        ("compile", f"{summary['compile_seconds']:.1f} s"),
        ("run", f"{summary['run_seconds']:.1f} s"),
        ("throughput", f"{_number(summary['env_steps_per_second'], 0)} env steps/s"),
        ("device", summary["device"]),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
