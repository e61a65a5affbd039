"""Epsilon schedules and epsilon-greedy action choice."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def epsilon_at(
    schedule: str,
    step: jax.Array,
    total_timesteps: int,
    initial: jax.Array,
    final: jax.Array,
    fraction: jax.Array,
) -> jax.Array:
    """Epsilon after `step` env steps.

    'linear' moves from `initial` to `final` over `fraction * total_timesteps` steps and
    stays there; 'exponential' is `final + (initial - final) * exp(-step / decay)` with
    time constant `decay = fraction * total_timesteps`.
    """
    duration = jnp.asarray(fraction, jnp.float32) * total_timesteps
    step = jnp.asarray(step, jnp.float32)
    if schedule == "linear":
        progress = jnp.clip(step / duration, 0.0, 1.0)
        return initial * (1.0 - progress) + final * progress  # exact at both ends
    if schedule == "exponential":
        return final + (initial - final) * jnp.exp(-step / duration)
    raise ValueError(f"exploration_schedule={schedule!r} is not allowed: linear or exponential")


def epsilon_greedy(key: jax.Array, q_values: jax.Array, epsilon: jax.Array) -> jax.Array:
    """For each row of `q_values` (batch, actions): a uniform action with probability
    `epsilon`, else the greedy one (ties go to the lowest index).
    """
    explore_key, action_key = jax.random.split(key)
    batch, num_actions = q_values.shape
    greedy = jnp.argmax(q_values, axis=-1)
    random_actions = jax.random.randint(action_key, (batch,), 0, num_actions)
    explore = jax.random.uniform(explore_key, (batch,)) < epsilon
    return jnp.where(explore, random_actions, greedy).astype(jnp.int32)
