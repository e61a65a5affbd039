import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import monitoring

from purejaxdqn import DQNConfig, backend, make_train
from purejaxdqn.core.networks import (
    KERNEL_INITS,
    HeadConfig,
    HeadOutputs,
    LayerNorm,
    MinAtarQNetwork,
    MLPQNetwork,
    NatureQNetwork,
    PatchConv,
    QNetwork,
    as_q_network,
    make_network,
    make_q_network,
)
from purejaxdqn.envs.spec import make_env


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


def _kernel_variances(params: dict) -> dict[str, float]:
    """Each layer's kernel variance times its fan-in (1 for LeCun-normal, 2 for He)."""
    return {
        name: float(jnp.var(layer["kernel"]) * np.prod(layer["kernel"].shape[:-1]))
        for name, layer in params.items()
        if "kernel" in layer
    }


@pytest.mark.parametrize(
    ("kind", "obs_shape", "hidden"),
    [
        ("mlp", (40,), ["Dense_0", "Dense_1"]),
        ("minatar_cnn", (10, 10, 4), ["Conv_0", "Dense_0"]),
        ("nature_cnn", (84, 84, 4), ["Conv_0", "Conv_1", "Conv_2", "Dense_0"]),
    ],
)
@pytest.mark.parametrize("platform", ["cpu", "cuda"])  # PatchConv / nn.Conv
def test_kernel_init_draws_the_hidden_layers_and_leaves_the_head(kind, obs_shape, hidden, platform):
    """'he_normal' doubles the hidden kernels' variance (2 / fan_in against LeCun's
    1 / fan_in) on both convolution paths; the head keeps flax's default; the default is
    LeCun-normal bit for bit; an unknown name is refused, naming the choices.
    """
    obs = jnp.zeros((1, *obs_shape), jnp.float32)
    widths = (256, 256) if kind == "mlp" else (256,)

    def init(**kwargs):
        network = make_network(kind, obs_shape, 3, widths, False, norm="layer_norm", **kwargs)
        with backend.target(platform):
            return network.init(jax.random.key(0), obs)["params"]

    default, lecun, he = init(), init(kernel_init="lecun_normal"), init(kernel_init="he_normal")
    jax.tree.map(np.testing.assert_array_equal, default, lecun)
    lecun_vars, he_vars = _kernel_variances(lecun), _kernel_variances(he)
    assert sorted(lecun_vars) == sorted(hidden)  # the head's kernels sit in QHead_0
    for name in hidden:
        assert lecun_vars[name] == pytest.approx(1.0, rel=0.15), name
        assert he_vars[name] == pytest.approx(2.0, rel=0.15), name
    np.testing.assert_array_equal(he["QHead_0"]["q"]["kernel"], lecun["QHead_0"]["q"]["kernel"])
    with pytest.raises(ValueError, match=re.escape(f"must be one of {list(KERNEL_INITS)}")):
        make_network(kind, obs_shape, 3, widths, False, kernel_init="he_uniform")


def test_minatar_network_shapes_and_uint8_input():
    network = make_network("auto", (10, 10, 4), 3, (32,), dueling=False)
    obs = jnp.ones((2, 6, 10, 10, 4), jnp.uint8)
    params = network.init(jax.random.key(0), obs[0])
    q = network.apply(params, obs)
    assert q.shape == (2, 6, 3) and q.dtype == jnp.float32


@pytest.mark.parametrize("kernel, stride, side", [(8, 4, 84), (8, 4, 87), (4, 2, 20), (4, 2, 9)])
def test_strided_patch_conv_equals_flax_valid_conv(kernel, stride, side):
    x = jax.random.uniform(jax.random.key(1), (3, side, side + 5, 4))
    patch = PatchConv(32, (kernel, kernel), (stride, stride))
    params = jax.jit(patch.init)(jax.random.key(0), x)
    reference = nn.Conv(32, (kernel, kernel), (stride, stride), padding="VALID")
    same_init = jax.jit(reference.init)(jax.random.key(0), x)
    jax.tree.map(np.testing.assert_array_equal, params, same_init)
    out = jax.jit(patch.apply)(params, x)
    expected = jax.jit(reference.apply)(params, x)
    height, width = ((n - kernel) // stride + 1 for n in x.shape[1:3])
    assert out.shape == expected.shape == (3, height, width, 32)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_patch_conv_rejects_kernel_not_a_multiple_of_the_stride():
    with pytest.raises(ValueError, match=r"kernel_size=\(5, 5\) with strides=\(2, 2\)"):
        PatchConv(8, (5, 5), (2, 2)).init(jax.random.key(0), jnp.zeros((1, 20, 20, 1)))


def _atari_batch(shape=(2, 84, 84, 4)):
    return jax.random.randint(jax.random.key(2), shape, 0, 256).astype(jnp.uint8)


@pytest.fixture(scope="module")
def nature():
    """The Nature CNN for 84x84x4 frames and 6 actions, and its jitted apply (shared compiles)."""
    network = make_network("auto", (84, 84, 4), 6, (120, 84), dueling=False)
    return network, jax.jit(network.apply)


def test_nature_network_scales_integer_pixels_inside(nature):
    network, apply = nature
    assert isinstance(network, NatureQNetwork)
    obs = _atari_batch()
    params = jax.jit(network.init)(jax.random.key(0), obs)
    q = apply(params, obs)
    assert q.shape == (2, 6) and q.dtype == jnp.float32
    scaled = obs.astype(jnp.float32) / 255.0  # float input is used as it is
    np.testing.assert_allclose(apply(params, scaled), q, rtol=1e-6, atol=1e-7)
    assert not np.allclose(apply(params, obs.astype(jnp.float32)), q)
    # extra leading batch axes, as the training loop's (num_envs, ...) observations
    many = apply(params, jnp.stack([obs, obs[::-1]]))
    assert many.shape == (2, 2, 6)
    np.testing.assert_allclose(many[0], q, rtol=1e-6)


def test_nature_network_has_the_nature_dqn_parameter_count():
    frames, actions = 4, 6
    convs = [(frames, 32, 8), (32, 64, 4), (64, 64, 3)]  # (in channels, filters, side)
    expected = sum(side * side * c_in * c_out + c_out for c_in, c_out, side in convs)
    expected += 7 * 7 * 64 * 512 + 512  # 84 -> 20 -> 9 -> 7: 3136 features into dense 512
    expected += 512 * actions + actions  # Q head
    assert expected == 1_687_206
    network = make_network("nature_cnn", (84, 84, frames), actions, (120, 84), dueling=False)
    params = jax.eval_shape(network.init, jax.random.key(0), _atari_batch((1, 84, 84, frames)))
    assert sum(leaf.size for leaf in jax.tree.leaves(params)) == expected
    dense = params["params"]["Dense_0"]["kernel"]
    assert dense.shape == (3136, 512)


def test_nature_network_dueling_head():
    network = make_network("nature_cnn", (84, 84, 4), 6, (120, 84), dueling=True)
    obs = _atari_batch()
    params = jax.eval_shape(network.init, jax.random.key(0), obs)
    assert set(params["params"]["QHead_0"]) == {"value", "advantage"}
    assert jax.eval_shape(network.apply, params, obs).shape == (2, 6)


def test_nature_network_under_vmap_over_seeds(nature):
    network, apply = nature
    obs = _atari_batch()
    keys = jax.random.split(jax.random.key(0), 3)
    params = jax.jit(jax.vmap(network.init, in_axes=(0, None)))(keys, obs)
    assert params["params"]["Conv_0"]["kernel"].shape == (3, 8, 8, 4, 32)
    q = jax.jit(jax.vmap(network.apply, in_axes=(0, None)))(params, obs)
    assert q.shape == (3, 2, 6)
    for seed in range(3):
        one = jax.tree.map(lambda leaf, s=seed: leaf[s], params)
        np.testing.assert_allclose(q[seed], apply(one, obs), rtol=1e-5, atol=1e-6)
    assert not np.allclose(q[0], q[1])  # every seed has its own parameters


@pytest.mark.parametrize(
    "obs_shape, expected",
    [
        ((84, 84, 4), NatureQNetwork),
        ((36, 36, 1), NatureQNetwork),
        ((35, 84, 3), MinAtarQNetwork),
        ((30, 40, 3), MinAtarQNetwork),  # gymnax Pong-misc
        ((10, 10, 4), MinAtarQNetwork),
        ((4,), MLPQNetwork),
        ((84, 84), MLPQNetwork),
    ],
)
def test_auto_network_choice(obs_shape, expected):
    assert type(make_network("auto", obs_shape, 3, (32,), dueling=False)) is expected


@pytest.mark.parametrize("obs_shape", [(10, 10, 4), (4,), (84, 84), (84, 35, 4)])
def test_nature_network_rejects_observations_it_cannot_take(obs_shape):
    pattern = rf"network='nature_cnn' .*{re.escape(str(obs_shape))}.*H, W >= 36"
    with pytest.raises(ValueError, match=pattern):
        make_network("nature_cnn", obs_shape, 3, (32,), dueling=False)


@pytest.mark.parametrize(
    "env_id, shape", [("CartPole-v1", "(4,)"), ("Breakout-MinAtar", "(10, 10, 4)")]
)
def test_nature_network_on_small_observations_fails_before_compiling(env_id, shape):
    config = DQNConfig(env_id=env_id, network="nature_cnn")
    make_env(env_id)  # any eager op the env needs has compiled before we listen
    compiles = []

    def listen(event: str, duration: float, **kwargs) -> None:
        if "backend_compile" in event:
            compiles.append(event)

    monitoring.register_event_duration_secs_listener(listen)
    try:
        with pytest.raises(ValueError, match=rf"network='nature_cnn' .*{re.escape(shape)}"):
            make_train(config)
    finally:
        monitoring.unregister_event_duration_listener(listen)
    assert compiles == []


@pytest.mark.parametrize(
    "obs_shape, dueling", [((4,), False), ((10, 10, 4), True), ((36, 36, 2), False)]
)
def test_q_network_interface_gives_the_modules_q_values_and_parameters(obs_shape, dueling):
    module = make_network("auto", obs_shape, 3, (16,), dueling)
    network = make_q_network("auto", obs_shape, 3, (16,), dueling)
    assert isinstance(network, QNetwork) and network.module == module
    assert as_q_network(network) is network
    obs = jax.random.uniform(jax.random.key(1), (5, *obs_shape))
    params = network.init(jax.random.key(0), obs)
    same = module.init(jax.random.key(0), obs)
    assert jax.tree.structure(params) == jax.tree.structure(same)
    jax.tree.map(np.testing.assert_array_equal, params, same)  # the same parameter tree
    q = network.q_values(params, obs)
    np.testing.assert_array_equal(q, module.apply(params, obs))
    outputs = network.outputs(params, obs)
    assert isinstance(outputs, HeadOutputs) and outputs.distribution is None
    np.testing.assert_array_equal(outputs.q_values, q)


class ThreeAtoms(nn.Module):
    """A distributional head in miniature: 3 atoms per action, Q = their mean."""

    @nn.compact
    def __call__(self, obs):
        return self.outputs(obs).q_values

    @nn.compact
    def outputs(self, obs):
        atoms = nn.Dense(2 * 3)(obs).reshape(*obs.shape[:-1], 2, 3)
        return HeadOutputs(q_values=atoms.mean(axis=-1), distribution=atoms)


def test_a_head_with_outputs_exposes_its_distribution_and_acts_on_q_values():
    network = as_q_network(ThreeAtoms())
    obs = jnp.ones((4, 5))
    params = network.init(jax.random.key(0), obs)
    outputs = network.outputs(params, obs)
    assert outputs.distribution.shape == (4, 2, 3)
    np.testing.assert_array_equal(outputs.q_values, outputs.distribution.mean(axis=-1))
    np.testing.assert_array_equal(network.q_values(params, obs), outputs.q_values)


class LegacyMLP(nn.Module):
    """The MLP Q-network and its plain / dueling head as they were before distributional
    and noisy heads (the reference of the default head's parameters and outputs).
    """

    num_actions: int
    hidden_sizes: tuple = (16,)
    dueling: bool = False

    @nn.compact
    def __call__(self, obs):
        x = obs.astype(jnp.float32).reshape(*obs.shape[:-1], -1)
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        return LegacyQHead(self.num_actions, self.dueling, name="QHead_0")(x)


class LegacyQHead(nn.Module):
    num_actions: int
    dueling: bool = False

    @nn.compact
    def __call__(self, features):
        if not self.dueling:
            return nn.Dense(self.num_actions, name="q")(features)
        value = nn.Dense(1, name="value")(features)
        advantage = nn.Dense(self.num_actions, name="advantage")(features)
        return value + advantage - advantage.mean(axis=-1, keepdims=True)


@pytest.mark.parametrize("dueling", [False, True])
def test_the_default_head_is_bit_for_bit_the_plain_head(dueling):
    network = make_q_network("mlp", (5,), 3, (16, 8), dueling)
    assert network.module.head == HeadConfig() and network.support is None
    legacy = LegacyMLP(3, (16, 8), dueling)
    obs = jax.random.normal(jax.random.key(1), (7, 5))
    params = jax.jit(network.init)(jax.random.key(0), obs)
    same = jax.jit(legacy.init)(jax.random.key(0), obs)
    assert jax.tree.structure(params) == jax.tree.structure(same)
    jax.tree.map(np.testing.assert_array_equal, params, same)
    q = jax.jit(network.q_values)(params, obs)
    np.testing.assert_array_equal(q, jax.jit(legacy.apply)(params, obs))
    np.testing.assert_array_equal(q, jax.jit(network.module.apply)(params, obs))
    eager = network.q_values(params, obs)
    np.testing.assert_array_equal(eager, legacy.apply(params, obs))
    # a noise key changes nothing for a head without noise
    np.testing.assert_array_equal(network.q_values(params, obs, jax.random.key(3)), eager)


@pytest.mark.parametrize("shape", [(5, 256), (3, 8, 8, 16), (2, 4, 7)])
def test_layer_norm_equals_flax_layer_norm_and_its_gradients(shape):
    keys = jax.random.split(jax.random.key(0), 4)
    x = 3.0 * jax.random.normal(keys[0], shape) + jax.random.normal(keys[1], shape[-1:])
    ours, reference = LayerNorm(), nn.LayerNorm()
    params = ours.init(keys[2], x)
    assert jax.tree.map(np.shape, params) == jax.tree.map(np.shape, reference.init(keys[2], x))
    params = jax.tree.map(lambda p: p + jax.random.normal(keys[3], p.shape), params)
    weights = jax.random.normal(keys[1], shape)

    def objective(module):  # a loss whose gradient differs per element
        return lambda p, x: jnp.sum(weights * jnp.tanh(module.apply(p, x)))

    np.testing.assert_allclose(ours.apply(params, x), reference.apply(params, x), atol=2e-6)
    for ours_grad, reference_grad in zip(
        jax.grad(objective(ours), argnums=(0, 1))(params, x),
        jax.grad(objective(reference), argnums=(0, 1))(params, x),
        strict=True,
    ):
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5),
            ours_grad,
            reference_grad,
        )


def test_layer_norm_under_vmap_equals_each_run():
    xs = jax.random.normal(jax.random.key(1), (3, 4, 32))
    params = jax.vmap(LayerNorm().init)(jax.random.split(jax.random.key(2), 3), xs)
    params = jax.tree.map(lambda p: p * jnp.arange(1.0, 4.0).reshape(3, 1), params)

    def grads(p, x):
        return jax.grad(lambda p, x: jnp.sum(jnp.sin(LayerNorm().apply(p, x))), (0, 1))(p, x)

    batched = jax.vmap(grads)(params, xs)
    for i in range(3):
        single = grads(jax.tree.map(lambda p, i=i: p[i], params), xs[i])
        jax.tree.map(
            lambda b, s, i=i: np.testing.assert_allclose(b[i], s, rtol=1e-6, atol=1e-6),
            batched,
            single,
        )
