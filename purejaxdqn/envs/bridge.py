"""Simulator bridges: environments outside JAX, stepped from inside the jitted training scan.

Two backends behind one interface (`PoolEnv`):

- **envpool** (`LunarLander-v3`, Atari ids such as `PongNoFrameskip-v4` or `ALE/Pong-v5`,
  any `envpool:<task>`): envpool's XLA send/recv custom calls, no Python per step.
- **gymnasium** (`gymnasium:<id>`): any discrete-action gymnasium environment, stepped in
  Python through `jax.pure_callback`; slower, but general.

**One pool for every run.** A simulator cannot be vmapped, so the pool's reset and step
carry a `jax.custom_batching.custom_vmap` rule: under `vmap` over runs (seeds, settings,
nested vmaps) every run's environments are flattened into one call on a pool of
`runs * num_envs` environments, built when the program is traced (one pool per size and
role, kept by the `PoolEnv`, so a program built anew starts from fresh simulators). Run
`k` of a batch owns pool slots `k * num_envs ... (k + 1) * num_envs - 1`. A program that
uses a pool must run on one device, all runs in one call (`run.execute` sees to it).

**Seeds.** envpool fixes each environment's seed when the pool is built: slot `j` of the
training pool gets `env_seed * num_envs + j`, so run `k` of a batch sees the simulators a
lone run with `env_seed + k` sees; evaluation pools use seeds offset by `EVAL_SEED_OFFSET`.
The JAX key sets everything else (network init, exploration, replay sampling). gymnasium
environments are reset with seeds drawn from the key.

**Autoreset.** envpool resets an environment on the step *after* its episode ended: that
step ignores its action and returns the first observation with reward 0. The bridge flags
it `valid=False`; the training loop stores it flagged, never learns from it and does not
count it in episode lengths (it still counts as an env step). The step that ends an episode
returns its true final observation as `obs` (and `final_obs`). The gymnasium backend resets
within the step, as gymnax does, and every transition is valid.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap

ENVPOOL_PREFIX = "envpool:"
GYMNASIUM_PREFIX = "gymnasium:"
# envpool ids taken without a prefix (classic DQN tasks outside gymnax).
ENVPOOL_IDS = ("LunarLander-v3",)
EVAL_SEED_OFFSET = 1 << 30
_HANDLE_BYTES = 8
# DQN's Atari preprocessing (Mnih et al. 2015; Machado et al. 2018 for ALE/*-v5), as envpool
# options: frame skip 4 with a max over the last two frames, 84x84 grayscale, a stack of 4,
# up to 30 no-ops at reset, 108k-frame (27k-step) time limit. Training also ends an episode
# at every lost life and clips rewards to their sign; evaluation plays whole games and
# reports the raw score.
_ATARI = {
    "frame_skip": 4,
    "stack_num": 4,
    "img_height": 84,
    "img_width": 84,
    "gray_scale": True,
    "noop_max": 30,
    "max_episode_steps": 27_000,
}
_ATARI_TRAIN = {"episodic_life": True, "reward_clip": True}
_ATARI_EVAL = {"episodic_life": False, "reward_clip": False}


class BridgeTarget(NamedTuple):
    """Where an env id goes: backend, the backend's own id, its options per role."""

    backend: str  # "envpool" or "gymnasium"
    task: str
    train_options: dict[str, Any]
    eval_options: dict[str, Any]


def _atari_game(env_id: str) -> str | None:
    """'Pong' for 'PongNoFrameskip-v4' or 'ALE/Pong-v5', else None."""
    if env_id.endswith("NoFrameskip-v4"):
        return env_id[: -len("NoFrameskip-v4")] or None
    if env_id.startswith("ALE/") and env_id.endswith("-v5"):
        return env_id[len("ALE/") : -len("-v5")] or None
    return None


def target_of(env_id: str) -> BridgeTarget | None:
    """The bridge that serves `env_id`, or None for a gymnax id. Decided from the id
    alone (nothing imported), so callers can tell bridged runs apart cheaply.
    """
    if env_id.startswith(GYMNASIUM_PREFIX):
        return BridgeTarget("gymnasium", env_id[len(GYMNASIUM_PREFIX) :], {}, {})
    if env_id.startswith(ENVPOOL_PREFIX):
        task = env_id[len(ENVPOOL_PREFIX) :]
        if task.endswith("-v5") and task[:1].isupper() and "/" not in task:
            return _atari_target(task, {})  # envpool's own Atari task: its default stickiness
        return BridgeTarget("envpool", task, {}, {})
    if env_id in ENVPOOL_IDS:
        return BridgeTarget("envpool", env_id, {}, {})
    game = _atari_game(env_id)
    if game is not None:
        # NoFrameskip-v4: deterministic emulator; ALE v5: sticky actions (p = 0.25).
        sticky = 0.25 if env_id.startswith("ALE/") else 0.0
        return _atari_target(f"{game}-v5", {"repeat_action_probability": sticky})
    return None


def _atari_target(task: str, extra: dict[str, Any]) -> BridgeTarget:
    """The envpool Atari `task` with DQN's preprocessing (+ `extra`) for training and evaluation."""
    atari = {**_ATARI, **extra}
    return BridgeTarget("envpool", task, {**atari, **_ATARI_TRAIN}, {**atari, **_ATARI_EVAL})


def is_bridged(env_id: str) -> bool:
    """Whether `env_id` runs through a simulator bridge rather than gymnax."""
    return target_of(env_id) is not None


def _pooled(base: Callable[[jax.Array, jax.Array], tuple[jax.Array, Any]]) -> Callable:
    """Make `base(handle, per_env) -> (handle, outputs)` vmappable by flattening runs.

    `per_env` and every output have a leading environment axis; `handle` is a token that
    orders the simulator calls. Under `vmap` the rule calls `base` once with the runs'
    environments laid end to end (run-major) and splits the outputs back per run.
    """

    @custom_vmap
    def call(handle: jax.Array, per_env: jax.Array) -> tuple[jax.Array, Any]:
        return base(handle, per_env)

    @call.def_vmap
    def _rule(axis_size: int, in_batched: list, handle: jax.Array, per_env: jax.Array) -> tuple:
        handle = handle[0] if in_batched[0] else handle
        if not in_batched[1]:
            per_env = jnp.broadcast_to(per_env, (axis_size, *per_env.shape))
        handle, outputs = call(handle, per_env.reshape((-1, *per_env.shape[2:])))
        outputs = jax.tree.map(lambda x: x.reshape((axis_size, -1, *x.shape[1:])), outputs)
        handle = jnp.broadcast_to(handle, (axis_size, *handle.shape))
        return (handle, outputs), (True, jax.tree.map(lambda _: True, outputs))

    return call


class PoolEnv:
    """An environment outside JAX, reset and stepped for every run at once.

    Attributes (static facts, read without building a pool): `env_id`, `num_actions`,
    `obs_shape` and `obs_dtype` (as the training loop sees them; Atari frames are
    channels-last), `max_episode_steps`, `frame_stack` (frames per observation, 0 when
    observations are not frame stacks), `backend`, `has_reset_steps` (the step after an
    episode's end only resets, and `vector_step`'s `valid` flags it; else always True).
    """

    backend = ""
    has_reset_steps = False
    env_id: str
    num_actions: int
    obs_shape: tuple[int, ...]
    obs_dtype: np.dtype
    max_episode_steps: int | None
    frame_stack: int = 0

    def __init__(self, env_id: str, target: BridgeTarget, env_seed: int, role: str) -> None:
        self.env_id, self.target, self.env_seed, self.role = env_id, target, env_seed, role
        self.options = target.train_options if role == "train" else target.eval_options
        self._pools: dict[int, Any] = {}
        self._envs_per_run = 1
        self._reset = _pooled(self._reset_pool)
        self._step = _pooled(self._step_pool)

    def evaluation(self) -> PoolEnv:
        """A sibling for greedy evaluation: its own pools, seeds and (Atari) options."""
        return type(self)(self.env_id, self.target, self.env_seed, "eval")

    def _seed_base(self) -> int:
        """Seed of pool slot 0: run k of a batch then matches a lone run at env_seed + k."""
        offset = EVAL_SEED_OFFSET if self.role == "eval" else 0
        return (offset + self.env_seed * self._envs_per_run) % (1 << 31)

    def vector_reset(self, key: jax.Array, num_envs: int) -> tuple[jax.Array, jax.Array]:
        """Reset this run's `num_envs` environments: (obs, state)."""
        self._envs_per_run = num_envs
        seeds = jax.random.randint(key, (num_envs,), 0, np.iinfo(np.int32).max)
        handle = jnp.zeros((_HANDLE_BYTES,), jnp.uint8)
        handle, obs = self._reset(handle, seeds)
        return obs, handle

    def vector_step(self, state: jax.Array, actions: jax.Array) -> tuple[jax.Array, ...]:
        """Step every environment: (obs, state, reward, terminated, truncated, final_obs,
        valid), as `envs.vector_step` describes.
        """
        state, (obs, reward, terminated, truncated, final_obs, valid) = self._step(
            state, actions.astype(jnp.int32)
        )
        return obs, state, reward, terminated, truncated, final_obs, valid

    def _reset_pool(self, handle: jax.Array, seeds: jax.Array) -> tuple[jax.Array, jax.Array]:
        raise NotImplementedError

    def _step_pool(self, handle: jax.Array, actions: jax.Array) -> tuple[jax.Array, tuple]:
        raise NotImplementedError


def _import(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"this environment needs {module}, which is not installed: "
            f"pip install 'purejaxdqn[{extra}]'"
        ) from error


def make_pool_env(env_id: str, env_seed: int = 0) -> PoolEnv:
    """The training-role `PoolEnv` for a bridged `env_id` (see `target_of`).

    Raises:
        ValueError: `env_id` is not bridged, unknown to its backend, or not discrete.
        ImportError: the backend's optional extra is not installed (names the extra).
    """
    target = target_of(env_id)
    if target is None:
        raise ValueError(f"env_id={env_id!r} is not a bridged environment")
    backend = EnvpoolEnv if target.backend == "envpool" else GymnasiumEnv
    return backend(env_id, target, env_seed, "train")


def _channels_last(obs: jax.Array) -> jax.Array:
    return jnp.moveaxis(obs, -3, -1)


class EnvpoolEnv(PoolEnv):
    """envpool's XLA interface: each pool a synchronous envpool of `size` environments."""

    backend = "envpool"
    has_reset_steps = True

    def __init__(self, env_id: str, target: BridgeTarget, env_seed: int, role: str) -> None:
        super().__init__(env_id, target, env_seed, role)
        envpool = _import("envpool", "envpool")
        known = envpool.list_all_envs()
        if target.task not in known:
            close = difflib.get_close_matches(target.task, known, n=3, cutoff=0.6)
            raise ValueError(
                f"env_id={env_id!r} is not allowed: envpool has no task {target.task!r}"
                + (f"; did you mean {close}?" if close else "")
            )
        spec = envpool.make_spec(target.task, **self.options)
        space = spec.action_space
        if type(space).__name__ != "Discrete":
            raise ValueError(
                f"env_id={env_id!r} has action space {type(space).__name__}{space.shape}: "
                "DQN needs a Discrete action space"
            )
        shape = tuple(spec.observation_space.shape)
        self.frame_stack = int(self.options.get("stack_num", 0))
        self._images = len(shape) == 3
        self.obs_shape = (*shape[1:], shape[0]) if self._images else shape
        self.obs_dtype = np.dtype(spec.observation_space.dtype)
        self.num_actions = int(space.n)
        self.max_episode_steps = int(spec.config.max_episode_steps)

    def _pool(self, size: int) -> Any:
        if size not in self._pools:
            import envpool

            pool = envpool.make(
                self.target.task,
                env_type="gymnasium",
                num_envs=size,
                batch_size=size,
                seed=self._seed_base(),
                **self.options,
            )
            xla = pool.xla()
            if np.shape(xla[0]) != (_HANDLE_BYTES,):
                raise RuntimeError(f"unexpected envpool handle shape {np.shape(xla[0])}")
            self._pools[size] = (pool, xla)
        return self._pools[size]

    def _obs(self, obs: jax.Array) -> jax.Array:
        return _channels_last(obs) if self._images else obs

    def _reset_pool(self, handle: jax.Array, seeds: jax.Array) -> tuple[jax.Array, jax.Array]:
        pool, (_, recv, _, _) = self._pool(seeds.shape[0])

        def host_reset(token: np.ndarray, _seeds: np.ndarray) -> np.ndarray:
            pool.async_reset()
            return np.asarray(token)

        # A pure callback (an IO one may not sit in a cond under vmap). It cannot be
        # dropped (recv needs its output) nor hoisted or merged (the seeds differ per call).
        handle = jax.pure_callback(
            host_reset, jax.ShapeDtypeStruct(handle.shape, handle.dtype), handle, seeds
        )
        handle, (obs, *_) = recv(handle)
        return handle, self._obs(obs)

    def _step_pool(self, handle: jax.Array, actions: jax.Array) -> tuple[jax.Array, tuple]:
        _, (_, _, _, step) = self._pool(actions.shape[0])
        handle, (obs, reward, terminated, truncated, info) = step(handle, actions)
        obs = self._obs(obs)
        valid = info["elapsed_step"] > 0
        return handle, (obs, reward.astype(jnp.float32), terminated, truncated, obs, valid)


class GymnasiumEnv(PoolEnv):
    """Any discrete-action gymnasium environment, stepped in Python via `pure_callback`.

    Each pool is a list of `gymnasium.make` environments; an episode that ends is reset
    within the same step (its final observation returned apart), so every transition is
    valid. Resets are seeded from the JAX key.
    """

    backend = "gymnasium"

    def __init__(self, env_id: str, target: BridgeTarget, env_seed: int, role: str) -> None:
        super().__init__(env_id, target, env_seed, role)
        gymnasium = _import("gymnasium", "gymnasium")
        try:
            probe = gymnasium.make(target.task)
        except gymnasium.error.Error as error:
            raise ValueError(f"env_id={env_id!r} is not allowed: {error}") from error
        space, obs_space = probe.action_space, probe.observation_space
        if not isinstance(space, gymnasium.spaces.Discrete) or obs_space.shape is None:
            raise ValueError(
                f"env_id={env_id!r} has action space {space}: DQN needs a Discrete action "
                "space and array observations"
            )
        self.num_actions = int(space.n)
        self._action_start = int(space.start)
        self.obs_shape = tuple(obs_space.shape)
        self.obs_dtype = np.dtype(obs_space.dtype)
        self.max_episode_steps = probe.spec.max_episode_steps if probe.spec else None
        probe.close()

    def _pool(self, size: int) -> list[Any]:
        if size not in self._pools:
            import gymnasium

            self._pools[size] = [gymnasium.make(self.target.task) for _ in range(size)]
        return self._pools[size]

    def _reset_pool(self, handle: jax.Array, seeds: jax.Array) -> tuple[jax.Array, jax.Array]:
        envs = self._pool(seeds.shape[0])

        def host_reset(token: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            obs = [env.reset(seed=int(seed))[0] for env, seed in zip(envs, seeds, strict=True)]
            return np.asarray(token), np.stack(obs).astype(self.obs_dtype)

        obs = jax.ShapeDtypeStruct((len(envs), *self.obs_shape), self.obs_dtype)
        return jax.pure_callback(
            host_reset, (jax.ShapeDtypeStruct(handle.shape, handle.dtype), obs), handle, seeds
        )

    def _step_pool(self, handle: jax.Array, actions: jax.Array) -> tuple[jax.Array, tuple]:
        envs = self._pool(actions.shape[0])

        def host_step(token: np.ndarray, actions: np.ndarray) -> tuple:
            rows = []
            for env, action in zip(envs, actions, strict=True):
                obs, reward, terminated, truncated, _ = env.step(int(action) + self._action_start)
                final = obs
                if terminated or truncated:
                    obs, _ = env.reset()
                rows.append((obs, reward, terminated, truncated, final))
            obs, reward, terminated, truncated, final = zip(*rows, strict=True)
            return (
                np.asarray(token),
                np.stack(obs).astype(self.obs_dtype),
                np.asarray(reward, np.float32),
                np.asarray(terminated, bool),
                np.asarray(truncated, bool),
                np.stack(final).astype(self.obs_dtype),
            )

        size = len(envs)
        obs = jax.ShapeDtypeStruct((size, *self.obs_shape), self.obs_dtype)
        flags = jax.ShapeDtypeStruct((size,), bool)
        shapes = (
            jax.ShapeDtypeStruct(handle.shape, handle.dtype),
            obs,
            jax.ShapeDtypeStruct((size,), np.float32),
            flags,
            flags,
            obs,
        )
        handle, obs, reward, terminated, truncated, final = jax.pure_callback(
            host_step, shapes, handle, actions
        )
        return handle, (obs, reward, terminated, truncated, final, jnp.ones((size,), bool))
