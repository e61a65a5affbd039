"""The compute floor of a PQN run: its arithmetic against this machine's matmul peak.

When many seeds run at once, PQN's iteration is dominated by dense matrix products (the
Q-network's forward passes while acting and its forward and backward passes in the
minibatch updates). No program that does those operations can run faster than their
floating-point operation count divided by the fastest rate this machine multiplies
matrices at. `compare.py --algo pqn` uses these two numbers to say how close each side
runs to that floor and the largest speedup any implementation of our computation could
have over purejaxql's measured time.

- `pqn_iteration_flops(config)`: floating-point operations of one iteration of one seed,
  for our PQN and for purejaxql's, counted by XLA's cost analysis of the compiled pieces
  (no loops inside them, so the counts are exact for those pieces): the acting forward
  pass per rollout step, the bootstrap forward pass (both reuse the acting Q-values where
  no episode ended: purejaxql passes the last observations, ours those and the final
  observations of up to `pqn.max_truncations_per_rollout` truncations per env, as
  `pqn.next_values` does) and one minibatch's loss (`pqn.make_pqn_loss`, as the loop runs
  it) and gradient per update. The optimiser's elementwise update is left out (under 1%
  of the gradient's operations).
- `matmul_peak_flops(devices)`: the fastest of square float32 matrix products timed on one
  device and on every device at once (one product each, sharded), in operations per second.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from purejaxdqn.core.pqn import (
    bootstrap_rows_per_env,
    make_pqn_loss,
    max_truncations_per_rollout,
)
from purejaxdqn.core.pqn_config import PQNConfig
from purejaxdqn.envs.spec import make_env


def compiled_flops(fn: Any, *args: Any) -> float:
    """Floating-point operations XLA counts in the compiled `jax.jit(fn)(*args)`."""
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, list | tuple):  # older JAX: one dict per computation
        analysis = analysis[0]
    return float(analysis["flops"])


def pqn_iteration_flops(config: PQNConfig) -> dict[str, float]:
    """{"purejaxdqn": ..., "purejaxql": ...}: the operations of one iteration of one seed of
    `config` (see the module docstring for what is counted).
    """
    spec = make_env(config.env_id)
    network = config.q_network(spec.obs_shape, spec.num_actions)
    T, E, B = config.num_steps, config.num_envs, config.minibatch_size

    def obs(n: int) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct((n, *spec.obs_shape), jnp.float32)

    params = jax.eval_shape(network.init, jax.random.key(0), obs(1))

    act = compiled_flops(network.q_values, params, obs(E))
    truncations = max_truncations_per_rollout(T, spec.max_episode_steps)
    bootstrap_rows = bootstrap_rows_per_env(T, truncations)
    bootstrap = compiled_flops(network.q_values, params, obs(bootstrap_rows * E))
    action, values = jax.ShapeDtypeStruct((B,), jnp.int32), jax.ShapeDtypeStruct((B,), jnp.float32)
    loss_and_grad = jax.value_and_grad(make_pqn_loss(network), has_aux=True)
    grad = compiled_flops(loss_and_grad, params, obs(B), action, values, values)
    updates = config.updates_per_iteration * grad
    return {
        "purejaxdqn": T * act + bootstrap + updates,
        "purejaxql": T * act + act + updates,
    }


def _best_seconds(fn: Any, arg: jax.Array, repeats: int) -> float:
    """The fastest of `repeats` timed calls of the compiled `fn(arg)` (after one untimed)."""
    jax.block_until_ready(fn(arg))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(arg))
        best = min(best, time.perf_counter() - start)
    return best


def matmul_peak_flops(devices: list, sizes: tuple[int, ...] = (1024, 2048, 4096)) -> dict:
    """Operations per second of square float32 products of each of `sizes`, on one device
    and on every device at once (one product per device, sharded): {"one_device <size>":
    ..., "all_devices <size>": ..., "peak": the largest}.
    """
    product = jax.jit(lambda x: x @ x)
    batched = jax.jit(lambda x: jnp.einsum("bij,bjk->bik", x, x))
    sharding = NamedSharding(Mesh(np.asarray(devices), ("devices",)), PartitionSpec("devices"))
    rates = {}
    for size in sizes:
        repeats = max(3, 2**30 // size**3 * 4)
        one = jax.device_put(jax.random.normal(jax.random.key(0), (size, size)), devices[0])
        rates[f"one_device {size}"] = 2 * size**3 / _best_seconds(product, one, repeats)
        many = jax.random.normal(jax.random.key(1), (len(devices), size, size))
        many = jax.device_put(many, sharding)
        seconds = _best_seconds(batched, many, repeats)
        rates[f"all_devices {size}"] = len(devices) * 2 * size**3 / seconds
    rates["peak"] = max(rates.values())
    return rates
