"""Progress, TensorBoard, checkpoints, signals, stopping when solved (chunked runs and
resume through `execute`: test_parallel.py).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import TINY, cli_options

from purejaxdqn import cli
from purejaxdqn.core.loop import make_train_program
from purejaxdqn.outputs.stats import iqm
from purejaxdqn.run import checkpoint
from purejaxdqn.run.checkpoint import Checkpointer
from purejaxdqn.run.execute import execute, state_shapes
from purejaxdqn.run.experiment import run_experiment
from purejaxdqn.run.monitor import Monitor, ProgressDisplay, SignalGuard, progress_line

KEYS = jax.random.split(jax.random.key(7), 3)


TINY_OPTIONS = cli_options(TINY)


def test_restore_rejects_another_config(tiny_program, tmp_path):
    with pytest.raises(ValueError, match="has no checkpoint"):
        checkpoint.restore(tmp_path, state_shapes(tiny_program, TINY.hparams()))
    leaves = jax.tree.leaves(state_shapes(tiny_program, TINY.hparams()))
    fake = [np.zeros((1, *leaf.shape), leaf.dtype) for leaf in leaves]
    fake[0] = np.zeros((1, 99), np.float32)
    Checkpointer(tmp_path, checkpoint.identity("r", TINY, 1, 0)).save(
        1, fake, {"env_steps": np.zeros((1, 1))}, {}
    )
    with pytest.raises(ValueError, match="written by another config"):
        checkpoint.restore(tmp_path, state_shapes(tiny_program, TINY.hparams()))


def test_stop_when_solved_and_solved_steps(tiny_program):
    threshold = 9.0  # reached early by the tiny run's short episodes
    monitor = Monitor(stop_threshold=threshold)
    experiment = run_experiment(
        TINY.replace(solved_threshold=threshold), 3, seed=7, on_chunk=monitor
    )
    summary = experiment.summary
    returns = experiment.evals["return"]
    assert monitor.stop_reason == "solved"
    assert np.all(np.any(returns >= threshold, axis=1))
    # it stopped at the first evaluation where every seed had reached the threshold
    assert not np.all(np.any(returns[:, :-1] >= threshold, axis=1))
    assert summary.stopped_early == (summary.env_steps_done < TINY.total_timesteps)
    for seed, first in enumerate(summary.solved_env_steps):
        index = int(np.argmax(returns[seed] >= threshold))
        assert first == int(experiment.evals["env_steps"][seed, index])


def test_progress_lines_report_steps_rate_and_iqm(tiny_program):
    stream = io.StringIO()  # not a terminal: plain lines
    display = ProgressDisplay("CartPole-v1", TINY.total_timesteps, stream=stream)
    chunks = []

    def watch(chunk):
        chunks.append(chunk)
        display(chunk)
        return False

    execute(tiny_program, KEYS, TINY.hparams(), on_chunk=watch)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    last = chunks[-1]
    expected_iqm = iqm(last.metrics_so_far["episode_return"][:, -1])
    assert lines[-1].startswith("CartPole-v1: 1,600/1,600 env steps (100%)")
    assert f"return IQM {expected_iqm:.1f}" in lines[-1]
    assert f"eval IQM {iqm(last.evals_so_far['return'][:, -1]):.1f}" in lines[-1]
    assert "steps/s" in lines[0] and "ETA" in lines[0]
    assert progress_line(last, TINY.total_timesteps) == lines[-1].split(": ", 1)[1]


def test_signal_guard_defers_the_first_signal():
    with SignalGuard() as guard:
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard.name == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """`purejaxdqn train` with checkpoints every 2 log points and TensorBoard."""
    folder = tmp_path_factory.mktemp("cli") / "run"
    tensorboard = folder.parent / "tb"
    args = [
        "train", *TINY_OPTIONS, "--num-seeds", "2", "--output-dir", str(folder),
        "--checkpoint-every", "2", "--keep-checkpoints", "1", "--tensorboard",
        str(tensorboard), "--tensorboard-per-seed", "--quiet",
    ]  # fmt: skip
    assert cli.main(args) == 0
    return folder, tensorboard


def test_cli_checkpoints_keep_the_latest_and_resume_bitwise(cli_run, tmp_path):
    folder, _ = cli_run
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["4"]  # keep 1
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    shutil.rmtree(copy / "checkpoints")
    for name in ("metrics.csv", "evals.csv", "params.msgpack", "summary.json"):
        (copy / name).unlink()
    with pytest.raises(SystemExit) as error:
        cli.main(["train", "--resume", str(copy), "--quiet"])
    assert error.value.code == 2  # no checkpoint: a clear error
    # a checkpoint at 2 log points: re-run the first half with the same command
    half = tmp_path / "half"
    with pytest.raises(SystemExit):  # the config and seeds come from the folder
        cli.main(["train", "--resume", str(folder), "--seed", "3"])
    args = ["train", *TINY_OPTIONS, "--num-seeds", "2", "--output-dir", str(half), "--quiet"]
    assert cli.main([*args, "--checkpoint-every", "2", "--keep-checkpoints", "3"]) == 0
    shutil.rmtree(half / "checkpoints" / "4")
    for name in ("metrics.csv", "evals.csv", "params.msgpack", "summary.json"):
        (half / name).unlink()
    assert cli.main(["train", "--resume", str(half), "--quiet"]) == 0
    for name in ("metrics.csv", "evals.csv", "params.msgpack"):
        assert (half / name).read_bytes() == (folder / name).read_bytes(), name


def test_cli_tensorboard_has_the_expected_tags(cli_run):
    from purejaxdqn.outputs.tensorboard import read_scalars

    pytest.importorskip("tensorboardX")
    folder, tensorboard = cli_run
    scalars = read_scalars(tensorboard)
    for tag in (
        "train/episode_return/iqm", "train/episode_return/mean", "train/episode_return/min",
        "train/episode_return/max", "train/loss/mean", "train/q_value/mean", "train/epsilon",
        "eval/return/iqm", "eval/return/mean", "perf/env_steps_per_second",
        "seed_0/train/episode_return", "seed_1/eval/return",
    ):  # fmt: skip
        assert tag in scalars, tag
    evals = np.loadtxt(folder / "evals.csv", delimiter=",", skiprows=1)
    eval_means = {int(s): evals[evals[:, 1] == s][:, 2].mean() for s in np.unique(evals[:, 1])}
    for step, value in scalars["eval/return/mean"]:
        assert value == pytest.approx(eval_means[step], rel=1e-5)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["watch_seconds"] > 0


def test_cli_stop_when_solved_needs_a_threshold(tmp_path):
    with pytest.raises(SystemExit) as error:
        cli.main(["train", *TINY_OPTIONS, "--solved-threshold", "none", "--stop-when-solved",
                  "--output-dir", str(tmp_path)])  # fmt: skip
    assert error.value.code == 2


def test_sigterm_leaves_a_loadable_checkpoint(tmp_path):
    folder = tmp_path / "run"
    # stopped before the only evaluation (at the last of 400 log points): the checkpoint
    # holds zero evaluations, which orbax could not save
    config = TINY.replace(total_timesteps=409_600, num_log_points=400, eval_every=400)
    options = cli_options(config)
    command = [sys.executable, "-m", "purejaxdqn.cli", "train", *options,
               "--output-dir", str(folder)]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "JAX_NUM_CPU_DEVICES": "1"},
    )  # fmt: skip
    for line in process.stdout:
        if "running" in line:
            break
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr and "--resume" in stderr
    done = checkpoint.latest(folder)
    assert done is not None and 0 < done < 400
    point = checkpoint.restore(folder, state_shapes(make_train_program(config), config.hparams()))
    assert point.resume.periods_done == done
    assert point.resume.metrics["env_steps"].shape == (1, done)
    assert point.resume.evals["return"].shape == (1, 0)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["stopped_early"] and summary["env_steps_done"] == done * 1024
