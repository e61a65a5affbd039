"""Q(lambda) targets over a rollout: lambda-returns with max-Q bootstraps (Peng's Q(lambda),
as PQN uses it), where a termination ends the return and a truncation bootstraps from the
episode's true final observation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def q_lambda_targets(
    rewards: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    next_values: jax.Array,
    gamma: jax.Array,
    lam: jax.Array,
) -> jax.Array:
    """The lambda-return G_t of every step of a rollout, computed backwards.

    With d_t = gamma * (1 - terminated_t) and l_t = lam * (1 - (terminated_t | truncated_t)):

        G_t = r_t + d_t * (v_t + l_t * (G_{t+1} - v_t)),   G_T = v_{T-1} (so the last step
                                                           bootstraps fully from v_{T-1})

    i.e. G_t = r_t + d_t ((1 - l_t) v_t + l_t G_{t+1}), rlax's `lambda_returns` with
    per-step discounts and lambdas. `v_t` is max_a Q(s'_t, a) for the observation the
    step's action led to: at a truncation, the episode's true final observation, so a
    truncated episode bootstraps from it with gamma, and the next step's return (a new
    episode's) never leaks in; a termination ends the return at r_t.

    Args:
        rewards: (T, ...) rewards r_t, time first.
        terminated: (T, ...) bool, the episode terminated at step t.
        truncated: (T, ...) bool, the episode was cut off at step t (time limit).
        next_values: (T, ...) v_t = max_a Q(s'_t, a).
        gamma: the discount (a scalar).
        lam: lambda (a scalar).

    Returns:
        (T, ...) float32 targets.
    """
    discounts = gamma * (1.0 - terminated.astype(jnp.float32))
    lambdas = lam * (1.0 - (terminated | truncated).astype(jnp.float32))

    def step(next_return: jax.Array, xs: tuple) -> tuple[jax.Array, jax.Array]:
        reward, discount, lam_t, value = xs
        g = reward + discount * (value + lam_t * (next_return - value))
        return g, g

    _, returns = jax.lax.scan(
        step, next_values[-1], (rewards, discounts, lambdas, next_values), reverse=True
    )
    return returns
