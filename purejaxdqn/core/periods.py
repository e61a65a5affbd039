"""What every training loop does around its iterations: log periods, greedy evaluations
every `eval_every` periods, the fast keys on CPU, and `train` as `init` then every period.

A loop (`loop.make_train_program` for DQN, `pqn.make_pqn_program` for PQN) gives its
`iteration_step`, which adds to a `PeriodStats` (`record_episodes`, `record_learning`);
`make_run_periods` scans it over each period, summarises the period, adds the evaluation
and returns the `run_periods` of a `TrainProgram`. The runner state must have
`params`, `key` and `eval_key`, and the hyperparameters `eval_epsilon`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxdqn.core import rng
from purejaxdqn.core.evaluate import make_evaluate
from purejaxdqn.envs.spec import vector_reset
from purejaxdqn.program import NONFINITE_STEP


class TrainResult(NamedTuple):
    """Final runner state, per-log-point metrics and per-evaluation results.

    `metrics` values have shape (num_log_points,) and `evals` values (num_evals,) or
    (num_evals, eval_episodes), with leading seed/setting axes added by `vmap`.
    """

    runner_state: Any
    metrics: dict[str, jax.Array]
    evals: dict[str, jax.Array]


# iteration_step((state, stats), iteration, hp) -> ((state, stats), None)
IterationStep = Callable[[tuple[Any, Any], jax.Array, Any], tuple[tuple[Any, Any], None]]


class PeriodStats(NamedTuple):
    """Sums over one log period, turned into the period's metrics by `period_metrics`."""

    return_sum: jax.Array
    length_sum: jax.Array
    episodes: jax.Array
    loss_sum: jax.Array
    q_sum: jax.Array
    updates: jax.Array
    epsilon: jax.Array  # the exploration rate of the period's last iteration
    first_nonfinite: jax.Array  # first iteration whose loss or Q-value was not finite, or -1


def zero_stats() -> PeriodStats:
    """The sums of a period before its first iteration."""
    f32, i32 = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
    return PeriodStats(f32, f32, i32, f32, f32, i32, f32, jnp.full((), -1, jnp.int32))


def mean_or_nan(total: jax.Array, count: jax.Array) -> jax.Array:
    """`total / count`, NaN where `count` is 0."""
    return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)


def initial_fields(spec: Any, network: Any, num_envs: int, key: jax.Array) -> dict[str, Any]:
    """The runner-state fields every loop starts alike, from a seed's `key` (split into
    network, env, loop and evaluation keys): the network's parameters (`network.init`),
    `num_envs` freshly reset envs and their observations, zeroed episode counters, and the
    loop's and the evaluation's keys (in `key`'s own implementation).
    """
    net_key, env_key, loop_key, eval_key = jax.random.split(rng.maybe_to_fast(key), 4)
    obs, env_state = vector_reset(spec, env_key, num_envs)
    zeros = jnp.zeros((num_envs,), jnp.float32)
    return {
        "params": network.init(net_key, obs),
        "env_state": env_state,
        "obs": obs,
        "episode_return": zeros,
        "episode_length": zeros.astype(jnp.int32),
        "key": rng.from_fast(loop_key, like=key),
        "eval_key": rng.from_fast(eval_key, like=key),
    }


def all_finite(tree: Any) -> jax.Array:
    """Whether every element of every leaf of `tree` is finite (a bool scalar)."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(tree)]))


def step_episodes(
    episode_return: jax.Array,
    episode_length: jax.Array,
    reward: jax.Array,
    done: jax.Array,
    valid: jax.Array | None,
) -> tuple[jax.Array, jax.Array, tuple[jax.Array, jax.Array, jax.Array]]:
    """Every env's running return and length after a vector step, zeroed where an episode
    ended (`done`), and the sums over the ended episodes: (return, length, count). A reset
    step (`valid` False) adds no length.
    """
    episode_return = episode_return + reward
    episode_length = episode_length + (1 if valid is None else valid)
    ended = (
        jnp.sum(jnp.where(done, episode_return, 0.0)),
        jnp.sum(jnp.where(done, episode_length, 0)),
        jnp.sum(done, dtype=jnp.int32),
    )
    return jnp.where(done, 0.0, episode_return), jnp.where(done, 0, episode_length), ended


def record_episodes(stats: PeriodStats, ended: tuple) -> PeriodStats:
    """`stats` with the (return, length, count) sums of `step_episodes` added."""
    returns, lengths, count = ended
    return stats._replace(
        return_sum=stats.return_sum + returns,
        length_sum=stats.length_sum + lengths,
        episodes=stats.episodes + count,
    )


def record_learning(
    stats: PeriodStats,
    iteration: jax.Array,
    loss_sum: jax.Array,
    q_sum: jax.Array,
    updates: jax.Array,
    epsilon: jax.Array,
) -> PeriodStats:
    """`stats` after an iteration that took `updates` gradient steps whose losses and mean
    Q-values sum to `loss_sum` and `q_sum`, acting with `epsilon`; the iteration is the
    first non-finite one if either sum is not finite.
    """
    nonfinite = ~(jnp.isfinite(loss_sum) & jnp.isfinite(q_sum))
    return stats._replace(
        loss_sum=stats.loss_sum + loss_sum,
        q_sum=stats.q_sum + q_sum,
        updates=stats.updates + updates,
        epsilon=epsilon,
        first_nonfinite=jnp.where(
            (stats.first_nonfinite < 0) & nonfinite, iteration, stats.first_nonfinite
        ),
    )


def period_metrics(
    stats: PeriodStats, params: Any, iterations: jax.Array, steps_per_iteration: int
) -> dict[str, jax.Array]:
    """The metrics row of a period whose iterations were `iterations` and whose sums are
    `stats`, `params` the parameters at its end.

    Divergence: a non-finite update shows in its loss or Q-value at once; parameters are
    checked once per period as well (a flag per period, nothing per step).
    """
    first_nonfinite = jnp.where(
        (stats.first_nonfinite < 0) & ~all_finite(params), iterations[-1], stats.first_nonfinite
    )
    return {
        "env_steps": (iterations[-1] + 1) * steps_per_iteration,
        "episode_return": mean_or_nan(stats.return_sum, stats.episodes),
        "episode_length": mean_or_nan(stats.length_sum.astype(jnp.float32), stats.episodes),
        "episodes": stats.episodes,
        "loss": mean_or_nan(stats.loss_sum, stats.updates),
        "q_value": mean_or_nan(stats.q_sum, stats.updates),
        # taken from inside the loop: recomputed out here, XLA may round it differently
        # depending on how a chunk's program is fused
        "epsilon": stats.epsilon,
        "updates": stats.updates,
        NONFINITE_STEP: jnp.where(
            first_nonfinite >= 0, (first_nonfinite + 1) * steps_per_iteration, -1
        ),
    }


def make_greedy_evaluation(
    config: Any, spec: Any, network: Any, noisy: bool = False
) -> Callable | None:
    """`evaluate(params, key, epsilon)` of `config.eval_episodes` episodes of at most
    `config.eval_max_steps` (default: the env's episode limit) steps, or None when
    `config` has no evaluations.

    Raises:
        ValueError: neither `config.eval_max_steps` nor the env gives a step limit.
    """
    if not config.num_evals:
        return None
    max_steps = config.eval_max_steps or spec.max_episode_steps
    if max_steps is None:
        raise ValueError(
            f"eval_max_steps=None is not allowed for env {spec.env_id!r}: its params have "
            "no max_steps_in_episode; set eval_max_steps or eval_every=0"
        )
    return make_evaluate(spec.evaluation(), network, config.eval_episodes, max_steps, noisy)


def make_run_periods(
    iteration_step: IterationStep,
    iterations_per_period: int,
    steps_per_iteration: int,
    evaluate: Callable | None,
    eval_every: int,
) -> Callable[[Any, Any, jax.Array], tuple[Any, dict, dict]]:
    """`run_periods(state, hp, periods) -> (state, metrics, evals)`: for each period of
    `periods`, its iterations (`iteration_step(carry, iteration, hp)` scanned over them, the
    carry `(state, PeriodStats)`) summarised by `period_metrics`, and, after each period
    that ends an eval block, a greedy evaluation `evaluate(params, key, epsilon)` (None: no
    evaluation).

    Iteration and period indices are unbatched (they come from the scans' `xs`), so the
    schedules and the evaluation's cond stay the same for every run under vmap. Periods
    without an evaluation output zeros there. The loop draws with `rng.FAST_THREEFRY` keys
    on CPU: the same numbers, faster.
    """

    def log_period(state: Any, period: jax.Array, hp: Any) -> tuple[Any, dict[str, jax.Array]]:
        iterations = period * iterations_per_period + jnp.arange(iterations_per_period)
        (state, stats), _ = jax.lax.scan(
            lambda c, i: iteration_step(c, i, hp), (state, zero_stats()), iterations
        )
        return state, period_metrics(stats, state.params, iterations, steps_per_iteration)

    def period_step(state: Any, period: jax.Array, hp: Any) -> tuple[Any, tuple[dict, dict]]:
        state, metrics = log_period(state, period, hp)
        if evaluate is None:
            return state, (metrics, {})

        def run_evaluation() -> dict[str, jax.Array]:
            block = period // eval_every
            episodes = evaluate(
                state.params, jax.random.fold_in(state.eval_key, block), hp.eval_epsilon
            )
            return {
                "env_steps": metrics["env_steps"],
                "return": episodes["returns"].mean(),
                "length": episodes["lengths"].astype(jnp.float32).mean(),
                "episode_returns": episodes["returns"],
            }

        shapes = jax.eval_shape(run_evaluation)
        evals = jax.lax.cond(
            (period + 1) % eval_every == 0,
            run_evaluation,
            lambda: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes),
        )
        return state, (metrics, evals)

    def run_periods(state: Any, hparams: Any, periods: jax.Array) -> tuple[Any, dict, dict]:
        like = state.key
        fast_key, fast_eval_key = rng.maybe_to_fast(state.key), rng.maybe_to_fast(state.eval_key)
        state = state._replace(key=fast_key, eval_key=fast_eval_key)
        state, (metrics, evals) = jax.lax.scan(
            lambda s, p: period_step(s, p, hparams), state, periods
        )
        state = state._replace(
            key=rng.from_fast(state.key, like), eval_key=rng.from_fast(state.eval_key, like)
        )
        return state, metrics, evals

    return run_periods


def make_train(
    init: Callable[[jax.Array, Any], Any],
    run_periods: Callable[[Any, Any, jax.Array], tuple[Any, dict, dict]],
    num_log_points: int,
    eval_every: int,
) -> Callable[[jax.Array, Any], TrainResult]:
    """`train(key, hp)`: `init`, then `run_periods` over every log period; the evaluation
    rows kept are those that were due.
    """

    def train(key: jax.Array, hparams: Any) -> TrainResult:
        state = init(key, hparams)
        state, metrics, evals = run_periods(state, hparams, jnp.arange(num_log_points))
        due = slice(eval_every - 1, None, eval_every)
        return TrainResult(state, metrics, {name: value[due] for name, value in evals.items()})

    return train
