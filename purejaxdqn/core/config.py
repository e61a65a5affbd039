"""The run configuration: every option, its documentation, its allowed values, and the
traced hyperparameters.

`DQNConfig` holds everything. Each field declares, next to its doc (the CLI's `--help`),
the values it allows (`_option(..., minimum=1)`, `choices=LOSSES`, `interval="(0, 1]"`);
its annotation gives its kind and whether None is allowed. `check_fields` checks every
field against that declaration; `validate` checks the rules between fields.

`make_train` reads the static fields (shapes, loop lengths, choices between code paths)
once; the fields marked `traced=True` (the numeric knobs a user may want to sweep) travel,
in field order, as the traced `HParams` pytree, so one compiled program serves every seed
and every setting. A new traced hyperparameter is one new field with `traced=True` and its
interval: `HParams`, `hparams()`, the range checks and the CLI's sweep options follow.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import re
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import jax
import numpy as np

from purejaxdqn.checks import check_int, is_integer
from purejaxdqn.program import Capabilities
from purejaxdqn.program import hparams_in_axes as hparams_in_axes  # re-exported (old home)

if TYPE_CHECKING:
    from purejaxdqn.core.networks import QNetwork
    from purejaxdqn.program import TrainProgram

EXPLORATION_SCHEDULES = ("linear", "exponential")
LOSSES = ("mse", "huber")
NETWORKS = ("auto", "mlp", "minatar_cnn", "nature_cnn")
DISTRIBUTIONAL = ("none", "c51", "qr")
OBS_STORAGE_DTYPES = ("auto", "float32", "float16", "uint8", "bool", "int32")


class Interval(NamedTuple):
    """An interval of real numbers, written as in mathematics: `Interval.parse("(0, 1]")`."""

    low: float
    high: float
    low_closed: bool
    high_closed: bool

    @classmethod
    def parse(cls, text: str) -> Interval:
        """The interval `text` names: `[` and `]` close an end, `(` and `)` open it, `inf`
        is infinity: "[0, 1]", "(0, inf)", "(0, inf]", "(-inf, inf)".

        Raises:
            ValueError: `text` is not written that way.
        """
        match = re.fullmatch(r"([\[(])\s*([^,\s]+)\s*,\s*([^\])\s]+)\s*([\])])", text)
        if match is None:
            raise ValueError(f"interval={text!r} is not allowed: write it like '(0, 1]'")
        opening, low, high, closing = match.groups()
        return cls(float(low), float(high), opening == "[", closing == "]")

    def words(self) -> str:
        """The interval in words: 'a finite value in (0, inf)', 'a value in (0, inf]' (when
        +inf belongs to it).
        """
        opening = "[" if self.low_closed else "("
        closing = "]" if self.high_closed else ")"
        text = f"{opening}{self.low:g}, {self.high:g}{closing}"
        if self.high_closed and math.isinf(self.high):
            return f"a value in {text}"
        return f"a finite value in {text}"

    def outside(self, values: Any) -> np.ndarray:
        """Which elements of `values` (numbers or an array) lie outside the interval; NaN
        and infinities always do, unless the infinity is a closed end.
        """
        arr = np.asarray(values, dtype=np.float64)
        above_low = arr >= self.low if self.low_closed else arr > self.low
        below_high = arr <= self.high if self.high_closed else arr < self.high
        allow_inf = self.high_closed and math.isinf(self.high)
        finite = np.isfinite(arr) | (allow_inf & (arr == np.inf))
        return ~(above_low & below_high & finite)


def _option(
    default: Any,
    doc: str,
    *,
    minimum: int | None = None,
    choices: tuple[str, ...] | None = None,
    interval: str | None = None,
    allowed: str | None = None,
    traced: bool = False,
) -> Any:
    """A dataclass field with its documentation (the CLI's `--help` text) and the values it
    allows, which `check_fields` checks.

    The field's annotation gives its kind (`int`, `float`, `bool`, `str`, `tuple[int, ...]`)
    and whether None is allowed (`int | None`); the rest is declared here.

    Args:
        default: the default value.
        doc: what the option does.
        minimum: the smallest value of an `int` field or of each element of a tuple field.
        choices: the values a `str` field may take (without: any non-empty string).
        interval: the values a `float` field may take, e.g. "(0, 1]" (see `Interval.parse`).
        allowed: the interval in words for messages, replacing 'a finite value in (0, inf)'
            (not for traced fields, whose messages are those of `hparams()`).
        traced: a traced hyperparameter: `hparams()` carries it, in field order, as a
            float32 array that a sweep may vary without recompiling (needs `interval`).
    """
    metadata = {
        "doc": doc,
        "minimum": minimum,
        "choices": choices,
        "interval": None if interval is None else Interval.parse(interval),
        "allowed": allowed,
        "traced": traced,
    }
    return dataclasses.field(default=default, metadata=metadata)


# --- options every algorithm's config declares alike (one definition, one --help text) ---


def gamma_option() -> Any:
    """The discount factor, a traced hyperparameter in [0, 1]."""
    return _option(0.99, "Discount factor in [0, 1] (traced).", traced=True, interval="[0, 1]")


def max_grad_norm_option() -> Any:
    """Global-norm gradient clipping (traced; None compiles it out)."""
    return _option(
        10.0,
        "Clip gradients to this global norm (traced); 'none' disables clipping.",
        traced=True,
        interval="(0, inf]",
    )


def initial_eps_option() -> Any:
    """Epsilon at step 0 (traced)."""
    return _option(1.0, "Epsilon at step 0 (traced).", traced=True, interval="[0, 1]")


def env_seed_option(more: str = "") -> Any:
    """The seed of a bridged simulator; `more` is appended to its documentation."""
    return _option(
        0,
        "Seed of a bridged simulator (envpool, gymnasium): seed k of a run sees the "
        "simulators a lone run with env_seed + k sees. The CLI sets it to --seed." + more,
        minimum=0,
    )


def num_log_points_option(default: int) -> Any:
    """Metric rows per run."""
    return _option(default, "Metric summaries per run, evenly spaced in env steps.", minimum=1)


def eval_every_option(default: int) -> Any:
    """Log points between greedy evaluations (0: none)."""
    return _option(
        default,
        "Greedy evaluation every this many log points (0 disables evaluation).",
        minimum=0,
    )


def eval_episodes_option(default: int) -> Any:
    """Episodes per greedy evaluation."""
    return _option(default, "Episodes per greedy evaluation (run in parallel).", minimum=1)


def eval_epsilon_option() -> Any:
    """Epsilon of the evaluation policy (traced)."""
    return _option(
        0.0, "Epsilon of the evaluation policy (traced).", traced=True, interval="[0, 1]"
    )


def eval_max_steps_option() -> Any:
    """Step limit of an evaluation episode (None: the env's)."""
    return _option(
        None,
        "Step limit of an evaluation episode; defaults to the environment's max_steps_in_episode.",
        minimum=1,
    )


def solved_threshold_option() -> Any:
    """The greedy return that counts as solved (reported only)."""
    return _option(
        None,
        "Greedy return at which the task counts as solved (reported, never enforced).",
        interval="(-inf, inf)",
        allowed="finite",
    )


class ConfigBase:
    """What every algorithm's config shares (`DQNConfig`, `PQNConfig`): a frozen dataclass
    whose fields are declared with `_option`, checked on creation (`check_fields`, then the
    class's `validate_fields`), with its traced fields as the hyperparameter pytree.
    Subclasses set `ALGO` (the `--algo` name) and `LOG_SCALE_HPARAMS`.
    """

    ALGO: ClassVar[str]
    LOG_SCALE_HPARAMS: ClassVar[frozenset[str]]
    total_timesteps: int
    num_log_points: int
    eval_every: int
    steps_per_iteration: int  # a property of each subclass

    def __post_init__(self) -> None:
        # numpy scalars (np.int64(8), np.float32(0.5), np.bool_(True)) become Python ones, so
        # a valid config compares, hashes and serialises to JSON like a hand-typed one.
        for field in dataclasses.fields(self):
            value = _python_scalar(getattr(self, field.name))
            if isinstance(value, tuple):
                value = tuple(_python_scalar(v) for v in value)
            object.__setattr__(self, field.name, value)
        check_fields(self)
        self.validate_fields()

    def validate_fields(self) -> None:
        """Check the rules between fields (after `check_fields`); raise a ValueError."""

    @property
    def num_iterations(self) -> int:
        """Training iterations per run (`steps_per_iteration` env steps each)."""
        return self.total_timesteps // self.steps_per_iteration

    @property
    def iterations_per_log_point(self) -> int:
        """Iterations summarised into one row of metrics."""
        return self.num_iterations // self.num_log_points

    @property
    def num_evals(self) -> int:
        """Greedy evaluations per run."""
        return self.num_log_points // self.eval_every if self.eval_every else 0

    def replace(self, **changes: Any) -> Any:
        """A copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of every field (tuples as lists)."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Inverse of `to_dict`; unknown keys and values the class rejects raise ValueError."""
        name = cls.__name__
        if not isinstance(data, dict):
            raise ValueError(
                f"{name} data of type {type(data).__name__} is not allowed: must be a dict "
                "of field values"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names, key=str)
        if unknown:
            raise ValueError(f"unknown {name} fields {unknown}; allowed: {sorted(names)}")
        tuples = {r.name for r in _rules(cls) if r.kind is tuple}
        data = {  # JSON has lists, not tuples
            k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**data)

    def hparams(self, **overrides: Any) -> Any:
        """The traced hyperparameters of this config, with optional overrides.

        Overrides may be arrays (e.g. one value per seed, to vmap over); every value is
        checked against its allowed range.
        """
        return make_hparams(self, **overrides)

    def hparam_names(self) -> tuple[str, ...]:
        """The traced hyperparameters, the names `hparams` takes as overrides."""
        return traced_names(type(self))

    def check_hparams(self, hparams: Any, num_runs: int | None = None) -> Any:
        """`check_hparams(hparams, num_runs)`: hand-built hyperparameters, range-checked."""
        return _check_hparams_of(type(self), hparams, num_runs)

    def program_capabilities(self, env: Any = None) -> Capabilities:
        """What `make_program` declares, from the env id alone: a bridged simulator pool
        (envpool, gymnasium) runs in one call on one device and cannot be exported or
        checkpointed; a gymnax env (or an env object) can do everything.
        """
        from purejaxdqn.envs.bridge import is_bridged

        if env is None and is_bridged(self.env_id):
            return Capabilities(single_device=True, checkpointable=False, exportable=False)
        return Capabilities()


@dataclasses.dataclass(frozen=True)
class DQNConfig(ConfigBase):
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
    num_envs: int = _option(10, "Environments stepped in parallel per seed.", minimum=1)
    total_timesteps: int = _option(
        500_000,
        "Env steps per seed (all envs together); must be a multiple of "
        "num_envs * train_freq * num_log_points.",
        minimum=1,
    )
    buffer_size: int = _option(
        10_000, "Replay buffer capacity in transitions, a multiple of num_envs.", minimum=1
    )
    learning_starts: int = _option(
        10_000,
        "Env steps of uniform-random actions that fill the buffer before learning.",
        minimum=0,
    )
    batch_size: int = _option(
        128, "Transitions sampled (with replacement) per gradient step.", minimum=1
    )
    train_freq: int = _option(
        1,
        "Vectorized env steps per iteration (each steps all num_envs envs); an iteration "
        "collects num_envs * train_freq transitions, then takes gradient_steps updates.",
        minimum=1,
    )
    gradient_steps: int = _option(1, "Gradient updates per iteration.", minimum=1)
    learning_rate: float = _option(
        2.5e-4, "Adam step size (traced hyperparameter).", traced=True, interval="(0, inf)"
    )
    adam_eps: float = _option(1e-8, "Adam epsilon.", interval="(0, inf)", allowed="finite and > 0")
    anneal_lr: bool = _option(
        False,
        "Decay the learning rate linearly from learning_rate to 0 over the updates of the run.",
    )
    gamma: float = gamma_option()
    tau: float = _option(
        1.0,
        "Target update rate in (0, 1]: target <- tau*online + (1-tau)*target every "
        "target_update_interval env steps; 1.0 is a hard copy (traced).",
        traced=True,
        interval="(0, 1]",
    )
    target_update_interval: int = _option(
        500,
        "Env steps between target updates; at least num_envs * train_freq (one iteration). "
        "Need not divide evenly: the target updates at the first iteration that reaches "
        "each multiple.",
        minimum=1,
    )
    exploration_schedule: str = _option(
        "linear",
        "Epsilon decay: 'linear' reaches the final value after exploration_fraction of "
        "total_timesteps; 'exponential' decays with time constant "
        "exploration_fraction * total_timesteps.",
        choices=EXPLORATION_SCHEDULES,
    )
    exploration_initial_eps: float = initial_eps_option()
    exploration_final_eps: float = _option(
        0.05, "Epsilon after decay (traced).", traced=True, interval="[0, 1]"
    )
    exploration_fraction: float = _option(
        0.5,
        "Fraction of total_timesteps that sets the epsilon decay length (traced).",
        traced=True,
        interval="(0, inf)",
    )
    loss: str = _option("mse", "TD loss: 'mse' (mean squared error) or 'huber'.", choices=LOSSES)
    huber_delta: float = _option(
        1.0, "Huber loss transition point (traced).", traced=True, interval="(0, inf)"
    )
    max_grad_norm: float | None = max_grad_norm_option()
    double_q: bool = _option(False, "Double DQN: the online network picks the next action.")
    hidden_sizes: tuple[int, ...] = _option(
        (120, 84), "Hidden layer widths of the Q-network.", minimum=1
    )
    network: str = _option(
        "auto",
        "Q-network: 'mlp'; 'minatar_cnn' (16 3x3 filters + dense, for small HxWxC images "
        "such as MinAtar's 10x10xC); 'nature_cnn' (the Nature DQN: three convolutions + "
        "dense 512, hidden_sizes unused; HxWxC with H, W >= 36, e.g. 84x84x4 frames; uint8 "
        "pixels are scaled by 1/255 inside); or 'auto' (nature_cnn for HxWxC with H, W >= "
        "36, minatar_cnn for smaller HxWxC, mlp otherwise). A CNN the observation shape "
        "cannot take raises when the program is built.",
        choices=NETWORKS,
    )
    dueling: bool = _option(
        False,
        "Dueling head: Q = V + A - mean(A) (with a distributional head, on its logits or "
        "quantiles).",
    )
    # --- the DQN family (Rainbow's components and Munchausen); each combines with the rest
    n_step: int = _option(
        1,
        "n-step returns: the target sums up to n discounted rewards and bootstraps with "
        "gamma**m from the m-th next state, m <= n; the window stops at the episode's end "
        "(a termination ends the bootstrap, a truncation bootstraps from its true final "
        "observation) and at the newest stored transition. Must be < buffer_size / num_envs.",
        minimum=1,
    )
    prioritized_replay: bool = _option(
        False,
        "Proportional prioritized replay (Schaul et al., 2016): sample P(i) ~ (|TD error| + "
        "per_eps)**per_alpha from a sum tree per seed, new transitions at the highest "
        "priority so far, losses weighted by normalised importance weights.",
    )
    per_alpha: float = _option(
        0.6,
        "Priority exponent of prioritized replay; 0 samples uniformly (traced).",
        traced=True,
        interval="[0, 1]",
    )
    per_beta: float = _option(
        0.4,
        "Initial importance-weight exponent of prioritized replay, annealed linearly to 1 "
        "over the run (traced).",
        traced=True,
        interval="[0, 1]",
    )
    per_eps: float = _option(
        1e-6,
        "Added to |TD error| before the priority exponent, so no item's priority is 0.",
        interval="(0, inf)",
        allowed="finite and > 0",
    )
    distributional: str = _option(
        "none",
        "Value head: 'none' (one Q-value per action); 'c51' (Bellemare et al., 2017: "
        "num_atoms probabilities on a fixed support [v_min, v_max], cross-entropy to the "
        "projected target); 'qr' (QR-DQN, Dabney et al., 2018: num_quantiles quantiles, "
        "quantile Huber loss with kappa = huber_delta). Distributional heads use their own "
        "loss, so `loss` applies to 'none' only; acting and evaluation use the mean.",
        choices=DISTRIBUTIONAL,
    )
    num_atoms: int = _option(51, "Atoms of the C51 support.", minimum=2)
    v_min: float = _option(
        -10.0, "Lowest atom of the C51 support.", interval="(-inf, inf)", allowed="finite"
    )
    v_max: float = _option(
        10.0,
        "Highest atom of the C51 support; must be > v_min.",
        interval="(-inf, inf)",
        allowed="finite",
    )
    num_quantiles: int = _option(200, "Quantiles of the QR-DQN head.", minimum=1)
    noisy: bool = _option(
        False,
        "Noisy nets (Fortunato et al., 2018): factorised Gaussian noise on the head's output "
        "layers, drawn fresh at every acting step and every update (independently for the "
        "online and target networks); exploration may then use epsilon 0.",
    )
    noisy_sigma0: float = _option(
        0.5,
        "Initial noise scale of the noisy layers (sigma = noisy_sigma0 / sqrt(inputs)).",
        interval="(0, inf)",
        allowed="finite and > 0",
    )
    noisy_eval: bool = _option(
        False,
        "Keep the noise in greedy evaluation (needs noisy); by default evaluation uses the "
        "noise-free mean weights.",
    )
    munchausen: bool = _option(
        False,
        "Munchausen DQN (Vieillard et al., 2020): add munchausen_alpha * clip(tau * log "
        "pi(a|s), munchausen_clip, 0) to the reward and bootstrap with the soft value "
        "sum_a' pi(a'|s') (Q(s',a') - tau log pi(a'|s')), pi = softmax(Q_target / tau). "
        "Combines with n_step (bonus for the first action), c51, qr, noisy and prioritized "
        "replay; not with double_q (the soft bootstrap averages over next actions, so there "
        "is no argmax for the online network to pick).",
    )
    munchausen_alpha: float = _option(
        0.9, "Munchausen scale of the log-policy bonus (traced).", traced=True, interval="[0, 1]"
    )
    munchausen_tau: float = _option(
        0.03,
        "Munchausen entropy temperature (traced).",
        traced=True,
        interval="(0, inf)",
    )
    munchausen_clip: float = _option(
        -1.0,
        "Munchausen lower clip l0 of the log-policy bonus (traced).",
        traced=True,
        interval="(-inf, 0]",
    )
    obs_storage_dtype: str = _option(
        "auto",
        "Replay buffer observation dtype; 'auto' stores binary observations (MinAtar, "
        "bsuite grids) as uint8 and others in the environment's own dtype.",
        choices=OBS_STORAGE_DTYPES,
    )
    env_seed: int = env_seed_option(" Unused by gymnax envs, whose randomness comes from the key.")
    num_log_points: int = num_log_points_option(100)
    eval_every: int = eval_every_option(10)
    eval_episodes: int = eval_episodes_option(10)
    eval_epsilon: float = eval_epsilon_option()
    eval_max_steps: int | None = eval_max_steps_option()
    solved_threshold: float | None = solved_threshold_option()

    ALGO: ClassVar[str] = "dqn"

    def validate_fields(self) -> None:
        """`validate(self)`: the rules between fields."""
        validate(self)

    @property
    def steps_per_iteration(self) -> int:
        """Env steps collected per training iteration."""
        return self.num_envs * self.train_freq

    @property
    def prefill_iterations(self) -> int:
        """Leading iterations that act uniformly at random and do not learn."""
        return -(-self.learning_starts // self.steps_per_iteration)

    @property
    def num_updates(self) -> int:
        """Gradient updates per run."""
        return (self.num_iterations - self.prefill_iterations) * self.gradient_steps

    # --- the runtime's view of an algorithm config (`purejaxdqn.program.AlgorithmConfig`)
    LOG_SCALE_HPARAMS: ClassVar[frozenset[str]] = frozenset(
        {"learning_rate", "huber_delta", "max_grad_norm", "munchausen_tau"}
    )

    def unused_hparams(self) -> dict[str, str]:
        """Traced hyperparameters this config's static choices leave unused, each with
        why: sweeping one would train every setting the same.
        """
        unused = {}
        if not self.prioritized_replay:
            unused.update(
                per_alpha="prioritized_replay is off", per_beta="prioritized_replay is off"
            )
        if not self.munchausen:
            for name in ("munchausen_alpha", "munchausen_tau", "munchausen_clip"):
                unused[name] = "munchausen is off"
        if self.loss != "huber" and self.distributional != "qr":
            unused["huber_delta"] = f"loss is {self.loss!r} and distributional is not 'qr'"
        if not self.eval_every:
            unused["eval_epsilon"] = "evaluation is off (eval_every=0)"
        return unused

    def q_network(self, obs_shape: tuple[int, ...], num_actions: int) -> QNetwork:
        """The Q-network of this config for observations of `obs_shape`."""
        from purejaxdqn.core.loop import q_network_for

        return q_network_for(self, obs_shape, num_actions)

    def make_program(self, env: Any = None, env_params: Any = None) -> TrainProgram:
        """`make_train_program(self, env, env_params)`."""
        from purejaxdqn.core.loop import make_train_program

        return make_train_program(self, env, env_params)


# --- checks of single fields, as declared ---------------------------------------------


class _Rule(NamedTuple):
    """How `check_fields` checks one field: its kind and whether None passes (from its
    annotation), and what `_option` declared.
    """

    name: str
    kind: type
    or_none: bool
    minimum: int | None = None
    choices: tuple[str, ...] | None = None
    interval: Interval | None = None
    allowed: str | None = None
    traced: bool = False


def _python_scalar(value: Any) -> Any:
    """`value` as a Python scalar if it is a numpy one (np.int64(3) -> 3), else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _not_allowed(name: str, value: Any, allowed: str) -> ValueError:
    """The error of every field check: `name=value is not allowed: must be <allowed>`."""
    return ValueError(f"{name}={value!r} is not allowed: must be {allowed}")


def _check_int_field(rule: _Rule, value: Any) -> None:
    check_int(rule.name, value, rule.minimum, or_none=rule.or_none)


def _as_number(value: Any) -> float | None:
    """`value` as a float if it is an int or a float (not a bool) within the float range."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an int beyond the float range
            return None
    return None


def _check_float_field(rule: _Rule, value: Any) -> None:
    interval = rule.interval
    words = rule.allowed or interval.words()
    number = _as_number(value)
    if number is None:
        or_none = ", or None" if rule.or_none else ""
        raise _not_allowed(rule.name, value, f"a number (int or float), {words}{or_none}")
    if rule.traced:
        _check_range(rule.name, number, interval)  # the message of a bad hparams() override
    elif interval.outside(number):
        raise _not_allowed(rule.name, value, words + (" or None" if rule.or_none else ""))


def _check_bool_field(rule: _Rule, value: Any) -> None:
    if not isinstance(value, bool):
        raise _not_allowed(rule.name, value, "a bool")


def _check_str_field(rule: _Rule, value: Any) -> None:
    if rule.choices is not None and (not isinstance(value, str) or value not in rule.choices):
        raise _not_allowed(rule.name, value, f"one of {list(rule.choices)}")
    if not isinstance(value, str) or not value:
        raise _not_allowed(rule.name, value, "a non-empty string")


def _check_tuple_field(rule: _Rule, value: Any) -> None:
    low = -math.inf if rule.minimum is None else rule.minimum
    if not isinstance(value, tuple) or not all(is_integer(v) and v >= low for v in value):
        if rule.minimum is None:
            raise _not_allowed(rule.name, value, "a tuple of integers")
        integers = "positive integers" if rule.minimum == 1 else f"integers >= {rule.minimum}"
        raise _not_allowed(rule.name, value, f"a tuple of {integers}")


_FIELD_CHECKS: dict[type, Callable[[_Rule, Any], None]] = {
    int: _check_int_field,
    float: _check_float_field,
    bool: _check_bool_field,
    str: _check_str_field,
    tuple: _check_tuple_field,
}


def check_fields(config: Any) -> None:
    """Check every field of `config` (a `DQNConfig`, or a subclass) on its own, against
    the kind its annotation gives and the values its metadata allow; None passes where the
    annotation allows it.

    Raises:
        ValueError: `name=value is not allowed: must be ...` for the first field (in field
            order) that breaks its declaration.
    """
    for rule in _rules(type(config)):
        value = getattr(config, rule.name)
        if not (value is None and rule.or_none):
            _FIELD_CHECKS[rule.kind](rule, value)


# --- the declarations, read once per config class -------------------------------------


_DECLARATIONS = ("minimum", "choices", "interval", "allowed", "traced")  # `_option`'s keys


@functools.cache
def _rules(config_type: type) -> tuple[_Rule, ...]:
    """The rule of every field of the dataclass `config_type`, in field order.

    Raises:
        TypeError: a field is declared inconsistently (an unsupported annotation, a float
            without an interval, a traced field that is not a float).
    """
    hints = typing.get_type_hints(config_type)
    rules = []
    for field in dataclasses.fields(config_type):
        hint, or_none = hints[field.name], False
        args = typing.get_args(hint)
        if type(None) in args and len(args) == 2:  # `X | None`
            hint, or_none = next(arg for arg in args if arg is not type(None)), True
        kind = typing.get_origin(hint) or hint
        declared = {key: field.metadata[key] for key in _DECLARATIONS if key in field.metadata}
        rule = _Rule(field.name, kind, or_none, **declared)
        where = f"{config_type.__name__}.{field.name}"
        if kind not in _FIELD_CHECKS:
            raise TypeError(f"{where}: annotation {hint} is not one that check_fields knows")
        if kind is float and rule.interval is None:
            raise TypeError(f"{where}: a float field needs interval=")
        if rule.traced and (kind is not float or rule.allowed):
            raise TypeError(f"{where}: a traced field is a float with an interval, no allowed=")
        rules.append(rule)
    return tuple(rules)


def traced_names(config_type: type) -> tuple[str, ...]:
    """The traced hyperparameters of `config_type`: its fields marked `traced=True`, in
    field order (the fields of its `HParams`).
    """
    return tuple(rule.name for rule in _rules(config_type) if rule.traced)


def traced_intervals(config_type: type) -> dict[str, Interval]:
    """The allowed values of each traced hyperparameter of `config_type`, by name."""
    return {rule.name: rule.interval for rule in _rules(config_type) if rule.traced}


class HParams(collections.namedtuple("_TracedFields", traced_names(DQNConfig))):
    """Hyperparameters that `train` receives as traced values: the fields of `DQNConfig`
    marked `traced=True`, in field order.

    Any leaf may carry a leading axis to `jax.vmap` over settings; build with
    `DQNConfig.hparams(...)` so values are checked before compiling.
    """

    __slots__ = ()


@functools.cache
def hparams_type(config_type: type) -> type:
    """The NamedTuple of the traced hyperparameters of `config_type`: `HParams` for
    `DQNConfig` (and for any config with the same traced fields), else one made once with
    the traced fields of `config_type`, named `<config_type>HParams`.
    """
    names = traced_names(config_type)
    if names == HParams._fields:
        return HParams
    return collections.namedtuple(f"{config_type.__name__}HParams", names)


# --- the traced hyperparameters -------------------------------------------------------


def make_hparams(config: Any, **overrides: Any) -> Any:
    """Build `HParams` from `config`, replacing fields named in `overrides`; validate all.

    Raises:
        ValueError: an override names no traced hyperparameter, or a value is not a number
            or lies outside its allowed range.
    """
    names = hparams_type(type(config))._fields
    intervals = traced_intervals(type(config))
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {unknown}; traced hyperparameters are {list(names)}"
        )
    values = {name: getattr(config, name) for name in names}
    if "max_grad_norm" in values and values["max_grad_norm"] is None:
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
                f"{intervals[name].words()}"
            ) from None
        _check_range(name, arrays[name], intervals[name])
    return hparams_type(type(config))(**{k: jax.numpy.asarray(v) for k, v in arrays.items()})


def _check_range(name: str, value: Any, interval: Interval) -> None:
    """Raise ValueError naming `name` if any element of `value` lies outside `interval`."""
    arr = np.asarray(value, dtype=np.float64)
    bad = interval.outside(arr)
    if np.any(bad):
        shown = (arr[bad].ravel()[0] if arr.ndim else arr).item()
        raise ValueError(f"{name}={shown!r} is not allowed: must be {interval.words()}")


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
    return _check_hparams_of(DQNConfig, hparams, num_runs)


def _check_hparams_of(config_type: type, hparams: Any, num_runs: int | None) -> Any:
    """`check_hparams` for the traced hyperparameters of `config_type`."""
    expected = hparams_type(config_type)
    if not isinstance(hparams, expected):
        raise ValueError(
            f"hparams of type {type(hparams).__name__} is not allowed: must be an "
            f"{expected.__name__} (build it with config.hparams(...))"
        )
    intervals = traced_intervals(config_type)
    for name, leaf in zip(expected._fields, hparams, strict=True):
        try:
            dtype = np.asarray(leaf).dtype
        except (TypeError, ValueError):  # e.g. a ragged list
            dtype = np.dtype(object)
        if not (
            jax.numpy.issubdtype(dtype, np.floating) or jax.numpy.issubdtype(dtype, np.integer)
        ):
            raise ValueError(
                f"hparams.{name}={leaf!r} is not allowed: must be a number or an array of "
                f"numbers (int or float), {intervals[name].words()}"
            )
        shape = np.shape(leaf)
        if num_runs is not None and (len(shape) > 1 or (shape and shape[0] != num_runs)):
            raise ValueError(
                f"hparams.{name} with shape {shape} is not allowed: must be a scalar (shared "
                f"by every seed) or have shape ({num_runs},), one value per seed"
            )
        _check_range(name, leaf, intervals[name])
    return hparams


# --- checks between fields ------------------------------------------------------------


def validate(config: DQNConfig) -> None:
    """Check the rules that involve several fields; raise a clear ValueError.

    Every field must have passed `check_fields` first (`DQNConfig` does both on creation).
    Environment-dependent checks (unknown id, continuous actions) happen in `envs.make_env`.
    """
    num_envs, train_freq = config.num_envs, config.train_freq
    buffer_size, total = config.buffer_size, config.total_timesteps
    num_log_points, eval_every = config.num_log_points, config.eval_every
    per_iter = num_envs * train_freq
    if buffer_size < per_iter:
        raise ValueError(
            f"buffer_size={buffer_size} is not allowed: must hold at least one iteration's "
            f"transitions, num_envs * train_freq = {per_iter}"
        )
    if buffer_size % num_envs:
        lower = buffer_size - buffer_size % num_envs
        raise ValueError(
            f"buffer_size={buffer_size} is not allowed: must be a multiple of num_envs="
            f"{num_envs} (each env has its own ring); nearest valid: {lower} or "
            f"{lower + num_envs}"
        )
    if config.batch_size > buffer_size:
        raise ValueError(
            f"batch_size={config.batch_size} is not allowed: must be <= buffer_size={buffer_size}"
        )
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
    if config.learning_starts >= total:
        raise ValueError(
            f"learning_starts={config.learning_starts} is not allowed: must be < "
            f"total_timesteps={total}, or the agent never learns"
        )
    if config.target_update_interval < per_iter:
        raise ValueError(
            f"target_update_interval={config.target_update_interval} is not allowed: must be "
            f">= num_envs * train_freq = {per_iter}, the env steps of one iteration (the "
            "target updates at most once per iteration; use tau < 1 for soft updates every "
            "iteration)"
        )
    _validate_family(config)
    if eval_every and num_log_points % eval_every:
        raise ValueError(
            f"eval_every={eval_every} is not allowed: must divide num_log_points="
            f"{num_log_points} (or be 0 to disable evaluation)"
        )


def _validate_family(config: DQNConfig) -> None:
    """The rules between the DQN family's options (n-step, noisy nets, C51, Munchausen)."""
    per_env = config.buffer_size // config.num_envs
    if config.n_step >= per_env:
        raise ValueError(
            f"n_step={config.n_step} is not allowed: must be < buffer_size / num_envs = "
            f"{per_env}, the transitions each env's ring holds"
        )
    if config.v_min >= config.v_max:
        raise ValueError(f"v_min={config.v_min!r} is not allowed: must be < v_max={config.v_max!r}")
    if config.noisy_eval and not config.noisy:
        raise ValueError("noisy_eval=True is not allowed without noisy=True: there is no noise")
    if config.munchausen and config.double_q:
        raise ValueError(
            "munchausen=True is not allowed with double_q=True: the Munchausen target "
            "bootstraps with the soft value, an average over next actions under the target "
            "network's softmax policy, so there is no argmax for double Q-learning to pick; "
            "set double_q=False"
        )
