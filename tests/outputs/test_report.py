"""The typed run summary (built once from outputs, JSON only when written) and the results
folder, from synthetic results (no training).
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_experiment

from purejaxdqn import DQNConfig
from purejaxdqn.outputs.report import format_summary
from purejaxdqn.outputs.results import write_run


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames or []), list(reader)


def test_without_evaluation_the_final_return_comes_from_training_episodes(tmp_path):
    config = DQNConfig(eval_every=0, solved_threshold=10.0)
    returns = np.array([[1.0, 12.0], [3.0, np.nan], [2.0, 9.5]])
    experiment = synthetic_experiment(config, returns, {})
    summary = experiment.summary.to_json()
    assert summary["final_return_source"] == "training_episodes"
    assert summary["final_eval_returns"] == [12.0, None, 9.5]
    assert summary["iqm_final_eval_return"] is None  # a seed has no finished episode
    assert summary["fraction_solved"] == pytest.approx(1 / 3)
    # throughput counts the env steps done (these synthetic metrics end at 200)
    assert summary["env_steps_done"] == 200 and summary["stopped_early"]
    assert summary["env_steps_per_second"] == 3 * 200 / 2.0
    json.dumps(summary, allow_nan=False)  # plain JSON, no NaN

    folder = write_run(experiment, tmp_path / "nested" / "run")
    header, rows = _read_csv(folder / "evals.csv")
    assert header == ["seed", "env_steps", "return", "length"] and rows == []
    header, rows = _read_csv(folder / "metrics.csv")
    assert header == ["seed", "env_steps", "episode_return", "episodes"]
    assert rows[3] == {"seed": "1", "env_steps": "200", "episode_return": "", "episodes": "1"}
    assert json.loads((folder / "summary.json").read_text()) == summary


def test_summary_with_evals_and_no_threshold_and_its_table():
    config = DQNConfig()
    evals = {
        "env_steps": np.array([[50, 100]] * 4, np.int32),
        "return": np.array([[1.0, 10.0], [1.0, 20.0], [1.0, 30.0], [1.0, 400.0]], np.float32),
        "length": np.ones((4, 2), np.float32),
        "episode_returns": np.ones((4, 2, 3), np.float32),
    }
    summary = synthetic_experiment(config, np.ones((4, 2)), evals).summary.to_json()
    assert summary["final_return_source"] == "greedy_eval"
    assert summary["final_eval_returns"] == [10.0, 20.0, 30.0, 400.0]
    assert summary["iqm_final_eval_return"] == 25.0
    assert summary["mean_final_eval_return"] == 115.0
    assert summary["solved_threshold"] is None and summary["fraction_solved"] is None
    table = format_summary(summary)
    for fragment in ("CartPole-v1", "IQM 25.0", "mean 115.0", "no threshold", "1.5 s", "2.0 s"):
        assert fragment in table, fragment
