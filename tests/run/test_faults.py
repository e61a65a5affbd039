"""Fault injection: every results folder stays trustworthy.

Each test is one fault a user meets (a signal, a crash, a reused or shared folder, an
edited config, a damaged checkpoint, a full disk, a diverging run, a bad input) and checks
that nothing is lost or mislabelled and that the user is told what happened. One small
run with a checkpoint at every log point is shared by most tests; they work on copies.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import TINY, cli_options

from purejaxdqn import cli
from purejaxdqn.core.loop import make_train_program
from purejaxdqn.core.rng import seed_key
from purejaxdqn.outputs import results, rundir
from purejaxdqn.outputs.policy import evaluate_policy, load_policy
from purejaxdqn.outputs.report import format_summary
from purejaxdqn.run import checkpoint
from purejaxdqn.run.execute import execute, state_shapes
from purejaxdqn.run.experiment import run_experiment, write_run

OPTIONS = [*cli_options(TINY), "--num-seeds", "2"]  # 4 log points, evaluations at 2 and 4
RESULTS = ("metrics.csv", "evals.csv", "params.msgpack")


def _main(*argv: str) -> int:
    """`purejaxdqn ...` in this process: its exit status (argparse errors exit 2)."""
    try:
        return cli.main(list(argv))
    except SystemExit as stop:
        return int(stop.code)


def _error(capsys) -> str:
    """The one `purejaxdqn: error:` line the last command printed."""
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    """A finished run with a checkpoint after every log point (the first two before the
    first evaluation) and TensorBoard on.
    """
    folder = tmp_path_factory.mktemp("faults") / "run"
    status = _main(
        "train", *OPTIONS, "--output-dir", str(folder), "--checkpoint-every", "1",
        "--keep-checkpoints", "4", "--tensorboard", str(folder.parent / "tb"), "--quiet",
    )  # fmt: skip
    assert status == 0
    return folder


def _crashed_copy(full_run: Path, tmp_path: Path, after: int) -> Path:
    """A copy of `full_run` as it was when it crashed after `after` log points."""
    copy = tmp_path / "copy"
    shutil.copytree(full_run, copy)
    for number in checkpoint._numbered(copy / checkpoint.CHECKPOINT_DIR):
        if number > after:
            shutil.rmtree(copy / checkpoint.CHECKPOINT_DIR / str(number))
    for name in (*RESULTS, "summary.json"):
        (copy / name).unlink()
    return copy


def _same_results(a: Path, b: Path) -> None:
    for name in RESULTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


# --- 1. checkpoints at every chunk boundary, before the first evaluation too ---------------


def test_a_checkpoint_before_the_first_evaluation_resumes_bitwise(full_run, tmp_path):
    folder = full_run / checkpoint.CHECKPOINT_DIR
    assert sorted(int(p.name) for p in folder.iterdir()) == [1, 2, 3, 4]
    manifest = json.loads((folder / "1" / "manifest.json").read_text())
    assert manifest["arrays"]["evals/return"]["shape"] == [2, 0]  # no evaluation yet
    copy = _crashed_copy(full_run, tmp_path, after=1)
    assert _main("train", "--resume", str(copy), "--quiet") == 0
    _same_results(copy, full_run)


def test_sigterm_while_compiling_exits_cleanly_and_leaves_nothing(tmp_path):
    folder = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "purejaxdqn.cli", "train", *OPTIONS, "--output-dir", str(folder)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "JAX_NUM_CPU_DEVICES": "1"},
    )  # fmt: skip
    for line in process.stdout:
        if line.startswith("compiling"):
            break
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM before training started: nothing was computed" in stderr
    assert "Traceback" not in stderr
    assert not folder.exists()  # the folder it made for the run is gone again


def test_sigkill_during_checkpoints_never_leaves_a_bad_latest_checkpoint(tmp_path):
    """Checkpoints of a 25 MB replay buffer every log point, killed without warning."""
    folder = tmp_path / "run"
    config = TINY.replace(
        total_timesteps=400_000, num_log_points=500, buffer_size=400_000, eval_every=0
    )
    command = [sys.executable, "-m", "purejaxdqn.cli", "train", *cli_options(config),
               "--output-dir", str(folder), "--checkpoint-every", "1",
               "--keep-checkpoints", "2"]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "JAX_NUM_CPU_DEVICES": "1"},
    )  # fmt: skip
    for line in process.stdout:
        if "running" in line:
            break
    deadline = time.monotonic() + 60
    while checkpoint.latest(folder) is None or checkpoint.latest(folder) < 3:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=60)
    like = state_shapes(make_train_program(config), config.hparams())
    record = rundir.read_record(folder)
    point = checkpoint.restore(
        folder, like, checkpoint.identity(record.run_id, config, 1, 0)
    )  # every numbered folder is complete: the newest restores with no checksum failure
    assert point.skipped == [] and point.resume.periods_done == checkpoint.latest(folder)
    leftovers = checkpoint.remove_stale(folder)  # what a kill mid-save may leave
    assert all(p.name.startswith(".tmp-") for p in leftovers)
    assert not any(p.name.startswith(".tmp-") for p in (folder / "checkpoints").iterdir())


# --- 2. resume verifies that the checkpoint belongs to the folder's run ----------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("learning_rate", 0.002), ("num_seeds", 3), ("seed", 5), ("num_log_points", 8),
     ("run_id", "someone-else")],
)  # fmt: skip
def test_resume_refuses_a_checkpoint_of_another_run(full_run, tmp_path, capsys, field, value):
    copy = _crashed_copy(full_run, tmp_path, after=2)
    config_file = copy / "config.json"
    data = json.loads(config_file.read_text())
    data[field] = value
    if field == "num_log_points":
        data["total_timesteps"] = 3200  # still a valid config, so only the identity differs
    config_file.write_text(json.dumps(data))
    assert _main("train", "--resume", str(copy), "--quiet") == 2
    message = _error(capsys)
    assert "belongs to another run" in message and f"{field}: checkpoint" in message
    assert not (copy / "metrics.csv").exists()  # nothing was run or written


# --- 3. run options persist; a finished run stays as it is ----------------------------------


def test_resume_keeps_the_run_options_unless_given_again(full_run, tmp_path):
    from purejaxdqn.outputs.tensorboard import read_scalars

    def final_points() -> int:
        steps = [step for step, _ in read_scalars(full_run.parent / "tb")["train/loss/mean"]]
        return steps.count(TINY.total_timesteps)

    copy = _crashed_copy(full_run, tmp_path, after=2)
    written = final_points()
    assert _main("train", "--resume", str(copy), "--keep-checkpoints", "1", "--quiet") == 0
    _same_results(copy, full_run)
    options = rundir.read_record(copy).options
    assert options["checkpoint_every"] == 1  # kept from the command that started it
    assert options["keep_checkpoints"] == 1  # given again: changed, and recorded
    assert options["tensorboard"] == str(full_run.parent / "tb")
    assert [p.name for p in (copy / "checkpoints").iterdir()] == ["4"]
    assert final_points() == written + 1  # the resumed run kept writing TensorBoard there


def test_resuming_a_finished_run_changes_nothing(full_run, capsys):
    def files() -> dict:
        return {
            p: (p.stat().st_mtime_ns, p.read_bytes())
            for p in full_run.rglob("*")
            if p.is_file() and p.name != rundir.LOCK_FILE  # the lock records who holds it
        }

    before = files()
    assert _main("train", "--resume", str(full_run)) == 0
    assert "finished: all 1,600 env steps done; nothing to do" in capsys.readouterr().out
    assert files() == before


# --- 4. folders are owned ---------------------------------------------------------------------


def test_a_new_run_refuses_a_folder_holding_another_run(full_run, tmp_path, capsys):
    copy = _crashed_copy(full_run, tmp_path, after=4)
    assert _main("train", *OPTIONS, "--output-dir", str(copy), "--quiet") == 2
    message = _error(capsys)
    assert "holds run" in message and "--overwrite" in message and "--resume" in message
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    assert _main("train", *OPTIONS, "--output-dir", str(tmp_path / "notes"), "--quiet") == 2
    assert "not empty and holds no purejaxdqn run" in _error(capsys)


def test_overwrite_replaces_the_old_run_and_a_full_disk_keeps_what_was_written(
    full_run, tmp_path, capsys, monkeypatch
):
    copy = _crashed_copy(full_run, tmp_path, after=4)
    (copy / "mine.txt").write_text("not a run file")
    old_id = rundir.read_record(copy).run_id
    real = results.write_atomic

    def disk_full_for_summary(path, data):
        if Path(path).name == "summary.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    monkeypatch.setattr(results, "write_atomic", disk_full_for_summary)
    status = _main("train", *OPTIONS, "--output-dir", str(copy), "--overwrite", "--quiet")
    assert status == cli.common.EXIT_NOT_WRITTEN
    message = _error(capsys)
    assert f"{copy / 'summary.json'}: No space left on device" in message
    assert "saved: metrics.csv, evals.csv, params.msgpack" in message
    assert not (copy / "checkpoints").exists()  # the old run's checkpoints went first
    assert (copy / "mine.txt").read_text() == "not a run file"  # never ours to delete
    assert rundir.read_record(copy).run_id != old_id
    _same_results(copy, full_run)  # the same command again: the same results


def test_two_processes_never_share_a_folder(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    with (folder / rundir.LOCK_FILE).open("a+") as lock:  # held as another process would
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert _main("train", *OPTIONS, "--output-dir", str(folder), "--quiet") == 2
    assert "in use by another purejaxdqn process" in _error(capsys)
    assert list(folder.iterdir()) == [folder / rundir.LOCK_FILE]


def test_default_folders_are_never_reused(tmp_path):
    first = tmp_path / "CartPole-v1-20260101-000000"
    first.mkdir()
    assert rundir.unique_folder(first) == tmp_path / "CartPole-v1-20260101-000000-2"
    assert rundir.unique_folder(tmp_path / "new") == tmp_path / "new"


# --- 5. paths that cannot be used ---------------------------------------------------------------


@pytest.mark.parametrize("option", ["--output-dir", "--compile-cache", "--tensorboard"])
def test_an_unusable_path_is_one_line_before_compiling(tmp_path, capsys, monkeypatch, option):
    monkeypatch.setattr(cli.train, "run_experiment", lambda *a, **k: pytest.fail("ran"))
    afile = tmp_path / "afile"
    afile.write_text("")
    argv = ["train", *OPTIONS, "--quiet"]
    if option != "--output-dir":
        argv += ["--output-dir", str(tmp_path / "run")]
    for path in (str(afile / "below"), str(afile), ""):
        assert _main(*argv, option, path) == 2
        message = _error(capsys)
        assert option in message and "Traceback" not in message
    assert not (Path.cwd() / "config.json").exists()  # never a write into the working folder


# --- 6. damaged checkpoints --------------------------------------------------------------------


def _damage(path: Path, how: str) -> None:
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "flipped":
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        path.unlink()


@pytest.mark.parametrize(
    "damages",
    [{"3": ("state/00000.npy", "truncated"), "2": ("metrics/loss.npy", "flipped")},
     {"3": ("manifest.json", "removed"), "2": ("evals/return.npy", "removed")}],
    ids=["truncated-state-flipped-metrics", "removed-manifest-removed-evals"],
)  # fmt: skip
def test_a_damaged_checkpoint_falls_back_to_the_newest_intact_one(
    full_run, tmp_path, capsys, damages
):
    """Checkpoints 3 and 2 damaged in two different ways (one resume checks two kinds of
    damage: either one missed resumes from it and fails), so the run resumes from 1."""
    copy = _crashed_copy(full_run, tmp_path, after=3)
    for number, (target, how) in damages.items():
        _damage(copy / "checkpoints" / number / target, how)
    (copy / "checkpoints" / ".tmp-4-deadbeef" / "state").mkdir(parents=True)  # a killed save
    assert _main("train", "--resume", str(copy), "--quiet") == 0
    warning = capsys.readouterr().err
    for number in damages:
        assert f"checkpoint {copy / 'checkpoints' / number} is damaged" in warning
    assert "skipped" in warning
    _same_results(copy, full_run)  # resumed from 1 instead, bit for bit
    assert not (copy / "checkpoints" / ".tmp-4-deadbeef").exists()


def test_no_intact_checkpoint_is_a_clear_error(full_run, tmp_path, capsys):
    copy = _crashed_copy(full_run, tmp_path, after=1)
    _damage(copy / "checkpoints" / "1" / "state" / "00001.npy", "flipped")
    assert _main("train", "--resume", str(copy), "--quiet") == 2
    assert "no intact checkpoint" in _error(capsys)


# --- 7. divergence is reported, never averaged away --------------------------------------------


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    """Seed 1 of 2 at a learning rate that blows up; the CLI run of the same."""
    config = TINY.replace(learning_rate=1e30)
    folder = tmp_path_factory.mktemp("diverged") / "run"
    status = _main("train", *cli_options(config), "--num-seeds", "2", "--output-dir",
                   str(folder))  # fmt: skip
    return status, folder


def test_a_diverged_run_says_so_and_exits_3(diverged, capsys):
    status, folder = diverged
    assert status == cli.common.EXIT_DIVERGED
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["num_diverged"] == 2
    assert all(step is not None and step <= TINY.total_timesteps
               for step in summary["diverged_env_steps"])  # fmt: skip
    assert summary["final_eval_returns"] == [None, None]  # no score for a NaN policy
    assert summary["iqm_final_eval_return"] is None
    assert (folder / "metrics.csv").is_file()  # results are still written
    with pytest.raises(ValueError, match=r"seed\(s\) \[0, 1\] .* non-finite"):
        evaluate_policy(load_policy(folder))
    assert _main("eval", str(folder)) == 2


def test_divergence_is_per_seed_and_first_step(tiny_program):
    hparams = TINY.hparams(learning_rate=np.array([1e-3, 1e30], np.float32))
    result = run_experiment(TINY, 2, seed=0, hparams=hparams)
    steps = result.summary.diverged_env_steps
    assert steps[0] is None and steps[1] is not None
    flags = result.metrics["first_nonfinite_step"][1]
    first_period = int(np.argmax(flags >= 0))
    assert steps[1] == flags[first_period]
    period_end = result.metrics["env_steps"][1, first_period]
    assert period_end - TINY.total_timesteps // TINY.num_log_points < steps[1] <= period_end
    loss = result.metrics["loss"][1]
    assert np.isfinite(loss[:first_period]).all() and not np.isfinite(loss[first_period])
    assert np.isfinite(result.summary.final_eval_returns[0])
    assert np.isnan(result.summary.final_eval_returns[1])  # a diverged seed has no score
    assert result.summary.to_json()["iqm_final_eval_return"] is None  # and is not averaged
    assert "1/2 seeds went non-finite: seed 1 at" in format_summary(result.summary)


def test_a_sweep_ranks_diverged_settings_last_and_marks_them(tmp_path):
    from purejaxdqn.run import sweep

    result = sweep.run(TINY, {"learning_rate": [1e30, 1e-3]}, num_seeds=2)
    assert [row["setting"] for row in result.ranking] == [1, 0]  # the diverged one last
    assert [row["num_diverged"] for row in result.ranking] == [0, 2]
    assert "DIVERGED 2/2" in sweep.format_ranking(result.ranking).splitlines()[-1]
    summary = json.loads(
        (sweep.write_sweep(result, tmp_path / "s") / "sweep_summary.json").read_text()
    )
    assert summary["num_diverged_settings"] == 1
    with pytest.raises(ValueError, match="learning_rate=-1.0 is not allowed"):
        sweep.run(TINY, {"learning_rate": [-1.0]}, num_seeds=1)


def test_hand_built_hparams_are_range_checked():
    from purejaxdqn import HParams

    bad = TINY.hparams()._replace(learning_rate=np.float32(np.nan))
    with pytest.raises(ValueError, match="learning_rate=nan is not allowed"):
        run_experiment(TINY, 1, hparams=bad)
    with pytest.raises(ValueError, match="gamma=-0.5 is not allowed"):
        run_experiment(TINY, 1, hparams=HParams(*TINY.hparams())._replace(gamma=-0.5))


# --- 8. device layout --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_device_run(tmp_path_factory) -> Path:
    """3 seeds, one per device per call, on 2 CPU devices (a fresh process), checkpointed."""
    folder = tmp_path_factory.mktemp("layout") / "run"
    command = [sys.executable, "-m", "purejaxdqn.cli", "train", *cli_options(TINY),
               "--num-seeds", "3", "--seed", "4", "--layout-independent",
               "--checkpoint-every", "2", "--output-dir", str(folder), "--quiet"]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300,
        env={**os.environ, "JAX_NUM_CPU_DEVICES": "2"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def test_layout_independent_seeds_equal_their_single_runs_on_any_device_count(two_device_run):
    layout = json.loads((two_device_run / "summary.json").read_text())["layout"]
    assert layout["layout_independent"] and layout["num_devices"] == 2
    assert layout["num_batches"] == 2  # 3 seeds, one per device: two calls
    with (two_device_run / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    keys = jax.random.split(seed_key(4), 3)
    # each seed alone on this process's 1 device: three sequential batches of one row, the
    # one compiled program of a lone run called on each key in turn
    alone = execute(make_train_program(TINY), keys, TINY.hparams(), max_runs_per_device=1)
    assert (alone.plan.num_devices, alone.plan.num_batches) == (1, 3)
    for k in range(3):
        written = [np.float32(r["loss"] or "nan") for r in rows if r["seed"] == str(k)]
        np.testing.assert_array_equal(np.asarray(written), alone.metrics["loss"][k])  # bitwise


def test_resume_on_another_device_count_keeps_the_layout(two_device_run, tmp_path):
    copy = _crashed_copy(two_device_run, tmp_path, after=2)
    assert len(jax.devices()) == 1  # this process has one CPU device, the run had two
    assert _main("train", "--resume", str(copy), "--quiet") == 0
    _same_results(copy, two_device_run)


def test_resume_asks_for_the_recorded_layout(full_run, tmp_path, monkeypatch):
    seen = {}

    def record(*args, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(cli.train, "run_experiment", record)
    copy = _crashed_copy(full_run, tmp_path, after=2)
    assert _main("train", "--resume", str(copy), "--quiet") == 0
    assert (seen["runs_per_device"], seen["num_devices"]) == (2, 1)  # as recorded
    manifest = json.loads((copy / "checkpoints" / "2" / "manifest.json").read_text())
    assert manifest["layout"]["runs_per_device"] == 2
    with pytest.raises(ValueError, match="runs_per_device=3 cannot be kept"):
        run_experiment(TINY, 2, runs_per_device=3)


# --- 9-13. bad input ----------------------------------------------------------------------------


def test_seeds_below_2_to_the_32_keep_their_keys_and_larger_ones_are_distinct():
    for seed in (0, 1, 2**31 - 1, 2**31, 2**32 - 1):
        same = jax.random.key_data(seed_key(seed)) == jax.random.key_data(jax.random.key(seed))
        assert bool(same.all()), seed
    data = {tuple(np.asarray(jax.random.key_data(seed_key(s)))) for s in
            (0, 2**32, 2**32 + 1, 2**63, 2**64 - 1)}  # fmt: skip
    assert len(data) == 5
    for bad in (-1, 2**64, 1.5, True):
        with pytest.raises(ValueError, match="seed=.* is not allowed"):
            run_experiment(TINY, 1, seed=bad)


def test_a_custom_env_with_the_old_step_is_refused_before_compiling():
    import gymnax

    class FiveValueStep:
        def __init__(self):
            self.inner, self.default_params = gymnax.make("CartPole-v1")

        def action_space(self, params):
            return self.inner.action_space(params)

        def reset(self, key, params):
            return self.inner.reset(key, params)

        def step(self, key, state, action, params):
            obs, state, reward, terminated, truncated, info = self.inner.step(
                key, state, action, params
            )
            return obs, state, reward, terminated | truncated, info

    with pytest.raises(ValueError, match="pre-1.0 gymnax"):
        run_experiment(TINY, 1, env=FiveValueStep())


def test_a_huge_buffer_is_refused_not_a_traceback(capsys, monkeypatch):
    monkeypatch.setattr(cli.train, "run_experiment", lambda *a, **k: pytest.fail("ran"))
    assert _main("train", *OPTIONS, "--buffer-size", "1e12", "--quiet") == 2
    assert "buffer_size=1000000000000 is not allowed" in _error(capsys)


def test_no_arguments_lists_the_commands_and_version_exists(capsys):
    assert _main() == 2
    err = capsys.readouterr().err
    assert all(name in err for name in ("train", "sweep", "eval", "render", "plot"))
    assert _main("--version") == 0
    assert capsys.readouterr().out.startswith("purejaxdqn ")


# --- 14-15. a first run that just works ----------------------------------------------------------


def test_preset_overrides_adapt_and_say_what_changed(capsys, monkeypatch, tmp_path):
    seen = {}

    def record(config, *args, **kwargs):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(cli.train, "run_experiment", record)
    argv = ["train", "--env", "CartPole-v1", "--total-timesteps", "10000", "--num-log-points",
            "5", "--output-dir", str(tmp_path / "run"), "--quiet"]  # fmt: skip
    with pytest.raises(SystemExit):
        cli.main(argv)
    err = capsys.readouterr().err
    assert "total_timesteps 10000 -> 10240" in err and "eval_every 2 -> 1" in err
    assert seen["config"].total_timesteps == 10240 and seen["config"].eval_every == 1


def test_progress_true_shows_progress(capsys):
    run_experiment(TINY, 1, progress=True)
    err = capsys.readouterr().err
    assert "compiling 1 seed(s)" in err and "1,600/1,600 env steps (100%)" in err


def test_checkpoints_of_another_format_are_reported(tmp_path):
    folder = tmp_path / "checkpoints" / "4"
    folder.mkdir(parents=True)
    (folder / "_CHECKPOINT_METADATA").write_text("{}")  # an orbax checkpoint (< 0.2)
    like = state_shapes(make_train_program(TINY), TINY.hparams())
    with pytest.raises(ValueError, match="orbax's format"):
        checkpoint.restore(tmp_path, like)


def test_write_run_refuses_another_runs_folder(tmp_path):
    result = run_experiment(TINY, 1, periods_per_chunk=4)
    write_run(result, tmp_path / "a")
    # another run: the same outputs under the fresh id a second run_experiment would get
    again = dataclasses.replace(result, run_id=rundir.new_run_id())
    assert again.run_id != result.run_id
    with pytest.raises(rundir.FolderError, match="holds run"):
        write_run(again, tmp_path / "a")
    write_run(again, tmp_path / "a", overwrite=True)
    assert rundir.read_record(tmp_path / "a").run_id == again.run_id
