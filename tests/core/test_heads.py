"""The distributional (C51, QR-DQN) and noisy heads of `core/networks.py`."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxdqn.core.networks import (
    NOISE,
    HeadConfig,
    HeadOutputs,
    NoisyDense,
    atom_support,
    head_config,
    make_network,
    make_q_network,
)

OBS_DIM, ACTIONS = 3, 4
C51 = HeadConfig(distributional="c51", num_atoms=7, v_min=-2.0, v_max=1.0)
QR = HeadConfig(distributional="qr", num_quantiles=5)
OBS = jax.random.normal(jax.random.key(1), (6, OBS_DIM))


def _linear_head(head, dueling, noisy=False):
    """An MLP with no hidden layer (its head sees the observations themselves), params."""
    head = head._replace(noisy=noisy)
    network = make_q_network("mlp", (OBS_DIM,), ACTIONS, (), dueling, head)
    return network, network.init(jax.random.key(0), OBS)


def _dense(layer, x):
    return x @ layer["kernel"] + layer["bias"]


@pytest.mark.parametrize("head", [C51, QR], ids=["c51", "qr"])
@pytest.mark.parametrize("dueling", [False, True])
def test_distributional_head_shapes_and_its_q_values_are_the_mean(head, dueling):
    network, params = _linear_head(head, dueling)
    size = head.num_atoms if head.distributional == "c51" else head.num_quantiles
    layers = params["params"]["QHead_0"]
    outputs = network.outputs(params, OBS)
    assert isinstance(outputs, HeadOutputs)
    assert outputs.q_values.shape == (6, ACTIONS)
    assert outputs.distribution.shape == (6, ACTIONS, size)
    # the head's formula, by hand from its layers
    if dueling:
        assert set(layers) == {"value", "advantage"}
        value = _dense(layers["value"], OBS)[:, None, :]
        advantage = _dense(layers["advantage"], OBS).reshape(6, ACTIONS, size)
        expected = value + advantage - advantage.mean(axis=1, keepdims=True)
        # the mean over actions is the value stream
        np.testing.assert_allclose(outputs.distribution.mean(axis=1), value[:, 0], atol=1e-5)
    else:
        assert set(layers) == {"q"}
        expected = _dense(layers["q"], OBS).reshape(6, ACTIONS, size)
    np.testing.assert_allclose(outputs.distribution, expected, rtol=1e-5, atol=1e-6)
    if head.distributional == "c51":
        probs = jax.nn.softmax(outputs.distribution, axis=-1)
        mean = (probs * np.linspace(-2.0, 1.0, 7)).sum(-1)
        np.testing.assert_array_equal(network.support, np.linspace(-2.0, 1.0, 7, dtype=np.float32))
    else:
        mean = outputs.distribution.mean(-1)
        assert network.support is None
    np.testing.assert_allclose(outputs.q_values, mean, rtol=1e-5, atol=1e-6)
    # acting and evaluation see the mean: `module.apply` and `q_values`
    np.testing.assert_array_equal(network.q_values(params, OBS), outputs.q_values)
    np.testing.assert_array_equal(network.module.apply(params, OBS), outputs.q_values)


@pytest.mark.parametrize("head", [C51, QR], ids=["c51", "qr"])
def test_distributional_cnn_head_keeps_the_leading_batch_axes(head):
    network = make_q_network("minatar_cnn", (5, 5, 2), ACTIONS, (8,), True, head)
    obs = jax.random.bernoulli(jax.random.key(2), 0.5, (2, 3, 5, 5, 2))
    params = network.init(jax.random.key(0), obs[0])
    outputs = network.outputs(params, obs)
    size = outputs.distribution.shape[-1]
    assert outputs.q_values.shape == (2, 3, ACTIONS)
    assert outputs.distribution.shape == (2, 3, ACTIONS, size)
    flat = network.outputs(params, obs.reshape(6, 5, 5, 2))
    np.testing.assert_allclose(outputs.distribution.reshape(6, ACTIONS, size), flat.distribution)


def test_noisy_layer_init_and_mean_weights_without_a_noise_key():
    layer = NoisyDense(5, sigma0=0.5)
    x = jax.random.normal(jax.random.key(3), (4, 16))
    params = layer.init(jax.random.key(0), x)["params"]  # no noise key needed
    bound = 1 / math.sqrt(16)
    for name in ("kernel", "bias"):
        assert np.all(np.abs(params[name]) <= bound) and np.std(params[name]) > bound / 4
    np.testing.assert_allclose(params["sigma_kernel"], np.full((16, 5), 0.5 / 4))
    np.testing.assert_allclose(params["sigma_bias"], np.full((5,), 0.5 / 4))
    mean = layer.apply({"params": params}, x)
    np.testing.assert_allclose(mean, _dense(params, x), rtol=1e-6)


def test_noisy_layer_noise_is_factorised_and_scales_with_sigma():
    layer = NoisyDense(5)
    x = jax.random.normal(jax.random.key(3), (4, 16))
    params = layer.init(jax.random.key(0), x)
    key = jax.random.key(9)
    noisy = layer.apply(params, x, rngs={NOISE: key})
    mean = layer.apply(params, x)
    assert not np.allclose(noisy, mean)
    double = jax.tree.map(lambda p: p, params)
    double["params"]["sigma_kernel"] = 2 * params["params"]["sigma_kernel"]
    double["params"]["sigma_bias"] = 2 * params["params"]["sigma_bias"]
    np.testing.assert_allclose(
        layer.apply(double, x, rngs={NOISE: key}) - mean, 2 * (noisy - mean), rtol=1e-4, atol=1e-5
    )
    # one draw per call, shared by the batch: the noise of row b is a rank-one matrix's
    # product with x_b, so a row that is zero gets the bias noise only (the same for all)
    zeros = jnp.zeros((3, 16))
    out = layer.apply(params, zeros, rngs={NOISE: key}) - layer.apply(params, zeros)
    np.testing.assert_allclose(out, np.broadcast_to(out[0], out.shape))


@pytest.mark.parametrize("head", [HeadConfig(), C51, QR], ids=["plain", "c51", "qr"])
@pytest.mark.parametrize("dueling", [False, True])
def test_noisy_head_noise_comes_from_the_key(head, dueling):
    network, params = _linear_head(head, dueling, noisy=True)
    layers = params["params"]["QHead_0"]
    for layer in layers.values():
        assert set(layer) == {"kernel", "bias", "sigma_kernel", "sigma_bias"}
    mean = network.q_values(params, OBS)
    np.testing.assert_array_equal(mean, network.module.apply(params, OBS))
    keys = jax.random.split(jax.random.key(5), 2)
    first = network.outputs(params, OBS, keys[0])
    np.testing.assert_array_equal(first.q_values, network.q_values(params, OBS, keys[0]))
    again = network.outputs(params, OBS, keys[0])
    jax.tree.map(np.testing.assert_array_equal, first, again)  # same key, same noise
    other = network.q_values(params, OBS, keys[1])
    assert not np.allclose(first.q_values, other) and not np.allclose(first.q_values, mean)
    # with the noise scales at 0, a noise key changes nothing
    quiet = jax.tree_util.tree_map_with_path(
        lambda path, p: p * 0 if "sigma" in jax.tree_util.keystr(path) else p, params
    )
    np.testing.assert_allclose(network.q_values(quiet, OBS, keys[0]), mean, rtol=1e-6, atol=1e-6)


def test_noisy_head_only_replaces_the_output_layers():
    mlp = make_q_network("mlp", (OBS_DIM,), ACTIONS, (8,), False, HeadConfig(noisy=True))
    params = mlp.init(jax.random.key(0), OBS)["params"]
    assert set(params["Dense_0"]) == {"kernel", "bias"}
    assert set(params["QHead_0"]["q"]) == {"kernel", "bias", "sigma_kernel", "sigma_bias"}


def test_noisy_network_under_jit_and_vmap_over_seeds():
    network, _ = _linear_head(QR, True, noisy=True)
    seeds = jax.random.split(jax.random.key(0), 3)
    params = jax.vmap(network.init, in_axes=(0, None))(seeds, OBS)
    noise_keys = jax.random.split(jax.random.key(1), 3)
    q = jax.jit(jax.vmap(network.q_values, in_axes=(0, None, 0)))(params, OBS, noise_keys)
    one = jax.tree.map(lambda leaf: leaf[1], params)
    np.testing.assert_allclose(q[1], network.q_values(one, OBS, noise_keys[1]), rtol=1e-5)


def test_head_config_from_a_config_and_checks(tiny_config):
    config = tiny_config.replace(distributional="c51", num_atoms=11, v_min=-1.0, noisy=True)
    head = head_config(config)
    assert head == HeadConfig("c51", 11, -1.0, 10.0, 200, True, 0.5)
    np.testing.assert_allclose(atom_support(head), np.linspace(-1, 10, 11), rtol=1e-6)
    assert head_config(tiny_config) == HeadConfig()
    bad = [
        (HeadConfig(distributional="iqn"), "distributional='iqn'"),
        (HeadConfig(num_atoms=1), "num_atoms=1"),
        (HeadConfig(v_min=1.0, v_max=1.0), "v_min=1.0"),
        (HeadConfig(num_quantiles=0), "num_quantiles=0"),
    ]
    for head, message in bad:
        with pytest.raises(ValueError, match=message):
            make_network("mlp", (OBS_DIM,), ACTIONS, (8,), False, head)
