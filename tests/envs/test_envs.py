import re
import sys
import time

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces
from jax import monitoring

from purejaxdqn.core.config import OBS_STORAGE_DTYPES
from purejaxdqn.envs import spec as envs
from purejaxdqn.envs.probes import ActionMatchProbe, ConstantRewardProbe, TruncationProbe
from purejaxdqn.envs.spec import _storage_dtype, check_env_id, make_env, vector_reset, vector_step


def test_final_observation_is_the_true_successor_at_episode_ends():
    spec = make_env("CartPole-v1")
    obs, state = vector_reset(spec, jax.random.key(0), 8)

    def step(carry, key):
        obs, state = carry
        action_key, env_key = jax.random.split(key)
        actions = jax.random.randint(action_key, (8,), 0, 2)
        next_obs, state, reward, terminated, truncated, final, valid = vector_step(
            spec, env_key, state, actions
        )
        assert valid is None  # gymnax: every transition is real
        return (next_obs, state), (next_obs, terminated | truncated, final, terminated, truncated)

    _, (next_obs, done, final, terminated, truncated) = jax.lax.scan(
        step, (obs, state), jax.random.split(jax.random.key(1), 300)
    )
    done, next_obs, final = np.asarray(done), np.asarray(next_obs), np.asarray(final)
    assert done.sum() > 10
    np.testing.assert_array_equal(final[~done], next_obs[~done])  # ongoing: same observation
    assert not np.allclose(final[done], next_obs[done])  # ended: next_obs is a reset state
    # CartPole ends by termination (pole fell), final obs outside the allowed angle/position
    fell = np.asarray(terminated)
    out_of_bounds = (np.abs(final[..., 2]) > 0.2094) | (np.abs(final[..., 0]) > 2.4)
    np.testing.assert_array_equal(out_of_bounds[fell], True)


def test_minatar_observations_are_binary_so_uint8_storage_is_lossless():
    spec = make_env("Breakout-MinAtar")
    assert spec.storage_dtype == np.uint8 and spec.obs_dtype == np.float32
    obs, state = vector_reset(spec, jax.random.key(0), 4)

    def step(carry, key):
        obs, state = carry
        actions = jax.random.randint(key, (4,), 0, spec.num_actions)
        obs, state, *_ = vector_step(spec, key, state, actions)
        return (obs, state), obs

    _, seen = jax.lax.scan(step, (obs, state), jax.random.split(jax.random.key(1), 200))
    seen = np.asarray(seen)
    np.testing.assert_array_equal(seen.astype(np.uint8).astype(np.float32), seen)


def test_spec_shapes_come_from_reset_not_the_space():
    spec = make_env("Catch-bsuite")  # space says int32, observations are float32
    assert spec.obs_dtype == jnp.float32 and spec.obs_shape == (10, 5)
    assert spec.num_actions == 3 and spec.max_episode_steps is not None


DISCRETE_IDS = list(envs._DISCRETE_IDS)  # checked against gymnax below


def test_every_discrete_gymnax_env_traces_through_train():
    from purejaxdqn import DQNConfig, make_train

    for env_id in DISCRETE_IDS:
        config = DQNConfig(
            env_id=env_id,
            num_envs=2,
            total_timesteps=40,
            buffer_size=20,
            learning_starts=10,
            batch_size=4,
            num_log_points=2,
            eval_every=1,
            eval_episodes=2,
            eval_max_steps=5,
            hidden_sizes=(4,),
            target_update_interval=4,
        )
        out = jax.eval_shape(make_train(config), jax.random.key(0), config.hparams())
        assert out.metrics["episode_return"].shape == (2,), env_id
        assert out.evals["return"].shape == (2,), env_id


class FakeEnv:
    """gymnax CartPole behind the plain env interface, with its action space replaced by
    `space` and its reset/step outputs passed through `fix_reset`/`fix_step`, so that a
    test breaks one rule of the contract at a time.
    """

    def __init__(self, space=None, fix_reset=None, fix_step=None):
        self.inner, self.default_params = gymnax.make("CartPole-v1")
        self.space = space
        self.fix_reset = fix_reset or (lambda out: out)
        self.fix_step = fix_step or (lambda out: out)

    def action_space(self, params):
        return self.space or self.inner.action_space(params)

    def reset(self, key, params):
        return self.fix_reset(self.inner.reset(key, params))

    def step(self, key, state, action, params):
        return self.fix_step(self.inner.step(key, state, action, params))


def _with_info(info):
    return lambda out: (*out[:5], info(out))


def _fails(error):
    def fix(out):
        raise error

    return fix


BROKEN = {
    "no actions": (
        dict(space=spaces.Discrete(0)),
        " has action space Discrete(n=0): DQN needs at least one action",
    ),
    "continuous actions": (
        dict(space=spaces.Box(-1.0, 1.0, (2,))),
        " has action space Box(2,): DQN needs a Discrete action space",
    ),
    "reset returns obs only": (
        dict(fix_reset=lambda out: out[0]),
        ": reset(key, params) must return (obs, state); it returned float32[4]",
    ),
    "dict observation": (
        dict(fix_reset=lambda out: ({"x": out[0]}, out[1])),
        ": reset's observation must be one array; it is a dict",
    ),
    "pre-1.0 step": (
        dict(fix_step=lambda out: (*out[:2], out[2], out[3] | out[4], out[5])),
        ": step(key, state, action, params) must return gymnax 1.x's six values (obs, state, "
        "reward, terminated, truncated, info); it returned five, the pre-1.0 gymnax API's",
    ),
    "step returns seven": (
        dict(fix_step=lambda out: (*out, None)),
        ": step(key, state, action, params) must return gymnax 1.x's six values (obs, state, "
        "reward, terminated, truncated, info); it returned a tuple of 7",
    ),
    "step obs shape": (
        dict(fix_step=lambda out: (out[0][:3], *out[1:])),
        ": step's observation must match reset's float32[4]; it is float32[3]",
    ),
    "step obs dtype": (
        dict(fix_step=lambda out: (out[0].astype(jnp.float16), *out[1:])),
        ": step's observation must match reset's float32[4]; it is float16[4]",
    ),
    "info without final observation": (
        dict(fix_step=_with_info(lambda out: {"terminated": out[3]})),
        ": step's info must be a dict holding 'final_observation' (gymnax 1.x puts the "
        "pre-reset observation there; truncated episodes bootstrap from it); it is a dict "
        "with keys ['terminated']",
    ),
    "info not a dict": (
        dict(fix_step=_with_info(lambda out: (out[0],))),
        ": step's info must be a dict holding 'final_observation' (gymnax 1.x puts the "
        "pre-reset observation there; truncated episodes bootstrap from it); it is a tuple of 1",
    ),
    "final observation shape": (
        dict(fix_step=_with_info(lambda out: {"final_observation": out[0][None]})),
        ": step's info['final_observation'] must have the observation's shape [4]; it is "
        "float32[1, 4]",
    ),
    "reward not scalar": (
        dict(fix_step=lambda out: (*out[:2], out[2][None], *out[3:])),
        ": step's reward must be a scalar; it is float32[1]",
    ),
    "terminated not scalar": (
        dict(fix_step=lambda out: (*out[:3], jnp.stack([out[3], out[3]]), *out[4:])),
        ": step's terminated must be a scalar; it is bool[2]",
    ),
    "truncated not scalar": (
        dict(fix_step=lambda out: (*out[:4], out[4][None], out[5])),
        ": step's truncated must be a scalar; it is bool[1]",
    ),
    "reset raises": (
        dict(fix_reset=_fails(RuntimeError("no simulator"))),
        ": reset(key, params) failed while tracing: RuntimeError: no simulator",
    ),
    "step raises": (
        dict(fix_step=_fails(KeyError("velocity"))),
        ": step(key, state, action, params) failed while tracing: KeyError: 'velocity'",
    ),
    "step branches on a tracer": (
        dict(fix_step=lambda out: out if out[2] > 0 else out),
        ": step(key, state, action, params) failed while tracing: TracerBoolConversionError",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_custom_env_breaking_the_contract_is_named_before_compiling(case):
    changes, message = BROKEN[case]
    env = FakeEnv(**changes)
    compiles = []

    def listen(event: str, duration: float, **kwargs) -> None:
        if "backend_compile" in event:
            compiles.append(event)

    monitoring.register_event_duration_secs_listener(listen)
    try:
        with pytest.raises(ValueError, match="^" + re.escape("env_id='fake'" + message)):
            make_env("fake", env=env)
    finally:
        monitoring.unregister_event_duration_listener(listen)
    assert compiles == []


def test_a_custom_env_without_params_is_told_to_pass_them():
    env = FakeEnv()
    del env.default_params
    message = "env_id='fake' has no env_params: pass env_params to make_env or give the env"
    with pytest.raises(ValueError, match=re.escape(message)):
        make_env("fake", env=env)
    assert make_env("fake", env=env, env_params=env.inner.default_params).num_actions == 2


@pytest.mark.parametrize("env_id", DISCRETE_IDS)
def test_every_discrete_gymnax_env_keeps_the_contract(env_id):
    assert make_env(env_id).num_actions >= 2


def test_probes_and_the_unbroken_fake_keep_the_contract():
    for probe in (ConstantRewardProbe, TruncationProbe, ActionMatchProbe):
        assert make_env(probe.__name__, env=probe()).obs_shape == (1,)
    assert make_env("fake", env=FakeEnv()).obs_shape == (4,)


def test_lossy_observation_storage_is_refused():
    message = (
        "obs_storage_dtype='uint8' is not allowed for env_id='CartPole-v1': its observations "
        "are float32 and not known to be 0/1, so uint8 would lose them; use one of ['auto', "
        "'float32', 'float16']"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        make_env("CartPole-v1", obs_storage_dtype="uint8")
    for lossy in ("bool", "int32"):
        with pytest.raises(ValueError, match=f"so {lossy} would lose them"):
            make_env("CartPole-v1", obs_storage_dtype=lossy)
    assert make_env("CartPole-v1", obs_storage_dtype="float16").storage_dtype == np.float16
    with pytest.raises(ValueError, match="its observations are int32 .* use one of \\['auto', "):
        make_env("FourRooms-misc", obs_storage_dtype="float16")
    for dtype in OBS_STORAGE_DTYPES[1:]:  # binary observations fit anything
        assert make_env("Breakout-MinAtar", obs_storage_dtype=dtype).storage_dtype == dtype


@pytest.mark.parametrize(
    "obs_dtype, allowed",
    [
        ("float32", ["float32", "float16"]),
        ("float16", ["float32", "float16"]),
        ("uint8", ["float32", "float16", "uint8", "int32"]),  # Atari pixels from a bridge
        ("int16", ["float32", "int32"]),
        ("uint16", ["float32", "int32"]),
        ("int32", ["int32"]),
        ("bool", ["float32", "float16", "uint8", "bool", "int32"]),
    ],
)
def test_storage_dtypes_that_hold_every_observation(obs_dtype, allowed):
    for requested in OBS_STORAGE_DTYPES[1:]:
        if requested in allowed:
            assert _storage_dtype("Env-v0", np.dtype(obs_dtype), requested) == requested
        else:
            with pytest.raises(ValueError, match=rf"use one of \['auto', '{allowed[0]}'"):
                _storage_dtype("Env-v0", np.dtype(obs_dtype), requested)
    assert _storage_dtype("Env-v0", np.dtype(obs_dtype), "auto") == obs_dtype


def test_unknown_ids_are_refused_from_the_id_alone_and_fast(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnax", None)  # importing it would fail
    monkeypatch.setitem(sys.modules, "envpool", None)
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    start = time.perf_counter()
    with pytest.raises(ValueError) as caught:
        check_env_id("CartPol-v1")
    assert time.perf_counter() - start < 0.05
    message = str(caught.value)
    assert message.startswith("env_id='CartPol-v1' is not a gymnax environment; did you mean")
    known = message[message.index("Known: ") :]
    assert "'CartPole-v1'" in known and "'Breakout-MinAtar'" in known
    for hidden in ("Pendulum-v1", "MountainCarContinuous-v0", "Reacher-misc", "MNISTBandit"):
        assert hidden not in message
    for env_id in [*DISCRETE_IDS, "PongNoFrameskip-v4", "ALE/Pong-v5", "LunarLander-v3"]:
        check_env_id(env_id)
    check_env_id("envpool:Breakout-v5")
    check_env_id("gymnasium:CartPole-v1")
    with pytest.raises(ValueError, match="did you mean \\['LunarLander-v3'"):
        check_env_id("LunarLandr-v3")
    with pytest.raises(ValueError, match="env_id='Pendulum-v1' has action space Box.*Discrete"):
        check_env_id("Pendulum-v1")
    with pytest.raises(ValueError, match="downloads a data set"):
        check_env_id("MNISTBandit-bsuite")


def test_make_env_reports_an_unknown_id_as_check_env_id_does():
    with pytest.raises(ValueError) as from_check:
        check_env_id("Breakout-MinAtr")
    with pytest.raises(ValueError) as from_make:
        make_env("Breakout-MinAtr")
    assert str(from_make.value) == str(from_check.value)
    assert "did you mean ['Breakout-MinAtar'" in str(from_check.value)


def test_the_written_out_gymnax_ids_match_gymnax():
    assert sorted(gymnax.registered_envs) == sorted(
        envs._DISCRETE_IDS + envs._BOX_ACTION_IDS + envs._UNAVAILABLE_OFFLINE
    )
    for env_id in envs._DISCRETE_IDS + envs._BOX_ACTION_IDS:
        env, params = gymnax.make(env_id)
        space = type(env.action_space(params)).__name__
        assert space == ("Discrete" if env_id in envs._DISCRETE_IDS else "Box"), env_id
