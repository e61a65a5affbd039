"""`--algo pqn` through every command: train, resume, eval, plot, sweep, and its errors.

One tiny two-seed PQN run with a checkpoint at every log point goes through `main` (one
compile, shared by the tests that read its folder); the error tests stop before anything
compiles.
"""

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_experiment

from purejaxdqn import DQNConfig, PQNConfig, cli
from purejaxdqn.core.pqn_presets import PQN_PRESETS
from purejaxdqn.outputs.plot import load_curves
from purejaxdqn.outputs.policy import evaluate_policy, load_policy
from purejaxdqn.outputs.rundir import read_record
from purejaxdqn.run import checkpoint

# 4 envs x 8 steps per iteration, 8 iterations per log point, evaluations at 2 and 4
TINY_PQN = [
    "--algo", "pqn",
    "--env", "CartPole-v1",
    "--num-envs", "4",
    "--num-steps", "8",
    "--num-minibatches", "2",
    "--num-epochs", "1",
    "--total-timesteps", "1024",
    "--num-log-points", "4",
    "--eval-every", "2",
    "--eval-episodes", "2",
    "--eval-max-steps", "100",
    "--hidden-sizes", "16,16",
]  # fmt: skip
RESULTS = ("metrics.csv", "evals.csv", "params.msgpack")


def _main(argv: list) -> int:
    """`purejaxdqn ...` in this process: its exit status (argparse errors exit 2)."""
    try:
        return cli.main([str(arg) for arg in argv])
    except SystemExit as stop:
        return int(stop.code)


def _config(argv: list[str]):
    return cli.options.config_from_args(cli.parse_command_line(argv)[0])


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def pqn_run(tmp_path_factory) -> Path:
    """A finished two-seed PQN run with a checkpoint after every log point."""
    folder = tmp_path_factory.mktemp("pqn") / "run"
    argv = ["train", *TINY_PQN, "--num-seeds", "2", "--output-dir", folder]
    assert _main([*argv, "--checkpoint-every", "1", "--keep-checkpoints", "4", "--quiet"]) == 0
    return folder


# --- train, and the folder it writes ----------------------------------------------------------


def test_config_json_records_pqn_and_reads_back_to_the_config_used(pqn_run):
    data = json.loads((pqn_run / "config.json").read_text())
    assert data["algo"] == "pqn"
    record = read_record(pqn_run)
    assert isinstance(record.config, PQNConfig)
    assert record.config == _config(["train", *TINY_PQN])
    assert record.config == PQN_PRESETS["CartPole-v1"].replace(
        num_envs=4,
        num_steps=8,
        num_minibatches=2,
        num_epochs=1,
        total_timesteps=1024,
        num_log_points=4,
        eval_every=2,
        eval_episodes=2,
        eval_max_steps=100,
        hidden_sizes=(16, 16),
    )
    assert (record.num_seeds, record.seed) == (2, 0)


def test_metrics_have_the_runtimes_columns_and_one_row_per_seed_and_point(pqn_run):
    rows = _rows(pqn_run / "metrics.csv")
    assert list(rows[0]) == [
        "seed", "env_steps", "episode_length", "episode_return", "episodes", "epsilon",
        "loss", "q_value", "updates",
    ]  # fmt: skip
    assert [(r["seed"], int(r["env_steps"])) for r in rows] == [
        (str(seed), steps) for seed in (0, 1) for steps in (256, 512, 768, 1024)
    ]
    assert {int(r["updates"]) for r in rows} == {8 * 1 * 2}  # iterations x epochs x minibatches
    evals = _rows(pqn_run / "evals.csv")
    assert [(r["seed"], int(r["env_steps"])) for r in evals] == [
        (str(seed), steps) for seed in (0, 1) for steps in (512, 1024)
    ]


def test_resume_of_an_interrupted_pqn_run_ends_as_the_uninterrupted_run(pqn_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(pqn_run, copy)
    for number in checkpoint._numbered(copy / checkpoint.CHECKPOINT_DIR):
        if number > 1:  # as if it stopped after the first log point, before any evaluation
            shutil.rmtree(copy / checkpoint.CHECKPOINT_DIR / str(number))
    for name in (*RESULTS, "summary.json"):
        (copy / name).unlink()
    assert _main(["train", "--resume", copy, "--quiet"]) == 0
    for name in RESULTS:
        assert (copy / name).read_bytes() == (pqn_run / name).read_bytes(), name
    assert isinstance(read_record(copy).config, PQNConfig)


def test_eval_builds_the_pqn_network_and_prints_every_seed(pqn_run, capsys):
    policy = load_policy(pqn_run)
    assert isinstance(policy.config, PQNConfig)
    assert "LayerNorm_0" in str(policy.params)  # PQN's network (DQN's has no norm layers)
    returns = evaluate_policy(policy, episodes=2, seed=3)
    assert _main(["eval", pqn_run, "--episodes", "2", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "CartPole-v1: 2 episode(s) per seed" in out
    for k, row in enumerate(returns):
        assert f"{k:>4}  {row.mean():>10.2f}  {row.min():>10.2f}  {row.max():>10.2f}" in out


def test_render_draws_a_pqn_seeds_greedy_episode(pqn_run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("pygame")  # gymnasium's classic-control drawing
    out = tmp_path / "pqn.gif"
    assert _main(["render", pqn_run, "--seed", "1", "--out", out, "--max-steps", "5"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith(f"wrote {out} (") and out.stat().st_size > 0


def test_plot_draws_the_pqn_run(pqn_run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    (curves,) = load_curves(pqn_run)
    assert curves.env_id == "CartPole-v1"
    assert curves.env_steps.tolist() == [256, 512, 768, 1024]
    out = tmp_path / "curves.png"
    assert _main(["plot", pqn_run, "--out", out]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert out.stat().st_size > 0


def test_the_printed_diff_is_against_pqn_defaults(tmp_path, capsys, monkeypatch):
    def fake_run_experiment(config, num_seeds, seed, *, progress, **kwargs):
        assert isinstance(config, PQNConfig)
        return synthetic_experiment(config, np.full((num_seeds, 2), 9.0), {})

    monkeypatch.setattr(cli.train, "run_experiment", fake_run_experiment)
    argv = ["train", "--algo", "pqn", "--env", "Catch-bsuite", "--lam", "0.5"]
    assert _main([*argv, "--output-dir", tmp_path / "run"]) == 0
    out = capsys.readouterr().out
    assert "starting from no PQN preset for Catch-bsuite: PQNConfig defaults" in out
    assert "config (differences from PQNConfig defaults):" in out
    lines = out.splitlines()
    assert any(line.split() == ["lam", "0.5"] for line in lines)
    assert any(line.split() == ["env_id", "Catch-bsuite"] for line in lines)
    assert not any(line.split()[:1] == ["learning_rate"] for line in lines)  # a default


# --- sweep -----------------------------------------------------------------------------------


def test_sweep_of_pqns_lambda_writes_a_pqn_folder_per_setting(tmp_path):
    folder = tmp_path / "sweep"
    argv = ["sweep", *TINY_PQN, "--lam", "0.5,0.8", "--eval-every", "4", "--quiet"]
    assert _main([*argv, "--output-dir", folder]) == 0
    summary = json.loads((folder / "sweep_summary.json").read_text())
    assert summary["swept"] == ["lam"] and summary["num_settings"] == 2
    records = [read_record(folder / row["folder"]) for row in summary["ranking"]]
    assert all(isinstance(record.config, PQNConfig) for record in records)
    assert sorted(record.config.lam for record in records) == [0.5, 0.8]


# --- help and errors: before anything compiles -----------------------------------------------


def test_help_with_algo_pqn_lists_pqns_options_and_not_dqns(capsys):
    assert _main(["train", "--algo", "pqn", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "PQN options" in help_text and "Every PQNConfig field" in help_text
    for field in dataclasses.fields(PQNConfig):
        if field.name != "env_id":
            assert cli.options.option_name(field.name) in help_text, field.name
    assert "--buffer-size" not in help_text and "--double-q" not in help_text
    assert _main(["sweep", "--algo", "pqn", "--help"]) == 0
    sweep_help = " ".join(capsys.readouterr().out.split())
    assert "--lam V[,V...]|LO:HI" in sweep_help and "--num-steps INT" in sweep_help


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--algo", "ppo"], ["argument --algo", "algo='ppo'", "dqn, pqn"]),
        (
            ["train", "--algo", "pqn", "--buffer-size", "1000"],
            ["argument --buffer-size", "--buffer-size 1000", "of DQN", "not of PQN"],
        ),
        (
            ["sweep", "--algo", "pqn", "--double-q"],
            ["argument --double-q", "of DQN", "not of PQN", "--algo pqn"],
        ),
        (
            ["train", "--num-steps", "8"],
            ["argument --num-steps", "--num-steps 8", "of PQN", "not of DQN"],
        ),
        (
            ["train", "--algo", "pqn", "--preset", "rainbow"],
            ["argument --preset", "preset='rainbow'", "algo='pqn'", "CartPole-v1"],
        ),
        (
            ["train", "--algo", "pqn", "--preset", "Pong-misc"],
            ["argument --preset", "preset='Pong-misc'", "algo='pqn'", "Breakout-MinAtar"],
        ),
        (["train", "--algo", "pqn", "--lam", "1.5"], ["argument --lam", "lam=1.5"]),
        (
            ["train", "--resume", "somewhere", "--algo", "pqn", "--num-steps", "8"],
            ["--resume", "drop --algo, --num-steps"],
        ),
    ],
)
def test_bad_input_exits_2_naming_option_and_value(argv, expected, capsys, monkeypatch):
    monkeypatch.setattr(cli.train, "run_experiment", lambda *a, **k: pytest.fail("ran"))
    monkeypatch.setattr(cli.sweep.sweep, "run", lambda *a, **k: pytest.fail("ran"))
    assert _main([*argv, "--quiet"]) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("purejaxdqn: error: "), captured.err
    assert "Traceback" not in captured.err
    for fragment in expected:
        assert fragment in lines[0], fragment


def test_a_config_json_without_algo_is_dqn_and_an_unknown_algo_is_refused(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    config = DQNConfig(num_envs=4, buffer_size=1000)
    (folder / "config.json").write_text(json.dumps({**config.to_dict(), "num_seeds": 2}))
    assert read_record(folder).config == config  # written before PQN: no "algo"
    data = {"algo": "ppo", **PQNConfig().to_dict()}
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"config.json: algo='ppo' is not allowed: .*dqn, pqn"):
        read_record(folder)
