"""Training through simulator bridges: LunarLander (envpool), Pong (envpool), gymnasium."""

from __future__ import annotations

import contextlib
import io
import json

import jax
import numpy as np
import pytest

from purejaxdqn import DQNConfig, cli
from purejaxdqn.core.loop import make_train_program
from purejaxdqn.run.experiment import run_experiment

LANDER = DQNConfig(
    env_id="LunarLander-v3",
    num_envs=4,
    total_timesteps=2_400,
    buffer_size=1_200,
    learning_starts=400,
    batch_size=32,
    target_update_interval=100,
    hidden_sizes=(32,),
    num_log_points=3,
    eval_every=3,
    eval_episodes=2,
    eval_max_steps=150,
)


def _train(config: DQNConfig, keys: jax.Array):
    program = make_train_program(config)  # fresh simulators
    return jax.device_get(
        jax.jit(jax.vmap(program.train, in_axes=(0, None)))(keys, config.hparams())
    )


@pytest.fixture(scope="module")
def lander_two_seeds():
    return _train(LANDER, jax.random.split(jax.random.key(0), 2))


def test_lunar_lander_trains_and_learns_only_from_valid_transitions(lander_two_seeds):
    metrics, evals = lander_two_seeds.metrics, lander_two_seeds.evals
    assert np.isfinite(metrics["loss"][:, 1:]).all() and (metrics["episodes"].sum(1) > 4).all()
    assert np.isfinite(evals["return"]).all() and evals["return"].shape == (2, 1)
    valid = lander_two_seeds.runner_state.buffer.valid
    assert valid.shape == (2, 301, 4) and 0 < (~valid).sum() < 0.05 * valid.size
    # a reset step is not an episode step: lengths are the episode's own steps
    assert (metrics["episode_length"] >= 1).all()


def test_same_key_and_fresh_simulators_give_identical_results(lander_two_seeds):
    again = _train(LANDER, jax.random.split(jax.random.key(0), 2))
    for name in ("loss", "episode_return", "episodes"):
        np.testing.assert_array_equal(again.metrics[name], lander_two_seeds.metrics[name])
    np.testing.assert_array_equal(again.evals["return"], lander_two_seeds.evals["return"])


def test_seed_one_of_a_batch_equals_a_lone_run_at_env_seed_one(lander_two_seeds):
    keys = jax.random.split(jax.random.key(0), 2)
    lone = _train(LANDER.replace(env_seed=1), keys[1:])
    np.testing.assert_array_equal(
        lone.metrics["episodes"][0], lander_two_seeds.metrics["episodes"][1]
    )
    np.testing.assert_allclose(
        lone.metrics["episode_return"][0], lander_two_seeds.metrics["episode_return"][1], rtol=1e-4
    )
    np.testing.assert_allclose(
        lone.metrics["loss"][0], lander_two_seeds.metrics["loss"][1], rtol=1e-4
    )


def test_tiny_pong_run_through_the_cli(tmp_path):
    argv = [
        "train", "--env", "PongNoFrameskip-v4", "--num-seeds", "2", "--num-envs", "2",
        "--total-timesteps", "256", "--buffer-size", "256", "--learning-starts", "64",
        "--batch-size", "8", "--target-update-interval", "64", "--num-log-points", "2",
        "--eval-every", "0", "--output-dir", str(tmp_path / "pong"), "--quiet",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    summary = json.loads((tmp_path / "pong" / "summary.json").read_text())
    config = json.loads((tmp_path / "pong" / "config.json").read_text())
    assert summary["num_seeds"] == 2 and config["network"] == "auto"
    assert np.isfinite(summary["env_steps_per_second"])


def test_lunar_lander_cli_run_and_refusals(tmp_path, capsys):
    run = ["train", "--env", "LunarLander-v3", "--num-seeds", "2", "--seed", "3"]
    small = ["--num-envs", "2", "--total-timesteps", "400", "--buffer-size", "200",
             "--learning-starts", "100", "--batch-size", "16", "--num-log-points", "2",
             "--eval-every", "0", "--target-update-interval", "100", "--quiet"]  # fmt: skip
    assert cli.main([*run, *small, "--output-dir", str(tmp_path / "ll")]) == 0
    written = json.loads((tmp_path / "ll" / "config.json").read_text())
    assert written["env_seed"] == 3  # --seed moves the simulators too
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*run, *small, "--checkpoint-every", "1", "--output-dir", str(tmp_path / "c")])
    assert exit_info.value.code == 2
    assert "cannot be checkpointed" in capsys.readouterr().err


def test_gymnasium_path_trains_through_run_experiment():
    config = LANDER.replace(env_id="gymnasium:CartPole-v1", total_timesteps=1_200, eval_every=0)
    with contextlib.redirect_stdout(io.StringIO()):
        experiment = run_experiment(config, num_seeds=2)
    assert experiment.metrics["episodes"].sum() > 20
    assert np.isfinite(experiment.metrics["loss"][:, 1:]).all()
