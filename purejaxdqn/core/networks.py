"""Q-networks (flax linen): an MLP, the MinAtar CNN and the Nature-DQN CNN, with an
optional dueling head.

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
    """A 'VALID' 2-D convolution computed as patches @ kernel.

    Same parameters (`kernel` (kh, kw, C, features), `bias`) and initialisation as
    `nn.Conv`, and the same result, but the product is a plain matrix multiply. Under
    `jax.vmap` over seeds (one kernel per seed) XLA turns a convolution into a grouped
    convolution, which is slow on CPU; this stays a batched matmul.

    A stride s > 1 needs a kernel side that is a multiple of s (as in the Nature DQN:
    8x8/4, 4x4/2). The input is then rearranged space-to-depth into s x s blocks, so the
    strided convolution becomes a stride-1 one with a (kh/s, kw/s) kernel over s*s*C
    channels: (kh/s)(kw/s) contiguous slices instead of kh*kw strided ones.
    """

    features: int
    kernel_size: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """(N, H, W, C) -> (N, (H - kh) // sh + 1, (W - kw) // sw + 1, features)."""
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        if kh % sh or kw % sw:
            raise ValueError(
                f"PatchConv kernel_size={self.kernel_size} with strides={self.strides}: "
                "each kernel side must be a multiple of its stride"
            )
        channels = x.shape[-1]
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (kh, kw, channels, self.features)
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        height, width = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
        if (sh, sw) != (1, 1):
            # Space-to-depth: (N, H, W, C) -> (N, H/sh, W/sw, sh*sw*C), cropping rows and
            # columns no output reads; the kernel is reordered to match the block layout.
            bh, bw = kh // sh, kw // sw
            rows, cols = height - 1 + bh, width - 1 + bw
            x = x[:, : rows * sh, : cols * sw, :].reshape(-1, rows, sh, cols, sw, channels)
            x = x.transpose(0, 1, 3, 2, 4, 5).reshape(-1, rows, cols, sh * sw * channels)
            kernel = kernel.reshape(bh, sh, bw, sw, channels, self.features)
            kernel = kernel.transpose(0, 2, 1, 3, 4, 5)
            kh, kw, channels = bh, bw, sh * sw * channels
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


# (features, kernel side, stride) of the Nature DQN's convolutions (Mnih et al., 2015).
NATURE_CONVS: tuple[tuple[int, int, int], ...] = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
# The smallest image side the three 'VALID' convolutions accept: 36 -> 8 -> 3 -> 1.
NATURE_MIN_SIDE = 36


class NatureQNetwork(nn.Module):
    """The Nature DQN network (Mnih et al., 2015) for Atari-style pixel observations.

    Input (*batch, H, W, C), channels last with stacked frames on the last axis (84x84x4 in
    the paper; any H, W >= 36). Integer input (uint8 pixels) is cast to float32 and divided
    by 255 here; float input is used as it is. Then 32 8x8 filters stride 4, 64 4x4 stride
    2, 64 3x3 stride 1 ('VALID', ReLU each; 84 -> 20 -> 9 -> 7), flatten, dense 512 with
    ReLU and the Q head. The convolutions are `PatchConv`s: same parameters and result as
    `nn.Conv`, and faster under `jax.vmap` over seeds on CPU.
    """

    num_actions: int
    dueling: bool = False

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
        """Q-values of shape (*batch, num_actions) for observations (*batch, H, W, C)."""
        batch_shape = obs.shape[:-3]
        x = obs.reshape(-1, *obs.shape[-3:])
        if jnp.issubdtype(x.dtype, jnp.integer):
            x = x.astype(jnp.float32) / 255.0
        else:
            x = x.astype(jnp.float32)
        for index, (features, side, stride) in enumerate(NATURE_CONVS):
            conv = PatchConv(features, (side, side), (stride, stride), name=f"Conv_{index}")
            x = nn.relu(conv(x))
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(512)(x))
        q = QHead(self.num_actions, self.dueling)(x)
        return q.reshape(*batch_shape, self.num_actions)


def _is_image(obs_shape: tuple[int, ...], min_side: int) -> bool:
    """Whether `obs_shape` is HxWxC with H, W >= `min_side`."""
    return len(obs_shape) == 3 and min(obs_shape[:2]) >= min_side


def make_network(
    kind: str,
    obs_shape: tuple[int, ...],
    num_actions: int,
    hidden_sizes: Sequence[int],
    dueling: bool,
) -> nn.Module:
    """Choose the Q-network for `obs_shape`: 'mlp', 'minatar_cnn', 'nature_cnn' or 'auto'.

    'auto' picks 'nature_cnn' for HxWxC observations with H, W >= 36 (Atari-style pixels),
    'minatar_cnn' for smaller HxWxC ones (MinAtar's 10x10xC) and 'mlp' for everything else.
    `hidden_sizes` sets the MLP's and the MinAtar CNN's dense layers; the Nature CNN keeps
    its single 512-unit layer.

    Raises:
        ValueError: a CNN asked for observations it cannot take; called from
            `make_train_program`, so this happens when the program is built, before tracing.
    """
    if kind == "auto":
        if _is_image(obs_shape, NATURE_MIN_SIDE):
            kind = "nature_cnn"
        else:
            kind = "minatar_cnn" if len(obs_shape) == 3 else "mlp"
    if kind == "nature_cnn":
        if not _is_image(obs_shape, NATURE_MIN_SIDE):
            raise ValueError(
                f"network='nature_cnn' is not allowed for observation shape {obs_shape}: "
                f"needs HxWxC with H, W >= {NATURE_MIN_SIDE} (84x84xC Atari frames); use "
                "'minatar_cnn' for smaller images, 'mlp', or 'auto'"
            )
        return NatureQNetwork(num_actions, dueling)
    if kind == "minatar_cnn":
        if not _is_image(obs_shape, 3):
            raise ValueError(
                f"network='minatar_cnn' is not allowed for observation shape {obs_shape}: "
                "needs HxWxC with H, W >= 3"
            )
        return MinAtarQNetwork(num_actions, tuple(hidden_sizes), dueling)
    return MLPQNetwork(num_actions, tuple(hidden_sizes), dueling, obs_ndim=len(obs_shape))
