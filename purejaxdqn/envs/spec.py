"""Environments: gymnax ids, bridged simulators (`bridge`), or user-supplied gymnax-style
objects, checked and described.

`make_env` returns an `EnvSpec`: the environment, its params, and the static facts the
training loop needs (number of actions, observation shape and dtype, the dtype to store
observations in, the episode step limit). Shapes come from `jax.eval_shape(env.reset)`,
never from the declared observation space, which some gymnax environments get wrong.
`check_env_id` checks an id from the id alone; every environment that is not bridged is
checked against the gymnax 1.x contract by tracing its reset and step once (no compile), and
a replay storage dtype that would lose observations is refused.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import jax
import jax.numpy as jnp
import numpy as np

from purejaxdqn.core.config import OBS_STORAGE_DTYPES
from purejaxdqn.envs import bridge

# Environments whose observations are exactly 0/1 (stored losslessly as uint8).
_BINARY_OBS_SUFFIXES = ("-MinAtar",)
_BINARY_OBS_IDS = ("Catch-bsuite", "DeepSea-bsuite")
# gymnax's registry split by action space, written out so that an id is checked without
# importing gymnax (over a second); tests/envs/test_envs.py checks the lists against gymnax.
_DISCRETE_IDS = (
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "Seaquest-MinAtar",
    "SpaceInvaders-MinAtar",
    "Catch-bsuite",
    "DeepSea-bsuite",
    "MemoryChain-bsuite",
    "UmbrellaChain-bsuite",
    "DiscountingChain-bsuite",
    "SimpleBandit-bsuite",
    "FourRooms-misc",
    "MetaMaze-misc",
    "BernoulliBandit-misc",
    "GaussianBandit-misc",
    "Pong-misc",
    "FrozenLake-misc",
)
_BOX_ACTION_IDS = (
    "Pendulum-v1",
    "MountainCarContinuous-v0",
    "PointRobot-misc",
    "Reacher-misc",
    "Swimmer-misc",
)
# Registered ids that need files from the network at construction time.
_UNAVAILABLE_OFFLINE = ("MNISTBandit-bsuite",)


@dataclass(frozen=True)
class EnvSpec:
    """A discrete-action environment and the static facts the training loop needs."""

    env: Any
    params: Any
    env_id: str
    num_actions: int
    obs_shape: tuple[int, ...]
    obs_dtype: np.dtype
    storage_dtype: np.dtype
    max_episode_steps: int | None
    bridged: bool = False
    # Bridged envs whose step after an episode's end only resets (returns valid=False).
    has_reset_steps: bool = False
    frame_stack: int = 0

    def evaluation(self) -> EnvSpec:
        """The spec greedy evaluation runs on: for a bridged env, its own simulators."""
        if not self.bridged:
            return self
        return dataclasses.replace(self, env=self.env.evaluation())


def check_env_id(env_id: str) -> None:
    """Check from the id alone (nothing built, no gymnax or optional extra imported) that
    `env_id` is a discrete-action gymnax id or a bridged form (see `bridge.target_of`); a
    bridged task itself is looked up only when `make_env` builds it.

    Raises:
        ValueError: unknown id (with close matches), a gymnax id with continuous actions,
            or one that needs the network.
    """
    if env_id in _DISCRETE_IDS or bridge.is_bridged(env_id):
        return
    if env_id in _BOX_ACTION_IDS:
        raise ValueError(
            f"env_id={env_id!r} has action space Box: DQN needs a Discrete action space"
        )
    if env_id in _UNAVAILABLE_OFFLINE:
        raise ValueError(
            f"env_id={env_id!r} downloads a data set when constructed and is not supported"
        )
    close = difflib.get_close_matches(env_id, _DISCRETE_IDS + bridge.ENVPOOL_IDS, 3, 0.5)
    hint = f"; did you mean {close}?" if close else ""
    raise ValueError(
        f"env_id={env_id!r} is not a gymnax environment{hint} Known: {list(_DISCRETE_IDS)}; "
        f"bridged (optional extras): {list(bridge.ENVPOOL_IDS)}, Atari as <Game>NoFrameskip-v4 "
        f"or ALE/<Game>-v5, {bridge.ENVPOOL_PREFIX}<task>, {bridge.GYMNASIUM_PREFIX}<id>"
    )


def _int_range(dtype: np.dtype) -> tuple[int, int]:
    if dtype.kind == "b":
        return 0, 1
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _holds(storage: np.dtype, obs: np.dtype) -> bool:
    """Whether `storage` keeps every `obs` value: floats in a float type (float16 rounds),
    integers and bools in an integer type with their range or a float type that holds
    each of them exactly (float16 up to 2**11, float32 up to 2**24).
    """
    if obs.kind not in "biu":
        return obs.kind == storage.kind == "f"
    low, high = _int_range(obs)
    if storage.kind == "f":
        exact = 2 ** (np.finfo(storage).nmant + 1)
        return -exact <= low and high <= exact
    storage_low, storage_high = _int_range(storage)
    return storage_low <= low and high <= storage_high


def _storage_dtype(env_id: str, obs_dtype: np.dtype, requested: str) -> np.dtype:
    """The replay buffer's observation dtype: `requested`, or for 'auto' uint8 when the
    observations are known to be 0/1 and their own dtype otherwise.

    Raises:
        ValueError: `requested` would lose observations (names the dtypes that would not).
    """
    binary = env_id.endswith(_BINARY_OBS_SUFFIXES) or env_id in _BINARY_OBS_IDS
    obs_dtype = np.dtype(obs_dtype)
    if requested == "auto":
        return np.dtype(np.uint8) if binary else obs_dtype
    if binary or _holds(np.dtype(requested), obs_dtype):
        return np.dtype(requested)
    allowed = [n for n in OBS_STORAGE_DTYPES if n == "auto" or _holds(np.dtype(n), obs_dtype)]
    raise ValueError(
        f"obs_storage_dtype={requested!r} is not allowed for env_id={env_id!r}: its "
        f"observations are {obs_dtype} and not known to be 0/1, so {requested} would lose "
        f"them; use one of {allowed}"
    )


def _found(value: Any) -> str:
    """What a traced output is, for messages: 'float32[4]', 'a tuple of 5', 'a dict'."""
    if isinstance(value, jax.ShapeDtypeStruct):
        return f"{value.dtype}{list(value.shape)}"
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


def _trace(env_id: str, call: str, fn: Callable, *args: Any) -> Any:
    """`jax.eval_shape(fn, *args)`; an error raised while tracing names `call`."""
    try:
        return jax.eval_shape(fn, *args)
    except Exception as error:
        raise ValueError(
            f"env_id={env_id!r}: {call} failed while tracing: {type(error).__name__}: {error}"
        ) from error


def _check_contract(env_id: str, env: Any, params: Any) -> tuple[int, jax.ShapeDtypeStruct]:
    """Check `env` keeps the gymnax 1.x contract the training loop relies on, tracing
    reset and step once with `jax.eval_shape` (nothing is compiled).

    Returns:
        (number of actions, the observation's shape and dtype).

    Raises:
        ValueError: the first rule broken, with what was found.
    """
    from gymnax.environments import spaces

    def fail(message: str) -> NoReturn:
        raise ValueError(f"env_id={env_id!r}{message}")

    space = env.action_space(params)
    if not isinstance(space, spaces.Discrete):
        fail(
            f" has action space {type(space).__name__}{getattr(space, 'shape', '')}: DQN needs "
            "a Discrete action space"
        )
    if space.n < 1:
        fail(f" has action space Discrete(n={space.n}): DQN needs at least one action")
    key = jax.random.key(0)
    reset = _trace(env_id, "reset(key, params)", env.reset, key, params)
    if not (isinstance(reset, tuple | list) and len(reset) == 2):
        fail(f": reset(key, params) must return (obs, state); it returned {_found(reset)}")
    obs, state = reset
    if not isinstance(obs, jax.ShapeDtypeStruct):
        fail(f": reset's observation must be one array; it is {_found(obs)}")
    call = "step(key, state, action, params)"
    action = jax.ShapeDtypeStruct((), jnp.int32)
    out = _trace(env_id, call, env.step, key, state, action, params)
    six = "gymnax 1.x's six values (obs, state, reward, terminated, truncated, info)"
    if isinstance(out, tuple | list) and len(out) == 5:
        fail(
            f": {call} must return {six}; it returned five, the pre-1.0 gymnax API's (obs, "
            "state, reward, done, info): split done into terminated and truncated and put "
            "the pre-reset observation in info['final_observation'] (gymnax 1.x's "
            "Environment.step does both around step_env)"
        )
    if not (isinstance(out, tuple | list) and len(out) == 6):
        fail(f": {call} must return {six}; it returned {_found(out)}")
    step_obs, _, reward, terminated, truncated, info = out
    if _found(step_obs) != _found(obs):
        fail(f": step's observation must match reset's {_found(obs)}; it is {_found(step_obs)}")
    if not (isinstance(info, dict) and "final_observation" in info):
        found = f"a dict with keys {list(info)}" if isinstance(info, dict) else _found(info)
        fail(
            ": step's info must be a dict holding 'final_observation' (gymnax 1.x puts the "
            f"pre-reset observation there; truncated episodes bootstrap from it); it is {found}"
        )
    final = info["final_observation"]
    if getattr(final, "shape", None) != obs.shape:
        fail(
            f": step's info['final_observation'] must have the observation's shape "
            f"{list(obs.shape)}; it is {_found(final)}"
        )
    for name, value in (("reward", reward), ("terminated", terminated), ("truncated", truncated)):
        if getattr(value, "shape", None) != ():
            fail(f": step's {name} must be a scalar; it is {_found(value)}")
    return int(space.n), obs


def make_env(
    env_id: str,
    env: Any = None,
    env_params: Any = None,
    obs_storage_dtype: str = "auto",
    env_seed: int = 0,
) -> EnvSpec:
    """Build (or wrap a given) environment and describe it.

    Args:
        env_id: a gymnax id, or a label for `env` when an environment object is given.
        env: optional gymnax-style environment object (`reset(key, params)` and the 1.x
            `step(key, state, action, params)` returning six values); checked against that
            contract by tracing reset and step once (`_check_contract`), as gymnax envs are.
        env_params: its params; defaults to `env.default_params`.
        obs_storage_dtype: replay buffer observation dtype, or 'auto'; one that would lose
            observations is refused.
        env_seed: seed of a bridged simulator's pools (see `bridge`); unused by gymnax.

    Raises:
        ValueError: unknown id (see `check_env_id`), no params, a broken contract (names the
            rule), or a lossy `obs_storage_dtype`.
    """
    if env is None and bridge.is_bridged(env_id):
        pool = bridge.make_pool_env(env_id, env_seed)
        return EnvSpec(
            env=pool,
            params=None,
            env_id=env_id,
            num_actions=pool.num_actions,
            obs_shape=pool.obs_shape,
            obs_dtype=pool.obs_dtype,
            storage_dtype=_storage_dtype(env_id, pool.obs_dtype, obs_storage_dtype),
            max_episode_steps=pool.max_episode_steps,
            bridged=True,
            has_reset_steps=pool.has_reset_steps,
            frame_stack=pool.frame_stack,
        )
    if env is None:
        check_env_id(env_id)
        import gymnax

        # Made eagerly even when called while tracing (`experiment.lazy_program` builds on
        # first use): gymnax envs keep arrays made in their constructors (MinAtar's action
        # sets), which made under a trace would be tracers leaking into later traces.
        with jax.ensure_compile_time_eval():
            env, default_params = gymnax.make(env_id)
        env_params = default_params if env_params is None else env_params
    elif env_params is None:
        env_params = getattr(env, "default_params", None)
        if env_params is None:
            raise ValueError(
                f"env_id={env_id!r} has no env_params: pass env_params to make_env or give "
                "the env a default_params property"
            )
    num_actions, obs = _check_contract(env_id, env, env_params)
    max_steps = getattr(env_params, "max_steps_in_episode", None)
    return EnvSpec(
        env=env,
        params=env_params,
        env_id=env_id,
        num_actions=num_actions,
        obs_shape=tuple(obs.shape),
        obs_dtype=np.dtype(obs.dtype),
        storage_dtype=_storage_dtype(env_id, np.dtype(obs.dtype), obs_storage_dtype),
        max_episode_steps=None if max_steps is None else int(max_steps),
    )


def vector_reset(spec: EnvSpec, key: jax.Array, num_envs: int) -> tuple[jax.Array, Any]:
    """Reset `num_envs` copies, each with its own key: (obs, state)."""
    if spec.bridged:
        return spec.env.vector_reset(key, num_envs)
    keys = jax.random.split(key, num_envs)
    return jax.vmap(spec.env.reset, in_axes=(0, None))(keys, spec.params)


def vector_step(
    spec: EnvSpec, key: jax.Array, state: Any, actions: jax.Array
) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array | None]:
    """Step every copy once (auto-resetting finished episodes).

    Returns:
        (obs, state, reward, terminated, truncated, final_obs, valid): `obs` is the
        observation to act on next and `final_obs` the observation the action led to, the
        one to bootstrap from (they differ where gymnax reset an env within the step).
        `valid` is None when every transition is real; for envs with `has_reset_steps` it
        is False where the step only reset an env whose episode ended on the step before.
    """
    if spec.bridged:
        *transition, valid = spec.env.vector_step(state, actions)
        return (*transition, valid if spec.has_reset_steps else None)
    keys = jax.random.split(key, actions.shape[0])
    obs, state, reward, terminated, truncated, info = jax.vmap(
        spec.env.step, in_axes=(0, 0, 0, None)
    )(keys, state, actions, spec.params)
    return (
        obs,
        state,
        reward.astype(jnp.float32),
        jnp.asarray(terminated, bool),
        jnp.asarray(truncated, bool),
        info["final_observation"],
        None,
    )
