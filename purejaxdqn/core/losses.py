"""The losses of the DQN family, as a table the static config picks from, and the target
network's update rules.

A loss function is `loss_fn(params, target_params, sample, hparams, key) -> (loss, aux)`,
made by `make_loss(config, network)` and differentiated with respect to `params` by the
training loop:

- `params`, `target_params`: the online and target network's parameters;
- `sample`: a `replay.Sample` of B transitions (its `batch`, `indices`, `weights`); the
  batch's `reward` is the (n-step) discounted return and `discount` the factor of the
  bootstrap value, 0 after a termination;
- `hparams`: the traced `HParams` (`huber_delta`, and `munchausen_alpha`,
  `munchausen_tau`, `munchausen_clip` for the Munchausen target);
- `key`: a PRNG key of the loss's own, fresh per update: a noisy network's noise, split
  three ways (online network at s, target network at s and s', online network at s' for
  double Q-learning's choice); unused by a network without noise;
- `loss`: () float32, the mean of the samples' weighted losses (over the valid samples
  only, where the batch has a `valid` mask);
- `aux`: a `LossAux` with each sample's priority to write back (|TD error| for a scalar
  head, the sample's loss for a distributional one) and the mean Q-value of the actions
  taken.

Every loss of the family is a bootstrap rule combined with a head:

- the bootstrap rule (`BOOTSTRAPS`) says how the next state is valued: the target
  network's greedy action ('max', DQN), the online network's greedy action valued by the
  target network ('double', double DQN), or Munchausen's soft value ('munchausen'): a
  `NextPolicy` that is one next action, or a distribution over next actions with a value
  offset per action and a reward bonus;
- the head (`HEADS`) turns the target network's outputs at s' and that policy into a
  target and scores the online prediction at (s, a) against it: a scalar Q-value with
  `config.loss` ('none'), C51's cross-entropy to the projected target distribution
  ('c51'), or QR-DQN's quantile Huber loss ('qr').

`LOSS_FUNCTIONS` maps a name ('dqn', 'double_c51', 'munchausen_qr_dqn', ...) to a factory
`(config, network) -> loss_fn` for each pair; `loss_name` picks the name from the config
(`munchausen`, `double_q`, `distributional`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from purejaxdqn.core.config import DQNConfig, HParams
from purejaxdqn.core.networks import HeadOutputs, QNetwork, atom_support, head_config
from purejaxdqn.core.replay import Sample, Transition


class LossAux(NamedTuple):
    """What a loss function reports besides the loss.

    Attributes:
        td_error: (B,) float32 per-sample priorities to write back (`Replay.update`):
            |target - Q(s, a)| for a scalar head, the sample's (unweighted) cross-entropy
            (C51) or quantile Huber loss (QR) for a distributional one.
        q_mean: () float32 mean Q-value of the actions taken, over the valid samples.
    """

    td_error: jax.Array
    q_mean: jax.Array


LossFn = Callable[[Any, Any, Sample, HParams, jax.Array], tuple[jax.Array, LossAux]]
# (network, online params, target params, next_obs) -> (B,) float32 V(s'): the scalar
# head's bootstrap values under DQN and double DQN, computed one by one (`make_loss`
# computes the same through `BOOTSTRAPS` and `HEADS`)
NextValueFn = Callable[[QNetwork, Any, Any, jax.Array], jax.Array]


def squared_error(error: jax.Array, huber_delta: jax.Array) -> jax.Array:
    """Per-sample `error ** 2` ('mse'; `huber_delta` is not used)."""
    del huber_delta
    return jnp.square(error)


def huber(error: jax.Array, huber_delta: jax.Array) -> jax.Array:
    """Per-sample optax Huber loss: 0.5 x^2 inside `huber_delta`, linear outside."""
    return optax.huber_loss(error, delta=huber_delta)


# `config.loss` -> per-sample regression loss of the TD error
REGRESSIONS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "mse": squared_error,
    "huber": huber,
}


def td_target(
    reward: jax.Array,
    discount: jax.Array,
    next_value: jax.Array,
) -> jax.Array:
    """The target `reward + discount * next_value`, with no gradient through it.

    `discount` is `Transition.discount`, `gamma * (1 - terminated)`: only termination stops
    bootstrapping; a truncated transition bootstraps from its true final observation like
    any other.
    """
    return jax.lax.stop_gradient(reward + discount * next_value)


def max_next_value(
    network: QNetwork, params: Any, target_params: Any, next_obs: jax.Array
) -> jax.Array:
    """DQN's bootstrap value `max_a Q_target(s', a)` (`params` is not used)."""
    del params
    return network.q_values(target_params, next_obs).max(axis=-1)


def double_next_value(
    network: QNetwork, params: Any, target_params: Any, next_obs: jax.Array
) -> jax.Array:
    """Double DQN's bootstrap value `Q_target(s', argmax_a Q_online(s', a))`."""
    next_q_target = network.q_values(target_params, next_obs)
    best = jnp.argmax(network.q_values(params, next_obs), axis=-1)
    return jnp.take_along_axis(next_q_target, best[..., None], axis=-1)[..., 0]


def td_loss(
    prediction: jax.Array,
    target: jax.Array,
    kind: str,
    huber_delta: jax.Array,
    valid: jax.Array | None = None,
    weights: jax.Array | None = None,
) -> jax.Array:
    """Mean regression loss over the batch: 'mse' is mean((q - y)^2); 'huber' is optax's
    Huber loss (0.5 x^2 inside `huber_delta`, linear outside). Each sample's loss is first
    multiplied by its importance weight when `weights` is given. With `valid`, the mean
    over the valid samples only (0 if there are none).

    Raises:
        ValueError: `kind` is not a key of `REGRESSIONS`.
    """
    if kind not in REGRESSIONS:
        raise ValueError(f"loss={kind!r} is not allowed: must be 'mse' or 'huber'")
    losses = REGRESSIONS[kind](prediction - target, huber_delta)
    if weights is not None:
        losses = weights * losses
    return masked_mean(losses, valid)


def masked_mean(values: jax.Array, valid: jax.Array | None) -> jax.Array:
    """`mean(values)`, or its mean over `valid` entries (0 when none is valid)."""
    if valid is None:
        return jnp.mean(values)
    total = jnp.sum(jnp.where(valid, values, 0.0))
    return total / jnp.maximum(jnp.sum(valid), 1)


def taken(values: jax.Array, action: jax.Array) -> jax.Array:
    """`values[b, action[b]]`: (B, A, ...) -> (B, ...)."""
    index = action.reshape(action.shape + (1,) * (values.ndim - 1))
    return jnp.take_along_axis(values, index, axis=1)[:, 0]


# --- bootstrap rules: how the next state is valued ------------------------------------


class NextPolicy(NamedTuple):
    """How a bootstrap rule values the next state s'.

    Attributes:
        action: (B,) int the one next action a greedy rule picks, or None.
        probs: (B, A) a soft rule's distribution pi(a'|s') over next actions, or None.
        offset: (B, A) added to the value (each atom or quantile) of every next action
            under `probs` (Munchausen: -tau log pi(a'|s')), or None.
        bonus: (B,) added to the reward (Munchausen: alpha clip(tau log pi(a|s), l0, 0)),
            or None.
    """

    action: jax.Array | None = None
    probs: jax.Array | None = None
    offset: jax.Array | None = None
    bonus: jax.Array | None = None


class Evaluations(NamedTuple):
    """The network evaluations a bootstrap rule may read; none carries a gradient.

    Attributes:
        target_next: the target network's `HeadOutputs` at s'.
        online_next_q: `() -> (B, A)` the online network's Q-values at s' (traced only
            when called).
        target_q: `() -> (B, A)` the target network's Q-values at s (traced only when
            called).
    """

    target_next: HeadOutputs
    online_next_q: Callable[[], jax.Array]
    target_q: Callable[[], jax.Array]


BootstrapRule = Callable[[Evaluations, jax.Array, HParams], NextPolicy]


def greedy_next(evaluations: Evaluations, action: jax.Array, hp: HParams) -> NextPolicy:
    """DQN: the target network's greedy next action (of its mean Q-values)."""
    del action, hp
    return NextPolicy(action=jnp.argmax(evaluations.target_next.q_values, axis=-1))


def double_next(evaluations: Evaluations, action: jax.Array, hp: HParams) -> NextPolicy:
    """Double DQN: the online network's greedy next action (of its mean Q-values)."""
    del action, hp
    return NextPolicy(action=jnp.argmax(evaluations.online_next_q(), axis=-1))


def munchausen_next(evaluations: Evaluations, action: jax.Array, hp: HParams) -> NextPolicy:
    """Munchausen's soft value and bonus (Vieillard et al., 2020).

    With pi = softmax(q_target / tau) from the target network,

        target = r + alpha clip(tau log pi(a|s), l0, 0)
                   + discount sum_a' pi(a'|s') (q_target(s', a') - tau log pi(a'|s'))

    (alpha, tau, l0 = `hp.munchausen_alpha`, `munchausen_tau`, `munchausen_clip`; tau log
    pi from a stable log-softmax). With n-step returns the bonus is the first action's
    only: the batch's reward already sums the n rewards, and a is the action at s.
    """
    tau = hp.munchausen_tau
    log_pi_next = jax.nn.log_softmax(evaluations.target_next.q_values / tau, axis=-1)
    log_pi = jax.nn.log_softmax(evaluations.target_q() / tau, axis=-1)
    log_pi_taken = taken(log_pi, action)
    bonus = hp.munchausen_alpha * jnp.clip(tau * log_pi_taken, hp.munchausen_clip, 0.0)
    return NextPolicy(probs=jnp.exp(log_pi_next), offset=-tau * log_pi_next, bonus=bonus)


# `config`'s bootstrap ('max' / 'double' / 'munchausen') -> its rule
BOOTSTRAPS: dict[str, BootstrapRule] = {
    "max": greedy_next,
    "double": double_next,
    "munchausen": munchausen_next,
}


# --- heads: the target from the next state, and the per-sample loss --------------------


class HeadLoss(NamedTuple):
    """How a head's loss is made (one per value of `config.distributional`).

    Attributes:
        values: `HeadOutputs -> (B, A, ...)` what the head predicts per action: its
            Q-values (scalar), logits (C51) or quantiles (QR).
        target: `(target_next, policy, reward, discount) -> target` with no gradient:
            (B,) values (scalar), (B, atoms) probabilities (C51) or (B, N) quantile
            samples (QR); `reward` includes the policy's bonus.
        score: `(prediction, target, hp) -> (loss, priority)`, both (B,): the per-sample
            loss of the online prediction at the taken action (its Q-value, logits or
            quantiles) and the priority to write back.
    """

    values: Callable[[HeadOutputs], jax.Array]
    target: Callable[[HeadOutputs, NextPolicy, jax.Array, jax.Array], jax.Array]
    score: Callable[[jax.Array, jax.Array, HParams], tuple[jax.Array, jax.Array]]


def _next_per_action(values: jax.Array, policy: NextPolicy) -> jax.Array:
    """(B, A, ...) next-state values -> (B, ...): the greedy action's, or the
    `policy.probs`-weighted sum of the values plus `policy.offset`.
    """
    if policy.action is not None:
        return taken(values, policy.action)
    extra = (1,) * (values.ndim - 2)
    probs = policy.probs.reshape(policy.probs.shape + extra)
    offset = policy.offset.reshape(policy.offset.shape + extra)
    return jnp.sum(probs * (values + offset), axis=1)


def _q_values(outputs: HeadOutputs) -> jax.Array:
    """A head's Q-values, (B, A)."""
    return outputs.q_values


def _distribution(outputs: HeadOutputs) -> jax.Array:
    """A distributional head's logits or quantiles, (B, A, K)."""
    return outputs.distribution


def scalar_head(config: DQNConfig) -> HeadLoss:
    """One Q-value per action, regressed with `config.loss` (DQN's TD loss).

    Raises:
        ValueError: `config.loss` is not a key of `REGRESSIONS`.
    """
    kind = config.loss
    if kind not in REGRESSIONS:
        raise ValueError(f"loss={kind!r} is not allowed: must be one of {sorted(REGRESSIONS)}")
    regression = REGRESSIONS[kind]

    def target(
        target_next: HeadOutputs, policy: NextPolicy, reward: jax.Array, discount: jax.Array
    ) -> jax.Array:
        return td_target(reward, discount, _next_per_action(target_next.q_values, policy))

    def score(prediction: jax.Array, target: jax.Array, hp: HParams) -> tuple[jax.Array, ...]:
        return regression(prediction - target, hp.huber_delta), jnp.abs(prediction - target)

    return HeadLoss(_q_values, target, score)


def categorical_projection(atoms: jax.Array, probs: jax.Array, support: jax.Array) -> jax.Array:
    """Project the distribution `probs` on `atoms` (..., K') onto the evenly spaced
    `support` (K,) (Bellemare et al., 2017): each atom is clipped to [support[0],
    support[-1]] and its mass split between the two nearest support points in proportion
    to closeness. Returns (..., K) probabilities.
    """
    spacing = (support[-1] - support[0]) / (support.shape[0] - 1)
    atoms = jnp.clip(atoms, support[0], support[-1])
    distance = jnp.abs(atoms[..., None, :] - support[:, None])  # (..., K, K')
    share = jnp.clip(1.0 - distance / spacing, 0.0, 1.0)
    # a batched matrix-vector product, not an elementwise product and a sum: XLA runs it
    # as a dot, deterministic on every backend, unlike a scatter-add of the shares
    return jnp.einsum("...kj,...j->...k", share, probs)


def categorical_head(config: DQNConfig) -> HeadLoss:
    """C51: the target distribution is the projection of r + discount z (z the atoms of
    `config`'s support) under the next action's probabilities (or the pi-weighted mixture
    of each next action's projection, z shifted by its offset); the loss is the
    cross-entropy of the online logits at the taken action to it.
    """
    support = atom_support(head_config(config))  # NumPy: a constant, traced or not

    def target(
        target_next: HeadOutputs, policy: NextPolicy, reward: jax.Array, discount: jax.Array
    ) -> jax.Array:
        probs = jax.nn.softmax(target_next.distribution, axis=-1)  # (B, A, K)
        if policy.action is not None:
            atoms = reward[:, None] + discount[:, None] * support
            projected = categorical_projection(atoms, taken(probs, policy.action), support)
        else:
            shifted = support + policy.offset[..., None]  # (B, A, K)
            atoms = reward[:, None, None] + discount[:, None, None] * shifted
            mixture = categorical_projection(atoms, probs, support)
            projected = jnp.sum(policy.probs[..., None] * mixture, axis=1)
        return jax.lax.stop_gradient(projected)

    def score(logits: jax.Array, target: jax.Array, hp: HParams) -> tuple[jax.Array, ...]:
        del hp
        cross_entropy = -jnp.sum(target * jax.nn.log_softmax(logits, axis=-1), axis=-1)
        return cross_entropy, cross_entropy

    return HeadLoss(_distribution, target, score)


def quantile_midpoints(num_quantiles: int) -> np.ndarray:
    """QR-DQN's quantile fractions tau_i = (2i + 1) / 2N, (N,) float32."""
    return ((2 * np.arange(num_quantiles) + 1) / (2 * num_quantiles)).astype(np.float32)


def quantile_huber(quantiles: jax.Array, samples: jax.Array, huber_delta: jax.Array) -> jax.Array:
    """QR-DQN's loss of (B, N) `quantiles` at the midpoints against (B, N') target
    `samples`: sum over i, mean over j of |tau_i - 1{d_ij < 0}| huber(d_ij, kappa), d_ij =
    samples_j - quantiles_i, kappa = `huber_delta` (the Huber loss not divided by kappa,
    as in rlax). Returns (B,).
    """
    tau = quantile_midpoints(quantiles.shape[-1])[:, None]
    delta = samples[:, None, :] - quantiles[:, :, None]  # (B, N, N')
    below = jax.lax.stop_gradient((delta < 0.0).astype(delta.dtype))
    loss = jnp.abs(tau - below) * optax.huber_loss(delta, delta=huber_delta)
    return jnp.sum(jnp.mean(loss, axis=-1), axis=-1)


def quantile_head(config: DQNConfig) -> HeadLoss:
    """QR-DQN: each target sample j is r + discount theta_j(s', a*) (or the pi-weighted
    sum over next actions of theta_j plus the offset); the loss is the quantile Huber loss
    with kappa = `hp.huber_delta`.
    """
    del config

    def target(
        target_next: HeadOutputs, policy: NextPolicy, reward: jax.Array, discount: jax.Array
    ) -> jax.Array:
        next_quantiles = _next_per_action(target_next.distribution, policy)  # (B, N)
        return jax.lax.stop_gradient(reward[:, None] + discount[:, None] * next_quantiles)

    def score(quantiles: jax.Array, target: jax.Array, hp: HParams) -> tuple[jax.Array, ...]:
        loss = quantile_huber(quantiles, target, hp.huber_delta)
        return loss, loss

    return HeadLoss(_distribution, target, score)


# `config.distributional` -> the head's loss factory
HEADS: dict[str, Callable[[DQNConfig], HeadLoss]] = {
    "none": scalar_head,
    "c51": categorical_head,
    "qr": quantile_head,
}


# --- the family: a bootstrap rule x a head ---------------------------------------------


def _call(fn: Callable, params: Any, obs: jax.Array, noise_key: jax.Array | None) -> Any:
    """`fn(params, obs)`, with `noise_key` only when there is one (a network without
    noise is called exactly as before noisy nets existed).
    """
    return fn(params, obs) if noise_key is None else fn(params, obs, noise_key)


def make_family_loss(config: DQNConfig, network: QNetwork, bootstrap: str, head: str) -> LossFn:
    """The loss of bootstrap rule `BOOTSTRAPS[bootstrap]` with head `HEADS[head]`.

    Raises:
        ValueError: `config.loss` is not a key of `REGRESSIONS` (scalar head).
    """
    rule, head_loss = BOOTSTRAPS[bootstrap], HEADS[head](config)
    noisy = config.noisy

    def loss_fn(
        params: Any, target_params: Any, sample: Sample, hp: HParams, key: jax.Array
    ) -> tuple[jax.Array, LossAux]:
        batch: Transition = sample.batch
        online_key = target_key = selector_key = None
        if noisy:
            online_key, target_key, selector_key = jax.random.split(key, 3)
        frozen = jax.lax.stop_gradient(params)
        evaluations = Evaluations(
            target_next=_call(network.outputs, target_params, batch.next_obs, target_key),
            online_next_q=lambda: _call(network.q_values, frozen, batch.next_obs, selector_key),
            target_q=lambda: _call(network.q_values, target_params, batch.obs, target_key),
        )
        policy = rule(evaluations, batch.action, hp)
        reward = batch.reward if policy.bonus is None else batch.reward + policy.bonus
        target = head_loss.target(evaluations.target_next, policy, reward, batch.discount)
        online = _call(network.outputs, params, batch.obs, online_key)
        q_taken = taken(online.q_values, batch.action)
        prediction = taken(head_loss.values(online), batch.action)
        losses, priority = head_loss.score(prediction, target, hp)
        loss = masked_mean(sample.weights * losses, batch.valid)
        return loss, LossAux(td_error=priority, q_mean=masked_mean(q_taken, batch.valid))

    return loss_fn


# bootstrap rule and head -> the name of their loss
_PREFIXES = {"max": "", "double": "double_", "munchausen": "munchausen_"}
_HEAD_NAMES = {"none": "dqn", "c51": "c51", "qr": "qr_dqn"}

# name -> factory `(config, network) -> loss_fn`: 'dqn', 'double_dqn', 'munchausen_dqn',
# 'c51', 'double_c51', 'munchausen_c51', 'qr_dqn', 'double_qr_dqn', 'munchausen_qr_dqn'
LOSS_FUNCTIONS: dict[str, Callable[[DQNConfig, QNetwork], LossFn]] = {
    _PREFIXES[bootstrap] + _HEAD_NAMES[head]: functools.partial(
        make_family_loss, bootstrap=bootstrap, head=head
    )
    for head in HEADS
    for bootstrap in BOOTSTRAPS
}


def loss_name(config: DQNConfig) -> str:
    """The `LOSS_FUNCTIONS` entry `config` asks for, from `munchausen`, `double_q` and
    `distributional`: e.g. 'dqn', 'double_dqn', 'munchausen_c51', 'double_qr_dqn'.

    Raises:
        ValueError: `munchausen` with `double_q` (the soft value picks no next action).
    """
    if config.munchausen and config.double_q:
        raise ValueError("munchausen=True is not allowed with double_q=True")
    bootstrap = "munchausen" if config.munchausen else "double" if config.double_q else "max"
    return _PREFIXES[bootstrap] + _HEAD_NAMES[config.distributional]


def make_loss(config: DQNConfig, network: QNetwork, name: str | None = None) -> LossFn:
    """The loss function of `config` (see the module docstring).

    Args:
        config: static options (`double_q`, `munchausen`, `distributional` and its support,
            `noisy`, `loss`, ...).
        network: the Q-network the loss evaluates (its head as `config` describes it).
        name: a `LOSS_FUNCTIONS` entry to use instead of `loss_name(config)`.

    Raises:
        ValueError: `name` is not an entry of `LOSS_FUNCTIONS`, or `config.loss` is not a
            regression of `REGRESSIONS`.
    """
    name = loss_name(config) if name is None else name
    if name not in LOSS_FUNCTIONS:
        raise ValueError(
            f"loss function {name!r} is not known: must be one of {sorted(LOSS_FUNCTIONS)}"
        )
    return LOSS_FUNCTIONS[name](config, network)


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
