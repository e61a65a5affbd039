"""Run one configuration (any algorithm's) over many seeds, time it and summarise it.

    experiment = run_experiment(config, num_seeds=8)     # vmapped over 8 keys
    print(format_summary(experiment.summary))            # outputs.report
    write_run(experiment, "runs/cartpole")               # outputs.results: config.json, ...

Compilation and execution are timed separately (`compile_seconds`, `run_seconds`), so
`env_steps_per_second` measures the compiled program only. The summary is built once, when
the run ends (`outputs.report.summarise`); writing it is `outputs.results`'s job.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from purejaxdqn.checks import check_int
from purejaxdqn.core import rng
from purejaxdqn.outputs.report import (  # noqa: F401 (re-exported: README imports them here)
    Summary,
    format_diverged,
    format_summary,
    layout_of,
    summarise,
)
from purejaxdqn.outputs.results import ResultsNotWritten, write_run  # noqa: F401 (re-exported)
from purejaxdqn.outputs.rundir import new_run_id
from purejaxdqn.program import AlgorithmConfig, TrainProgram
from purejaxdqn.run import program_cache
from purejaxdqn.run.execute import BatchPlan, Chunk, Outputs, Resume, execute


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
        summary: the typed summary (`report.Summary`; `summary.to_json()` is summary.json).
        plan: how the seeds were laid out over devices and sequential batches.
        params: the online-network parameters at the end, leaves (num_seeds, ...); None
            for an experiment assembled without them.
        run_id: the run's id (`rundir.new_run_id`), recorded in its folder and checkpoints.
    """

    config: AlgorithmConfig
    num_seeds: int
    seed: int
    metrics: dict[str, np.ndarray]
    evals: dict[str, np.ndarray]
    compile_seconds: float
    run_seconds: float
    summary: Summary
    plan: BatchPlan | None = None
    params: Any = None
    run_id: str | None = None


def check_num_seeds(num_seeds: Any) -> int:
    """`num_seeds` as an int, or a ValueError naming it unless it is an integer >= 1."""
    return check_int("num_seeds", num_seeds, 1)


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
    config: AlgorithmConfig,
    num_seeds: int,
    seed: int = 0,
    hparams: Any = None,
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
    stop_reason: Callable[[], str | None] | None = None,
) -> Experiment:
    """Train `config` on `num_seeds` seeds at once: a vmapped `init` program, then a
    vmapped program run on chunks of log periods (`run.execute`).

    The seeds are sharded over every device (`run.execute`): on a GPU host over its
    accelerators, on CPU over the cores when `devices.use_all_cpu_cores()` ran at start-up
    (the `purejaxdqn` command does), and over every process's devices after
    `jax.distributed.initialize`. A memory preflight splits them into sequential batches
    when they do not all fit (and on CPU past `max_runs_per_device`). The layout changes
    float rounding, and RL amplifies rounding: with `max_runs_per_device=1` every seed's
    result is exactly its single-run result for any device count and seed count on the
    same kind of machine (`layout_independent` in the summary).

    Args:
        config: the run configuration (`DQNConfig`, or any algorithm's config: see
            `purejaxdqn.program.AlgorithmConfig`).
        num_seeds: number of independent seeds, an integer >= 1.
        seed: base seed, an integer in [0, 2**64); the per-seed keys are
            `jax.random.split(rng.seed_key(seed), num_seeds)` (`seed_key` is
            `jax.random.key` below 2**32).
        hparams: traced hyperparameters, a pytree (default `config.hparams()`, shared by
            every seed). A leaf of shape (num_seeds,) gives each seed its own value.
            Range-checked by `config.check_hparams`.
        env: optional gymnax-style environment object, passed to `make_train`.
        env_params: its params, passed to `make_train`.
        max_runs_per_device: cap on seeds per device per compiled call (see
            `run.plan.plan_batches`): an integer, "auto" or None (memory only).
        progress: True prints progress messages and a progress bar (a line per few log
            points when stderr is not a terminal) to stderr; or a callback receiving the
            one-line messages (e.g. `print`); None/False: silent.
        on_chunk: called after every compiled chunk of log periods with a
            `run.execute.Chunk` (progress bars, logging, checkpoints); returning True stops
            the run there. The results are the same bit for bit however it is chunked.
        on_start: called once compiled, before the first step (see `run.execute`).
        periods_per_chunk: log periods per compiled call (default: 1 with `on_chunk`,
            else all).
        resume: continue from a `run.execute.Resume` (a checkpoint) instead of starting.
        runs_per_device: keep exactly this many seeds per device (a resume keeps its
            run's layout); see `run.execute`.
        num_devices: use at most this many local devices (default: all of them).
        run_id: the run's id (default: a new one).
        stop_reason: called once the run is over; what it returns (why the run stopped
            early, e.g. a signal's name, or None) goes into the summary.

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
    config.check_hparams(hparams, num_seeds)
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
    reason = None if stop_reason is None else stop_reason()
    run_id = run_id or new_run_id()
    return experiment_from(config, num_seeds, seed, outputs, run_id=run_id, stop_reason=reason)


def _progress(
    progress: Callable[[str], None] | bool | None,
    on_chunk: Callable[[Chunk], bool] | None,
    config: AlgorithmConfig,
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
    config: AlgorithmConfig, env: Any = None, env_params: Any = None
) -> tuple[TrainProgram, dict[str, Any] | None]:
    """`config.make_program(env, env_params)`, built on first use, and its key.

    A run whose traced programs are in `program_cache` never uses it, so it neither builds
    the environment (importing its suite) nor traces: what the runtime asks before that
    (capabilities, periods) comes from the config. The key is the full config, or None for
    a custom environment object, which has no stable name, or for a program that cannot
    be exported (e.g. one holding live simulators).
    """

    @functools.cache
    def built() -> TrainProgram:
        # built when first traced: arrays the builder makes must be constants, not tracers
        with jax.ensure_compile_time_eval():
            return config.make_program(env, env_params)

    capabilities = config.program_capabilities(env)
    program = TrainProgram(
        init=lambda key, hp: built().init(key, hp),
        run_periods=lambda state, hp, periods: built().run_periods(state, hp, periods),
        train=lambda key, hp: built().train(key, hp),
        num_periods=config.num_log_points,
        eval_every=config.eval_every,
        capabilities=capabilities,
        policy_params=lambda state: built().policy_params(state),
    )
    cacheable = env is None and env_params is None and capabilities.exportable
    return program, {"config": config.to_dict()} if cacheable else None


def built_before(config: AlgorithmConfig) -> bool:
    """Whether `program_cache` holds this config's memory estimate, i.e. an earlier run
    built (and so checked) its train function. False when the cache is off.
    """
    if program_cache.directory() is None:
        return False
    _, program_key = lazy_program(config)
    return program_cache.load_estimate(program_cache.key(program_key)) is not None


def experiment_from(
    config: AlgorithmConfig,
    num_seeds: int,
    seed: int,
    outputs: Outputs,
    rows: slice = slice(None),
    compile_seconds: float | None = None,
    run_id: str | None = None,
    **context: Any,
) -> Experiment:
    """The `Experiment` of `rows` of `outputs` (`num_seeds` runs of `config`), with its
    summary built once (`report.summarise`).

    `compile_seconds` defaults to `outputs.compile_seconds`; the run time is the whole
    `execute` call's. `context` adds summary fields (`timing`, `stop_reason`).
    """
    metrics = {name: value[rows] for name, value in outputs.metrics.items()}
    evals = {name: value[rows] for name, value in outputs.evals.items()}
    if compile_seconds is None:
        compile_seconds = outputs.compile_seconds
    steps_per_period = config.total_timesteps // config.num_log_points
    summary = summarise(
        config,
        num_seeds,
        seed,
        metrics,
        evals,
        compile_seconds,
        outputs.run_seconds,
        env_steps_run=outputs.periods_run * steps_per_period,
        run_id=run_id,
        layout=layout_of(outputs.plan),
        program_cache=outputs.program_cache,
        watch_seconds=outputs.watch_seconds,
        **context,
    )
    params = outputs.params
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
        params=None if params is None else jax.tree.map(lambda x: x[rows], params),
        run_id=run_id,
    )
