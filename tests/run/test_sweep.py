"""Sweeps, device layout, memory preflight, multi-device and multi-process runs.

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
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from conftest import TINY

from purejaxdqn import cli, make_train, make_train_program
from purejaxdqn.outputs.stats import bootstrap_ci, iqm, mean_rows
from purejaxdqn.run import sweep
from purejaxdqn.run.execute import (
    CPU_BYTES_PER_DEVICE,
    CPU_RUNS_PER_DEVICE,
    estimate_run_bytes,
    execute,
    plan_batches,
    state_shapes,
)
from purejaxdqn.run.experiment import run_experiment

GRID = {"learning_rate": [1e-3, 3e-3, 1e-2]}
NUM_SEEDS = 2
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_sweep():
    """3 learning rates x 2 seeds of TINY, on this process's single device."""
    return sweep.run(TINY, GRID, NUM_SEEDS, seed=5)


def _close(a, b) -> bool:
    """Integers equal; floats equal up to the rounding that batch shapes change."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "iub":
        return bool(np.array_equal(a, b))
    return bool(np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True))


def _all_close(first: dict, second: dict) -> bool:
    assert sorted(first) == sorted(second)
    return all(_close(first[name], second[name]) for name in first)


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


# --- layout and memory preflight (no compiling) ---------------------------------------------


def _cpus(count):
    return [SimpleNamespace(platform="cpu")] * count


def test_plan_pads_uneven_counts_and_caps_rows_per_cpu_device():
    plan = plan_batches(6, 1000, devices=_cpus(4), device_bytes=10**9)
    assert (plan.num_devices, plan.runs_per_device, plan.num_batches, plan.padding) == (4, 2, 1, 2)
    plan = plan_batches(64, 1000, devices=_cpus(2), device_bytes=10**9)
    assert plan.runs_per_device == CPU_RUNS_PER_DEVICE and plan.num_batches == 4
    assert plan.padding == 0
    # batches are spread evenly: 20 rows on 2 devices, cap 8 -> 2 batches of 5 per device
    plan = plan_batches(20, 1000, devices=_cpus(2), device_bytes=10**9)
    assert (plan.runs_per_device, plan.num_batches, plan.padding) == (5, 2, 0)
    plan = plan_batches(64, 1000, max_runs_per_device=None, devices=_cpus(2), device_bytes=10**9)
    assert (plan.runs_per_device, plan.num_batches) == (32, 1)
    # large rows (MinAtar's 100k buffers) get a smaller CPU cap
    plan = plan_batches(64, CPU_BYTES_PER_DEVICE // 2, devices=_cpus(2), device_bytes=10**12)
    assert (plan.runs_per_device, plan.num_batches) == (2, 16)
    # fewer rows than devices: use only as many devices as rows
    assert plan_batches(1, 1000, devices=_cpus(2), device_bytes=10**9).num_devices == 1
    gpus = [SimpleNamespace(platform="gpu")] * 2
    assert plan_batches(4096, 1000, devices=gpus, device_bytes=10**12).num_batches == 1


def test_plan_splits_into_sequential_batches_when_memory_is_short():
    # 100 MB per run, 1 GB per device: 80% fits 8 runs per device
    plan = plan_batches(64, 10**8, max_runs_per_device=None, devices=_cpus(2), device_bytes=10**9)
    assert plan.runs_per_device == 8 and plan.num_batches == 4
    assert plan.runs_per_device * plan.bytes_per_run <= 0.8 * 10**9


def test_plan_rejects_a_run_larger_than_a_device_naming_both_sizes():
    with pytest.raises(ValueError, match=r"one run needs ~2.00 GiB.*of 1.00 GiB.*buffer_size"):
        plan_batches(4, 2 * 2**30, devices=_cpus(1), device_bytes=2**30)
    with pytest.raises(ValueError, match="max_runs_per_device=0 is not allowed"):
        plan_batches(4, 100, max_runs_per_device=0, devices=_cpus(1), device_bytes=2**30)


def test_run_too_large_for_the_device_fails_before_compiling(tiny_program, monkeypatch):
    def no_jit(*args, **kwargs):
        raise AssertionError("jax.jit called: the preflight must fail before compiling")

    monkeypatch.setattr(jax, "jit", no_jit)
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(ValueError, match="one run needs"):
        execute(tiny_program, keys, TINY.hparams(), device_bytes=1000)


# --- compiled runs ---------------------------------------------------------------------------


def test_each_setting_equals_a_separate_run_with_that_setting(tiny_sweep):
    assert [e.config.learning_rate for e in tiny_sweep.experiments] == GRID["learning_rate"]
    single = run_experiment(TINY.replace(learning_rate=3e-3), NUM_SEEDS, seed=5)
    swept = tiny_sweep.experiments[1]
    assert _all_close(single.metrics, swept.metrics)
    assert _all_close(single.evals, swept.evals)
    # settings really differ: the learning rate changes the losses
    assert not np.allclose(
        tiny_sweep.experiments[0].metrics["loss"], swept.metrics["loss"], equal_nan=True
    )


def test_sequential_batches_equal_one_batch(tiny_program, tiny_vmapped):
    keys = jax.random.split(jax.random.key(2), 3)
    reference = tiny_vmapped(keys, TINY.hparams())
    outputs = execute(tiny_program, keys, TINY.hparams(), max_runs_per_device=1)
    assert outputs.plan.num_batches == 3
    assert _all_close(jax.tree.map(np.asarray, reference.metrics), outputs.metrics)
    assert _all_close(jax.tree.map(np.asarray, reference.evals), outputs.evals)
    assert outputs.compiled_bytes_per_run <= outputs.plan.bytes_per_run  # estimate bounds XLA


def test_idle_batches_offloaded_to_the_host_give_the_same_results(tiny_program):
    keys = jax.random.split(jax.random.key(2), 3)

    def run(offload):
        seen = []
        outputs = execute(
            tiny_program,
            keys,
            TINY.hparams(),
            max_runs_per_device=1,
            on_chunk=lambda chunk: seen.append(chunk.periods_done) and False,
            offload_idle_batches=offload,
        )
        assert outputs.plan.num_batches == 3 and seen == [1, 2, 3, 4]
        return outputs

    kept, offloaded = run(False), run(True)
    for a, b in ((kept.metrics, offloaded.metrics), (kept.evals, offloaded.evals)):
        assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    leaves = zip(jax.tree.leaves(kept.params), jax.tree.leaves(offloaded.params), strict=True)
    assert all(np.array_equal(x, y) for x, y in leaves)


def test_estimate_counts_the_replay_buffer(tiny_train):
    small = estimate_run_bytes(tiny_train, TINY.hparams())
    big_config = TINY.replace(buffer_size=TINY.buffer_size * 8)
    big = estimate_run_bytes(make_train(big_config), big_config.hparams())
    obs_bytes = 4 * 4  # CartPole: 4 float32
    assert big - small >= 2 * 7 * TINY.buffer_size * obs_bytes


def test_compiled_memory_counts_the_donated_state_once():
    """The runner state is donated from chunk to chunk, so the compiled program's memory
    holds one copy of the replay buffer, not an input and an output copy.
    """
    config = TINY.replace(buffer_size=2**16, eval_every=0)  # the buffer dominates the state
    program = make_train_program(config)
    keys = jax.random.split(jax.random.key(0), 1)
    outputs = execute(program, keys, config.hparams())
    shapes = jax.tree.leaves(state_shapes(program, config.hparams()))
    state = sum(s.size * s.dtype.itemsize for s in shapes)
    assert state <= outputs.compiled_bytes_per_run < 1.25 * state


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
        assert _all_close(mine.metrics, {k: np.array(v, float) for k, v in theirs_metrics.items()})
        assert _all_close(
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
