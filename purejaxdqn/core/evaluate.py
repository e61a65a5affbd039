"""Greedy (or epsilon-greedy) evaluation of a Q-network inside jit, on its own envs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxdqn.core.exploration import epsilon_greedy
from purejaxdqn.core.networks import QNetwork, as_q_network
from purejaxdqn.envs.spec import EnvSpec, vector_reset, vector_step

EvaluateFn = Callable[[Any, jax.Array, jax.Array], dict[str, jax.Array]]


# `fold_in` data of a noisy network's noise, from each evaluation step's action key
NOISE_KEY_DATA = 2**31 - 2


def make_evaluate(
    spec: EnvSpec,
    network: nn.Module | QNetwork,
    num_episodes: int,
    max_steps: int,
    noisy: bool = False,
) -> EvaluateFn:
    """Build `evaluate(params, key, epsilon) -> {'returns', 'lengths'}` (one per episode).

    Runs `num_episodes` fresh environments in parallel for `max_steps` steps, each
    counting only its first episode, acting epsilon-greedily on the network's Q-values
    (`QNetwork.q_values`; a flax module is wrapped by `as_q_network`). An episode still
    running after `max_steps` is counted as it stands. A noisy network acts on its
    noise-free mean weights unless `noisy`, which draws fresh noise at every step.
    """
    q_values = as_q_network(network).q_values

    def evaluate(params: Any, key: jax.Array, epsilon: jax.Array) -> dict[str, jax.Array]:
        reset_key, loop_key = jax.random.split(key)
        obs, env_state = vector_reset(spec, reset_key, num_episodes)

        def step(carry: tuple, step_key: jax.Array) -> tuple[tuple, None]:
            obs, env_state, returns, lengths, running = carry
            act_key, env_key = jax.random.split(step_key)
            noise_key = jax.random.fold_in(act_key, NOISE_KEY_DATA) if noisy else None
            action = epsilon_greedy(act_key, q_values(params, obs, noise_key), epsilon)
            obs, env_state, reward, terminated, truncated, *_ = vector_step(
                spec, env_key, env_state, action
            )
            returns = returns + jnp.where(running, reward, 0.0)
            lengths = lengths + running.astype(jnp.int32)
            running = running & ~(terminated | truncated)
            return (obs, env_state, returns, lengths, running), None

        zeros = jnp.zeros((num_episodes,), jnp.float32)
        carry = (obs, env_state, zeros, zeros.astype(jnp.int32), jnp.ones_like(zeros, bool))
        (_, _, returns, lengths, _), _ = jax.lax.scan(
            step, carry, jax.random.split(loop_key, max_steps)
        )
        return {"returns": returns, "lengths": lengths}

    return evaluate
