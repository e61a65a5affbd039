"""`make_train`: the whole DQN run as one pure function of (key, hyperparameters).

    train(key, hparams)
      init: networks, optimizer, replay buffer, environments
      scan over log periods                            (num_log_points)
        scan over iterations                           (iterations_per_log_point)
          collect: act epsilon-greedily in every env, train_freq times; replay.add each
          learn, if past learning_starts: gradient_steps updates, each
              sample -> loss -> optimizer step -> replay update (priorities back)
            then the target update when this iteration crossed a multiple of
            target_update_interval
        summarise the period into one row of metrics
        every eval_every periods: greedy evaluation on separate envs

The replay (`replay.make_replay`), the loss (`losses.make_loss`) and the Q-network
(`networks.make_q_network`) are pure functions chosen from the static config when the
program is built; `learn` only wires them together, so a new replay, target or head
plugs in there without changing the loop.

`make_train_program` also gives the two parts (`init`, `run_periods`), so a thin Python
loop can run the periods in equal-length compiled chunks (progress, checkpoints) with the
same results as one `train` call.

Schedules are driven by the iteration index, which comes from the scan's `xs` and is the
same for every seed: under `jax.vmap(train)` it stays unbatched, so the `lax.cond`s on it
stay real branches instead of becoming selects that run both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxdqn.checks import check_int
from purejaxdqn.core.config import DQNConfig, HParams
from purejaxdqn.core.evaluate import NOISE_KEY_DATA
from purejaxdqn.core.exploration import epsilon_at, epsilon_greedy
from purejaxdqn.core.losses import make_loss, polyak_update, target_update_due
from purejaxdqn.core.networks import QNetwork, head_config, make_q_network
from purejaxdqn.core.optimizers import clipped_and_scheduled
from purejaxdqn.core.periods import (
    PeriodStats,
    TrainResult,
    initial_fields,
    make_greedy_evaluation,
    make_run_periods,
    record_episodes,
    record_learning,
    step_episodes,
)
from purejaxdqn.core.periods import make_train as make_train_from_parts
from purejaxdqn.core.replay import ReplayBuffer, ReplayParams, make_replay
from purejaxdqn.envs.spec import make_env, vector_step
from purejaxdqn.program import NONFINITE_STEP, TrainProgram

INT32_MAX = 2**31 - 1
_AT_MOST_INT32_MAX = f"at most {INT32_MAX} (2**31 - 1; JAX counts and indexes in 32-bit integers)"
# `fold_in` data of the loss's key, from each update's sampling key: far above any counter
# the sample's own draws use, so the two never coincide
LOSS_KEY_DATA = 2**31 - 1

# Per log period: the env step at the end of the first iteration whose loss, Q-value or
# parameters were not finite (-1: all finite). A diagnostic, not written to metrics.csv.
NONFINITE_METRIC = NONFINITE_STEP


class RunnerState(NamedTuple):
    """Everything the training loop carries from one iteration to the next."""

    params: Any
    target_params: Any
    opt_state: Any
    buffer: ReplayBuffer  # the replay's state
    env_state: Any
    obs: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    key: jax.Array
    eval_key: jax.Array


TrainFn = Callable[[jax.Array, HParams], TrainResult]


def _repeat(body: Callable, carry: Any, key: jax.Array, times: int) -> tuple[Any, Any]:
    """`times` calls of `body(carry, key_i) -> (carry, out)`, keys split from `key`, as a
    scan with outputs stacked on a leading axis. One call is made directly (with `key`
    itself, outputs unstacked): a loop of one only makes the program slower to compile.
    """
    if times == 1:
        return body(carry, key)
    return jax.lax.scan(body, carry, jax.random.split(key, times))


def check_sizes(config: DQNConfig) -> None:
    """Raise a ValueError naming the field when a size of `config` overflows int32.

    The loop counts env steps and updates, and indexes the replay buffer and the
    environments, in 32-bit integers (JAX's default), so each must stay <= `INT32_MAX`.
    Called before tracing: JAX would otherwise stop with an `OverflowError` from deep
    inside the trace.
    """
    limits = {
        "buffer_size": config.buffer_size,
        "total_timesteps": config.total_timesteps,
        "target_update_interval": config.target_update_interval,
    }
    if config.num_evals:
        limits.update(eval_episodes=config.eval_episodes, eval_max_steps=config.eval_max_steps)
    for name, value in limits.items():
        check_int(name, value, maximum=INT32_MAX, or_none=True, allowed=_AT_MOST_INT32_MAX)
    updates = config.gradient_steps * config.num_iterations
    if updates > INT32_MAX:
        raise ValueError(
            f"gradient_steps={config.gradient_steps} is not allowed: over "
            f"{config.num_iterations} iterations it makes {updates} updates, more than "
            f"{INT32_MAX} (2**31 - 1; JAX counts in 32-bit integers); lower gradient_steps "
            "or total_timesteps"
        )


def q_network_for(config: DQNConfig, obs_shape: tuple[int, ...], num_actions: int) -> QNetwork:
    """The Q-network of `config` for observations of `obs_shape` and `num_actions` actions."""
    return make_q_network(
        config.network,
        obs_shape,
        num_actions,
        config.hidden_sizes,
        config.dueling,
        head_config(config),
    )


def make_optimizer(config: DQNConfig, hp: HParams) -> optax.GradientTransformation:
    """Adam at `hp.learning_rate` (decayed linearly to 0 over `config.num_updates` updates
    when `config.anneal_lr`), after global-norm clipping unless `max_grad_norm` is None.
    """
    return clipped_and_scheduled(
        lambda learning_rate: optax.adam(learning_rate, eps=config.adam_eps), config, hp
    )


def make_train_program(config: DQNConfig, env: Any = None, env_params: Any = None) -> TrainProgram:
    """Build `train` and the two pieces it is made of, for running it in chunks.

    `train(key, hp)` is `init(key, hp)` followed by `run_periods` over every log period.
    Compiled as separate programs, `init` and then `run_periods` over consecutive equal
    slices of `arange(config.num_log_points)` (from a Python loop, for progress and
    checkpoints) give bit-identical results for any slice length. One `jit(train)` program
    agrees with them to float rounding only (XLA optimises the fused program differently).

    Args: as `make_train`.
    """
    check_sizes(config)  # before tracing: a ValueError naming the field, not an OverflowError
    spec = make_env(config.env_id, env, env_params, config.obs_storage_dtype, config.env_seed)
    network = q_network_for(config, spec.obs_shape, spec.num_actions)
    replay = make_replay(
        spec.obs_shape,
        spec.storage_dtype,
        config.num_envs,
        config.buffer_size,
        spec.max_episode_steps,
        track_valid=spec.has_reset_steps,
        frame_stack=spec.frame_stack,  # > 1: env-stacked pixels, kept as a frame ring
        n_step=config.n_step,
        prioritized=config.prioritized_replay,
        priority_eps=config.per_eps,
    )
    loss_fn = make_loss(config, network)
    steps_per_iteration = config.steps_per_iteration
    prefill = config.prefill_iterations
    evaluate = make_greedy_evaluation(config, spec, network, config.noisy_eval)

    def epsilon_for(iteration: jax.Array, hp: HParams) -> jax.Array:
        scheduled = epsilon_at(
            config.exploration_schedule,
            iteration * steps_per_iteration,
            config.total_timesteps,
            hp.exploration_initial_eps,
            hp.exploration_final_eps,
            hp.exploration_fraction,
        )
        return jnp.where(iteration < prefill, 1.0, scheduled)

    def replay_params(iteration: jax.Array, hp: HParams) -> ReplayParams:
        """gamma, the priority exponent and the importance exponent, annealed linearly from
        per_beta to 1 over the run's env steps.
        """
        progress = jnp.minimum(iteration * steps_per_iteration / config.total_timesteps, 1.0)
        beta = hp.per_beta + (1.0 - hp.per_beta) * progress
        return ReplayParams(gamma=hp.gamma, alpha=hp.per_alpha, beta=beta)

    def init(key: jax.Array, hp: HParams) -> RunnerState:
        start = initial_fields(spec, network, config.num_envs, key)
        return RunnerState(
            **start,
            target_params=start["params"],
            opt_state=make_optimizer(config, hp).init(start["params"]),
            buffer=replay.init(),
        )

    def collect(
        state: RunnerState, stats: PeriodStats, epsilon: jax.Array, key: jax.Array
    ) -> tuple[RunnerState, PeriodStats]:
        """Step every env `train_freq` times, adding each vector step to the buffer."""

        def env_step(carry: tuple, step_key: jax.Array) -> tuple[tuple, None]:
            state, stats = carry
            act_key, env_key = jax.random.split(step_key)
            noise_key = jax.random.fold_in(act_key, NOISE_KEY_DATA) if config.noisy else None
            q_values = network.q_values(state.params, state.obs, noise_key)
            action = epsilon_greedy(act_key, q_values, epsilon)
            obs, env_state, reward, terminated, truncated, final_obs, valid = vector_step(
                spec, env_key, state.env_state, action
            )
            buffer = replay.add(
                state.buffer, state.obs, action, reward, terminated, truncated, final_obs, valid
            )
            episode_return, episode_length, ended = step_episodes(
                state.episode_return, state.episode_length, reward, terminated | truncated, valid
            )
            stats = record_episodes(stats, ended)
            state = state._replace(
                buffer=buffer,
                env_state=env_state,
                obs=obs,
                episode_return=episode_return,
                episode_length=episode_length,
            )
            return (state, stats), None

        (state, stats), _ = _repeat(env_step, (state, stats), key, config.train_freq)
        return state, stats

    def learn(
        state: RunnerState, hp: HParams, iteration: jax.Array, key: jax.Array
    ) -> tuple[RunnerState, jax.Array, jax.Array]:
        """`gradient_steps` updates (sample, loss, optimizer step, priorities back to the
        replay), then a target update if one is due.
        """
        optimizer = make_optimizer(config, hp)
        loss_and_grad = jax.value_and_grad(loss_fn, has_aux=True)
        params_of_replay = replay_params(iteration, hp)

        def update(carry: tuple, sample_key: jax.Array) -> tuple[tuple, tuple]:
            params, opt_state, buffer = carry
            sample = replay.sample(buffer, sample_key, config.batch_size, params_of_replay)
            loss_key = jax.random.fold_in(sample_key, LOSS_KEY_DATA)
            (loss, aux), grads = loss_and_grad(params, state.target_params, sample, hp, loss_key)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            buffer = replay.update(buffer, sample.indices, aux.td_error, params_of_replay)
            return (params, opt_state, buffer), (loss, aux.q_mean)

        (params, opt_state, buffer), (losses, q_means) = _repeat(
            update, (state.params, state.opt_state, state.buffer), key, config.gradient_steps
        )
        target_params = jax.lax.cond(
            target_update_due(iteration, steps_per_iteration, config.target_update_interval),
            lambda: polyak_update(params, state.target_params, hp.tau),
            lambda: state.target_params,
        )
        state = state._replace(
            params=params, target_params=target_params, opt_state=opt_state, buffer=buffer
        )
        return state, losses.sum(), q_means.sum()

    def iteration_step(
        carry: tuple[RunnerState, PeriodStats], iteration: jax.Array, hp: HParams
    ) -> tuple[tuple[RunnerState, PeriodStats], None]:
        state, stats = carry
        key, collect_key, learn_key = jax.random.split(state.key, 3)
        state = state._replace(key=key)
        epsilon = epsilon_for(iteration, hp)
        state, stats = collect(state, stats, epsilon, collect_key)
        state, loss_sum, q_sum = jax.lax.cond(
            iteration >= prefill,
            lambda s: learn(s, hp, iteration, learn_key),
            lambda s: (s, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32)),
            state,
        )
        learned = (iteration >= prefill).astype(jnp.int32) * config.gradient_steps
        stats = record_learning(stats, iteration, loss_sum, q_sum, learned, epsilon)
        return (state, stats), None

    run_periods = make_run_periods(
        iteration_step,
        config.iterations_per_log_point,
        steps_per_iteration,
        evaluate,
        config.eval_every,
    )
    train = make_train_from_parts(init, run_periods, config.num_log_points, config.eval_every)

    return TrainProgram(
        init=init,
        run_periods=run_periods,
        train=train,
        num_periods=config.num_log_points,
        eval_every=config.eval_every,
        capabilities=config.program_capabilities(env),
    )


def make_train(config: DQNConfig, env: Any = None, env_params: Any = None) -> TrainFn:
    """Build the pure `train(key, hparams) -> TrainResult` for `config`.

    Args:
        config: static options (shapes, loop lengths, code paths) and default hparams.
        env: optional gymnax-style environment object to use instead of `config.env_id`.
        env_params: its params (default: `env.default_params`).

    Returns:
        `train`, to be wrapped as the user likes, e.g.
        `jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, config.hparams())`.
    """
    return make_train_program(config, env, env_params).train
