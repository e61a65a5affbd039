"""Environments: gymnax ids, bridged simulators (`bridge`), or user-supplied gymnax-style
objects, checked and described.

`make_env` returns an `EnvSpec`: the environment, its params, and the static facts the
training loop needs (number of actions, observation shape and dtype, the dtype to store
observations in, the episode step limit). Shapes come from `jax.eval_shape(env.reset)`,
never from the declared observation space, which some gymnax environments get wrong.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxdqn import bridge

# Environments whose observations are exactly 0/1 (stored losslessly as uint8).
_BINARY_OBS_SUFFIXES = ("-MinAtar",)
_BINARY_OBS_IDS = ("Catch-bsuite", "DeepSea-bsuite")
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


def registered_env_ids() -> list[str]:
    """Every gymnax environment id."""
    import gymnax

    return list(gymnax.registered_envs)


def _storage_dtype(env_id: str, obs_dtype: np.dtype, requested: str) -> np.dtype:
    if requested != "auto":
        return np.dtype(requested)
    if env_id.endswith(_BINARY_OBS_SUFFIXES) or env_id in _BINARY_OBS_IDS:
        return np.dtype(np.uint8)
    return np.dtype(obs_dtype)


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
            `step(key, state, action, params)` returning six values).
        env_params: its params; defaults to `env.default_params`.
        obs_storage_dtype: replay buffer observation dtype, or 'auto'.
        env_seed: seed of a bridged simulator's pools (see `bridge`); unused by gymnax.

    Raises:
        ValueError: unknown id (with close matches) or a non-discrete action space.
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
        import gymnax

        ids = registered_env_ids()
        if env_id not in ids:
            close = difflib.get_close_matches(env_id, ids, n=3, cutoff=0.5)
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(
                f"env_id={env_id!r} is not a gymnax environment{hint} Known: {ids}; bridged "
                f"(optional extras): {list(bridge.ENVPOOL_IDS)}, Atari as <Game>NoFrameskip-v4 "
                f"or ALE/<Game>-v5, {bridge.ENVPOOL_PREFIX}<task>, {bridge.GYMNASIUM_PREFIX}<id>"
            )
        if env_id in _UNAVAILABLE_OFFLINE:
            raise ValueError(
                f"env_id={env_id!r} downloads a data set when constructed and is not supported"
            )
        # Made eagerly even when called while tracing (`experiment.lazy_program` builds on
        # first use): gymnax envs keep arrays made in their constructors (MinAtar's action
        # sets), which made under a trace would be tracers leaking into later traces.
        with jax.ensure_compile_time_eval():
            env, default_params = gymnax.make(env_id)
        env_params = default_params if env_params is None else env_params
    elif env_params is None:
        env_params = env.default_params

    space = env.action_space(env_params)
    num_actions = getattr(space, "n", None)
    if num_actions is None or type(space).__name__ != "Discrete":
        raise ValueError(
            f"env_id={env_id!r} has action space {type(space).__name__}"
            f"{getattr(space, 'shape', '')}: DQN needs a Discrete action space"
        )
    obs, _ = jax.eval_shape(env.reset, jax.random.key(0), env_params)
    if not hasattr(obs, "shape"):
        raise ValueError(f"env_id={env_id!r} returns non-array observations; need one array")
    max_steps = getattr(env_params, "max_steps_in_episode", None)
    return EnvSpec(
        env=env,
        params=env_params,
        env_id=env_id,
        num_actions=int(num_actions),
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
