"""TensorBoard logging of training metrics and evaluations, aggregated over seeds.

Training runs in compiled chunks from a Python loop; after each chunk the loop hands the new
rows (host arrays of shape (num_runs, k)) to a `TensorBoardWriter`, which writes one scalar
per tag and log point with the env step as the global step. `read_scalars` reads the event
files back. Needs the optional `tensorboardX` (`pip install 'purejaxdqn[tensorboard]'`),
imported only when a writer is made or files are read.

Tags: `train/episode_return/{iqm,mean,min,max}`, `train/episode_length/mean`,
`train/loss/mean`, `train/q_value/mean`, `train/epsilon` (mean), `train/episodes` (sum),
`train/<name>/mean` for any other metric but `env_steps` and `updates`,
`eval/return/{iqm,mean,min,max}`, `eval/length/mean`, `perf/env_steps_per_second`; with
`per_seed`, also `seed_<i>/train/episode_return`, `seed_<i>/train/loss`, `seed_<i>/eval/return`.
"""

from __future__ import annotations

import importlib
import math
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from purejaxdqn import program as names
from purejaxdqn.outputs.stats import iqm

_MISSING = "--tensorboard needs tensorboardX: pip install 'purejaxdqn[tensorboard]'"
_SPREAD = ("iqm", "mean", "min", "max")
_REDUCERS: dict[str, Callable[[np.ndarray], Any]] = {
    "iqm": iqm,
    "mean": np.mean,
    "min": np.min,
    "max": np.max,
    "sum": np.sum,
}


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(_MISSING) from err


def _train_tags(name: str) -> list[tuple[str, str]]:
    """(tag, reducer) pairs of one metric."""
    if name == names.EPISODE_RETURN:
        return [(f"train/episode_return/{kind}", kind) for kind in _SPREAD]
    if name == "epsilon":
        return [("train/epsilon", "mean")]
    if name == names.EPISODES:
        return [("train/episodes", "sum")]
    return [(f"train/{name}/mean", "mean")]


class TensorBoardWriter:
    """Writes per-log-point metrics and evaluations of many runs (seeds) to TensorBoard.

    Each scalar is aggregated over runs, ignoring NaN runs ("no value this period"); a
    scalar whose runs are all NaN is skipped, so no NaN is ever written. With
    `per_seed=True` each run's episode return, loss and eval return are written as well,
    under `seed_<i>/...` with `i` zero-padded so the runs sort. Also a context manager.
    """

    def __init__(self, log_dir: str | Path, per_seed: bool = False, flush_secs: int = 10) -> None:
        tensorboardx = _import("tensorboardX")
        self.log_dir = Path(log_dir)
        self.per_seed = per_seed
        self._writer = tensorboardx.SummaryWriter(str(self.log_dir), flush_secs=flush_secs)

    def _scalar(self, tag: str, value: Any, step: int) -> None:
        value = float(value)
        if not math.isnan(value):
            self._writer.add_scalar(tag, value, step)

    def _rows(
        self, rows: Mapping[str, np.ndarray], columns: Iterable[str]
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Host arrays of shape (num_runs, k), checked, and the k global steps."""
        arrays = {name: np.atleast_2d(np.asarray(rows[name])) for name in columns}
        env_steps = arrays[names.ENV_STEPS]
        for name, array in arrays.items():
            if array.shape != env_steps.shape:
                raise ValueError(
                    f"{name!r} has shape {array.shape}: expected (num_runs, k) = "
                    f"{env_steps.shape} like env_steps"
                )
        if not (env_steps == env_steps[:1]).all():
            raise ValueError("env_steps differ across runs: expected one env step per column")
        return arrays, env_steps[0].astype(np.int64)

    def _aggregate(self, array: np.ndarray, tags: list[tuple[str, str]], steps: np.ndarray) -> None:
        values = array.astype(np.float64)
        for column, step in zip(values.T, steps, strict=True):
            present = column[~np.isnan(column)]
            if present.size:
                for tag, kind in tags:
                    self._scalar(tag, _REDUCERS[kind](present), int(step))

    def _seeds(self, array: np.ndarray, tag: str, steps: np.ndarray) -> None:
        width = len(str(max(array.shape[0] - 1, 0)))
        for run, row in enumerate(array):
            for value, step in zip(row, steps, strict=True):
                self._scalar(f"seed_{run:0{width}d}/{tag}", value, int(step))

    def write_metrics(self, metrics: Mapping[str, np.ndarray]) -> None:
        """Write k new log points of training metrics.

        Args:
            metrics: name -> array (num_runs, k); `env_steps` (identical across runs) is the
                global step, `updates` is not written, NaN means no value that period.
        """
        arrays, steps = self._rows(metrics, metrics)
        for name, array in arrays.items():
            if name not in (names.ENV_STEPS, "updates"):
                self._aggregate(array, _train_tags(name), steps)
        if self.per_seed:
            for name in (names.EPISODE_RETURN, "loss"):
                if name in arrays:
                    self._seeds(arrays[name], f"train/{name}", steps)

    def write_evals(self, evals: Mapping[str, np.ndarray]) -> None:
        """Write k new greedy evaluations.

        Args:
            evals: `env_steps`, `return` and `length`, each (num_runs, k); other entries
                (e.g. `episode_returns`, (num_runs, k, episodes)) are not written. An empty
                mapping (a config without evaluations) writes nothing.
        """
        if not evals:
            return
        arrays, steps = self._rows(evals, (names.ENV_STEPS, names.EVAL_RETURN, names.EVAL_LENGTH))
        self._aggregate(
            arrays[names.EVAL_RETURN], [(f"eval/return/{k}", k) for k in _SPREAD], steps
        )
        self._aggregate(arrays[names.EVAL_LENGTH], [("eval/length/mean", "mean")], steps)
        if self.per_seed:
            self._seeds(arrays[names.EVAL_RETURN], "eval/return", steps)

    def write_throughput(self, env_steps: int, env_steps_per_second: float) -> None:
        """Write `perf/env_steps_per_second` at global step `env_steps` (per seed)."""
        self._scalar("perf/env_steps_per_second", env_steps_per_second, int(env_steps))

    def write_text(self, tag: str, text: str) -> None:
        """Write `text` (markdown, e.g. the config) under `tag` at step 0."""
        self._writer.add_text(tag, text, 0)

    def flush(self) -> None:
        """Write everything pending to disk now."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()

    def __enter__(self) -> TensorBoardWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _records(path: Path) -> Iterator[bytes]:
    """Payloads of a TFRecord file: uint64 length, masked crc, payload, masked crc."""
    crc32c = _import("tensorboardX.crc32c").crc32c
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        if len(data) - offset < 12:
            raise ValueError(f"{path}: truncated event file: partial record header at {offset}")
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[offset + 8 : offset + 12])
        crc = crc32c(header)
        if header_crc != ((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF):
            raise ValueError(f"{path}: corrupt event file: bad record length crc at {offset}")
        end = offset + 12 + length + 4
        if end > len(data):
            raise ValueError(
                f"{path}: truncated event file: record at {offset} needs {end - offset} "
                f"bytes, {len(data) - offset} left"
            )
        yield data[offset + 12 : end - 4]
        offset = end


def _value(value: Any) -> float | None:
    """The number in a summary value: `simple_value`, or a scalar numeric tensor."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind != "tensor" or value.tensor.tensor_shape.dim:
        return None
    tensor = value.tensor
    for field in ("float_val", "double_val", "int_val", "int64_val"):
        if len(getattr(tensor, field)):
            return float(getattr(tensor, field)[0])
    dtypes = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 19: np.float16}
    if tensor.tensor_content and tensor.dtype in dtypes:
        return float(np.frombuffer(tensor.tensor_content, dtype=dtypes[tensor.dtype])[0])
    return None


def read_scalars(log_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Read every scalar of every event file under `log_dir` (recursively).

    Args:
        log_dir: a folder written by `TensorBoardWriter` (or any TensorBoard writer).

    Returns:
        tag -> [(step, value), ...] sorted by step (tags sorted); text and other
        non-scalar summaries are left out.

    Raises:
        ValueError: for a truncated or corrupt event file.
        ImportError: without tensorboardX (its protobuf classes decode the events).
    """
    event_pb2 = _import("tensorboardX.proto.event_pb2")
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(log_dir).rglob("*tfevents*")):
        for payload in _records(path):
            event = event_pb2.Event.FromString(payload)
            for value in event.summary.value:
                number = _value(value)
                if number is not None:
                    scalars.setdefault(value.tag, []).append((int(event.step), number))
    return {tag: sorted(points, key=lambda p: p[0]) for tag, points in sorted(scalars.items())}
