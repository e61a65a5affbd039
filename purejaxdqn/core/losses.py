"""TD targets (DQN and double DQN) and the regression losses between Q and target."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


def td_target(
    reward: jax.Array,
    terminated: jax.Array,
    next_q_target: jax.Array,
    gamma: jax.Array,
    next_q_online: jax.Array | None = None,
) -> jax.Array:
    """One-step target `r + gamma * (1 - terminated) * V(s')`.

    `V(s') = max_a Q_target(s', a)`, or with `next_q_online` (double DQN)
    `Q_target(s', argmax_a Q_online(s', a))`. Only termination stops bootstrapping: a
    truncated transition bootstraps from its true final observation like any other.
    """
    if next_q_online is None:
        next_value = next_q_target.max(axis=-1)
    else:
        best = jnp.argmax(next_q_online, axis=-1)
        next_value = jnp.take_along_axis(next_q_target, best[..., None], axis=-1)[..., 0]
    not_done = 1.0 - terminated.astype(next_value.dtype)
    return jax.lax.stop_gradient(reward + gamma * not_done * next_value)


def td_loss(
    prediction: jax.Array,
    target: jax.Array,
    kind: str,
    huber_delta: jax.Array,
    valid: jax.Array | None = None,
) -> jax.Array:
    """Mean loss over the batch: 'mse' is mean((q - y)^2); 'huber' is optax's Huber loss
    (0.5 x^2 inside `huber_delta`, linear outside). With `valid`, the mean over the valid
    samples only (0 if there are none).
    """
    error = prediction - target
    if kind == "mse":
        losses = jnp.square(error)
    elif kind == "huber":
        losses = optax.huber_loss(error, delta=huber_delta)
    else:
        raise ValueError(f"loss={kind!r} is not allowed: must be 'mse' or 'huber'")
    return masked_mean(losses, valid)


def masked_mean(values: jax.Array, valid: jax.Array | None) -> jax.Array:
    """`mean(values)`, or its mean over `valid` entries (0 when none is valid)."""
    if valid is None:
        return jnp.mean(values)
    total = jnp.sum(jnp.where(valid, values, 0.0))
    return total / jnp.maximum(jnp.sum(valid), 1)


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
