"""A second algorithm through the user-facing runtime: `run_experiment`, `sweep.run`, a
checkpoint and a resume, and the results writer, all unchanged.

`BanditConfig` below is the whole "algorithm side" a new algorithm supplies besides its
program (`second_program.make_bandit_program`): a frozen dataclass satisfying
`purejaxdqn.program.AlgorithmConfig`, whose hyperparameters are a nested dict.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from typing import Any, ClassVar

import jax
import numpy as np
import pytest
from flax import serialization
from second_program import STEPS_PER_PERIOD, bandit_hparams, make_bandit_program

from purejaxdqn.checks import check_int
from purejaxdqn.core import rng
from purejaxdqn.outputs.policy import PARAMS_FILE
from purejaxdqn.outputs.report import Summary
from purejaxdqn.outputs.results import write_run
from purejaxdqn.program import AlgorithmConfig, Capabilities, TrainProgram
from purejaxdqn.run import checkpoint, sweep
from purejaxdqn.run.execute import Resume, state_shapes
from purejaxdqn.run.experiment import run_experiment

_HPARAMS = ("step_size", "noise")


@dataclasses.dataclass(frozen=True)
class BanditConfig:
    """The bandit's config: static loop lengths and the defaults of its two traced values."""

    env_id: str = "bandit-4"
    num_log_points: int = 4
    eval_every: int = 2
    step_size: float = 0.1
    noise: float = 0.5
    solved_threshold: float | None = 0.9

    LOG_SCALE_HPARAMS: ClassVar[frozenset[str]] = frozenset({"step_size"})

    def __post_init__(self) -> None:
        check_int("num_log_points", self.num_log_points, 1)

    @property
    def total_timesteps(self) -> int:
        return self.num_log_points * STEPS_PER_PERIOD

    def hparams(self, **overrides: Any) -> dict[str, Any]:
        unknown = set(overrides) - set(_HPARAMS)
        if unknown:
            raise ValueError(f"unknown hyperparameters {sorted(unknown)}")
        values = {name: overrides.get(name, getattr(self, name)) for name in _HPARAMS}
        arrays = {name: np.asarray(value, np.float32) for name, value in values.items()}
        for name, value in arrays.items():
            if not np.all((value > 0) & np.isfinite(value)):
                raise ValueError(f"{name}={values[name]!r} is not allowed: must be > 0")
        return bandit_hparams(arrays["step_size"], arrays["noise"])

    def hparam_names(self) -> tuple[str, ...]:
        return _HPARAMS

    def check_hparams(self, hparams: Any, num_runs: int | None = None) -> Any:
        for leaf in jax.tree.leaves(hparams):
            if np.ndim(leaf) and np.shape(leaf) != (num_runs,):
                raise ValueError(f"a leaf of shape {np.shape(leaf)}: need () or ({num_runs},)")
        return hparams

    def make_program(self, env: Any = None, env_params: Any = None) -> TrainProgram:
        return make_bandit_program(self.num_log_points, self.eval_every)

    def program_capabilities(self, env: Any = None) -> Capabilities:
        return Capabilities()

    def replace(self, **changes: Any) -> BanditConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CONFIG = BanditConfig()


def _single_runs(config: BanditConfig, num_seeds: int, seed: int) -> tuple[dict, dict]:
    """Each seed run alone, `jax.jit(program.train)` on its own key: the reference."""
    train = jax.jit(config.make_program().train)
    keys = jax.random.split(rng.seed_key(seed), num_seeds)
    runs = [train(key, config.hparams()) for key in keys]
    stack = lambda part: {  # noqa: E731
        name: np.stack([np.asarray(run[part][name]) for run in runs]) for name in runs[0][part]
    }
    return stack(1), stack(2)


def test_the_bandit_config_has_every_member_of_the_protocol_and_other_hparams():
    members = set(AlgorithmConfig.__annotations__) | {
        name for name, value in vars(AlgorithmConfig).items() if callable(value) and name[0] != "_"
    }
    assert {"env_id", "hparams", "make_program", "LOG_SCALE_HPARAMS"} <= members
    missing = [name for name in sorted(members) if not hasattr(CONFIG, name)]
    assert not missing, missing
    assert jax.tree.structure(CONFIG.hparams()) == jax.tree.structure(bandit_hparams())


@pytest.fixture(scope="module")
def experiment():
    return run_experiment(CONFIG, num_seeds=3, seed=5)


def test_run_experiment_runs_a_second_algorithm_like_its_single_runs(experiment):
    metrics, evals = _single_runs(CONFIG, 3, 5)
    assert set(experiment.metrics) == set(metrics)
    for name, values in metrics.items():
        np.testing.assert_array_equal(experiment.metrics[name], values, err_msg=name)
    for name, values in evals.items():
        np.testing.assert_array_equal(experiment.evals[name], values, err_msg=name)
    assert experiment.params["w"].shape == (3, 4)  # policy_params: state["params"]


def test_its_summary_is_typed_and_built_from_its_outputs(experiment):
    summary = experiment.summary
    assert isinstance(summary, Summary)
    assert summary.env_id == "bandit-4" and summary.num_seeds == 3
    assert summary.env_steps_done == CONFIG.total_timesteps and not summary.stopped_early
    np.testing.assert_array_equal(summary.final_eval_returns, experiment.evals["return"][:, -1])
    assert summary.final_return_source == "greedy_eval"
    assert summary.diverged_env_steps is None  # this program does not track divergence
    assert summary.fraction_solved == np.mean(experiment.evals["return"][:, -1] >= 0.9)


def test_the_results_writer_writes_its_folder(experiment, tmp_path):
    folder = write_run(experiment, tmp_path / "bandit")
    with (folder / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["seed", "env_steps", "best_arm", "episode_return", "episodes"]
    assert len(rows) == 3 * CONFIG.num_log_points
    assert [int(row["env_steps"]) for row in rows[:4]] == [8, 16, 24, 32]
    with (folder / "evals.csv").open() as file:
        evals = list(csv.DictReader(file))
    assert list(evals[0]) == ["seed", "env_steps", "return"]  # the program reports no length
    assert len(evals) == 3 * CONFIG.num_log_points // CONFIG.eval_every
    summary = json.loads((folder / "summary.json").read_text())
    assert summary == json.loads(json.dumps(experiment.summary.to_json()))
    config = json.loads((folder / "config.json").read_text())
    assert config["env_id"] == "bandit-4" and config["num_seeds"] == 3
    params = serialization.msgpack_restore((folder / PARAMS_FILE).read_bytes())
    np.testing.assert_array_equal(params["w"], experiment.params["w"])


def test_a_sweep_of_a_nested_hparam_dict_equals_each_setting_run_alone():
    grid = {"step_size": [0.05, 0.3], "noise": [0.2]}
    result = sweep.run(CONFIG, grid, num_seeds=2, seed=1)
    assert [row["setting"] for row in result.ranking] != [] and len(result.experiments) == 2
    for setting, swept in zip(result.settings, result.experiments, strict=True):
        alone = run_experiment(CONFIG.replace(**setting), num_seeds=2, seed=1)
        assert swept.config == CONFIG.replace(**setting)
        for name, values in alone.metrics.items():
            np.testing.assert_array_equal(swept.metrics[name], values, err_msg=name)
        assert swept.summary.timing == "whole sweep"
    assert "step_size" in sweep.format_ranking(result.ranking)
    with pytest.raises(ValueError, match="'gamma' cannot be swept.*step_size"):
        sweep.grid({"gamma": [0.9]}, CONFIG)


def test_a_checkpoint_and_resume_of_a_second_algorithm_is_exact(tmp_path):
    identity = checkpoint.identity("bandit-run", CONFIG, 2, 3)
    saver = checkpoint.Checkpointer(tmp_path, identity)

    def save_then_stop(chunk: Any) -> bool:
        saver.save(chunk.periods_done, chunk.states(), chunk.metrics_so_far, chunk.evals_so_far)
        return chunk.periods_done == 2  # stop half-way

    stopped = run_experiment(CONFIG, 2, seed=3, on_chunk=save_then_stop)
    assert stopped.summary.stopped_early and stopped.summary.env_steps_done == 16
    like = state_shapes(CONFIG.make_program(), CONFIG.hparams())
    point = checkpoint.restore(tmp_path, like, identity)
    resume = point.resume
    assert isinstance(resume, Resume) and resume.periods_done == 2
    resumed = run_experiment(CONFIG, 2, seed=3, resume=resume)
    whole = run_experiment(CONFIG, 2, seed=3)
    for name, values in whole.metrics.items():
        np.testing.assert_array_equal(resumed.metrics[name], values, err_msg=name)
    for name, values in whole.evals.items():
        np.testing.assert_array_equal(resumed.evals[name], values, err_msg=name)
    np.testing.assert_array_equal(resumed.params["w"], whole.params["w"])
