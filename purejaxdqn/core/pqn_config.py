"""`PQNConfig`: every option of a PQN run (Gallici et al., "Simplifying Deep Temporal
Difference Learning", ICLR 2025), declared as `DQNConfig`'s are (`config._option`).

PQN has no replay buffer and no target network: each iteration steps `num_envs`
environments `num_steps` times with an epsilon-greedy policy, computes Q(lambda) targets
backwards over that rollout, and takes `num_epochs` passes of `num_minibatches` shuffled
minibatches over it with RAdam. The defaults are purejaxql's CartPole configuration.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from purejaxdqn.core.config import (
    NETWORKS,
    ConfigBase,
    _option,
    env_seed_option,
    eval_episodes_option,
    eval_epsilon_option,
    eval_every_option,
    eval_max_steps_option,
    gamma_option,
    initial_eps_option,
    max_grad_norm_option,
    num_log_points_option,
    solved_threshold_option,
)
from purejaxdqn.core.networks import KERNEL_INITS, NORMS

if TYPE_CHECKING:
    from purejaxdqn.core.networks import QNetwork
    from purejaxdqn.program import TrainProgram


@dataclasses.dataclass(frozen=True)
class PQNConfig(ConfigBase):
    """Every option of a PQN run. Defaults are purejaxql's CartPole-v1 configuration
    (32 envs x 64 steps, 4 epochs of 16 minibatches, RAdam 1e-4 decayed linearly, lambda
    0.95, rewards scaled by 0.1), over 240 iterations (491,520 env steps; purejaxql's
    5e5 makes 244).

    Env steps count single-environment transitions: one vectorized step of `num_envs`
    environments is `num_envs` env steps.
    """

    ALGO: ClassVar[str] = "pqn"
    # no replay: observations stay as the env gives them ('auto', as a policy rebuilds them)
    obs_storage_dtype: ClassVar[str] = "auto"
    LOG_SCALE_HPARAMS: ClassVar[frozenset[str]] = frozenset(
        {"learning_rate", "max_grad_norm", "reward_scale"}
    )

    env_id: str = _option(
        "CartPole-v1",
        "Environment id: a gymnax id (CartPole-v1, Breakout-MinAtar), or a bridged one "
        "(optional extras): LunarLander-v3, PongNoFrameskip-v4, envpool:<task>, gymnasium:<id>.",
    )
    num_envs: int = _option(32, "Environments stepped in parallel per seed.", minimum=1)
    num_steps: int = _option(
        64,
        "Vector steps per rollout: an iteration collects num_envs * num_steps transitions, "
        "then learns from them.",
        minimum=1,
    )
    total_timesteps: int = _option(
        491_520,
        "Env steps per seed (all envs together); must be a multiple of "
        "num_envs * num_steps * num_log_points.",
        minimum=1,
    )
    num_epochs: int = _option(4, "Passes over each rollout.", minimum=1)
    num_minibatches: int = _option(
        16,
        "Minibatches per epoch, drawn without replacement from a fresh shuffle of the "
        "rollout; must divide num_envs * num_steps.",
        minimum=1,
    )
    learning_rate: float = _option(
        1e-4, "RAdam step size (traced hyperparameter).", traced=True, interval="(0, inf)"
    )
    anneal_lr: bool = _option(
        True,
        "Decay the learning rate linearly from learning_rate to 0 over the updates of the run.",
    )
    max_grad_norm: float | None = max_grad_norm_option()
    gamma: float = gamma_option()
    lam: float = _option(
        0.95,
        "Q(lambda)'s lambda: 0 gives one-step Q-learning targets, 1 Monte Carlo returns "
        "within the rollout (traced).",
        traced=True,
        interval="[0, 1]",
    )
    reward_scale: float = _option(
        0.1,
        "Rewards are multiplied by this before the targets (episode returns are reported "
        "unscaled; traced).",
        traced=True,
        interval="(0, inf)",
    )
    exploration_initial_eps: float = initial_eps_option()
    exploration_final_eps: float = _option(
        0.2, "Epsilon after the linear decay (traced).", traced=True, interval="[0, 1]"
    )
    exploration_fraction: float = _option(
        0.2,
        "Fraction of total_timesteps over which epsilon decays linearly; it is constant "
        "within a rollout (traced).",
        traced=True,
        interval="(0, inf)",
    )
    network: str = _option(
        "auto",
        "Q-network: 'mlp', 'minatar_cnn', 'nature_cnn' or 'auto' (as DQNConfig.network).",
        choices=NETWORKS,
    )
    hidden_sizes: tuple[int, ...] = _option(
        (256, 256),
        "Hidden layer widths of the MLP (and the MinAtar CNN's dense layers).",
        minimum=1,
    )
    norm: str = _option(
        "layer_norm",
        "What follows each hidden layer before its ReLU: 'layer_norm' (PQN) or 'none' (an "
        "ablation).",
        choices=NORMS,
    )
    kernel_init: str = _option(
        "lecun_normal",
        "How the hidden layers' kernels are drawn: 'lecun_normal' (flax's default) or "
        "'he_normal' (variance 2 / fan_in, as purejaxql's CNNs).",
        choices=tuple(KERNEL_INITS),
    )
    env_seed: int = env_seed_option()
    num_log_points: int = num_log_points_option(20)
    eval_every: int = eval_every_option(1)
    eval_episodes: int = eval_episodes_option(16)
    eval_epsilon: float = eval_epsilon_option()
    eval_max_steps: int | None = eval_max_steps_option()
    solved_threshold: float | None = solved_threshold_option()

    @property
    def steps_per_iteration(self) -> int:
        """Env steps collected per iteration (one rollout)."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        """Transitions per gradient step."""
        return self.steps_per_iteration // self.num_minibatches

    @property
    def updates_per_iteration(self) -> int:
        """Gradient steps per iteration."""
        return self.num_epochs * self.num_minibatches

    @property
    def num_updates(self) -> int:
        """Gradient steps per run."""
        return self.num_iterations * self.updates_per_iteration

    def validate_fields(self) -> None:
        """The rules between fields: whole minibatches, whole log periods, evaluations on
        log points.
        """
        rollout = self.steps_per_iteration
        if rollout % self.num_minibatches:
            raise ValueError(
                f"num_minibatches={self.num_minibatches} is not allowed: must divide "
                f"num_envs * num_steps = {self.num_envs} * {self.num_steps} = {rollout}"
            )
        per_log = rollout * self.num_log_points
        if self.total_timesteps % per_log:
            lower = self.total_timesteps // per_log * per_log
            nearest = [v for v in (lower, lower + per_log) if v > 0]
            raise ValueError(
                f"total_timesteps={self.total_timesteps} is not allowed: must be a multiple "
                f"of num_envs * num_steps * num_log_points = {self.num_envs} * "
                f"{self.num_steps} * {self.num_log_points} = {per_log} so every log point "
                f"covers the same env steps (nearest: {' or '.join(map(str, nearest))}; or "
                "change num_log_points)"
            )
        if self.eval_every and self.num_log_points % self.eval_every:
            raise ValueError(
                f"eval_every={self.eval_every} is not allowed: must divide num_log_points="
                f"{self.num_log_points} (or be 0 to disable evaluation)"
            )

    def unused_hparams(self) -> dict[str, str]:
        """Traced hyperparameters this config's static choices leave unused, each with why."""
        return {} if self.eval_every else {"eval_epsilon": "evaluation is off (eval_every=0)"}

    def q_network(self, obs_shape: tuple[int, ...], num_actions: int) -> QNetwork:
        """The Q-network of this config for observations of `obs_shape`."""
        from purejaxdqn.core.networks import make_q_network

        return make_q_network(
            self.network,
            obs_shape,
            num_actions,
            self.hidden_sizes,
            False,
            norm=self.norm,
            kernel_init=self.kernel_init,
        )

    def make_program(self, env: Any = None, env_params: Any = None) -> TrainProgram:
        """`make_pqn_program(self, env, env_params)`."""
        from purejaxdqn.core.pqn import make_pqn_program

        return make_pqn_program(self, env, env_params)
