"""Q-networks (flax linen): an MLP and the MinAtar CNN, with an optional dueling head.

Every network casts its input to float32 itself, so the replay buffer can hold compact
observations (uint8 / bool) and no float copy of a batch is ever stored.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp


class QHead(nn.Module):
    """Maps features to one Q-value per action, optionally through a dueling split."""

    num_actions: int
    dueling: bool = False

    @nn.compact
    def __call__(self, features: jnp.ndarray) -> jnp.ndarray:
        """Q-values of shape (..., num_actions)."""
        if not self.dueling:
            return nn.Dense(self.num_actions, name="q")(features)
        value = nn.Dense(1, name="value")(features)
        advantage = nn.Dense(self.num_actions, name="advantage")(features)
        return value + advantage - advantage.mean(axis=-1, keepdims=True)


class MLPQNetwork(nn.Module):
    """Fully connected Q-network over flattened observations."""

    num_actions: int
    hidden_sizes: Sequence[int] = (120, 84)
    dueling: bool = False
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
        """Q-values for a batch of observations of shape (*batch, *obs_shape)."""
        batch_shape = obs.shape[: obs.ndim - self.obs_ndim]
        x = obs.astype(jnp.float32).reshape(*batch_shape, -1)
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        return QHead(self.num_actions, self.dueling)(x)


class MinAtarQNetwork(nn.Module):
    """The MinAtar DQN network (Young & Tian, 2019): 16 3x3 filters, then dense layers."""

    num_actions: int
    hidden_sizes: Sequence[int] = (128,)
    dueling: bool = False

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
        """Q-values for observations of shape (*batch, H, W, C)."""
        batch_shape = obs.shape[:-3]
        x = obs.astype(jnp.float32).reshape(-1, *obs.shape[-3:])
        x = nn.relu(nn.Conv(16, kernel_size=(3, 3), padding="VALID")(x))
        x = x.reshape(x.shape[0], -1)
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        q = QHead(self.num_actions, self.dueling)(x)
        return q.reshape(*batch_shape, self.num_actions)


def make_network(
    kind: str,
    obs_shape: tuple[int, ...],
    num_actions: int,
    hidden_sizes: Sequence[int],
    dueling: bool,
) -> nn.Module:
    """Choose the Q-network: 'mlp', 'minatar_cnn', or 'auto' (CNN for HxWxC images)."""
    if kind == "auto":
        kind = "minatar_cnn" if len(obs_shape) == 3 else "mlp"
    if kind == "minatar_cnn":
        if len(obs_shape) != 3 or min(obs_shape[:2]) < 3:
            raise ValueError(
                f"network='minatar_cnn' is not allowed for observation shape {obs_shape}: "
                "needs HxWxC with H, W >= 3"
            )
        return MinAtarQNetwork(num_actions, tuple(hidden_sizes), dueling)
    return MLPQNetwork(num_actions, tuple(hidden_sizes), dueling, obs_ndim=len(obs_shape))
