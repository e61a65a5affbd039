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


class PatchConv(nn.Module):
    """A stride-1 'VALID' 2-D convolution computed as patches @ kernel.

    Same parameters (`kernel` (kh, kw, C, features), `bias`) and initialisation as
    `nn.Conv`, and the same result, but the product is a plain matrix multiply. Under
    `jax.vmap` over seeds (one kernel per seed) XLA turns a convolution into a grouped
    convolution, which is slow on CPU; this stays a batched matmul.
    """

    features: int
    kernel_size: tuple[int, int] = (3, 3)

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """(N, H, W, C) -> (N, H - kh + 1, W - kw + 1, features)."""
        kh, kw = self.kernel_size
        channels = x.shape[-1]
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (kh, kw, channels, self.features)
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        height, width = x.shape[1] - kh + 1, x.shape[2] - kw + 1
        patches = jnp.concatenate(
            [x[:, i : i + height, j : j + width, :] for i in range(kh) for j in range(kw)],
            axis=-1,
        )  # (N, H', W', kh * kw * C), ordered like the kernel's flattened (kh, kw, C)
        return patches @ kernel.reshape(kh * kw * channels, self.features) + bias


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
        x = nn.relu(PatchConv(16, kernel_size=(3, 3), name="Conv_0")(x))
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
