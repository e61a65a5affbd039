"""The contract between an algorithm and the runtime.

An algorithm (DQN in `core`, and any other) gives the runtime (`run`) two things:

- a **config** object (`AlgorithmConfig`): its static options, the traced hyperparameters
  it builds and checks (any pytree: a NamedTuple, a dict, a dataclass registered as a
  pytree), and the `TrainProgram` it makes;
- a **`TrainProgram`**: pure functions `init`, `run_periods` and `train` over a runner state
  (any pytree), what it can do (`Capabilities`), and the one accessor to the parameters a
  policy acts with.

The runtime (devices, memory plans, chunks, checkpoints, sweeps, reports, the CLI) uses
nothing else, and relies on the metric and evaluation names below, which every program's
outputs carry.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, Protocol

import jax
import numpy as np

# --- names every program's outputs carry ---------------------------------------------
# per-period metrics (`run_periods`' second output), each of shape (periods,) per run
ENV_STEPS = "env_steps"  # env steps per run at the end of the period (int)
EPISODE_RETURN = "episode_return"  # mean return of the episodes that ended in the period
EPISODE_LENGTH = "episode_length"
EPISODES = "episodes"  # episodes that ended in the period
# the env step at the end of the first iteration whose loss, Q-value or parameters were
# not finite (-1: all finite); a diagnostic, kept out of metrics.csv and TensorBoard
NONFINITE_STEP = "first_nonfinite_step"
# greedy evaluations (`run_periods`' third output), per evaluation: ENV_STEPS and these
EVAL_RETURN = "return"  # mean over the evaluation's episodes
EVAL_LENGTH = "length"
EVAL_EPISODE_RETURNS = "episode_returns"  # every episode's return, (eval_episodes,)


class Capabilities(NamedTuple):
    """What a program can do; the runtime asks this, never which env or algorithm it is.

    Attributes:
        single_device: every run must go in one call on one device of one process (e.g. a
            simulator pool outside JAX that steps every run's environments together).
        checkpointable: the whole runner state is JAX arrays, so it can be saved and
            resumed bit for bit.
        exportable: the program can be serialised with `jax.export` (the traced-program
            cache) and loaded by another process.
    """

    single_device: bool = False
    checkpointable: bool = True
    exportable: bool = True


class TrainProgram(NamedTuple):
    """`train` and its two parts, for the runtime to run in compiled chunks.

    Attributes:
        init: `init(key, hp) -> state`, the runner state before the first step.
        run_periods: `run_periods(state, hp, periods) -> (state, metrics, evals)`: the log
            periods whose indices are `periods` (int array, the same for every run), in
            order. `metrics` and `evals` have one row per period; an evaluation row is
            zeros unless `(period + 1) % eval_every == 0` (evals is {} without evaluation).
            Running consecutive equal slices of the periods gives the same results bit
            for bit as one call over all of them.
        train: `train(key, hp) -> (state, metrics, evals)`, the whole run (a tuple or a
            NamedTuple in that order: the final state, every period's metrics, the
            evaluations that were due; the memory preflight traces it).
        num_periods: log periods of a run.
        eval_every: periods between evaluations (0: no evaluation).
        capabilities: what the runtime may do with the program.
        policy_params: `policy_params(state) -> params`: the parameters a greedy policy
            acts with (what results folders save, `eval` and `render` load).
    """

    init: Callable[[jax.Array, Any], Any]
    run_periods: Callable[[Any, Any, jax.Array], tuple[Any, dict, dict]]
    train: Callable[[jax.Array, Any], Any]
    num_periods: int
    eval_every: int
    capabilities: Capabilities = Capabilities()
    policy_params: Callable[[Any], Any] = operator.attrgetter("params")


class AlgorithmConfig(Protocol):
    """What the runtime needs of an algorithm's config (`DQNConfig` is one).

    A frozen dataclass of static options and the defaults of its traced hyperparameters.
    """

    env_id: str
    total_timesteps: int  # env steps per run
    num_log_points: int
    eval_every: int
    solved_threshold: float | None
    # traced hyperparameters best sampled on a log scale in random sweeps
    LOG_SCALE_HPARAMS: ClassVar[frozenset[str]]

    def hparams(self, **overrides: Any) -> Any:
        """The traced hyperparameter pytree, fields named in `overrides` replaced (a value
        or an array with one value per run); values are range-checked.
        """

    def hparam_names(self) -> tuple[str, ...]:
        """The names `hparams` accepts as overrides (what a sweep may vary)."""

    def check_hparams(self, hparams: Any, num_runs: int | None = None) -> Any:
        """`hparams` unchanged, or a ValueError naming a leaf that is out of range or
        whose shape is neither () nor (num_runs,).
        """

    def make_program(self, env: Any = None, env_params: Any = None) -> TrainProgram:
        """The `TrainProgram` of this config (optionally on a given environment object)."""

    def program_capabilities(self, env: Any = None) -> Capabilities:
        """The capabilities `make_program(env)` will declare, known without building it."""

    def replace(self, **changes: Any) -> AlgorithmConfig:
        """A validated copy with `changes` applied."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of every field (`from_dict` reads it back)."""


def hparams_in_axes(hparams: Any) -> Any:
    """`vmap` in_axes for a hyperparameter pytree: 0 for leaves with a leading (run) axis,
    None for scalars shared by every run.

    `jax.tree` functions take its None leaves for empty subtrees: map over it with
    `is_leaf=lambda x: x is None`, or flatten it with
    `jax.tree.structure(hparams).flatten_up_to(...)`.
    """
    return jax.tree.map(lambda leaf: 0 if np.ndim(leaf) else None, hparams)


def one_run(hparams: Any) -> Any:
    """The hyperparameters of the first run (every leaf a scalar), for shapes and tracing."""
    return jax.tree.map(lambda leaf: np.asarray(leaf).ravel()[0], hparams)
