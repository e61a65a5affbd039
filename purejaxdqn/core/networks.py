"""Q-networks (flax linen): an MLP, the MinAtar CNN and the Nature-DQN CNN, each with a
head that is plain, dueling, distributional (C51, QR-DQN) and/or noisy (`HeadConfig`).

Every network casts its input to float32 itself, so the replay buffer can hold compact
observations (uint8 / bool) and no float copy of a batch is ever stored.

`make_network` gives the flax module (`module.apply(params, obs)` is the Q-values, the mean
of the distribution for a distributional head, noise-free for a noisy one);
`make_q_network` / `as_q_network` wrap it as a `QNetwork`, the interface the training loop
uses: `init`, `q_values` (acting, evaluation) and `outputs` (the loss), where a head that
gives more than Q-values (a distributional head) exposes it as `HeadOutputs.distribution`.
A noisy head draws its noise from the flax rng stream `NOISE`, given to `q_values` and
`outputs` as `noise_key`; without one it uses its mean weights.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from purejaxdqn import backend

# The flax rng stream a noisy head draws its noise from.
NOISE = "noise"

DISTRIBUTIONAL = ("none", "c51", "qr")
# What follows each hidden layer (dense or convolution) before its ReLU: nothing, or a
# LayerNorm over its features (PQN's networks; Gallici et al., 2025).
NORMS = ("none", "layer_norm")
# How the hidden layers' kernels (convolutions and dense layers before the head) are drawn:
# LeCun-normal (flax's default, variance 1 / fan_in) or He-normal (variance 2 / fan_in, for
# ReLU layers; the CNNs of PQN's code, purejaxql). The head keeps flax's default.
KERNEL_INITS = {
    "lecun_normal": nn.initializers.lecun_normal(),
    "he_normal": nn.initializers.he_normal(),
}


LAYER_NORM_EPSILON = 1e-6  # flax's nn.LayerNorm default


@jax.custom_vjp
def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
    """`(x - mean) / sqrt(var + LAYER_NORM_EPSILON) * scale + bias` over the last axis of
    float32 `x`, with the gradient written out: XLA:CPU runs the written-out backward pass
    faster than the autodiff of flax's `nn.LayerNorm`, whose results it equals up to float
    rounding.
    """
    return _layer_norm_forward(x, scale, bias)[0]


def _layer_norm_forward(
    x: jax.Array, scale: jax.Array, bias: jax.Array
) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    centred = x - x.mean(axis=-1, keepdims=True)
    inverse_std = jax.lax.rsqrt(
        jnp.square(centred).mean(axis=-1, keepdims=True) + LAYER_NORM_EPSILON
    )
    normalised = centred * inverse_std
    return normalised * scale + bias, (normalised, inverse_std, scale)


def _layer_norm_backward(
    residuals: tuple[jax.Array, ...], grad: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    normalised, inverse_std, scale = residuals
    g = grad * scale
    grad_x = inverse_std * (
        g
        - g.mean(axis=-1, keepdims=True)
        - normalised * (g * normalised).mean(axis=-1, keepdims=True)
    )
    leading = tuple(range(grad.ndim - 1))
    return grad_x, (grad * normalised).sum(axis=leading), grad.sum(axis=leading)


layer_norm.defvjp(_layer_norm_forward, _layer_norm_backward)


class LayerNorm(nn.Module):
    """A LayerNorm over the last axis (`layer_norm`), with flax's `nn.LayerNorm` parameter
    names and initial values (`scale` ones, `bias` zeros), so saved parameters load either way.
    """

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """`x` normalised over its last axis, then scaled and shifted per feature."""
        features = (x.shape[-1],)
        scale = self.param("scale", nn.initializers.ones, features, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, features, jnp.float32)
        return layer_norm(x, scale, bias)


def _normalise(x: jnp.ndarray, norm: str) -> jnp.ndarray:
    """`x` through a `LayerNorm` over its last axis when `norm` is 'layer_norm' (inside a
    compact module), else unchanged.
    """
    return LayerNorm()(x) if norm == "layer_norm" else x


class HeadConfig(NamedTuple):
    """The static shape of a Q-network's head (the `DQNConfig` fields of the same names).

    Attributes:
        distributional: 'none' (one Q-value per action), 'c51' (Bellemare et al., 2017:
            logits over `num_atoms` atoms evenly spaced on [v_min, v_max]) or 'qr' (Dabney
            et al., 2018: `num_quantiles` quantiles at the midpoints (2i + 1) / 2N).
        num_atoms, v_min, v_max: C51's support.
        num_quantiles: QR-DQN's quantile count.
        noisy: factorised Gaussian noisy output layers (Fortunato et al., 2018).
        noisy_sigma0: their initial noise scale, sigma = sigma0 / sqrt(inputs).
    """

    distributional: str = "none"
    num_atoms: int = 51
    v_min: float = -10.0
    v_max: float = 10.0
    num_quantiles: int = 200
    noisy: bool = False
    noisy_sigma0: float = 0.5


# The default head: one Q-value per action, plain dense output layers.
PLAIN_HEAD = HeadConfig()


def head_config(config: Any) -> HeadConfig:
    """The `HeadConfig` of `config` (a `DQNConfig`): its fields of the same names."""
    return HeadConfig(**{name: getattr(config, name) for name in HeadConfig._fields})


def check_head(head: HeadConfig) -> None:
    """Raise a ValueError naming the field when `head` describes no head."""
    if head.distributional not in DISTRIBUTIONAL:
        raise ValueError(
            f"distributional={head.distributional!r} is not allowed: must be one of "
            f"{list(DISTRIBUTIONAL)}"
        )
    if head.num_atoms < 2:
        raise ValueError(f"num_atoms={head.num_atoms} is not allowed: must be >= 2")
    if not head.v_min < head.v_max:
        raise ValueError(f"v_min={head.v_min} is not allowed: must be < v_max={head.v_max}")
    if head.num_quantiles < 1:
        raise ValueError(f"num_quantiles={head.num_quantiles} is not allowed: must be >= 1")


def atom_support(head: HeadConfig) -> np.ndarray:
    """C51's atoms: (num_atoms,) float32, evenly spaced from v_min to v_max."""
    return np.linspace(head.v_min, head.v_max, head.num_atoms, dtype=np.float32)


class HeadOutputs(NamedTuple):
    """What a Q-network's head gives for a batch of observations.

    Attributes:
        q_values: (*batch, num_actions) float32 Q-values: what acting and evaluation use.
        distribution: what a distributional head gives besides, per action: C51's
            (*batch, num_actions, num_atoms) logits or QR-DQN's (*batch, num_actions,
            num_quantiles) quantiles, for its loss; None for a plain Q head.
    """

    q_values: jax.Array
    distribution: jax.Array | None = None


def _scaled_noise(key: jax.Array, size: int) -> jax.Array:
    """f(x) = sign(x) sqrt(|x|) of `size` standard normals (factorised noise)."""
    x = jax.random.normal(key, (size,), jnp.float32)
    return jnp.sign(x) * jnp.sqrt(jnp.abs(x))


class NoisyDense(nn.Module):
    """A dense layer with factorised Gaussian noise (Fortunato et al., 2018).

    y = x (mu_W + sigma_W * eps_W) + mu_b + sigma_b * eps_b with eps_W = f(eps_in) f(eps_out)^T
    and eps_b = f(eps_out), f(x) = sign(x) sqrt(|x|) of standard normals, one draw per
    call shared by the whole batch. For p inputs, mu ~ U(-1/sqrt(p), 1/sqrt(p)) and sigma
    starts at sigma0 / sqrt(p). The noise comes from the rng stream `NOISE`; when the call
    has none (`init`, greedy evaluation, `module.apply(params, obs)`) the layer uses mu only.
    """

    features: int
    sigma0: float = 0.5

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """(..., p) -> (..., features)."""
        inputs = x.shape[-1]
        bound = 1.0 / math.sqrt(inputs)
        uniform = functools.partial(jax.random.uniform, minval=-bound, maxval=bound)
        sigma = nn.initializers.constant(self.sigma0 / math.sqrt(inputs))
        kernel = self.param("kernel", uniform, (inputs, self.features))
        bias = self.param("bias", uniform, (self.features,))
        sigma_kernel = self.param("sigma_kernel", sigma, (inputs, self.features))
        sigma_bias = self.param("sigma_bias", sigma, (self.features,))
        y = x @ kernel + bias
        if not self.has_rng(NOISE):
            return y
        in_key, out_key = jax.random.split(self.make_rng(NOISE))
        eps_in, eps_out = _scaled_noise(in_key, inputs), _scaled_noise(out_key, self.features)
        # x (sigma_W * eps_in eps_out^T) = ((x * eps_in) sigma_W) * eps_out: no (p, q) noise
        return y + ((x * eps_in) @ sigma_kernel + sigma_bias) * eps_out


class QHead(nn.Module):
    """Maps features to one Q-value per action, optionally through a dueling split, as the
    mean of a distribution per action when `head.distributional` is 'c51' or 'qr'.

    The output layers are named "q" (no dueling) or "value" and "advantage"; they are
    `NoisyDense` when `head.noisy`, else `nn.Dense`. Dueling subtracts the mean over
    actions of the advantage: of its Q-values, logits (C51) or quantiles (QR).
    """

    num_actions: int
    dueling: bool = False
    head: HeadConfig = PLAIN_HEAD

    @nn.compact
    def __call__(self, features: jnp.ndarray) -> HeadOutputs:
        """`HeadOutputs` with Q-values of shape (..., num_actions)."""
        head, actions = self.head, self.num_actions
        noisy = functools.partial(NoisyDense, sigma0=head.noisy_sigma0)
        dense = noisy if head.noisy else nn.Dense
        if head.distributional == "none":
            if not self.dueling:
                return HeadOutputs(dense(actions, name="q")(features))
            value = dense(1, name="value")(features)
            advantage = dense(actions, name="advantage")(features)
            return HeadOutputs(value + advantage - advantage.mean(axis=-1, keepdims=True))
        size = head.num_atoms if head.distributional == "c51" else head.num_quantiles
        shape = (*features.shape[:-1], actions, size)
        if not self.dueling:
            distribution = dense(actions * size, name="q")(features).reshape(shape)
        else:
            value = dense(size, name="value")(features)[..., None, :]
            advantage = dense(actions * size, name="advantage")(features).reshape(shape)
            distribution = value + advantage - advantage.mean(axis=-2, keepdims=True)
        if head.distributional == "c51":
            probs = jax.nn.softmax(distribution, axis=-1)
            q_values = jnp.sum(probs * atom_support(head), axis=-1)
        else:
            q_values = distribution.mean(axis=-1)
        return HeadOutputs(q_values, distribution)


def _unflatten(outputs: HeadOutputs, batch_shape: tuple[int, ...]) -> HeadOutputs:
    """`outputs` of a flattened batch (N, ...) reshaped to (*batch_shape, ...)."""
    return jax.tree.map(lambda x: x.reshape(*batch_shape, *x.shape[1:]), outputs)


class MLPQNetwork(nn.Module):
    """Fully connected Q-network over flattened observations (with `norm='layer_norm'`, a
    LayerNorm after each hidden layer, before its ReLU).
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (120, 84)
    dueling: bool = False
    obs_ndim: int = 1
    head: HeadConfig = PLAIN_HEAD
    norm: str = "none"
    kernel_init: str = "lecun_normal"

    def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
        """Q-values for a batch of observations of shape (*batch, *obs_shape)."""
        return self.outputs(obs).q_values

    @nn.compact
    def outputs(self, obs: jnp.ndarray) -> HeadOutputs:
        """The head's `HeadOutputs` for observations of shape (*batch, *obs_shape)."""
        batch_shape = obs.shape[: obs.ndim - self.obs_ndim]
        x = obs.astype(jnp.float32).reshape(*batch_shape, -1)
        for width in self.hidden_sizes:
            dense = nn.Dense(width, kernel_init=KERNEL_INITS[self.kernel_init])
            x = nn.relu(_normalise(dense(x), self.norm))
        return QHead(self.num_actions, self.dueling, self.head)(x)


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
    kernel_init: Callable = nn.initializers.lecun_normal()

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
        kernel = self.param("kernel", self.kernel_init, (kh, kw, channels, self.features))
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
    kernel_init: str = "lecun_normal",
) -> nn.Module:
    """A 'VALID' convolution for the target backend: `PatchConv` where
    `backend.workarounds().patch_conv` (on CPU), else `nn.Conv`. Both have the same
    parameters (names, shapes, initialisation: `KERNEL_INITS[kernel_init]`), so checkpoints
    load on either path.
    """
    init = KERNEL_INITS[kernel_init]
    if backend.workarounds().patch_conv:
        return PatchConv(features, kernel_size, strides, kernel_init=init, name=name)
    return nn.Conv(features, kernel_size, strides, padding="VALID", kernel_init=init, name=name)


class MinAtarQNetwork(nn.Module):
    """The MinAtar DQN network (Young & Tian, 2019): 16 3x3 filters, then dense layers
    (with `norm='layer_norm'`, a LayerNorm before every ReLU).
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (128,)
    dueling: bool = False
    head: HeadConfig = PLAIN_HEAD
    norm: str = "none"
    kernel_init: str = "lecun_normal"

    def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
        """Q-values for observations of shape (*batch, H, W, C)."""
        return self.outputs(obs).q_values

    @nn.compact
    def outputs(self, obs: jnp.ndarray) -> HeadOutputs:
        """The head's `HeadOutputs` for observations of shape (*batch, H, W, C)."""
        batch_shape = obs.shape[:-3]
        x = obs.astype(jnp.float32).reshape(-1, *obs.shape[-3:])
        conv = valid_conv(16, (3, 3), name="Conv_0", kernel_init=self.kernel_init)
        x = nn.relu(_normalise(conv(x), self.norm))
        x = x.reshape(x.shape[0], -1)
        for width in self.hidden_sizes:
            dense = nn.Dense(width, kernel_init=KERNEL_INITS[self.kernel_init])
            x = nn.relu(_normalise(dense(x), self.norm))
        return _unflatten(QHead(self.num_actions, self.dueling, self.head)(x), batch_shape)


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
    ReLU and the Q head (with `norm='layer_norm'`, a LayerNorm before every ReLU). The
    convolutions are `valid_conv`s: `PatchConv` on CPU (faster
    under `jax.vmap` over seeds there), `nn.Conv` elsewhere, with the same parameters.
    """

    num_actions: int
    dueling: bool = False
    head: HeadConfig = PLAIN_HEAD
    norm: str = "none"
    kernel_init: str = "lecun_normal"

    def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
        """Q-values of shape (*batch, num_actions) for observations (*batch, H, W, C)."""
        return self.outputs(obs).q_values

    @nn.compact
    def outputs(self, obs: jnp.ndarray) -> HeadOutputs:
        """The head's `HeadOutputs` for observations of shape (*batch, H, W, C)."""
        batch_shape = obs.shape[:-3]
        x = obs.reshape(-1, *obs.shape[-3:])
        if jnp.issubdtype(x.dtype, jnp.integer):
            x = x.astype(jnp.float32) / 255.0
        else:
            x = x.astype(jnp.float32)
        for index, (features, side, stride) in enumerate(NATURE_CONVS):
            conv = valid_conv(
                features, (side, side), (stride, stride), f"Conv_{index}", self.kernel_init
            )
            x = nn.relu(_normalise(conv(x), self.norm))
        x = x.reshape(x.shape[0], -1)
        dense = nn.Dense(512, kernel_init=KERNEL_INITS[self.kernel_init])
        x = nn.relu(_normalise(dense(x), self.norm))
        return _unflatten(QHead(self.num_actions, self.dueling, self.head)(x), batch_shape)


def _is_image(obs_shape: tuple[int, ...], min_side: int) -> bool:
    """Whether `obs_shape` is HxWxC with H, W >= `min_side`."""
    return len(obs_shape) == 3 and min(obs_shape[:2]) >= min_side


def make_network(
    kind: str,
    obs_shape: tuple[int, ...],
    num_actions: int,
    hidden_sizes: Sequence[int],
    dueling: bool,
    head: HeadConfig = PLAIN_HEAD,
    norm: str = "none",
    kernel_init: str = "lecun_normal",
) -> nn.Module:
    """Choose the Q-network for `obs_shape`: 'mlp', 'minatar_cnn', 'nature_cnn' or 'auto'.

    'auto' picks 'nature_cnn' for HxWxC observations with H, W >= 36 (Atari-style pixels),
    'minatar_cnn' for smaller HxWxC ones (MinAtar's 10x10xC) and 'mlp' for everything else.
    `hidden_sizes` sets the MLP's and the MinAtar CNN's dense layers; the Nature CNN keeps
    its single 512-unit layer. `head` chooses the head (plain by default; see `HeadConfig`)
    and `norm` what follows each hidden layer (`NORMS`: 'none' or 'layer_norm');
    `kernel_init` how the hidden layers' kernels are drawn (`KERNEL_INITS`).

    Raises:
        ValueError: a CNN asked for observations it cannot take, or a `head` that
            `check_head` refuses; called from `make_train_program`, so this happens when
            the program is built, before tracing.
    """
    check_head(head)
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r} is not allowed: must be one of {list(NORMS)}")
    if kernel_init not in KERNEL_INITS:
        raise ValueError(
            f"kernel_init={kernel_init!r} is not allowed: must be one of {list(KERNEL_INITS)}"
        )
    hidden = {"head": head, "norm": norm, "kernel_init": kernel_init}
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
        return NatureQNetwork(num_actions, dueling, **hidden)
    if kind == "minatar_cnn":
        if not _is_image(obs_shape, 3):
            raise ValueError(
                f"network='minatar_cnn' is not allowed for observation shape {obs_shape}: "
                "needs HxWxC with H, W >= 3"
            )
        return MinAtarQNetwork(num_actions, tuple(hidden_sizes), dueling, **hidden)
    return MLPQNetwork(num_actions, tuple(hidden_sizes), dueling, obs_ndim=len(obs_shape), **hidden)


class QNetwork(NamedTuple):
    """A Q-network as pure functions of its parameters (build with `as_q_network`).

    Attributes:
        module: the flax module; `module.apply(params, obs)` gives the Q-values.
        init: `init(key, obs) -> params`, the module's `init` (the same parameter tree; no
            noise key needed).
        q_values: `q_values(params, obs, noise_key=None) -> (*batch, num_actions)` float32;
            obs (*batch, *obs_shape) in any dtype. Without `noise_key` exactly
            `module.apply(params, obs)` (a noisy head's mean weights); with one, a noisy
            head's noise is drawn from it (the same key, the same noise).
        outputs: `outputs(params, obs, noise_key=None) -> HeadOutputs`: the module's
            `outputs` method where it has one, else the Q-values alone.
        support: C51's atoms, (num_atoms,) float32 (`atom_support`), or None for any
            other head.
    """

    module: nn.Module
    init: Callable[[jax.Array, jax.Array], Any]
    q_values: Callable[..., jax.Array]
    outputs: Callable[..., HeadOutputs]
    support: np.ndarray | None = None


def _noise(noise_key: jax.Array | None) -> dict[str, Any]:
    """`module.apply`'s keyword arguments for `noise_key` (none when it is None)."""
    return {} if noise_key is None else {"rngs": {NOISE: noise_key}}


def as_q_network(network: nn.Module | QNetwork) -> QNetwork:
    """`network` as a `QNetwork` (a `QNetwork` is returned as it is).

    A module whose head gives more than Q-values defines `__call__(obs)` returning the
    Q-values (what `q_values` calls) and a method `outputs(obs) -> HeadOutputs` (what
    `outputs` calls); a plain module gives `HeadOutputs(q_values)`. A noise key goes to
    the module as its `NOISE` rng stream (a module that draws none ignores it).
    """
    if isinstance(network, QNetwork):
        return network

    def q_values(params: Any, obs: jax.Array, noise_key: jax.Array | None = None) -> jax.Array:
        return network.apply(params, obs, **_noise(noise_key))

    if callable(getattr(type(network), "outputs", None)):

        def outputs(params: Any, obs: jax.Array, noise_key: jax.Array | None = None):
            return network.apply(params, obs, method="outputs", **_noise(noise_key))

    else:

        def outputs(params: Any, obs: jax.Array, noise_key: jax.Array | None = None):
            return HeadOutputs(q_values(params, obs, noise_key))

    head = getattr(network, "head", None)
    support = None
    if isinstance(head, HeadConfig) and head.distributional == "c51":
        support = atom_support(head)
    return QNetwork(network, network.init, q_values, outputs, support)


def make_q_network(
    kind: str,
    obs_shape: tuple[int, ...],
    num_actions: int,
    hidden_sizes: Sequence[int],
    dueling: bool,
    head: HeadConfig = PLAIN_HEAD,
    norm: str = "none",
    kernel_init: str = "lecun_normal",
) -> QNetwork:
    """`make_network(...)` (same arguments and errors) as a `QNetwork`."""
    network = make_network(
        kind, obs_shape, num_actions, hidden_sizes, dueling, head, norm, kernel_init
    )
    return as_q_network(network)
