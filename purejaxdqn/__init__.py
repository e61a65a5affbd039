"""purejaxdqn: vectorized, high-throughput Deep Q-Networks in JAX."""

from purejaxdqn.config import DQNConfig, HParams, hparams_in_axes, make_hparams
from purejaxdqn.presets import PRESETS, get_preset
from purejaxdqn.train import RunnerState, TrainResult, make_train

__all__ = [
    "DQNConfig",
    "HParams",
    "PRESETS",
    "RunnerState",
    "TrainResult",
    "get_preset",
    "hparams_in_axes",
    "make_hparams",
    "make_train",
]
__version__ = "0.1.0"
