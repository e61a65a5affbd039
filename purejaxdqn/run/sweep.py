"""Sweeps: every seed of every hyperparameter setting in one compiled program.

    from purejaxdqn.run import sweep
    result = sweep.run(config, {"learning_rate": [1e-4, 3e-4, 1e-3], "gamma": [0.99, 0.995]},
                       num_seeds=16)
    print(sweep.format_ranking(result.ranking))
    sweep.write_sweep(result, "runs/my-sweep")

Only traced hyperparameters (`config.hparam_names()`; for DQN the fields of `HParams`) can
be swept in one program; static fields (network sizes, buffer size, ...) change the program
and need one sweep each. Any algorithm's config works (`purejaxdqn.program.AlgorithmConfig`):
its hyperparameter pytree may have any structure.

Rows are laid out setting-major (row = setting * num_seeds + seed) and every setting uses
the same seed keys, `jax.random.split(jax.random.key(seed), num_seeds)`: setting k's
seeds are exactly the runs `run_experiment(config.replace(**settings[k]), num_seeds, seed)`
would make, and settings are compared on common random numbers. The rows are sharded over
every device of every process and batched by the memory preflight (`run.execute`).
Settings are ranked by the IQM of the seeds' final greedy returns, with a 95% percentile
bootstrap confidence interval over seeds.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from purejaxdqn.checks import check_int
from purejaxdqn.core import rng
from purejaxdqn.outputs.report import json_scalar
from purejaxdqn.outputs.results import ResultsNotWritten, write_run_files
from purejaxdqn.outputs.rundir import RunFolder, new_run_id, write_atomic
from purejaxdqn.outputs.stats import bootstrap_ci
from purejaxdqn.program import AlgorithmConfig
from purejaxdqn.run.execute import BatchPlan, Chunk, execute
from purejaxdqn.run.experiment import Experiment, check_num_seeds, experiment_from, lazy_program

Setting = dict[str, float]
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000


class Range(NamedTuple):
    """A closed interval to sample from.

    `log=None` means log-uniform for the scale hyperparameters the config names in
    `LOG_SCALE_HPARAMS` (for DQN: learning rate, Huber delta, gradient-norm clip) and
    uniform for the others.
    """

    low: float
    high: float
    log: bool | None = None


def _default_config(config: AlgorithmConfig | None) -> AlgorithmConfig:
    """`config`, or the default algorithm's default config (DQN's)."""
    if config is not None:
        return config
    from purejaxdqn.core.config import DQNConfig

    return DQNConfig()


def _check_name(name: str, config: AlgorithmConfig) -> None:
    names = list(config.hparam_names())
    if name not in names:
        raise ValueError(
            f"{name!r} cannot be swept: only traced hyperparameters can share one compiled "
            f"program; they are {names}"
        )


def grid(
    values: Mapping[str, Sequence[float]], config: AlgorithmConfig | None = None
) -> list[Setting]:
    """Every combination of `values` (the last name varies fastest).

    Example: `grid({"learning_rate": [1e-4, 1e-3], "gamma": [0.99, 0.995]})` gives 4
    settings. An empty mapping gives one empty setting (the config as it is). Names are
    checked against `config.hparam_names()` (default: DQN's).

    Raises:
        ValueError: for a name that is not a traced hyperparameter or an empty list.
    """
    config = _default_config(config)
    for name, options in values.items():
        _check_name(name, config)
        if len(options) == 0:
            raise ValueError(f"{name} has no values to sweep: give at least one")
    names = list(values)
    return [
        {name: float(value) for name, value in zip(names, combo, strict=True)}
        for combo in itertools.product(*(values[name] for name in names))
    ]


def sample(
    space: Mapping[str, Range | Sequence[float] | float],
    num_samples: int,
    seed: int = 0,
    config: AlgorithmConfig | None = None,
) -> list[Setting]:
    """`num_samples` random settings (random search).

    Each entry of `space` is a `Range` (sampled uniformly, or log-uniformly, see `Range`),
    a list of values (one picked uniformly) or a single number (fixed). Names are checked
    against `config.hparam_names()` (default: DQN's).

    Raises:
        ValueError: for a name that is not a traced hyperparameter, a bad range or count.
    """
    check_int("num_samples", num_samples, 1)
    config = _default_config(config)
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for name, spec in space.items():
        _check_name(name, config)
        if isinstance(spec, Range):
            log = name in config.LOG_SCALE_HPARAMS if spec.log is None else spec.log
            if not spec.low <= spec.high or (log and spec.low <= 0):
                raise ValueError(
                    f"{name} range {spec.low:g}:{spec.high:g} is not allowed: need low <= high"
                    + (" and low > 0 (sampled log-uniformly)" if log else "")
                )
            if log:
                draws = np.exp(rng.uniform(np.log(spec.low), np.log(spec.high), num_samples))
            else:
                draws = rng.uniform(spec.low, spec.high, num_samples)
        elif isinstance(spec, (int, float, np.floating, np.integer)):
            draws = np.full(num_samples, float(spec))
        else:
            if len(spec) == 0:
                raise ValueError(f"{name} has no values to sample from: give at least one")
            draws = rng.choice(np.asarray(spec, dtype=np.float64), num_samples)
        columns[name] = draws
    return [
        {name: float(column[i]) for name, column in columns.items()} for i in range(num_samples)
    ]


@dataclass(frozen=True)
class SweepResult:
    """The outcome of `run`.

    Attributes:
        config: the base configuration.
        settings: the hyperparameter settings, in order.
        experiments: one `Experiment` per setting (its config has the setting applied);
            their timings are the whole sweep's.
        ranking: one row per setting, best IQM first (see `rank`).
        plan: how the rows were laid out over devices and batches.
        compile_seconds: building, preflight and compiling, once for the whole sweep.
        run_seconds: running every row of every setting.
    """

    config: AlgorithmConfig
    settings: list[Setting]
    experiments: list[Experiment]
    ranking: list[dict[str, Any]]
    plan: BatchPlan
    compile_seconds: float
    run_seconds: float


def _settings_of(
    hparam_grid: Mapping[str, Sequence[float]] | Sequence[Setting], config: AlgorithmConfig
) -> list[Setting]:
    if isinstance(hparam_grid, Mapping):
        return grid(hparam_grid, config)
    settings = [dict(setting) for setting in hparam_grid]
    if not settings:
        raise ValueError("the sweep has no settings: give at least one")
    for setting in settings:
        for name in setting:
            _check_name(name, config)
    return settings


def setting_name(index: int, setting: Setting) -> str:
    """The folder name of a setting, e.g. '003-learning_rate=0.0003-gamma=0.99'."""
    parts = [f"{index:03d}", *(f"{name}={value:.4g}" for name, value in setting.items())]
    return "-".join(parts)


def run(
    config: AlgorithmConfig,
    hparam_grid: Mapping[str, Sequence[float]] | Sequence[Setting],
    num_seeds: int,
    seed: int = 0,
    *,
    env: Any = None,
    env_params: Any = None,
    max_runs_per_device: int | str | None = "auto",
    progress: Callable[[str], None] | None = None,
    on_chunk: Callable[[Chunk], bool] | None = None,
    on_start: Callable[[], None] | None = None,
) -> SweepResult:
    """Train every seed of every setting of `hparam_grid` in one compiled program.

    Args:
        config: the base configuration (any algorithm's); each setting overrides its
            traced hyperparameters.
        hparam_grid: a mapping name -> values (every combination, see `grid`) or a list of
            settings (e.g. from `sample`).
        num_seeds: seeds per setting, >= 1.
        seed: base seed; every setting uses the keys `split(key(seed), num_seeds)`.
        env: optional gymnax-style environment object, passed to `make_train`.
        env_params: its params.
        max_runs_per_device: see `run.plan.plan_batches`.
        progress: optional callback receiving one-line progress messages.
        on_chunk: called after every compiled chunk of log periods with a
            `run.execute.Chunk` over every row (setting-major); returning True stops there.
        on_start: called once compiled, before the first step (see `run.execute`).

    Returns:
        The `SweepResult`; the same in every process of a multi-host run.

    Raises:
        ValueError: for an unknown or static hyperparameter, a value out of range, a bad
            seed count, or rows too large for a device; all before compiling.
    """
    num_seeds = check_num_seeds(num_seeds)
    seed = rng.check_seed(seed)
    settings = _settings_of(hparam_grid, config)
    per_setting = [config.hparams(**setting) for setting in settings]  # range checks
    configs = [config.replace(**setting) for setting in settings]
    say = progress or (lambda message: None)

    # every leaf gets one value per row (setting-major), swept or not
    hparams = jax.tree.map(
        lambda *leaves: np.repeat(np.stack([np.asarray(leaf) for leaf in leaves]), num_seeds),
        *per_setting,
    )
    seed_keys = jax.random.key_data(jax.random.split(rng.seed_key(seed), num_seeds))
    keys = jax.random.wrap_key_data(np.tile(np.asarray(seed_keys), (len(settings), 1)))

    program, program_key = lazy_program(config, env, env_params)
    say(f"compiling {len(settings)} setting(s) x {num_seeds} seed(s) of {config.env_id}...")
    outputs = execute(
        program,
        keys,
        hparams,
        max_runs_per_device=max_runs_per_device,
        progress=say,
        program_key=program_key,
        on_chunk=on_chunk,
        on_start=on_start,
    )

    sweep_id = new_run_id()
    experiments = []
    for index, setting_config in enumerate(configs):
        rows = slice(index * num_seeds, (index + 1) * num_seeds)
        run_id = f"{sweep_id}-{index:03d}"
        experiments.append(
            experiment_from(
                setting_config, num_seeds, seed, outputs, rows, run_id=run_id, timing="whole sweep"
            )
        )
    return SweepResult(
        config=config,
        settings=settings,
        experiments=experiments,
        ranking=rank(settings, experiments),
        plan=outputs.plan,
        compile_seconds=outputs.compile_seconds,
        run_seconds=outputs.run_seconds,
    )


def rank(settings: Sequence[Setting], experiments: Sequence[Experiment]) -> list[dict[str, Any]]:
    """One row per setting, sorted by IQM of final greedy return (best first, None last),
    with every setting that has a diverged seed after all the others.

    Each row: `rank`, `setting` (index), `folder`, the setting's values,
    `iqm_final_eval_return` with its 95% bootstrap interval `ci95_low`/`ci95_high`
    (2000 resamples of the seeds), `mean_final_eval_return`, `fraction_solved`,
    `num_seeds`, `num_diverged` (seeds whose loss, Q-values or parameters went non-finite;
    their returns count as missing).
    """
    rows = []
    for index, (setting, experiment) in enumerate(zip(settings, experiments, strict=True)):
        summary = experiment.summary.to_json()  # the ranking is written as JSON and CSV
        finals = experiment.summary.final_returns()
        low, high = bootstrap_ci(finals, confidence=CONFIDENCE, resamples=BOOTSTRAP_RESAMPLES)
        rows.append(
            {
                "setting": index,
                "folder": setting_name(index, setting),
                **setting,
                "iqm_final_eval_return": summary["iqm_final_eval_return"],
                "ci95_low": json_scalar(np.float64(low)),
                "ci95_high": json_scalar(np.float64(high)),
                "mean_final_eval_return": summary["mean_final_eval_return"],
                "fraction_solved": summary["fraction_solved"],
                "num_seeds": summary["num_seeds"],
                "num_diverged": summary["num_diverged"] or 0,
            }
        )
    rows.sort(
        key=lambda row: (
            row["num_diverged"] > 0,
            row["iqm_final_eval_return"] is None,
            -(row["iqm_final_eval_return"] or 0),
        )
    )
    return [{"rank": place + 1, **row} for place, row in enumerate(rows)]


def write_sweep(result: SweepResult, output_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write one run folder per setting (as `results.write_run` does) and the ranking.

    Files: `<output_dir>/<setting_name>/` (config.json with the setting applied,
    metrics.csv, evals.csv, summary.json, params.msgpack) for every setting, and
    `sweep_summary.csv` (the ranking rows) and `sweep_summary.json` (the ranking plus the
    sweep's config, seeds, timings, device layout and versions). Every file is written
    atomically, and a failure on one does not stop the others.

    Args:
        result: what `run` returned.
        output_dir: the sweep folder: new, empty, or (`overwrite`) one whose old results
            are deleted first; locked while being written.
        overwrite: delete another run's or sweep's files there first.

    Returns:
        The sweep folder.

    Raises:
        rundir.FolderError: the folder holds another run, or is in use by another process.
        ResultsNotWritten: some files could not be written (the message says which).
    """
    folder = Path(output_dir)
    saved: list[str] = []
    failed: list[tuple[str, OSError]] = []
    with RunFolder(folder, overwrite=overwrite, what="output folder"):
        for index, (setting, experiment) in enumerate(
            zip(result.settings, result.experiments, strict=True)
        ):
            name = setting_name(index, setting)
            try:
                (folder / name).mkdir(exist_ok=True)
                write_run_files(experiment, folder / name)
                saved.append(name)
            except ResultsNotWritten as error:
                failed += [(f"{name}/{file}", reason) for file, reason in error.failed]
            except OSError as error:
                failed.append((name, error))
        for name, text in (
            ("sweep_summary.csv", _ranking_csv(result.ranking)),
            ("sweep_summary.json", json.dumps(_sweep_summary(result), indent=2, allow_nan=False)),
        ):
            try:
                write_atomic(folder / name, text if name.endswith(".csv") else text + "\n")
                saved.append(name)
            except OSError as error:
                failed.append((name, error))
    if failed:
        raise ResultsNotWritten(folder, saved, failed)
    return folder


def _ranking_csv(ranking: Sequence[Mapping[str, Any]]) -> str:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(ranking[0]))
    writer.writeheader()
    for row in ranking:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return text.getvalue()


def _sweep_summary(result: SweepResult) -> dict[str, Any]:
    first = result.experiments[0]
    total_rows = len(result.settings) * first.num_seeds
    steps = first.summary.env_steps_done
    return {
        "env_id": result.config.env_id,
        "num_settings": len(result.settings),
        "num_seeds": first.num_seeds,
        "seed": first.seed,
        "swept": sorted({name for setting in result.settings for name in setting}),
        "confidence": CONFIDENCE,
        "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
        "env_steps_done": steps,
        "stopped_early": first.summary.stopped_early,
        "num_diverged_settings": sum(row["num_diverged"] > 0 for row in result.ranking),
        "compile_seconds": result.compile_seconds,
        "run_seconds": result.run_seconds,
        "env_steps_per_second": total_rows * steps / result.run_seconds,
        "layout": first.summary.layout,
        "device": first.summary.device,
        "versions": dict(first.summary.versions),
        "base_config": result.config.to_dict(),
        "ranking": result.ranking,
    }


_RANKING_COLUMNS = frozenset(
    {
        "rank",
        "setting",
        "folder",
        "iqm_final_eval_return",
        "ci95_low",
        "ci95_high",
        "mean_final_eval_return",
        "fraction_solved",
        "num_seeds",
        "num_diverged",
    }
)


def format_ranking(ranking: Sequence[Mapping[str, Any]]) -> str:
    """The ranking as an aligned text table, best setting first."""
    swept = [key for key in ranking[0] if key not in _RANKING_COLUMNS]
    header = ["rank", *swept, "IQM final return", "95% CI", "mean", "solved", "diverged"]

    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    lines = [header]
    for row in ranking:
        solved, diverged = row["fraction_solved"], row.get("num_diverged", 0)
        lines.append(
            [
                str(row["rank"]),
                *(f"{row[name]:.4g}" for name in swept),
                number(row["iqm_final_eval_return"]),
                f"[{number(row['ci95_low'])}, {number(row['ci95_high'])}]",
                number(row["mean_final_eval_return"]),
                "-" if solved is None else f"{solved:.0%}",
                f"DIVERGED {diverged}/{row['num_seeds']}" if diverged else "-",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    )
