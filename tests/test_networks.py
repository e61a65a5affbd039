import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxdqn.networks import PatchConv, make_network


@pytest.mark.parametrize("channels", [1, 4, 7])
def test_patch_conv_equals_flax_valid_conv(channels):
    x = jax.random.bernoulli(jax.random.key(1), 0.3, (5, 10, 10, channels)).astype(jnp.float32)
    params = PatchConv(16).init(jax.random.key(0), x)
    reference = nn.Conv(16, (3, 3), padding="VALID")
    same_init = reference.init(jax.random.key(0), x)
    jax.tree.map(np.testing.assert_array_equal, params, same_init)
    out = PatchConv(16).apply(params, x)
    assert out.shape == (5, 8, 8, 16)
    np.testing.assert_allclose(out, reference.apply(params, x), atol=1e-5)


def test_minatar_network_shapes_and_uint8_input():
    network = make_network("auto", (10, 10, 4), 3, (32,), dueling=False)
    obs = jnp.ones((2, 6, 10, 10, 4), jnp.uint8)
    params = network.init(jax.random.key(0), obs[0])
    q = network.apply(params, obs)
    assert q.shape == (2, 6, 3) and q.dtype == jnp.float32
