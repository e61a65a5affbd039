"""The per-backend choice of XLA:CPU workarounds, its target context and its override; the
two paths it chooses between agree (same keys, same parameters, same Q-values).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxdqn import backend
from purejaxdqn.backend import CPU_PATHS, STANDARD_PATHS, Workarounds, workarounds
from purejaxdqn.core import rng
from purejaxdqn.core.networks import make_network


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    monkeypatch.delenv(backend.ENV_VAR, raising=False)


def test_cpu_takes_every_workaround_and_accelerators_none():
    assert workarounds("cpu") == CPU_PATHS == Workarounds(True, True, True)
    for platform in ("gpu", "cuda", "rocm", "tpu", "TPU", "METAL"):
        assert workarounds(platform) == STANDARD_PATHS == Workarounds(False, False, False)
    expected = CPU_PATHS if jax.default_backend() == "cpu" else STANDARD_PATHS
    assert workarounds() == expected


def test_target_sets_the_platform_nests_and_restores():
    default = backend.target_platform()
    assert default == jax.default_backend()
    with backend.target("cuda"):
        assert backend.target_platform() == "cuda" and workarounds() == STANDARD_PATHS
        with backend.target("cpu"):
            assert workarounds() == CPU_PATHS
        with backend.target(override="cpu"):  # keeps the platform, changes the paths
            assert backend.target_platform() == "cuda" and workarounds() == CPU_PATHS
        assert workarounds() == STANDARD_PATHS
    with pytest.raises(RuntimeError), backend.target("tpu"):
        raise RuntimeError
    assert backend.target_platform() == default


def test_target_rejects_unknown_platforms_and_bad_overrides_at_once():
    with pytest.raises(ValueError, match=r"platform='cdua' is not allowed"), backend.target("cdua"):
        pass
    bad = r"item 'fast=1' must be name=0 or name=1"
    with pytest.raises(ValueError, match=bad), backend.target("cpu", override="fast=1"):
        pass


@pytest.mark.parametrize(
    "override, on_cpu, on_gpu",
    [
        ("", CPU_PATHS, STANDARD_PATHS),
        ("auto", CPU_PATHS, STANDARD_PATHS),
        ("cpu", CPU_PATHS, CPU_PATHS),
        ("Standard", STANDARD_PATHS, STANDARD_PATHS),
        ("none", STANDARD_PATHS, STANDARD_PATHS),
        ("patch_conv=0", Workarounds(True, False, True), STANDARD_PATHS),
        (
            " fast_threefry=1, cpu_run_caps=0",
            Workarounds(True, True, False),
            Workarounds(True, False, False),
        ),
    ],
)
def test_environment_override(monkeypatch, override, on_cpu, on_gpu):
    monkeypatch.setenv(backend.ENV_VAR, override)
    assert workarounds("cpu") == on_cpu
    assert workarounds("gpu") == on_gpu


@pytest.mark.parametrize("override", ["fast", "patch_conv=yes", "patch_conv", "cpu,patch_conv=1"])
def test_malformed_override_is_refused_with_its_item(monkeypatch, override):
    monkeypatch.setenv(backend.ENV_VAR, override)
    with pytest.raises(ValueError, match=rf"PUREJAXDQN_WORKAROUNDS={override!r} is not allowed"):
        workarounds("cpu")


def test_explicit_override_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(backend.ENV_VAR, "standard")
    assert workarounds("cpu", override="auto") == CPU_PATHS
    with backend.target("cpu", override="cpu"):
        assert workarounds() == CPU_PATHS
    assert workarounds("cpu") == STANDARD_PATHS


def test_loop_keys_follow_the_choice():
    key = jax.random.key(4)
    with backend.target("cpu"):
        fast = rng.maybe_to_fast(key)
    assert jax.random.key_impl(fast) == jax.random.key_impl(rng.to_fast(key))
    assert jax.random.key_impl(fast) != jax.random.key_impl(key)
    with backend.target("cuda"):
        assert rng.maybe_to_fast(key) is key
    with backend.target("cpu", override="fast_threefry=0"):
        assert rng.maybe_to_fast(key) is key


@pytest.mark.parametrize(
    "obs_shape, kind", [((10, 10, 4), "minatar_cnn"), ((36, 40, 4), "nature_cnn")]
)
def test_both_convolution_paths_share_parameters_and_q_values(obs_shape, kind):
    """`PatchConv` (CPU) and `nn.Conv` (accelerators): the same parameter tree (names,
    shapes, dtypes; the initialisers are the same, see test_networks), so checkpoints load
    on either path, and the same Q-values for the same parameters.
    """
    network = make_network(kind, obs_shape, 5, (16,), dueling=False)
    obs = jax.random.randint(jax.random.key(2), (2, *obs_shape), 0, 256).astype(jnp.uint8)
    with backend.target("cpu"):
        params = jax.jit(lambda key: network.init(key, obs))(jax.random.key(0))
    with backend.target("cuda"):
        conv_shapes = jax.eval_shape(lambda key: network.init(key, obs), jax.random.key(0))
    assert jax.tree.structure(conv_shapes) == jax.tree.structure(params)
    same = jax.tree.map(lambda a, b: (a.shape, a.dtype) == (b.shape, b.dtype), params, conv_shapes)
    assert all(jax.tree.leaves(same))
    results = {}
    for platform in ("cpu", "cuda"):
        # the layer is chosen when traced, so fresh functions; full float32 products, as
        # a GPU would otherwise multiply in TF32 and differ by more than the tolerance
        with backend.target(platform), jax.default_matmul_precision("highest"):
            apply = jax.jit(lambda p, o: network.apply(p, o))
            results[platform] = apply(params, obs)
            assert ("convolution" in apply.lower(params, obs).as_text()) == (platform == "cuda")
    np.testing.assert_allclose(results["cpu"], results["cuda"], rtol=1e-5, atol=1e-5)
    assert not np.allclose(results["cuda"][0], results["cuda"][1])  # the observations matter
