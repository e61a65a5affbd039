"""`make_pqn_program`: PQN (Gallici et al., ICLR 2025) as one pure function of (key,
hyperparameters), on the same runtime as DQN.

    train(key, hparams)
      init: the Q-network, RAdam, environments
      scan over log periods                          (num_log_points)
        scan over iterations                         (iterations_per_log_point)
          rollout: act epsilon-greedily in every env, num_steps times
          targets: max_a Q(s'_t, a) for every step's next observation (the true final one
              at an episode's end; the acting pass's values where no episode ended,
              `next_values`), then Q(lambda) returns backwards (`q_lambda_targets`)
          learn: num_epochs passes, each a fresh shuffle of the rollout cut into
              num_minibatches minibatches, one RAdam step on each
        summarise the period into one row of metrics
        every eval_every periods: greedy evaluation on separate envs

No replay buffer, no target network: the targets come from the network that collected
the rollout, before this iteration's updates. Envs come from `envs.spec` as DQN's do, so
a bridged pool (envpool Atari) steps every seed's envs together under `jax.vmap`; its reset
steps (`valid` False) carry no loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxdqn.core import rng
from purejaxdqn.core.exploration import epsilon_at, epsilon_greedy
from purejaxdqn.core.lambda_returns import q_lambda_targets
from purejaxdqn.core.optimizers import clipped_and_scheduled
from purejaxdqn.core.periods import (
    PeriodStats,
    TrainResult,
    initial_fields,
    make_greedy_evaluation,
    make_run_periods,
    make_train,
    record_episodes,
    record_learning,
    step_episodes,
)
from purejaxdqn.core.pqn_config import PQNConfig
from purejaxdqn.envs.spec import make_env, vector_step
from purejaxdqn.program import TrainProgram


class PQNState(NamedTuple):
    """Everything the PQN loop carries from one iteration to the next."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    key: jax.Array
    eval_key: jax.Array


class Rollout(NamedTuple):
    """One iteration's transitions, (num_steps, num_envs, ...) each."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array  # unscaled
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array  # what the action led to: the true final observation at an end
    valid: jax.Array  # False for a bridged pool's reset steps (all True for gymnax)
    value: jax.Array  # max_a Q(obs, a) of the acting pass


def make_pqn_optimizer(config: PQNConfig, hp: Any) -> optax.GradientTransformation:
    """RAdam at `hp.learning_rate` (decayed linearly to 0 over the run's gradient steps when
    `config.anneal_lr`), after global-norm clipping unless `max_grad_norm` is None.
    """
    return clipped_and_scheduled(optax.radam, config, hp)


def max_truncations_per_rollout(num_steps: int, max_episode_steps: int | None) -> int | None:
    """The most truncations one env can have in `num_steps` consecutive steps: they are
    `max_episode_steps` apart, so `ceil(num_steps / max_episode_steps)`; None without a limit.
    """
    if max_episode_steps is None:
        return None
    return -(-num_steps // max_episode_steps)


def bootstrap_rows_per_env(num_steps: int, max_truncations: int | None) -> int:
    """How many observations per env `next_values` runs the network on: the last one and
    up to `max_truncations` truncated final ones, or all `num_steps` when there is no bound
    or the bound saves nothing.
    """
    if max_truncations is None or 1 + max_truncations >= num_steps:
        return num_steps
    return 1 + max_truncations


def next_values(
    max_q: Callable[[jax.Array], jax.Array], rollout: Rollout, max_truncations: int | None
) -> jax.Array:
    """v_t = max_a Q(s'_t, a) of every step (T, E), s'_t the observation step t's action led
    to (`rollout.next_obs`), with `max_q` (observations -> max Q) run on as few of them as
    the episode ends allow.

    Where no episode ended at step t, s'_t is the observation step t + 1 acted on, whose
    value the acting pass already has (`rollout.value`). Only the last step's s'_t and the
    true final observations of truncated steps are new: each env's k-th truncation
    (k < `max_truncations`, see `max_truncations_per_rollout`) is gathered into one pass of
    (1 + max_truncations) x E observations instead of T x E. At a termination v_t is the
    next episode's first value, which the target multiplies by a zero discount. With no
    bound, or a bound that saves nothing (`bootstrap_rows_per_env`), it is
    `max_q(rollout.next_obs)`.
    """
    num_steps, num_envs = rollout.action.shape
    if bootstrap_rows_per_env(num_steps, max_truncations) == num_steps:
        return max_q(rollout.next_obs)
    last = max_q(rollout.next_obs[-1])
    values = jnp.concatenate([rollout.value[1:], last[None]])
    time = jnp.arange(num_steps)[:, None]
    left, steps = rollout.truncated, []
    for _ in range(max_truncations):  # each env's earliest truncation not yet taken
        steps.append(jnp.argmax(left, axis=0))  # 0 when none is left
        left = left & (time != steps[-1])
    steps = jnp.stack(steps)  # (K, E)
    finals = max_q(rollout.next_obs[steps, jnp.arange(num_envs)])  # (K, E)
    for step, final in zip(steps, finals, strict=True):  # a repeated step 0 repeats its value
        values = jnp.where(rollout.truncated & (time == step), final, values)
    return values


def make_pqn_loss(network: Any) -> Callable[..., tuple[jax.Array, jax.Array]]:
    """PQN's minibatch loss for `network` (a `QNetwork`): `loss(params, obs, action, target,
    weight) -> (loss, mean Q(s, a))`, half the mean squared error of Q(s, a) against the
    target over the minibatch's real transitions (`weight` 1; 0 for a pool's reset steps).
    """

    def loss_fn(
        params: Any, obs: jax.Array, action: jax.Array, target: jax.Array, weight: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        q = jnp.take_along_axis(network.q_values(params, obs), action[:, None], axis=-1)[:, 0]
        count = jnp.maximum(weight.sum(), 1.0)
        loss = 0.5 * jnp.sum(weight * jnp.square(q - target)) / count
        return loss, jnp.sum(weight * q) / count

    return loss_fn


def make_pqn_program(config: PQNConfig, env: Any = None, env_params: Any = None) -> TrainProgram:
    """Build PQN's `TrainProgram` (`init`, `run_periods`, `train`) for `config`.

    `train(key, hp)` is `init(key, hp)` followed by `run_periods` over every log period;
    running the periods in consecutive equal compiled chunks gives the same results bit
    for bit. `jax.jit(jax.vmap(train, in_axes=(0, hparams_in_axes(hp))))(keys, hp)` runs
    one seed per key, each with its own keys and envs.

    Args:
        config: static options and the defaults of the traced hyperparameters.
        env: optional gymnax-style environment object to use instead of `config.env_id`.
        env_params: its params (default: `env.default_params`).
    """
    spec = make_env(config.env_id, env, env_params, config.obs_storage_dtype, config.env_seed)
    network = config.q_network(spec.obs_shape, spec.num_actions)
    evaluate = make_greedy_evaluation(config, spec, network)
    num_envs, num_steps = config.num_envs, config.num_steps
    rollout_size, batch = config.steps_per_iteration, config.minibatch_size

    def init(key: jax.Array, hp: Any) -> PQNState:
        start = initial_fields(spec, network, num_envs, key)
        return PQNState(**start, opt_state=make_pqn_optimizer(config, hp).init(start["params"]))

    def collect(
        state: PQNState, stats: PeriodStats, epsilon: jax.Array, key: jax.Array
    ) -> tuple[PQNState, PeriodStats, Rollout]:
        """Step every env `num_steps` times epsilon-greedily; the rollout, time first."""

        def env_step(carry: tuple, step_key: jax.Array) -> tuple[tuple, Rollout]:
            state, stats = carry
            act_key, env_key = jax.random.split(step_key)
            q_values = network.q_values(state.params, state.obs)
            action = epsilon_greedy(act_key, q_values, epsilon)
            obs, env_state, reward, terminated, truncated, final_obs, valid = vector_step(
                spec, env_key, state.env_state, action
            )
            episode_return, episode_length, ended = step_episodes(
                state.episode_return, state.episode_length, reward, terminated | truncated, valid
            )
            stats = record_episodes(stats, ended)
            valid = jnp.ones_like(terminated) if valid is None else valid
            step = Rollout(
                state.obs,
                action,
                reward,
                terminated,
                truncated,
                final_obs,
                valid,
                jnp.max(q_values, axis=-1),
            )
            state = state._replace(
                env_state=env_state,
                obs=obs,
                episode_return=episode_return,
                episode_length=episode_length,
            )
            return (state, stats), step

        (state, stats), rollout = jax.lax.scan(
            env_step, (state, stats), jax.random.split(key, num_steps)
        )
        return state, stats, rollout

    max_truncations = max_truncations_per_rollout(num_steps, spec.max_episode_steps)

    def targets_of(params: Any, rollout: Rollout, hp: Any) -> jax.Array:
        """Q(lambda) targets of the rollout from the network that collected it."""

        def max_q(obs: jax.Array) -> jax.Array:
            return jnp.max(network.q_values(params, obs), axis=-1)

        return q_lambda_targets(
            rollout.reward * hp.reward_scale,
            rollout.terminated,
            rollout.truncated,
            next_values(max_q, rollout, max_truncations),
            hp.gamma,
            hp.lam,
        )

    def learn(
        state: PQNState, rollout: Rollout, targets: jax.Array, hp: Any, key: jax.Array
    ) -> tuple[PQNState, jax.Array, jax.Array]:
        """`num_epochs` passes over the rollout in shuffled minibatches; the sums of the
        losses and mean Q-values of every gradient step.
        """
        optimizer = make_pqn_optimizer(config, hp)
        loss_and_grad = jax.value_and_grad(make_pqn_loss(network), has_aux=True)
        flat = jax.tree.map(
            lambda x: x.reshape(rollout_size, *x.shape[2:]),
            (rollout.obs, rollout.action, targets, rollout.valid.astype(jnp.float32)),
        )

        def minibatch_step(carry: tuple, minibatch: tuple) -> tuple[tuple, tuple]:
            params, opt_state = carry
            (loss, q_mean), grads = loss_and_grad(params, *minibatch)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (loss, q_mean)

        def epoch(carry: tuple, epoch_key: jax.Array) -> tuple[tuple, tuple]:
            order = rng.permutation(epoch_key, rollout_size)
            minibatches = jax.tree.map(lambda x: x[order].reshape(-1, batch, *x.shape[1:]), flat)
            return jax.lax.scan(minibatch_step, carry, minibatches)

        (params, opt_state), (losses, q_means) = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(key, config.num_epochs)
        )
        return state._replace(params=params, opt_state=opt_state), losses.sum(), q_means.sum()

    def iteration_step(
        carry: tuple[PQNState, PeriodStats], iteration: jax.Array, hp: Any
    ) -> tuple[tuple[PQNState, PeriodStats], None]:
        state, stats = carry
        key, collect_key, learn_key = jax.random.split(state.key, 3)
        state = state._replace(key=key)
        epsilon = epsilon_at(
            "linear",
            iteration * rollout_size,
            config.total_timesteps,
            hp.exploration_initial_eps,
            hp.exploration_final_eps,
            hp.exploration_fraction,
        )
        state, stats, rollout = collect(state, stats, epsilon, collect_key)
        targets = targets_of(state.params, rollout, hp)
        state, loss_sum, q_sum = learn(state, rollout, targets, hp, learn_key)
        updates = jnp.asarray(config.updates_per_iteration, jnp.int32)
        stats = record_learning(stats, iteration, loss_sum, q_sum, updates, epsilon)
        return (state, stats), None

    run_periods = make_run_periods(
        iteration_step, config.iterations_per_log_point, rollout_size, evaluate, config.eval_every
    )
    return TrainProgram(
        init=init,
        run_periods=run_periods,
        train=make_train(init, run_periods, config.num_log_points, config.eval_every),
        num_periods=config.num_log_points,
        eval_every=config.eval_every,
        capabilities=config.program_capabilities(env),
    )


def make_pqn_train(
    config: PQNConfig, env: Any = None, env_params: Any = None
) -> Callable[[jax.Array, Any], TrainResult]:
    """The pure `train(key, hparams) -> TrainResult` of PQN for `config` (see
    `make_pqn_program`), e.g. `jax.jit(jax.vmap(train, in_axes=(0, None)))(keys,
    config.hparams())`.
    """
    return make_pqn_program(config, env, env_params).train
