"""purejaxdqn: vectorized, high-throughput Deep Q-Networks in JAX."""

from purejaxdqn.config import DQNConfig, HParams, check_hparams, hparams_in_axes, make_hparams
from purejaxdqn.policy import Policy, evaluate_policy, load_policy, render_policy
from purejaxdqn.presets import PRESETS, get_preset
from purejaxdqn.train import RunnerState, TrainProgram, TrainResult, make_train, make_train_program

__all__ = [
    "DQNConfig",
    "HParams",
    "PRESETS",
    "Policy",
    "RunnerState",
    "TrainProgram",
    "TrainResult",
    "check_hparams",
    "evaluate_policy",
    "get_preset",
    "hparams_in_axes",
    "load_policy",
    "make_hparams",
    "make_train",
    "make_train_program",
    "render_policy",
]
__version__ = "0.1.0"
