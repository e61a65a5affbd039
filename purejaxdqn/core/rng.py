"""JAX's default PRNG (threefry-2x32), with its hash written out round by round.

On CPU, JAX lowers the threefry hash as a loop of 5 steps (to compile faster). XLA:CPU
runs each step as several small kernels, so every `split`, `uniform` or `randint` costs a
loop of ~25 kernel launches, and the training loop draws random numbers ~8 times per
iteration. `FAST_THREEFRY` is the same generator: key data, `split`, `fold_in` and random
bits are bit for bit those of `jax.random.key` (with `jax_threefry_partitionable`, JAX's
default), but the 20 rounds are straight-line code that XLA fuses into one kernel.
`to_fast` and `from_fast` switch a key between the two without changing its data, so the
training loop draws exactly the numbers it would draw with ordinary keys. The loop switches
with `maybe_to_fast`, which does so only where `backend.workarounds().fast_threefry` (on
CPU); on GPU and TPU it keeps JAX's own threefry.

`permutation` shuffles with sorts of one array instead of `jax.random.permutation`'s sorts
of key-value pairs, on every backend, so a key gives the same order everywhere.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import define_prng_impl, threefry_prng_impl

from purejaxdqn import backend
from purejaxdqn.checks import check_int

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: jax.Array, bits: int) -> jax.Array:
    return (x << np.uint32(bits)) | (x >> np.uint32(32 - bits))


def threefry2x32_hash(
    key1: jax.Array, key2: jax.Array, x1: jax.Array, x2: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 with 20 rounds on uint32 arrays (keys broadcast against counts)."""
    schedule = (key1, key2, key1 ^ key2 ^ _PARITY)
    x1, x2 = x1 + schedule[0], x2 + schedule[1]
    for block in range(5):
        for bits in _ROTATIONS[block % 2]:
            x1 = x1 + x2
            x2 = _rotate_left(x2, bits) ^ x1
        x1 = x1 + schedule[(block + 1) % 3]
        x2 = x2 + schedule[(block + 2) % 3] + np.uint32(block + 1)
    return x1, x2


def _counts(shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """High and low 32 bits of the row-major index of every element of `shape`."""
    size = int(np.prod(shape, dtype=np.int64))
    if size >= 2**32:
        raise NotImplementedError(f"FAST_THREEFRY draws fewer than 2**32 values; got {shape}")
    low = jnp.arange(size, dtype=jnp.uint32).reshape(shape)
    return jnp.zeros(shape, jnp.uint32), low


def _split(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    bits1, bits2 = threefry2x32_hash(key[0], key[1], *_counts(tuple(shape)))
    return jax.lax.optimization_barrier(jnp.stack([bits1, bits2], axis=-1))


def _fold_in(key: jax.Array, data: jax.Array) -> jax.Array:
    data = jnp.asarray(data, jnp.uint32)
    bits1, bits2 = threefry2x32_hash(key[0], key[1], jnp.zeros_like(data), data)
    return jax.lax.optimization_barrier(jnp.stack([bits1, bits2]))


def _random_bits(key: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
    bits1, bits2 = threefry2x32_hash(key[0], key[1], *_counts(tuple(shape)))
    if bit_width == 64:
        return (bits1.astype(jnp.uint64) << np.uint64(32)) | bits2.astype(jnp.uint64)
    dtype = {8: jnp.uint8, 16: jnp.uint16, 32: jnp.uint32}[bit_width]
    return (bits1 ^ bits2).astype(dtype)


FAST_THREEFRY = define_prng_impl(
    key_shape=(2,),
    seed=threefry_prng_impl.seed,
    split=_split,
    random_bits=_random_bits,
    fold_in=_fold_in,
    name="threefry2x32_unrolled",
    tag="fry_u",
)


def _is_default_threefry(key: jax.Array) -> bool:
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return False
    return str(jax.random.key_impl(key)) == "threefry2x32"


def to_fast(key: jax.Array) -> jax.Array:
    """`key` as a `FAST_THREEFRY` key with the same data, if it is a typed key of JAX's
    default threefry generator in its (default) partitionable mode; any other key as it is.
    """
    if not _is_default_threefry(key) or not jax.config.jax_threefry_partitionable:
        return key
    return jax.random.wrap_key_data(jax.random.key_data(key), impl=FAST_THREEFRY)


def maybe_to_fast(key: jax.Array) -> jax.Array:
    """`to_fast(key)` where the target backend uses the fast threefry
    (`backend.workarounds().fast_threefry`: on CPU), else `key` as it is. Either way the
    loop draws the same numbers; the choice is made when the caller is traced.
    """
    return to_fast(key) if backend.workarounds().fast_threefry else key


def from_fast(key: jax.Array, like: jax.Array) -> jax.Array:
    """`key` (from `to_fast(like)`) back in the generator of `like`, with the same data."""
    if key.dtype == like.dtype:
        return key
    return jax.random.wrap_key_data(jax.random.key_data(key), impl=jax.random.key_impl(like))


# Index bits above which `permutation` leaves the work to `jax.random.permutation`.
_MAX_PACKED_INDEX_BITS = 24


def permutation(key: jax.Array, n: int) -> jax.Array:
    """A uniformly random ordering of `range(n)` (int32) for `key`, from plain sorts.

    `jax.random.permutation` sorts (random key, index) pairs; XLA:CPU runs such a two-array
    sort several times slower than a sort of one uint32 array. Here each round sorts one
    uint32 array whose high bits are random and whose low `b = bit_length(n - 1)` bits are
    the element's current position, so a tie in the random bits keeps the order of the
    round before (the first round: the index order). The order of a pair deviates from
    uniform only if it ties in every round; with `32 - b` random bits a round and rounds
    enough for `3 b` random bits (the criterion of `jax.random.permutation` on its 32-bit
    keys), the expected number of such pairs is below `1 / (2 n)`. Beyond 2**24 elements
    it is `jax.random.permutation`.
    """
    index_bits = max(n - 1, 0).bit_length()
    if n <= 1 or index_bits > _MAX_PACKED_INDEX_BITS:
        return jax.random.permutation(key, n).astype(jnp.int32)
    random_bits = 32 - index_bits
    rounds = -(-3 * index_bits // random_bits)
    low = np.uint32((1 << index_bits) - 1)
    positions = jnp.arange(n, dtype=jnp.uint32)
    order = positions
    for round_key in jax.random.split(key, rounds):
        packed = (jax.random.bits(round_key, (n,), jnp.uint32) & ~low) | positions
        order = order[jnp.sort(packed) & low]
    return order.astype(jnp.int32)


SEED_LIMIT = 2**64  # seeds are integers in [0, 2**64)


def check_seed(seed: object, name: str = "seed") -> int:
    """`seed` as an int, or a ValueError naming `name` unless it is an integer in [0, 2**64)
    (`checks.check_int`).
    """
    allowed = f"an integer in [0, 2**64) (0 to {SEED_LIMIT - 1})"
    return check_int(name, seed, 0, SEED_LIMIT - 1, allowed=allowed)


def seed_key(seed: int) -> jax.Array:
    """The threefry key of an integer seed in [0, 2**64): its key data are the seed's high
    and low 32-bit words.

    Below 2**32 this is exactly `jax.random.key(seed)` (whose data are [0, seed]), so every
    recorded run keeps its keys; above it every seed still gets its own key, where
    `jax.random.key` (without 64-bit mode) would wrap 2**32 back to the key of 0.

    Raises:
        ValueError: for anything but an integer in [0, 2**64).
    """
    seed = check_seed(seed)
    words = np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)
    return jax.random.wrap_key_data(words, impl="threefry2x32")
