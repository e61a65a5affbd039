"""The `purejaxdqn` command line and the experiment runner behind it.

One tiny two-seed run goes through `main` (one compile, shared by the tests that read its
folder); everything else exercises parsing, validation, summaries and writing without
compiling.
"""

import contextlib
import csv
import dataclasses
import io
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_experiment

from purejaxdqn import DQNConfig, cli, get_preset
from purejaxdqn.core.presets import RAINBOW_COMPONENTS, RAINBOW_PRESETS, rainbow_for
from purejaxdqn.outputs.rundir import read_record
from purejaxdqn.run.experiment import (
    format_summary,
    run_experiment,
)

TINY_ARGS = [
    "train",
    "--env", "CartPole-v1",
    "--num-seeds", "2",
    "--total-timesteps", "2000",
    "--num-envs", "4",
    "--num-log-points", "5",
    "--eval-every", "5",
    "--eval-episodes", "2",
    "--learning-starts", "200",
    "--buffer-size", "1000",
    "--batch-size", "32",
    "--target-update-interval", "100",
    "--hidden-sizes", "16",
    "--train-freq", "1",
    "--gradient-steps", "1",
]  # fmt: skip

SUMMARY_KEYS = {
    "env_id",
    "num_seeds",
    "seed",
    "total_timesteps",
    "final_eval_returns",
    "final_return_source",
    "iqm_final_eval_return",
    "mean_final_eval_return",
    "solved_threshold",
    "fraction_solved",
    "compile_seconds",
    "run_seconds",
    "env_steps_per_second",
    "device",
    "versions",
}
REQUIRED_OPTIONS = [
    "--buffer-size",
    "--learning-starts",
    "--batch-size",
    "--tau",
    "--gamma",
    "--train-freq",
    "--gradient-steps",
    "--target-update-interval",
    "--exploration-fraction",
    "--exploration-initial-eps",
    "--exploration-final-eps",
    "--max-grad-norm",
    "--learning-rate",
    "--num-envs",
    "--total-timesteps",
    "--hidden-sizes",
]
METRIC_COLUMNS = [
    "seed",
    "env_steps",
    "episode_length",
    "episode_return",
    "episodes",
    "epsilon",
    "loss",
    "q_value",
    "updates",
]


def _config(argv: list[str]) -> DQNConfig:
    return cli.options.config_from_args(cli.build_parser().parse_args(argv))


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames or []), list(reader)


# --- one real run through main ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("cli") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = cli.main([*TINY_ARGS, "--output-dir", str(output_dir), "--quiet"])
    return status, output_dir, printed.getvalue()


def test_train_writes_all_four_files(tiny_run):
    status, output_dir, _ = tiny_run
    assert status == 0
    for name in ("config.json", "metrics.csv", "evals.csv", "summary.json"):
        assert (output_dir / name).is_file(), name


def test_config_json_round_trips_to_the_config_used(tiny_run):
    _, output_dir, _ = tiny_run
    record = read_record(output_dir)
    assert (record.num_seeds, record.seed) == (2, 0)
    assert record.config == _config(TINY_ARGS)
    summary = json.loads((output_dir / "summary.json").read_text())
    assert record.run_id and summary["run_id"] == record.run_id
    assert record.options == cli.options.RUN_OPTION_DEFAULTS  # every run option, for --resume


def test_metrics_and_evals_csv_have_one_row_per_seed_and_point(tiny_run):
    _, output_dir, _ = tiny_run
    header, rows = _read_csv(output_dir / "metrics.csv")
    assert header == METRIC_COLUMNS
    assert len(rows) == 2 * 5
    assert [(r["seed"], r["env_steps"]) for r in rows[:5]] == [
        ("0", str(s)) for s in (400, 800, 1200, 1600, 2000)
    ]
    assert {r["seed"] for r in rows} == {"0", "1"}
    header, evals = _read_csv(output_dir / "evals.csv")
    assert header == ["seed", "env_steps", "return", "length"]
    assert [(r["seed"], r["env_steps"]) for r in evals] == [("0", "2000"), ("1", "2000")]


def test_summary_has_every_key_and_agrees_with_the_csvs(tiny_run):
    _, output_dir, _ = tiny_run
    summary = json.loads((output_dir / "summary.json").read_text())
    assert set(summary) >= SUMMARY_KEYS
    assert summary["env_id"] == "CartPole-v1"
    assert (summary["num_seeds"], summary["seed"], summary["total_timesteps"]) == (2, 0, 2000)
    assert summary["final_return_source"] == "greedy_eval"
    assert summary["solved_threshold"] == 475.0  # from the CartPole-v1 preset
    assert summary["fraction_solved"] in (0.0, 0.5, 1.0)
    assert summary["compile_seconds"] > 0 and summary["run_seconds"] > 0
    assert summary["env_steps_per_second"] == pytest.approx(2 * 2000 / summary["run_seconds"])
    assert set(summary["versions"]) >= {"python", "jax", "jaxlib", "flax", "optax", "gymnax"}
    assert summary["versions"]["purejaxdqn"] is not None

    finals = summary["final_eval_returns"]
    assert len(finals) == 2
    _, evals = _read_csv(output_dir / "evals.csv")
    last = {r["seed"]: r for r in evals}  # rows are ordered by eval within a seed
    assert finals == [float(last["0"]["return"]), float(last["1"]["return"])]
    assert summary["iqm_final_eval_return"] == pytest.approx(np.mean(finals))  # 2 seeds: mean
    assert summary["mean_final_eval_return"] == pytest.approx(np.mean(finals))
    assert all(1 <= r <= 500 for r in finals)  # CartPole greedy return of an episode


def test_quiet_run_prints_nothing(tiny_run):
    _, _, printed = tiny_run
    assert printed == ""


# --- parsing options into the config (no training) -------------------------------------------


def test_options_reach_the_config():
    config = _config(
        [
            "train",
            "--gamma", "0.9",
            "--hidden-sizes", "8,8",
            "--max-grad-norm", "none",
            "--double-q", "true",
            "--total-timesteps", "1.024e5",
            "--eval-max-steps", "200",
            "--solved-threshold", "none",
        ]
    )  # fmt: skip
    assert config.gamma == 0.9
    assert config.hidden_sizes == (8, 8)
    assert config.max_grad_norm is None
    assert config.double_q is True
    assert config.total_timesteps == 102_400
    assert config.eval_max_steps == 200
    assert config.solved_threshold is None
    # untouched fields keep the preset's values
    preset = get_preset("CartPole-v1")
    assert config.learning_rate == preset.learning_rate
    assert config.buffer_size == preset.buffer_size


def test_boolean_options_accept_a_value_or_stand_alone():
    assert _config(["train", "--dueling"]).dueling is True
    assert _config(["train", "--dueling", "false"]).dueling is False
    assert _config(["train", "--double-q", "TRUE"]).double_q is True


def test_env_and_preset_choose_the_starting_config():
    cartpole = _config(["train"])
    assert cartpole.env_id == "CartPole-v1" and cartpole.solved_threshold == 475.0
    assert cartpole == get_preset("CartPole-v1")
    catch = _config(["train", "--env", "Catch-bsuite"])  # no preset: DQNConfig defaults
    assert catch == DQNConfig(env_id="Catch-bsuite")
    acrobot = _config(["train", "--env", "Acrobot-v1"])
    assert acrobot == get_preset("Acrobot-v1")
    mixed = _config(["train", "--preset", "CartPole-v1", "--env", "Catch-bsuite"])
    assert mixed.env_id == "Catch-bsuite" and mixed.solved_threshold == 475.0


def test_preset_rainbow_takes_the_envs_rainbow_settings_and_options_override():
    breakout = _config(["train", "--env", "Breakout-MinAtar", "--preset", "rainbow"])
    assert breakout == rainbow_for("Breakout-MinAtar") == RAINBOW_PRESETS["Breakout-MinAtar"]
    assert breakout.n_step == 3 and breakout.noisy and breakout.distributional == "c51"
    cartpole = _config(["train", "--preset", "rainbow"])  # the default env
    assert cartpole == RAINBOW_PRESETS["CartPole-v1"]
    # no Rainbow preset: Rainbow's generic components over the env's DQN settings
    catch = _config(["train", "--env", "Catch-bsuite", "--preset", "rainbow"])
    assert catch == DQNConfig(env_id="Catch-bsuite").replace(**RAINBOW_COMPONENTS)
    changed = _config(
        ["train", "--preset", "rainbow", "--n-step", "5", "--per-alpha", "0.7", "--noisy", "false"]
    )
    assert (changed.n_step, changed.per_alpha, changed.noisy) == (5, 0.7, False)
    assert changed.prioritized_replay and changed.distributional == "c51"


def test_the_family_options_reject_combinations_before_compiling(capsys):
    for argv, words in [
        (["--munchausen", "--double-q"], "munchausen=True is not allowed with double_q=True"),
        (["--v-min", "5", "--v-max", "5"], "v_min=5.0 is not allowed: must be < v_max=5.0"),
        (["--noisy-eval"], "noisy_eval=True is not allowed without noisy=True"),
        (["--n-step", "0"], "n_step=0 is not allowed"),
        (["--distributional", "iqn"], "distributional='iqn' is not allowed"),
        (["--per-alpha", "1.5"], "per_alpha=1.5 is not allowed"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["train", "--env", "CartPole-v1", *argv])
        assert exit_info.value.code == 2, argv
        assert words in capsys.readouterr().err, argv


def test_every_config_field_except_env_id_is_an_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for field in dataclasses.fields(DQNConfig):
        if field.name != "env_id":
            assert cli.options.option_name(field.name) in help_text, field.name
    for option in REQUIRED_OPTIONS:
        assert option in help_text
    assert "Discount factor" in help_text and "(default: 0.99)" in help_text


def test_top_level_help_lists_train(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    assert "train" in capsys.readouterr().out


def test_default_output_dir_is_env_and_time():
    when = datetime(2024, 1, 2, 3, 4, 5)
    expected = Path("runs/CartPole-v1-20240102-030405")
    assert cli.common.default_output_dir("CartPole-v1", when) == expected


# --- bad input: exit 2 with one clear line, before anything compiles -------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--num-envs", "0"], ["--num-envs", "num_envs=0"]),
        (["--gamma", "1.5"], ["--gamma", "gamma=1.5"]),
        (["--env", "CartPol-v1"], ["--env", "'CartPol-v1'", "'CartPole-v1'"]),
        (["--preset", "nope"], ["--preset", "'nope'", "CartPole-v1"]),
        (["--num-seeds", "0"], ["--num-seeds", "num_seeds=0"]),
        (["--gamma", "abc"], ["--gamma", "'abc'"]),
        (["--double-q", "maybe"], ["--double-q", "'maybe'"]),
        (["--hidden-sizes", "8,,8"], ["--hidden-sizes", "'8,,8'"]),
        (
            [
                "--total-timesteps",
                "1234",
                "--num-envs",
                "4",
                "--train-freq",
                "1",
                "--num-log-points",
                "10",
            ],
            ["total_timesteps=1234", "nearest"],
        ),  # contradictory options given together stay errors (a preset's adapt)
        (["--checkpoint-every", "0"], ["--checkpoint-every", "0 is not allowed"]),
        (["--learning-rate", "-1e-3"], ["--learning-rate", "learning_rate=-0.001"]),
        (["--seed", str(2**64)], ["--seed", str(2**64), "2**64"]),
        (["--env", "CartPol-v1", "--total-timesteps", "1000"], ["--env", "'CartPol-v1'"]),
        (["--learning-rat", "1e-3"], ["--learning-rat", "did you mean --learning-rate?"]),
        (["--obs-storage-dtype", "uint8"], ["uint8", "CartPole-v1", "float32"]),
        (["--output-dir", ""], ["--output-dir", "empty"]),
        (["--no-such-option", "1"], ["--no-such-option"]),
    ],
)
def test_bad_input_exits_2_with_a_message_naming_option_and_value(
    argv, expected, capsys, monkeypatch
):
    def must_not_run(*args, **kwargs):
        raise AssertionError("run_experiment reached: validation should have failed first")

    monkeypatch.setattr(cli.train, "run_experiment", must_not_run)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", *argv, "--quiet"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    error_lines = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(error_lines) == 1
    assert error_lines[0].startswith("purejaxdqn: error: ")
    assert "Traceback" not in captured.err
    for fragment in expected:
        assert fragment in error_lines[0], fragment


def test_run_experiment_rejects_bad_num_seeds_before_compiling():
    config = DQNConfig()
    for bad in (0, -3, 2.5, True, "4"):
        with pytest.raises(ValueError, match=r"num_seeds=.* is not allowed: must be an integer"):
            run_experiment(config, bad)


def test_run_experiment_rejects_hparams_of_the_wrong_length():
    config = DQNConfig()
    hparams = config.hparams(learning_rate=np.array([1e-4, 3e-4, 1e-3]))
    with pytest.raises(ValueError, match=r"hparams.learning_rate with shape \(3,\)"):
        run_experiment(config, num_seeds=2, hparams=hparams)


def test_console_output_shows_config_diff_progress_summary_and_folder(
    tmp_path, capsys, monkeypatch
):
    def fake_run_experiment(
        config, num_seeds, seed, *, progress, max_runs_per_device, on_chunk, resume, **kwargs
    ):
        assert max_runs_per_device == "auto" and resume is None and callable(on_chunk)
        assert (num_seeds, seed) == (3, 5)
        progress("compiling...")
        return synthetic_experiment(config, np.full((num_seeds, 2), 9.0), {})

    monkeypatch.setattr(cli.train, "run_experiment", fake_run_experiment)
    argv = ["train", "--env", "Catch-bsuite", "--num-seeds", "3", "--seed", "5", "--gamma", "0.9"]
    assert cli.main([*argv, "--output-dir", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "gamma" in out and "0.9" in out and "env_id" in out  # diff vs defaults
    assert "learning_rate" not in out  # unchanged fields are not listed
    assert "compiling..." in out
    assert format_summary(json.loads((tmp_path / "run" / "summary.json").read_text())) in out
    assert str(tmp_path / "run") in out
