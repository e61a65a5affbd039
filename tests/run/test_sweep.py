"""Sweeps, on one device, on several devices and in several processes (the device layout and
the memory preflight themselves: test_parallel.py).

Device counts are fixed when JAX starts, so the 4-device and 2-process runs happen in fresh
interpreters and are compared with the same sweep run here on one device.
"""

import csv
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, all_close

from purejaxdqn import DQNConfig, cli
from purejaxdqn.outputs.stats import bootstrap_ci, iqm, mean_rows
from purejaxdqn.run import sweep
from purejaxdqn.run.experiment import run_experiment

GRID = {"learning_rate": [1e-3, 3e-3, 1e-2]}
NUM_SEEDS = 2
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_sweep():
    """3 learning rates x 2 seeds of TINY, on this process's single device."""
    return sweep.run(TINY, GRID, NUM_SEEDS, seed=5)


# --- settings --------------------------------------------------------------------------------


def test_grid_is_every_combination_last_name_fastest():
    settings = sweep.grid({"learning_rate": [1e-4, 1e-3], "gamma": [0.9, 0.99, 0.999]})
    assert len(settings) == 6
    assert settings[0] == {"learning_rate": 1e-4, "gamma": 0.9}
    assert settings[1] == {"learning_rate": 1e-4, "gamma": 0.99}
    assert settings[5] == {"learning_rate": 1e-3, "gamma": 0.999}
    assert sweep.grid({}) == [{}]


def test_only_traced_hyperparameters_can_be_swept():
    with pytest.raises(ValueError, match="'num_envs' cannot be swept.*learning_rate"):
        sweep.grid({"num_envs": [4, 8]})
    with pytest.raises(ValueError, match="gamma has no values"):
        sweep.grid({"gamma": []})


def test_random_search_is_log_uniform_for_learning_rate_and_reproducible():
    space = {
        "learning_rate": sweep.Range(1e-5, 1e-1),
        "gamma": sweep.Range(0.9, 0.99),
        "tau": [0.1, 1.0],
        "huber_delta": 2.0,
    }
    settings = sweep.sample(space, 4000, seed=3)
    assert settings == sweep.sample(space, 4000, seed=3)
    assert settings != sweep.sample(space, 4000, seed=4)
    lrs = np.array([s["learning_rate"] for s in settings])
    gammas = np.array([s["gamma"] for s in settings])
    assert lrs.min() >= 1e-5 and lrs.max() <= 1e-1
    # log-uniform: each decade holds about a quarter of the draws; uniform would put ~90%
    # in the top decade
    decades = np.histogram(np.log10(lrs), bins=[-5, -4, -3, -2, -1])[0] / lrs.size
    assert np.all(np.abs(decades - 0.25) < 0.04)
    assert abs(np.mean(gammas) - 0.945) < 0.003  # uniform on [0.9, 0.99]
    assert {s["tau"] for s in settings} == {0.1, 1.0}
    assert {s["huber_delta"] for s in settings} == {2.0}
    with pytest.raises(ValueError, match="learning_rate range 0:0.1.*low > 0"):
        sweep.sample({"learning_rate": sweep.Range(0.0, 0.1)}, 2)
    with pytest.raises(ValueError, match="num_samples=0"):
        sweep.sample(space, 0)


# --- statistics ------------------------------------------------------------------------------


def test_bootstrap_interval_brackets_the_estimate_and_is_deterministic():
    rng = np.random.default_rng(0)
    values = rng.normal(100.0, 20.0, size=32)
    low, high = bootstrap_ci(values)
    assert low < iqm(values) < high
    assert (low, high) == bootstrap_ci(values)
    assert bootstrap_ci([7.0]) == (7.0, 7.0)
    assert all(np.isnan(bootstrap_ci([1.0, np.nan, 3.0])))
    with pytest.raises(ValueError, match="confidence=1.5"):
        bootstrap_ci(values, confidence=1.5)


def test_bootstrap_interval_of_the_mean_covers_the_true_mean_about_95_percent():
    rng = np.random.default_rng(1)
    covered = 0
    trials = 300
    for trial in range(trials):
        low, high = bootstrap_ci(rng.normal(0.0, 1.0, 40), mean_rows, resamples=1000, seed=trial)
        covered += low <= 0.0 <= high
    assert 0.89 <= covered / trials <= 0.99  # percentile bootstrap slightly under-covers


# --- compiled runs ---------------------------------------------------------------------------


def test_each_setting_equals_a_separate_run_with_that_setting(tiny_sweep):
    assert [e.config.learning_rate for e in tiny_sweep.experiments] == GRID["learning_rate"]
    single = run_experiment(TINY.replace(learning_rate=3e-3), NUM_SEEDS, seed=5)
    swept = tiny_sweep.experiments[1]
    assert all_close(single.metrics, swept.metrics)
    assert all_close(single.evals, swept.evals)
    # settings really differ: the learning rate changes the losses
    assert not np.allclose(
        tiny_sweep.experiments[0].metrics["loss"], swept.metrics["loss"], equal_nan=True
    )


# --- the command line, on 1 device, 4 devices and 2 processes --------------------------------

SWEEP_ARGS = [
    "sweep",
    "--env", "CartPole-v1",
    "--num-seeds", "2",
    "--total-timesteps", "1600",
    "--num-envs", "4",
    "--num-log-points", "4",
    "--eval-every", "2",
    "--eval-episodes", "2",
    "--eval-max-steps", "100",
    "--learning-starts", "200",
    "--buffer-size", "512",
    "--batch-size", "32",
    "--target-update-interval", "100",
    "--hidden-sizes", "16",
    "--train-freq", "1",
    "--gradient-steps", "1",
    "--learning-rate", "1e-3,1e-2",
    "--gamma", "0.9,0.99",
    "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def cli_sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep") / "out"
    assert cli.main([*SWEEP_ARGS, "--output-dir", str(folder)]) == 0
    return folder


def _read_folder(folder: Path) -> dict:
    """Every setting's metrics.csv as float arrays, and the ranking."""
    summary = json.loads((folder / "sweep_summary.json").read_text())
    metrics = {}
    for row in summary["ranking"]:
        with (folder / row["folder"] / "metrics.csv").open() as file:
            rows = list(csv.reader(file))
        values = [[float(cell) if cell else np.nan for cell in r] for r in rows[1:]]
        metrics[row["folder"]] = np.array(values)
    return {"ranking": summary["ranking"], "metrics": metrics}


def test_sweep_cli_writes_a_folder_per_setting_and_the_ranking(cli_sweep):
    summary = json.loads((cli_sweep / "sweep_summary.json").read_text())
    assert summary["num_settings"] == 4 and summary["swept"] == ["gamma", "learning_rate"]
    folders = sorted(p.name for p in cli_sweep.iterdir() if p.is_dir())
    assert folders == sorted(row["folder"] for row in summary["ranking"])
    assert len(folders) == 4
    for name in folders:
        for file in ("config.json", "metrics.csv", "evals.csv", "summary.json"):
            assert (cli_sweep / name / file).stat().st_size > 0
        config = json.loads((cli_sweep / name / "config.json").read_text())
        assert f"learning_rate={config['learning_rate']:.4g}" in name
    with (cli_sweep / "sweep_summary.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4]
    iqms = [float(r["iqm_final_eval_return"]) for r in rows]
    assert iqms == sorted(iqms, reverse=True)
    for row in rows:
        assert (
            float(row["ci95_low"]) <= float(row["iqm_final_eval_return"]) <= float(row["ci95_high"])
        )


def test_sweep_cli_prints_the_ranking_table(tmp_path, capsys):
    args = [a for a in SWEEP_ARGS if a != "--quiet"]
    args[args.index("1e-3,1e-2")] = "1e-3"
    assert cli.main([*args, "--output-dir", str(tmp_path / "s")]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("rank"))
    assert "IQM final return" in lines[header] and "95% CI" in lines[header]
    assert lines[header].split()[:2] == ["rank", "gamma"]  # one value: not swept, not shown
    rows = [lines[header + 1].split(), lines[header + 2].split()]
    assert [row[0] for row in rows] == ["1", "2"]
    assert sorted(row[1] for row in rows) == ["0.9", "0.99"]
    assert float(rows[0][2]) >= float(rows[1][2])  # best IQM first


def test_sweep_cli_rejects_static_lists_and_ranges_without_samples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", "--num-envs", "4,8"])
    assert exit_info.value.code == 2
    assert "num_envs='4,8' cannot be swept" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--gamma", "0.9:0.99"])
    assert "needs --num-samples" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--gamma", "0.9,1.5"])
    assert "gamma=1.5 is not allowed" in capsys.readouterr().err


def test_sweep_cli_refuses_a_hyperparameter_the_config_leaves_unused(capsys):
    """per_alpha without prioritized replay, the Munchausen knobs without munchausen: every
    setting would train the same, so the sweep says why instead of running them.
    """
    for argv, words in [
        (["--per-alpha", "0.4,0.8"], "sweeping per_alpha is not allowed here: prioritized"),
        (["--munchausen-tau", "0.01,0.1"], "munchausen_tau is not allowed here: munchausen is"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["sweep", "--env", "CartPole-v1", "--quiet", *argv])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "argument --" in err and words in err, err
    config = DQNConfig(prioritized_replay=True, munchausen=True, loss="huber")
    assert config.unused_hparams() == {}
    assert set(DQNConfig(eval_every=0).unused_hparams()) == {
        "per_alpha",
        "per_beta",
        "munchausen_alpha",
        "munchausen_tau",
        "munchausen_clip",
        "huber_delta",
        "eval_epsilon",
    }


def _python(code: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=400)
    assert process.returncode == 0, err[-3000:]
    return out


def test_four_devices_with_padding_equal_one_device(tiny_sweep):
    code = f"""
        import json, jax, numpy as np, sys
        sys.path.insert(0, "tests")
        from conftest import TINY
        from purejaxdqn.run import sweep
        result = sweep.run(TINY, {GRID!r}, {NUM_SEEDS}, seed=5)
        plan = result.plan
        print(json.dumps({{
            "devices": len(jax.devices()),
            "layout": [plan.num_devices, plan.runs_per_device, plan.num_batches, plan.padding],
            "metrics": [{{k: v.tolist() for k, v in e.metrics.items()}}
                        for e in result.experiments],
            "evals": [{{k: v.tolist() for k, v in e.evals.items()}}
                      for e in result.experiments],
        }}))
        """
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    out = json.loads(_finish(_python(code, env)).strip().splitlines()[-1])
    assert out["devices"] == 4
    assert out["layout"] == [4, 2, 1, 2]  # 6 runs padded to 8; the padding is not reported
    for mine, theirs_metrics, theirs_evals in zip(
        tiny_sweep.experiments, out["metrics"], out["evals"], strict=True
    ):
        assert all_close(mine.metrics, {k: np.array(v, float) for k, v in theirs_metrics.items()})
        assert all_close(
            {k: np.asarray(v, float) for k, v in mine.evals.items()},
            {k: np.array(v, float) for k, v in theirs_evals.items()},
        )


def test_two_process_run_on_localhost_gives_the_single_process_results(cli_sweep, tmp_path):
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    folder = tmp_path / "multi"
    args = [*SWEEP_ARGS, "--output-dir", str(folder)]
    by_options = ["--coordinator-address", f"localhost:{port}", "--num-processes", "2"]
    by_variables = {  # process 1 joins through the environment variables instead
        "JAX_COORDINATOR_ADDRESS": f"localhost:{port}",
        "JAX_NUM_PROCESSES": "2",
        "JAX_PROCESS_ID": "1",
    }
    code = "import sys; from purejaxdqn import cli; sys.exit(cli.main({!r}))"
    processes = [
        _python(
            code.format([*args, *by_options, "--process-id", "0"]), {"JAX_NUM_CPU_DEVICES": "1"}
        ),
        _python(
            code.format([*args, "--distributed"]), {"JAX_NUM_CPU_DEVICES": "1", **by_variables}
        ),
    ]
    for process in processes:
        _finish(process)
    single, multi = _read_folder(cli_sweep), _read_folder(folder)
    strip = ("env_steps_per_second",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in multi["ranking"]] == [
        {k: v for k, v in r.items() if k not in strip} for r in single["ranking"]
    ]
    assert sorted(multi["metrics"]) == sorted(single["metrics"])
    for name, values in single["metrics"].items():
        assert np.allclose(values, multi["metrics"][name], rtol=1e-5, atol=1e-6, equal_nan=True)
    layout = json.loads((folder / "sweep_summary.json").read_text())["layout"]
    assert layout["processes"] == 2 and layout["num_devices"] == 2
