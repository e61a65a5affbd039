"""Q-networks (flax linen): an MLP, the MinAtar CNN and the Nature-DQN CNN, with an
optional dueling head.

Every network casts its input to float32 itself, so the replay buffer can hold compact
observations (uint8 / bool) and no float copy of a batch is ever stored.

`make_network` gives the flax module (`module.apply(params, obs)` is the Q-values);
`make_q_network` / `as_q_network` wrap it as a `QNetwork`, the interface the training loop
uses: `init`, `q_values` (acting, evaluation) and `outputs` (the loss), where a head that
gives more than Q-values (a distributional head) exposes it as `HeadOutputs.distribution`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxdqn import backend


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


def valid_conv(
    features: int,
    kernel_size: tuple[int, int],
    strides: tuple[int, int] = (1, 1),
    name: str | None = None,
) -> nn.Module:
    """A 'VALID' convolution for the target backend: `PatchConv` where
    `backend.workarounds().patch_conv` (on CPU), else `nn.Conv`. Both have the same
    parameters (names, shapes, initialisation), so checkpoints load on either path.
    """
    if backend.workarounds().patch_conv:
        return PatchConv(features, kernel_size, strides, name=name)
    return nn.Conv(features, kernel_size, strides, padding="VALID", name=name)


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
        x = nn.relu(valid_conv(16, kernel_size=(3, 3), name="Conv_0")(x))
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
    ReLU and the Q head. The convolutions are `valid_conv`s: `PatchConv` on CPU (faster
    under `jax.vmap` over seeds there), `nn.Conv` elsewhere, with the same parameters.
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
            conv = valid_conv(features, (side, side), (stride, stride), name=f"Conv_{index}")
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


class HeadOutputs(NamedTuple):
    """What a Q-network's head gives for a batch of observations.

    Attributes:
        q_values: (*batch, num_actions) float32 Q-values: what acting and evaluation use.
        distribution: what a distributional head gives besides, per action (e.g. C51's
            (*batch, num_actions, atoms) logits or QR-DQN's quantiles), for its loss; None
            for a plain Q head (every network here).
    """

    q_values: jax.Array
    distribution: jax.Array | None = None


class QNetwork(NamedTuple):
    """A Q-network as pure functions of its parameters (build with `as_q_network`).

    Attributes:
        module: the flax module; `module.apply(params, obs)` gives the Q-values.
        init: `init(key, obs) -> params`, the module's `init` (the same parameter tree).
        q_values: `q_values(params, obs) -> (*batch, num_actions)` float32, exactly
            `module.apply(params, obs)`; obs (*batch, *obs_shape) in any dtype.
        outputs: `outputs(params, obs) -> HeadOutputs`: the module's `outputs` method where
            it has one (a head that gives more than Q-values), else the Q-values alone.
    """

    module: nn.Module
    init: Callable[[jax.Array, jax.Array], Any]
    q_values: Callable[[Any, jax.Array], jax.Array]
    outputs: Callable[[Any, jax.Array], HeadOutputs]


def as_q_network(network: nn.Module | QNetwork) -> QNetwork:
    """`network` as a `QNetwork` (a `QNetwork` is returned as it is).

    A module whose head gives more than Q-values defines `__call__(obs)` returning the
    Q-values (what `q_values` calls) and a method `outputs(obs) -> HeadOutputs` (what
    `outputs` calls); a plain module gives `HeadOutputs(q_values)`.
    """
    if isinstance(network, QNetwork):
        return network
    if callable(getattr(type(network), "outputs", None)):

        def outputs(params: Any, obs: jax.Array) -> HeadOutputs:
            return network.apply(params, obs, method="outputs")

    else:

        def outputs(params: Any, obs: jax.Array) -> HeadOutputs:
            return HeadOutputs(network.apply(params, obs))

    return QNetwork(module=network, init=network.init, q_values=network.apply, outputs=outputs)


def make_q_network(
    kind: str,
    obs_shape: tuple[int, ...],
    num_actions: int,
    hidden_sizes: Sequence[int],
    dueling: bool,
) -> QNetwork:
    """`make_network(...)` (same arguments and errors) as a `QNetwork`."""
    return as_q_network(make_network(kind, obs_shape, num_actions, hidden_sizes, dueling))
