"""The run configuration: every option, its documentation, and its validation.

`DQNConfig` holds everything. `make_train` reads its static fields (shapes, loop lengths,
choices between code paths) once; the numeric knobs a user may want to sweep travel as a
traced `HParams` pytree, so one compiled program serves every seed and every setting.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import jax
import numpy as np

from purejaxdqn.program import Capabilities

if TYPE_CHECKING:
    from purejaxdqn.program import TrainProgram

EXPLORATION_SCHEDULES = ("linear", "exponential")
LOSSES = ("mse", "huber")
NETWORKS = ("auto", "mlp", "minatar_cnn", "nature_cnn")
OBS_STORAGE_DTYPES = ("auto", "float32", "float16", "uint8", "bool", "int32")


def _option(default: Any, doc: str) -> Any:
    """A dataclass field whose documentation is also the CLI's `--help` text."""
    return dataclasses.field(default=default, metadata={"doc": doc})


@dataclasses.dataclass(frozen=True)
class DQNConfig:
    """Every option of a DQN run. Defaults are the classic CartPole DQN configuration.

    Env steps are counted as single-environment transitions: one vectorized step of
    `num_envs` environments is `num_envs` env steps.
    """

    env_id: str = _option(
        "CartPole-v1",
        "Environment id: a gymnax id (CartPole-v1, Breakout-MinAtar), or a bridged one "
        "(optional extras): LunarLander-v3, PongNoFrameskip-v4, ALE/Pong-v5, envpool:<task>, "
        "gymnasium:<id>.",
    )
    num_envs: int = _option(10, "Environments stepped in parallel per seed.")
    total_timesteps: int = _option(
        500_000,
        "Env steps per seed (all envs together); must be a multiple of "
        "num_envs * train_freq * num_log_points.",
    )
    buffer_size: int = _option(
        10_000, "Replay buffer capacity in transitions, a multiple of num_envs."
    )
    learning_starts: int = _option(
        10_000, "Env steps of uniform-random actions that fill the buffer before learning."
    )
    batch_size: int = _option(128, "Transitions sampled (with replacement) per gradient step.")
    train_freq: int = _option(
        1,
        "Vectorized env steps per iteration (each steps all num_envs envs); an iteration "
        "collects num_envs * train_freq transitions, then takes gradient_steps updates.",
    )
    gradient_steps: int = _option(1, "Gradient updates per iteration.")
    learning_rate: float = _option(2.5e-4, "Adam step size (traced hyperparameter).")
    adam_eps: float = _option(1e-8, "Adam epsilon.")
    anneal_lr: bool = _option(
        False,
        "Decay the learning rate linearly from learning_rate to 0 over the updates of the run.",
    )
    max_grad_norm: float | None = _option(
        10.0, "Clip gradients to this global norm (traced); 'none' disables clipping."
    )
    gamma: float = _option(0.99, "Discount factor in [0, 1] (traced).")
    tau: float = _option(
        1.0,
        "Target update rate in (0, 1]: target <- tau*online + (1-tau)*target every "
        "target_update_interval env steps; 1.0 is a hard copy (traced).",
    )
    target_update_interval: int = _option(
        500,
        "Env steps between target updates; at least num_envs * train_freq (one iteration). "
        "Need not divide evenly: the target updates at the first iteration that reaches "
        "each multiple.",
    )
    exploration_schedule: str = _option(
        "linear",
        "Epsilon decay: 'linear' reaches the final value after exploration_fraction of "
        "total_timesteps; 'exponential' decays with time constant "
        "exploration_fraction * total_timesteps.",
    )
    exploration_fraction: float = _option(
        0.5, "Fraction of total_timesteps that sets the epsilon decay length (traced)."
    )
    exploration_initial_eps: float = _option(1.0, "Epsilon at step 0 (traced).")
    exploration_final_eps: float = _option(0.05, "Epsilon after decay (traced).")
    loss: str = _option("mse", "TD loss: 'mse' (mean squared error) or 'huber'.")
    huber_delta: float = _option(1.0, "Huber loss transition point (traced).")
    double_q: bool = _option(False, "Double DQN: the online network picks the next action.")
    hidden_sizes: tuple[int, ...] = _option((120, 84), "Hidden layer widths of the Q-network.")
    network: str = _option(
        "auto",
        "Q-network: 'mlp'; 'minatar_cnn' (16 3x3 filters + dense, for small HxWxC images "
        "such as MinAtar's 10x10xC); 'nature_cnn' (the Nature DQN: three convolutions + "
        "dense 512, hidden_sizes unused; HxWxC with H, W >= 36, e.g. 84x84x4 frames; uint8 "
        "pixels are scaled by 1/255 inside); or 'auto' (nature_cnn for HxWxC with H, W >= "
        "36, minatar_cnn for smaller HxWxC, mlp otherwise). A CNN the observation shape "
        "cannot take raises when the program is built.",
    )
    dueling: bool = _option(False, "Dueling head: Q = V + A - mean(A).")
    obs_storage_dtype: str = _option(
        "auto",
        "Replay buffer observation dtype; 'auto' stores binary observations (MinAtar, "
        "bsuite grids) as uint8 and others in the environment's own dtype.",
    )
    env_seed: int = _option(
        0,
        "Seed of a bridged simulator (envpool, gymnasium): seed k of a run sees the "
        "simulators a lone run with env_seed + k sees. The CLI sets it to --seed. Unused by "
        "gymnax envs, whose randomness comes from the key.",
    )
    num_log_points: int = _option(100, "Metric summaries per run, evenly spaced in env steps.")
    eval_every: int = _option(
        10, "Greedy evaluation every this many log points (0 disables evaluation)."
    )
    eval_episodes: int = _option(10, "Episodes per greedy evaluation (run in parallel).")
    eval_epsilon: float = _option(0.0, "Epsilon of the evaluation policy (traced).")
    eval_max_steps: int | None = _option(
        None,
        "Step limit of an evaluation episode; defaults to the environment's max_steps_in_episode.",
    )
    solved_threshold: float | None = _option(
        None, "Greedy return at which the task counts as solved (reported, never enforced)."
    )

    def __post_init__(self) -> None:
        # numpy scalars (np.int64(8), np.float32(0.5), np.bool_(True)) become Python ones, so
        # a valid config compares, hashes and serialises to JSON like a hand-typed one.
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, _python_scalar(getattr(self, field.name)))
        if isinstance(self.hidden_sizes, tuple):
            sizes = tuple(_python_scalar(h) for h in self.hidden_sizes)
            object.__setattr__(self, "hidden_sizes", sizes)
        validate(self)

    @property
    def steps_per_iteration(self) -> int:
        """Env steps collected per training iteration."""
        return self.num_envs * self.train_freq

    @property
    def num_iterations(self) -> int:
        """Training iterations per run."""
        return self.total_timesteps // self.steps_per_iteration

    @property
    def iterations_per_log_point(self) -> int:
        """Iterations summarised into one row of metrics."""
        return self.num_iterations // self.num_log_points

    @property
    def prefill_iterations(self) -> int:
        """Leading iterations that act uniformly at random and do not learn."""
        return -(-self.learning_starts // self.steps_per_iteration)

    @property
    def num_updates(self) -> int:
        """Gradient updates per run."""
        return (self.num_iterations - self.prefill_iterations) * self.gradient_steps

    @property
    def num_evals(self) -> int:
        """Greedy evaluations per run."""
        return self.num_log_points // self.eval_every if self.eval_every else 0

    def replace(self, **changes: Any) -> DQNConfig:
        """A copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of every field."""
        out = dataclasses.asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DQNConfig:
        """Inverse of `to_dict`; unknown keys and values `DQNConfig` rejects raise ValueError."""
        if not isinstance(data, dict):
            raise ValueError(
                f"DQNConfig data of type {type(data).__name__} is not allowed: must be a dict "
                "of field values"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names, key=str)
        if unknown:
            raise ValueError(f"unknown DQNConfig fields {unknown}; allowed: {sorted(names)}")
        data = dict(data)
        if isinstance(data.get("hidden_sizes"), list):  # JSON has lists, not tuples
            data["hidden_sizes"] = tuple(data["hidden_sizes"])
        return cls(**data)

    def hparams(self, **overrides: Any) -> HParams:
        """The traced hyperparameters of this config, with optional overrides.

        Overrides may be arrays (e.g. one value per seed, to vmap over); every value is
        checked against its allowed range.
        """
        return make_hparams(self, **overrides)

    # --- the runtime's view of an algorithm config (`purejaxdqn.program.AlgorithmConfig`)
    LOG_SCALE_HPARAMS: ClassVar[frozenset[str]] = frozenset(
        {"learning_rate", "huber_delta", "max_grad_norm"}
    )

    def hparam_names(self) -> tuple[str, ...]:
        """The traced hyperparameters, the names `hparams` takes as overrides."""
        return HParams._fields

    def check_hparams(self, hparams: Any, num_runs: int | None = None) -> HParams:
        """`check_hparams(hparams, num_runs)`: hand-built hyperparameters, range-checked."""
        return check_hparams(hparams, num_runs)

    def make_program(self, env: Any = None, env_params: Any = None) -> TrainProgram:
        """`make_train_program(self, env, env_params)`."""
        from purejaxdqn.core.loop import make_train_program

        return make_train_program(self, env, env_params)

    def program_capabilities(self, env: Any = None) -> Capabilities:
        """What `make_program` declares, from the env id alone: a bridged simulator pool
        (envpool, gymnasium) runs in one call on one device and cannot be exported or
        checkpointed; a gymnax env (or an env object) can do everything.
        """
        from purejaxdqn.envs.bridge import is_bridged

        if env is None and is_bridged(self.env_id):
            return Capabilities(single_device=True, checkpointable=False, exportable=False)
        return Capabilities()


class HParams(NamedTuple):
    """Hyperparameters that `train` receives as traced values.

    Any leaf may carry a leading axis to `jax.vmap` over settings; build with
    `DQNConfig.hparams(...)` so values are checked before compiling.
    """

    learning_rate: Any
    gamma: Any
    tau: Any
    exploration_initial_eps: Any
    exploration_final_eps: Any
    exploration_fraction: Any
    huber_delta: Any
    max_grad_norm: Any
    eval_epsilon: Any


def make_hparams(config: DQNConfig, **overrides: Any) -> HParams:
    """Build `HParams` from `config`, replacing fields named in `overrides`; validate all."""
    unknown = sorted(set(overrides) - set(HParams._fields))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {unknown}; traced hyperparameters are "
            f"{list(HParams._fields)}"
        )
    values = {name: getattr(config, name) for name in HParams._fields}
    if values["max_grad_norm"] is None:
        if "max_grad_norm" in overrides:
            raise ValueError(
                "max_grad_norm override given but config.max_grad_norm is None (clipping is "
                "compiled out); set config.max_grad_norm to a number to sweep it"
            )
        values["max_grad_norm"] = np.inf
    values.update(overrides)
    arrays = {}
    for name, value in values.items():
        try:
            arrays[name] = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(
                f"{name}={value!r} is not allowed: must be a number or an array of numbers, "
                f"{_allowed_range(name)}"
            ) from None
        _check_range(name, arrays[name])
    return HParams(**{k: jax.numpy.asarray(v) for k, v in arrays.items()})


def hparams_in_axes(hparams: HParams) -> HParams:
    """`vmap` in_axes for `hparams`: 0 for leaves with a leading (setting) axis, else None.

    Example: `jax.vmap(train, in_axes=(0, hparams_in_axes(hp)))(keys, hp)`.
    """
    return HParams(*(0 if np.ndim(leaf) else None for leaf in hparams))


# (lower, upper, lower inclusive, upper inclusive) for every traced hyperparameter.
_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "learning_rate": (0.0, math.inf, False, False),
    "gamma": (0.0, 1.0, True, True),
    "tau": (0.0, 1.0, False, True),
    "exploration_initial_eps": (0.0, 1.0, True, True),
    "exploration_final_eps": (0.0, 1.0, True, True),
    "exploration_fraction": (0.0, math.inf, False, False),
    "huber_delta": (0.0, math.inf, False, False),
    "max_grad_norm": (0.0, math.inf, False, True),
    "eval_epsilon": (0.0, 1.0, True, True),
}


def _allowed_range(name: str) -> str:
    """The values traced hyperparameter `name` may take, in words: 'a finite value in (0, inf)'."""
    lo, hi, lo_closed, hi_closed = _RANGES[name]
    interval = f"{'[' if lo_closed else '('}{lo:g}, {hi:g}{']' if hi_closed else ')'}"
    if hi_closed and math.isinf(hi):
        return f"a value in {interval}"
    return f"a finite value in {interval}"


def _check_range(name: str, value: Any) -> None:
    """Raise ValueError naming `name` if any element of `value` leaves its allowed range."""
    lo, hi, lo_closed, hi_closed = _RANGES[name]
    arr = np.asarray(value, dtype=np.float64)
    above_lo = arr >= lo if lo_closed else arr > lo
    below_hi = arr <= hi if hi_closed else arr < hi
    allow_inf = hi_closed and math.isinf(hi)
    finite = np.isfinite(arr) | (allow_inf & (arr == np.inf))
    bad = ~(above_lo & below_hi & finite)
    if np.any(bad):
        shown = (arr[bad].ravel()[0] if arr.ndim else arr).item()
        raise ValueError(f"{name}={shown!r} is not allowed: must be {_allowed_range(name)}")


def check_hparams(hparams: HParams, num_runs: int | None = None) -> HParams:
    """Check hyperparameters built by hand, `HParams(...)`; return them unchanged.

    `DQNConfig.hparams(...)` checks every value it builds, but the `train` function of
    `make_train` takes any `HParams` as it is: a NaN, a negative learning rate or an
    epsilon above 1 trains silently into garbage. Pass hand-built ones through this first:

        train = jax.jit(make_train(config))
        result = train(key, check_hparams(hp))
        # one run per key, vmapped; leaves are scalars or hold one value per run:
        keys = jax.random.split(key, 4)
        jax.vmap(train, in_axes=(0, hparams_in_axes(hp)))(keys, check_hparams(hp, 4))

    Call it outside `jax.jit`: it reads the values.

    Args:
        hparams: the hyperparameters to check.
        num_runs: the number of runs `train` is vmapped over; when given, every leaf must
            be a scalar (shared by all runs) or have shape `(num_runs,)`.

    Raises:
        ValueError: `hparams` is not an `HParams`, a leaf is not numeric (int or float), a
            value leaves its allowed range (NaN included; the ranges of `DQNConfig`), or,
            with `num_runs`, a leaf has another shape.
    """
    if not isinstance(hparams, HParams):
        raise ValueError(
            f"hparams of type {type(hparams).__name__} is not allowed: must be an HParams "
            "(build it with config.hparams(...))"
        )
    for name, leaf in zip(HParams._fields, hparams, strict=True):
        try:
            dtype = np.asarray(leaf).dtype
        except (TypeError, ValueError):  # e.g. a ragged list
            dtype = np.dtype(object)
        if not (
            jax.numpy.issubdtype(dtype, np.floating) or jax.numpy.issubdtype(dtype, np.integer)
        ):
            raise ValueError(
                f"hparams.{name}={leaf!r} is not allowed: must be a number or an array of "
                f"numbers (int or float), {_allowed_range(name)}"
            )
        shape = np.shape(leaf)
        if num_runs is not None and (len(shape) > 1 or (shape and shape[0] != num_runs)):
            raise ValueError(
                f"hparams.{name} with shape {shape} is not allowed: must be a scalar (shared "
                f"by every seed) or have shape ({num_runs},), one value per seed"
            )
        _check_range(name, leaf)
    return hparams


def _python_scalar(value: Any) -> Any:
    """`value` as a Python scalar if it is a numpy one (np.int64(3) -> 3), else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _require_number(config: DQNConfig, name: str, allowed: str) -> float:
    """Field `name` as a float; raise ValueError saying `allowed` unless it is an int or float."""
    value = getattr(config, name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an int beyond the float range
            pass
    raise ValueError(f"{name}={value!r} is not allowed: must be a number (int or float), {allowed}")


def _require_int(config: DQNConfig, name: str, minimum: int, or_none: bool = False) -> int:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        allowed = f"an integer >= {minimum}" + (", or None" if or_none else "")
        raise ValueError(f"{name}={value!r} is not allowed: must be {allowed}")
    return int(value)


def _require_choice(config: DQNConfig, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is not allowed: must be one of {list(choices)}")


def validate(config: DQNConfig) -> None:
    """Check every static field and the default hyperparameters; raise a clear ValueError.

    Environment-dependent checks (unknown id, continuous actions) happen in `envs.make_env`.
    """
    if not isinstance(config.env_id, str) or not config.env_id:
        raise ValueError(f"env_id={config.env_id!r} is not allowed: must be a non-empty string")
    num_envs = _require_int(config, "num_envs", 1)
    train_freq = _require_int(config, "train_freq", 1)
    _require_int(config, "gradient_steps", 1)
    batch_size = _require_int(config, "batch_size", 1)
    buffer_size = _require_int(config, "buffer_size", 1)
    learning_starts = _require_int(config, "learning_starts", 0)
    total = _require_int(config, "total_timesteps", 1)
    num_log_points = _require_int(config, "num_log_points", 1)
    eval_every = _require_int(config, "eval_every", 0)
    _require_int(config, "eval_episodes", 1)
    _require_int(config, "env_seed", 0)
    interval = _require_int(config, "target_update_interval", 1)
    for name, choices in (
        ("exploration_schedule", EXPLORATION_SCHEDULES),
        ("loss", LOSSES),
        ("network", NETWORKS),
        ("obs_storage_dtype", OBS_STORAGE_DTYPES),
    ):
        _require_choice(config, name, choices)

    if buffer_size < num_envs * train_freq:
        raise ValueError(
            f"buffer_size={buffer_size} is not allowed: must hold at least one iteration's "
            f"transitions, num_envs * train_freq = {num_envs * train_freq}"
        )
    if buffer_size % num_envs:
        lower = buffer_size - buffer_size % num_envs
        raise ValueError(
            f"buffer_size={buffer_size} is not allowed: must be a multiple of num_envs="
            f"{num_envs} (each env has its own ring); nearest valid: {lower} or "
            f"{lower + num_envs}"
        )
    if batch_size > buffer_size:
        raise ValueError(
            f"batch_size={batch_size} is not allowed: must be <= buffer_size={buffer_size}"
        )
    per_iter = num_envs * train_freq
    if total < per_iter:
        raise ValueError(
            f"total_timesteps={total} is not allowed: must be at least one iteration, "
            f"num_envs * train_freq = {per_iter}"
        )
    per_log = per_iter * num_log_points
    if total % per_log:
        lower = (total // per_log) * per_log
        nearest = [v for v in (lower, lower + per_log) if v > 0]
        raise ValueError(
            f"total_timesteps={total} is not allowed: must be a multiple of num_envs * "
            f"train_freq * num_log_points = {num_envs} * {train_freq} * {num_log_points} = "
            f"{per_log} so every log point covers the same env steps (nearest: "
            f"{' or '.join(map(str, nearest))}; or change num_log_points)"
        )
    if learning_starts >= total:
        raise ValueError(
            f"learning_starts={learning_starts} is not allowed: must be < total_timesteps="
            f"{total}, or the agent never learns"
        )
    if interval < per_iter:
        raise ValueError(
            f"target_update_interval={interval} is not allowed: must be >= num_envs * "
            f"train_freq = {per_iter}, the env steps of one iteration (the target updates at "
            "most once per iteration; use tau < 1 for soft updates every iteration)"
        )
    if eval_every and num_log_points % eval_every:
        raise ValueError(
            f"eval_every={eval_every} is not allowed: must divide num_log_points="
            f"{num_log_points} (or be 0 to disable evaluation)"
        )
    if not isinstance(config.hidden_sizes, tuple) or not all(
        isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1
        for h in config.hidden_sizes
    ):
        raise ValueError(
            f"hidden_sizes={config.hidden_sizes!r} is not allowed: must be a tuple of "
            "positive integers"
        )
    if config.eval_max_steps is not None:
        _require_int(config, "eval_max_steps", 1, or_none=True)
    if config.solved_threshold is not None:
        threshold = _require_number(config, "solved_threshold", "finite, or None")
        if not math.isfinite(threshold):
            raise ValueError(
                f"solved_threshold={config.solved_threshold!r} is not allowed: must be finite "
                "or None"
            )
    for name in ("double_q", "dueling", "anneal_lr"):
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{name}={getattr(config, name)!r} is not allowed: must be a bool")
    adam_eps = _require_number(config, "adam_eps", "finite and > 0")
    if not (math.isfinite(adam_eps) and adam_eps > 0):
        raise ValueError(f"adam_eps={config.adam_eps!r} is not allowed: must be finite and > 0")
    for name in HParams._fields:
        if name == "max_grad_norm" and config.max_grad_norm is None:
            continue
        or_none = ", or None" if name == "max_grad_norm" else ""
        _check_range(name, _require_number(config, name, _allowed_range(name) + or_none))
