"""The losses of the DQN family, as a table the static config picks from, and the target
network's update rules.

A loss function is `loss_fn(params, target_params, sample, hparams, key) -> (loss, aux)`,
made by `make_loss(config, network)` and differentiated with respect to `params` by the
training loop:

- `params`, `target_params`: the online and target network's parameters;
- `sample`: a `replay.Sample` of B transitions (its `batch`, `indices`, `weights`);
- `hparams`: the traced `HParams`;
- `key`: a PRNG key of the loss's own, for losses that draw (unused by DQN);
- `loss`: () float32, the mean of the samples' weighted regression losses (over the valid
  samples only, where the batch has a `valid` mask);
- `aux`: a `LossAux` with the per-sample |TD error| (the priorities a prioritized replay
  writes back) and the mean Q-value of the actions taken.

`LOSS_FUNCTIONS` maps a name to a factory `(config, network) -> loss_fn`; `loss_name`
picks the name from the config. DQN and double DQN are two entries that differ only in
the bootstrap value; a new target or loss is a new factory and a new entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxdqn.core.config import DQNConfig, HParams
from purejaxdqn.core.networks import QNetwork
from purejaxdqn.core.replay import Sample


class LossAux(NamedTuple):
    """What a loss function reports besides the loss.

    Attributes:
        td_error: (B,) float32 |target - Q(s, a)| per sample: the priorities to write back
            (`Replay.update`).
        q_mean: () float32 mean Q-value of the actions taken, over the valid samples.
    """

    td_error: jax.Array
    q_mean: jax.Array


LossFn = Callable[[Any, Any, Sample, HParams, jax.Array], tuple[jax.Array, LossAux]]
# (network, online params, target params, next_obs) -> (B,) float32 V(s')
NextValueFn = Callable[[QNetwork, Any, Any, jax.Array], jax.Array]


def squared_error(error: jax.Array, huber_delta: jax.Array) -> jax.Array:
    """Per-sample `error ** 2` ('mse'; `huber_delta` is not used)."""
    del huber_delta
    return jnp.square(error)


def huber(error: jax.Array, huber_delta: jax.Array) -> jax.Array:
    """Per-sample optax Huber loss: 0.5 x^2 inside `huber_delta`, linear outside."""
    return optax.huber_loss(error, delta=huber_delta)


# `config.loss` -> per-sample regression loss of the TD error
REGRESSIONS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "mse": squared_error,
    "huber": huber,
}


def td_target(
    reward: jax.Array,
    discount: jax.Array,
    next_value: jax.Array,
) -> jax.Array:
    """The target `reward + discount * next_value`, with no gradient through it.

    `discount` is `Transition.discount`, `gamma * (1 - terminated)`: only termination stops
    bootstrapping; a truncated transition bootstraps from its true final observation like
    any other.
    """
    return jax.lax.stop_gradient(reward + discount * next_value)


def max_next_value(
    network: QNetwork, params: Any, target_params: Any, next_obs: jax.Array
) -> jax.Array:
    """DQN's bootstrap value `max_a Q_target(s', a)` (`params` is not used)."""
    del params
    return network.q_values(target_params, next_obs).max(axis=-1)


def double_next_value(
    network: QNetwork, params: Any, target_params: Any, next_obs: jax.Array
) -> jax.Array:
    """Double DQN's bootstrap value `Q_target(s', argmax_a Q_online(s', a))`."""
    next_q_target = network.q_values(target_params, next_obs)
    best = jnp.argmax(network.q_values(params, next_obs), axis=-1)
    return jnp.take_along_axis(next_q_target, best[..., None], axis=-1)[..., 0]


def td_loss(
    prediction: jax.Array,
    target: jax.Array,
    kind: str,
    huber_delta: jax.Array,
    valid: jax.Array | None = None,
    weights: jax.Array | None = None,
) -> jax.Array:
    """Mean regression loss over the batch: 'mse' is mean((q - y)^2); 'huber' is optax's
    Huber loss (0.5 x^2 inside `huber_delta`, linear outside). Each sample's loss is first
    multiplied by its importance weight when `weights` is given. With `valid`, the mean
    over the valid samples only (0 if there are none).

    Raises:
        ValueError: `kind` is not a key of `REGRESSIONS`.
    """
    if kind not in REGRESSIONS:
        raise ValueError(f"loss={kind!r} is not allowed: must be 'mse' or 'huber'")
    losses = REGRESSIONS[kind](prediction - target, huber_delta)
    if weights is not None:
        losses = weights * losses
    return masked_mean(losses, valid)


def masked_mean(values: jax.Array, valid: jax.Array | None) -> jax.Array:
    """`mean(values)`, or its mean over `valid` entries (0 when none is valid)."""
    if valid is None:
        return jnp.mean(values)
    total = jnp.sum(jnp.where(valid, values, 0.0))
    return total / jnp.maximum(jnp.sum(valid), 1)


def make_td_loss(config: DQNConfig, network: QNetwork, next_value: NextValueFn) -> LossFn:
    """The one-step TD loss with bootstrap value `next_value`, regression `config.loss`.

    Raises:
        ValueError: `config.loss` is not a key of `REGRESSIONS`.
    """
    kind = config.loss
    if kind not in REGRESSIONS:
        raise ValueError(f"loss={kind!r} is not allowed: must be one of {sorted(REGRESSIONS)}")

    def loss_fn(
        params: Any, target_params: Any, sample: Sample, hp: HParams, key: jax.Array
    ) -> tuple[jax.Array, LossAux]:
        del key  # deterministic
        batch = sample.batch
        bootstrap = next_value(
            network, jax.lax.stop_gradient(params), target_params, batch.next_obs
        )
        target = td_target(batch.reward, batch.discount, bootstrap)
        q = network.outputs(params, batch.obs).q_values
        q_taken = jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0]
        loss = td_loss(q_taken, target, kind, hp.huber_delta, batch.valid, sample.weights)
        aux = LossAux(td_error=jnp.abs(q_taken - target), q_mean=masked_mean(q_taken, batch.valid))
        return loss, aux

    return loss_fn


def dqn_loss(config: DQNConfig, network: QNetwork) -> LossFn:
    """DQN (Mnih et al., 2015): the target network picks and values the next action."""
    return make_td_loss(config, network, max_next_value)


def double_dqn_loss(config: DQNConfig, network: QNetwork) -> LossFn:
    """Double DQN (van Hasselt et al., 2016): the online network picks the next action,
    the target network values it.
    """
    return make_td_loss(config, network, double_next_value)


# name -> factory `(config, network) -> loss_fn`
LOSS_FUNCTIONS: dict[str, Callable[[DQNConfig, QNetwork], LossFn]] = {
    "dqn": dqn_loss,
    "double_dqn": double_dqn_loss,
}


def loss_name(config: DQNConfig) -> str:
    """The `LOSS_FUNCTIONS` entry `config` asks for: 'double_dqn' or 'dqn'."""
    return "double_dqn" if config.double_q else "dqn"


def make_loss(config: DQNConfig, network: QNetwork, name: str | None = None) -> LossFn:
    """The loss function of `config` (see the module docstring).

    Args:
        config: static options (`double_q`, `loss`, ...).
        network: the Q-network the loss evaluates.
        name: a `LOSS_FUNCTIONS` entry to use instead of `loss_name(config)`.

    Raises:
        ValueError: `name` is not an entry of `LOSS_FUNCTIONS`, or `config.loss` is not a
            regression of `REGRESSIONS`.
    """
    name = loss_name(config) if name is None else name
    if name not in LOSS_FUNCTIONS:
        raise ValueError(
            f"loss function {name!r} is not known: must be one of {sorted(LOSS_FUNCTIONS)}"
        )
    return LOSS_FUNCTIONS[name](config, network)


def polyak_update(online: Any, target: Any, tau: jax.Array) -> Any:
    """`target + tau * (online - target)` leaf by leaf; `tau = 1` is a hard copy."""
    return jax.tree.map(lambda o, t: t + tau * (o - t), online, target)


def target_update_due(iteration: jax.Array, steps_per_iteration: int, interval: int) -> jax.Array:
    """Whether iteration `iteration` (0-based, `steps_per_iteration` env steps each) is the
    first to reach a multiple of `interval` env steps. Exact for any interval that is at
    least one iteration, whether or not it divides evenly: over a run the target updates
    `total_steps // interval` times.
    """
    before = iteration * steps_per_iteration // interval
    after = (iteration + 1) * steps_per_iteration // interval
    return after > before
