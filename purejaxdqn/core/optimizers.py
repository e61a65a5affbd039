"""The optimizer schedule both loops share: a base optimizer (Adam for DQN, RAdam for PQN)
at a learning rate decayed linearly to 0 over the run's updates, after global-norm
clipping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax


def clipped_and_scheduled(
    base: Callable[[Any], optax.GradientTransformation], config: Any, hp: Any
) -> optax.GradientTransformation:
    """`base(learning_rate)` at `hp.learning_rate`, decayed linearly to 0 over
    `config.num_updates` updates when `config.anneal_lr`, after clipping to the global norm
    `hp.max_grad_norm` unless `config.max_grad_norm` is None.
    """
    learning_rate = hp.learning_rate
    if config.anneal_lr:
        total = config.num_updates

        def learning_rate(count: jax.Array) -> jax.Array:
            return hp.learning_rate * jnp.maximum(1.0 - count / total, 0.0)

    optimizer = base(learning_rate)
    if config.max_grad_norm is None:
        return optimizer
    return optax.chain(optax.clip_by_global_norm(hp.max_grad_norm), optimizer)
