"""The results folder of a run: config.json, metrics.csv, evals.csv, summary.json and
params.msgpack, each written atomically, none lost to a failure of another.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from purejaxdqn import program as names
from purejaxdqn.outputs.policy import save_params
from purejaxdqn.outputs.report import json_scalar
from purejaxdqn.outputs.rundir import (
    RUN_CONFIG_FILE,
    SUMMARY_FILE,
    RunFolder,
    RunRecord,
    read_record,
    write_atomic,
    write_record,
)

if TYPE_CHECKING:
    from purejaxdqn.run.experiment import Experiment

EVAL_COLUMNS = (names.ENV_STEPS, names.EVAL_RETURN, names.EVAL_LENGTH)


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
    - `summary.json`: `experiment.summary.to_json()`.
    - `params.msgpack`: every seed's final policy parameters (`policy.load_policy` reads
      them back).

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
    others = (names.ENV_STEPS, names.NONFINITE_STEP)
    metric_columns = [names.ENV_STEPS, *sorted(k for k in experiment.metrics if k not in others)]
    record = RunRecord(experiment.config, experiment.num_seeds, experiment.seed, experiment.run_id)
    num_seeds = experiment.num_seeds
    writers: list[tuple[str, Callable[[], Any]]] = [
        ("metrics.csv", lambda: long_csv(metric_columns, experiment.metrics, num_seeds)),
        (
            "evals.csv",
            lambda: long_csv(eval_columns(experiment.evals), experiment.evals, num_seeds),
        ),
        (SUMMARY_FILE, lambda: json_text(experiment.summary.to_json())),
    ]
    if not keep_config:
        writers.insert(0, (RUN_CONFIG_FILE, lambda: write_record(folder, record)))
    if experiment.params is not None:
        writers.append(("params.msgpack", lambda: save_params(folder, experiment.params)))
    saved, failed = [], []
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


def eval_columns(evals: Mapping[str, np.ndarray]) -> list[str]:
    """The columns of evals.csv: `env_steps`, `return` and `length` (those a program
    reports), then its other per-evaluation scalars in name order; arrays per episode
    (`episode_returns`) are left out. Without evaluation, the standard three.
    """
    if not evals:
        return list(EVAL_COLUMNS)
    scalars = [name for name, value in evals.items() if np.ndim(value) == 2]
    first = [name for name in EVAL_COLUMNS if name in scalars]
    return first + sorted(name for name in scalars if name not in first)


def _csv_cell(value: Any) -> Any:
    value = json_scalar(value)
    return "" if value is None else value


def long_csv(columns: list[str], data: Mapping[str, np.ndarray], num_seeds: int) -> str:
    """CSV text with one row per (seed, index along axis 1) of the (num_seeds, n) arrays in
    `data`: `seed`, then `columns`; NaN and inf are empty cells.
    """
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["seed", *columns])
    if data:
        length = np.shape(data[columns[0]])[1]
        for seed in range(num_seeds):
            for index in range(length):
                writer.writerow([seed, *(_csv_cell(data[c][seed, index]) for c in columns)])
    return text.getvalue()


def json_text(data: Mapping[str, Any]) -> str:
    """`data` as indented JSON text with a final newline; NaN is refused (ValueError)."""
    return json.dumps(data, indent=2, allow_nan=False) + "\n"
