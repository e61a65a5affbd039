"""TensorBoardWriter: tags, aggregated values, per-seed scalars, read-back and errors."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from purejaxdqn.outputs.stats import iqm
from purejaxdqn.outputs.tensorboard import TensorBoardWriter, read_scalars

NAN = np.nan
STEPS = np.array([100, 200, 300, 400])
# 3 runs x 4 log points; column 0 has all runs NaN, column 2 one NaN run.
RETURNS = np.array(
    [
        [NAN, 10.0, 30.0, 9.0],
        [NAN, 20.0, NAN, 15.0],
        [NAN, 60.0, 50.0, 3.0],
    ]
)
LOSS = np.array([[NAN, 1.0, 0.5, 0.25], [NAN, 2.0, 1.5, 0.75], [NAN, 3.0, 2.5, 1.25]])


def metrics(offset: int = 0) -> dict[str, np.ndarray]:
    return {
        "env_steps": np.tile(STEPS + offset, (3, 1)).astype(np.int32),
        "episode_return": RETURNS.astype(np.float32),
        "episode_length": RETURNS.astype(np.float32) * 2,
        "episodes": np.array([[0, 1, 2, 3], [0, 4, 0, 1], [0, 2, 2, 2]], dtype=np.int32),
        "loss": LOSS.astype(np.float32),
        "q_value": LOSS.astype(np.float32) + 5,
        "epsilon": np.tile([1.0, 0.6, 0.2, 0.05], (3, 1)).astype(np.float32),
        "updates": np.tile([0, 10, 10, 10], (3, 1)).astype(np.int32),
        "grad_norm": LOSS.astype(np.float32) * 3,
    }


EVALS = {
    "env_steps": np.tile([200, 400], (3, 1)),
    "return": np.array([[10.0, 500.0], [20.0, 450.0], [90.0, 100.0]], dtype=np.float32),
    "length": np.array([[10.0, 500.0], [20.0, 450.0], [90.0, 100.0]], dtype=np.float32),
    "episode_returns": np.zeros((3, 2, 4), dtype=np.float32),
}
SPREAD = {"iqm": iqm, "mean": np.mean, "min": np.min, "max": np.max}


def expected(values: np.ndarray, steps, reduce) -> list[tuple[int, float]]:
    """(step, reduce(non-NaN runs)) per column, all-NaN columns left out."""
    out = []
    for column, step in zip(values.T, steps, strict=True):
        present = column[~np.isnan(column)]
        if present.size:
            out.append((int(step), float(reduce(present))))
    return out


def assert_points(actual, wanted) -> None:
    assert [step for step, _ in actual] == [step for step, _ in wanted]
    np.testing.assert_allclose([v for _, v in actual], [v for _, v in wanted], rtol=1e-6)


@pytest.fixture
def written(tmp_path):
    pytest.importorskip("tensorboardX")

    def write(per_seed: bool) -> dict[str, list[tuple[int, float]]]:
        log_dir = tmp_path / f"per_seed_{per_seed}"
        with TensorBoardWriter(log_dir, per_seed=per_seed) as writer:
            writer.write_text("config", '{"env_id": "CartPole-v1"}')
            writer.write_metrics(metrics())
            writer.write_evals(EVALS)
            writer.write_throughput(400, 1234.5)
        return read_scalars(log_dir)

    return write


AGGREGATE_TAGS = {
    *(f"train/episode_return/{k}" for k in SPREAD),
    "train/episode_length/mean",
    "train/loss/mean",
    "train/q_value/mean",
    "train/epsilon",
    "train/episodes",
    "train/grad_norm/mean",
    *(f"eval/return/{k}" for k in SPREAD),
    "eval/length/mean",
    "perf/env_steps_per_second",
}
SEED_TAGS = {
    f"seed_{i}/{name}"
    for i in range(3)
    for name in ("train/episode_return", "train/loss", "eval/return")
}


def test_aggregated_scalars(written):
    scalars = written(per_seed=False)
    assert set(scalars) == AGGREGATE_TAGS
    assert all(not math.isnan(v) for points in scalars.values() for _, v in points)
    m = metrics()
    for kind, reduce in SPREAD.items():
        tag = f"train/episode_return/{kind}"
        assert_points(scalars[tag], expected(RETURNS, STEPS, reduce))
        assert scalars[tag][0][0] == 200  # the all-NaN log point at step 100 is absent
        assert_points(scalars[f"eval/return/{kind}"], expected(EVALS["return"], [200, 400], reduce))
    for name in ("episode_length", "loss", "q_value", "grad_norm"):
        assert_points(scalars[f"train/{name}/mean"], expected(m[name], STEPS, np.mean))
    assert_points(scalars["train/epsilon"], expected(m["epsilon"], STEPS, np.mean))
    assert_points(scalars["train/episodes"], expected(m["episodes"], STEPS, np.sum))
    assert_points(scalars["eval/length/mean"], expected(EVALS["length"], [200, 400], np.mean))
    assert_points(scalars["perf/env_steps_per_second"], [(400, 1234.5)])
    # with 3 runs the IQM trims nothing; check a real trim separately below
    assert scalars["train/episode_return/iqm"][1] == (300, 40.0)


def test_iqm_trims_with_many_runs(tmp_path):
    pytest.importorskip("tensorboardX")
    returns = np.array([[1.0], [2.0], [3.0], [100.0], [NAN]])
    with TensorBoardWriter(tmp_path) as writer:
        writer.write_metrics({"env_steps": np.full((5, 1), 8), "episode_return": returns})
    scalars = read_scalars(tmp_path)
    assert scalars["train/episode_return/iqm"] == [(8, 2.5)]  # mean of 2, 3 of 1, 2, 3, 100
    assert scalars["train/episode_return/mean"] == [(8, 26.5)]


def test_per_seed_scalars(written):
    scalars = written(per_seed=True)
    assert set(scalars) == AGGREGATE_TAGS | SEED_TAGS
    for i in range(3):
        assert_points(
            scalars[f"seed_{i}/train/episode_return"], expected(RETURNS[i : i + 1], STEPS, np.mean)
        )
        assert_points(scalars[f"seed_{i}/train/loss"], expected(LOSS[i : i + 1], STEPS, np.mean))
        assert_points(
            scalars[f"seed_{i}/eval/return"],
            expected(EVALS["return"][i : i + 1], [200, 400], np.mean),
        )


def test_seed_tags_are_zero_padded(tmp_path):
    pytest.importorskip("tensorboardX")
    with TensorBoardWriter(tmp_path, per_seed=True) as writer:
        writer.write_metrics({"env_steps": np.full((11, 1), 4), "loss": np.ones((11, 1))})
    tags = [tag for tag in read_scalars(tmp_path) if tag.startswith("seed_")]
    assert tags == sorted(f"seed_{i:02d}/train/loss" for i in range(11))


def test_successive_writes_append(tmp_path):
    pytest.importorskip("tensorboardX")
    with TensorBoardWriter(tmp_path) as writer:
        writer.write_metrics(metrics())
        writer.write_metrics(metrics(offset=400))
    steps = [step for step, _ in read_scalars(tmp_path)["train/loss/mean"]]
    assert steps == [200, 300, 400, 600, 700, 800]


def test_text_is_not_a_scalar(tmp_path):
    pytest.importorskip("tensorboardX")
    with TensorBoardWriter(tmp_path) as writer:
        writer.write_text("config", "lr = 1e-3")
    assert read_scalars(tmp_path) == {}


def test_mismatched_env_steps_rejected(tmp_path):
    pytest.importorskip("tensorboardX")
    with TensorBoardWriter(tmp_path) as writer, pytest.raises(ValueError, match="env_steps"):
        writer.write_metrics({"env_steps": np.array([[1, 2], [1, 3]]), "loss": np.ones((2, 2))})


def test_missing_tensorboardx(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"pip install 'purejaxdqn\[tensorboard\]'") as info:
        TensorBoardWriter(tmp_path)
    assert "--tensorboard needs tensorboardX" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


def test_truncated_event_file(tmp_path):
    pytest.importorskip("tensorboardX")
    with TensorBoardWriter(tmp_path) as writer:
        writer.write_metrics(metrics())
    (path,) = tmp_path.glob("*tfevents*")
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    with pytest.raises(ValueError, match="truncated event file"):
        read_scalars(tmp_path)
    path.write_bytes(data[: -len(data) // 2] + b"\x01\x02")
    with pytest.raises(ValueError, match="truncated|corrupt"):
        read_scalars(tmp_path)


def test_tensor_scalars_are_read(tmp_path):
    # TensorBoard's newer writers store scalars as 0-d tensors, not simple_value
    pytest.importorskip("tensorboardX")
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.summary_pb2 import Summary
    from tensorboardX.proto.tensor_pb2 import TensorProto
    from tensorboardX.record_writer import RecordWriter

    values = [
        Summary.Value(tag="a", tensor=TensorProto(dtype=1, float_val=[1.5])),
        Summary.Value(
            tag="b", tensor=TensorProto(dtype=2, tensor_content=np.float64(2.5).tobytes())
        ),
        Summary.Value(tag="c", simple_value=3.5),
    ]
    writer = RecordWriter(str(tmp_path / "events.out.tfevents.0.test"))
    writer.write(Event(step=7, summary=Summary(value=values)).SerializeToString())
    writer.close()
    assert read_scalars(tmp_path) == {"a": [(7, 1.5)], "b": [(7, 2.5)], "c": [(7, 3.5)]}


def test_no_evals_writes_nothing(tmp_path):
    pytest.importorskip("tensorboardX")
    with TensorBoardWriter(tmp_path) as writer:
        writer.write_evals({})
    assert read_scalars(tmp_path) == {}
