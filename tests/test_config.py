"""Every bad input raises a clear ValueError naming the field, the value and what is allowed,
before anything is compiled."""

import dataclasses
import math

import numpy as np
import pytest

from purejaxdqn import DQNConfig, get_preset, make_train
from purejaxdqn.config import HParams

BASE = dict(num_envs=4, total_timesteps=4000, buffer_size=1000, learning_starts=100)


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"num_envs": 0}, r"num_envs=0 .*integer >= 1"),
        ({"num_envs": 2.5}, r"num_envs=2.5 .*integer"),
        ({"batch_size": 2000}, r"batch_size=2000 .*<= buffer_size=1000"),
        ({"buffer_size": 3}, r"buffer_size=3 .*num_envs \* train_freq = 4"),
        ({"learning_starts": 4000}, r"learning_starts=4000 .*< total_timesteps=4000"),
        ({"total_timesteps": 2}, r"total_timesteps=2 .*at least one iteration"),
        ({"total_timesteps": 4100}, r"total_timesteps=4100 .*multiple of .*400.*4000 or 4400"),
        (
            {"target_update_interval": 3},
            r"target_update_interval=3 .*>= num_envs \* train_freq = 4",
        ),
        ({"target_update_interval": 0}, r"target_update_interval=0 .*integer >= 1"),
        ({"target_update_interval": 12.5}, r"target_update_interval=12.5 .*integer"),
        ({"exploration_fraction": 0.0}, r"exploration_fraction=0.0 .*\(0, inf\)"),
        ({"exploration_fraction": -1.0}, r"exploration_fraction=-1.0 "),
        ({"learning_rate": float("nan")}, r"learning_rate=nan .*finite value in \(0, inf\)"),
        ({"learning_rate": float("inf")}, r"learning_rate=inf .*finite"),
        ({"learning_rate": 0.0}, r"learning_rate=0.0 .*\(0, inf\)"),
        ({"learning_rate": -1e-3}, r"learning_rate=-0.001 "),
        ({"gamma": 1.5}, r"gamma=1.5 .*\[0, 1\]"),
        ({"gamma": -0.1}, r"gamma=-0.1 .*\[0, 1\]"),
        ({"tau": 0.0}, r"tau=0.0 .*\(0, 1\]"),
        ({"tau": 1.5}, r"tau=1.5 .*\(0, 1\]"),
        ({"exploration_final_eps": 1.2}, r"exploration_final_eps=1.2 .*\[0, 1\]"),
        ({"loss": "l1"}, r"loss='l1' .*\['mse', 'huber'\]"),
        ({"exploration_schedule": "cosine"}, r"exploration_schedule='cosine' .*linear"),
        ({"num_log_points": 3}, r"total_timesteps=4000 .*num_log_points"),
        ({"eval_every": 3}, r"eval_every=3 .*divide num_log_points=100"),
        ({"hidden_sizes": (64, 0)}, r"hidden_sizes=\(64, 0\) .*positive integers"),
        ({"max_grad_norm": -1.0}, r"max_grad_norm=-1.0 "),
        ({"network": "resnet"}, r"network='resnet' .*'minatar_cnn', 'nature_cnn'\]"),
    ],
)
def test_bad_config_values(changes, pattern):
    with pytest.raises(ValueError, match=pattern):
        DQNConfig(**{**BASE, **changes})


def test_defaults_are_valid_and_round_trip():
    config = DQNConfig()
    assert DQNConfig.from_dict(config.to_dict()) == config
    assert config.steps_per_iteration == 10 and config.num_iterations == 50_000
    with pytest.raises(ValueError, match=r"unknown DQNConfig fields \['lr'\]"):
        DQNConfig.from_dict({"lr": 1.0})


def test_every_field_is_documented():
    for field in dataclasses.fields(DQNConfig):
        assert len(field.metadata.get("doc", "")) > 10, field.name


def test_unknown_env_id_lists_close_matches():
    with pytest.raises(ValueError, match=r"env_id='CartPol-v1' .*did you mean \['CartPole-v1'"):
        make_train(DQNConfig(env_id="CartPol-v1"))


def test_continuous_action_space_is_rejected():
    with pytest.raises(ValueError, match=r"env_id='Pendulum-v1' has action space Box.*Discrete"):
        make_train(DQNConfig(env_id="Pendulum-v1"))


def test_unknown_preset():
    with pytest.raises(ValueError, match=r"preset='CartPole' is not known .*CartPole-v1"):
        get_preset("CartPole")


def test_cnn_on_vector_observations_is_rejected():
    with pytest.raises(ValueError, match=r"network='minatar_cnn' .*\(4,\)"):
        make_train(DQNConfig(network="minatar_cnn"))


def test_hparams_overrides_are_checked_elementwise():
    config = DQNConfig()
    hp = config.hparams(learning_rate=np.array([1e-3, 3e-4]), gamma=0.9)
    assert isinstance(hp, HParams) and hp.learning_rate.shape == (2,)
    assert float(hp.gamma) == pytest.approx(0.9)
    with pytest.raises(ValueError, match=r"learning_rate=-1.0 .*\(0, inf\)"):
        config.hparams(learning_rate=np.array([1e-3, -1.0]))
    with pytest.raises(ValueError, match=r"tau=0.0 "):
        config.hparams(tau=[0.5, 0.0])
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['lr'\]"):
        config.hparams(lr=1.0)
    with pytest.raises(ValueError, match="max_grad_norm override"):
        DQNConfig(max_grad_norm=None).hparams(max_grad_norm=1.0)
    assert math.isinf(float(DQNConfig(max_grad_norm=None).hparams().max_grad_norm))
