"""purejaxdqn: vectorized, high-throughput Deep Q-Networks in JAX.

Layout: `core` (the algorithms: DQN and its family, PQN), `algorithms` (them by `--algo`
name), `envs` (environments), `run` (the runtime: devices, chunks, checkpoints, sweeps),
`outputs` (results folders, policies, plots), `cli` (the command).
"""

from types import ModuleType

from purejaxdqn import _moved
from purejaxdqn.core.config import DQNConfig, HParams, check_hparams, hparams_in_axes, make_hparams
from purejaxdqn.core.loop import (
    RunnerState,
    TrainProgram,
    TrainResult,
    make_train,
    make_train_program,
)
from purejaxdqn.core.pqn import make_pqn_program, make_pqn_train
from purejaxdqn.core.pqn_config import PQNConfig
from purejaxdqn.core.pqn_presets import PQN_PRESETS
from purejaxdqn.core.presets import PRESETS, get_preset
from purejaxdqn.outputs.policy import Policy, evaluate_policy, load_policy, render_policy

_moved.install()  # `import purejaxdqn.devices` and the other pre-0.2 module names still work


def __getattr__(name: str) -> ModuleType:
    return _moved.old_name(name)


__all__ = [
    "DQNConfig",
    "HParams",
    "PQNConfig",
    "PQN_PRESETS",
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
    "make_pqn_program",
    "make_pqn_train",
    "make_train",
    "make_train_program",
    "render_policy",
]
__version__ = "0.1.0"
