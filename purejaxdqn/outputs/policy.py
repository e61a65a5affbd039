"""Trained policies out of a run folder: save and load parameters, evaluate, render.

    policy = load_policy("runs/CartPole-v1-20250101-120000")   # every seed's parameters
    returns = evaluate_policy(policy, episodes=10)             # (num_seeds, episodes)
    render_policy(policy, k=0, out="cartpole.gif")             # greedy episode of seed 0

`save_params` writes `params.msgpack` (the online network of every seed, stacked on a
leading seed axis) next to `config.json`. The `eval` and `render` commands (`cli.eval`,
`cli.render`) wrap the last two.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from purejaxdqn.checks import check_int
from purejaxdqn.core import rng
from purejaxdqn.core.config import ConfigBase
from purejaxdqn.core.evaluate import make_evaluate
from purejaxdqn.envs.spec import EnvSpec, make_env
from purejaxdqn.outputs.rundir import RUN_CONFIG_FILE as CONFIG_FILE
from purejaxdqn.outputs.rundir import read_record, write_atomic

PARAMS_FILE = "params.msgpack"
SWEEP_FILE = "sweep_summary.json"
RENDER_MAX_STEPS = 500
# Discrete-action environments that gymnax.visualize.Visualizer can draw.
CLASSIC_CONTROL_IDS = ("Acrobot-v1", "CartPole-v1", "MountainCar-v0")
RENDERABLE_ENV_IDS = (
    *CLASSIC_CONTROL_IDS,
    *(f"{game}-MinAtar" for game in ("Asterix", "Breakout", "Freeway", "Seaquest")),
    "SpaceInvaders-MinAtar",
    "Catch-bsuite",
    "Pong-misc",
    "MetaMaze-misc",
    "FourRooms-misc",
)
_PLOT_HINT = "pip install 'purejaxdqn[plot]'"


def save_params(run_dir: str | Path, params: Any) -> Path:
    """Write `params` (a flax params pytree, leaves stacked over seeds) to `run_dir`.

    Written atomically (`rundir.write_atomic`), so a reader never sees half a file. Returns
    the path of `params.msgpack`.
    """
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tree = jax.tree.map(np.asarray, serialization.to_state_dict(params))
    return write_atomic(folder / PARAMS_FILE, serialization.msgpack_serialize(tree))


@dataclass(frozen=True, eq=False)
class Policy:
    """The trained Q-networks of one run: every seed's parameters and the run's config (any
    algorithm's: `DQNConfig`, `PQNConfig`).
    """

    config: ConfigBase
    params: Any  # leaves have a leading axis of size num_seeds
    num_seeds: int
    seed: int  # the run's base seed

    @functools.cached_property
    def spec(self) -> EnvSpec:
        """The run's environment (observations stored as in training)."""
        c = self.config
        return make_env(c.env_id, obs_storage_dtype=c.obs_storage_dtype, env_seed=c.env_seed)

    @functools.cached_property
    def network(self) -> nn.Module:
        """The run's Q-network module (`config.q_network`)."""
        spec = self.spec
        return self.config.q_network(spec.obs_shape, spec.num_actions).module

    def seed_params(self, k: int) -> Any:
        """The parameters of trained seed `k` (0 to num_seeds - 1)."""
        k = _check_seed(self, k)
        return jax.tree.map(lambda leaf: leaf[k], self.params)

    def q_values(self, obs: Any, k: int | None = None) -> jax.Array:
        """Q-values (*batch, num_actions) of seed `k`; k=None gives every seed on a leading axis."""
        if k is None:
            return jax.vmap(self.network.apply, in_axes=(0, None))(self.params, obs)
        return self.network.apply(self.seed_params(k), obs)

    @functools.cached_property
    def nonfinite_seeds(self) -> list[int]:
        """Seeds whose parameters hold NaN or inf (their run diverged)."""
        finite = np.ones(self.num_seeds, bool)
        for leaf in jax.tree.leaves(self.params):
            finite &= np.isfinite(np.asarray(leaf)).reshape(self.num_seeds, -1).all(axis=1)
        return [int(k) for k in np.flatnonzero(~finite)]

    def check_finite(self, seeds: list[int] | None = None) -> None:
        """Raise a ValueError if any of `seeds` (default: all) has non-finite parameters."""
        bad = [k for k in self.nonfinite_seeds if seeds is None or k in seeds]
        if bad:
            raise ValueError(
                f"seed(s) {bad} of this run have non-finite (NaN/inf) parameters: their "
                "training diverged (see diverged_env_steps in summary.json), so their greedy "
                "policy acts on NaN Q-values and its returns mean nothing; refusing to "
                "evaluate or render them"
            )

    def act(self, obs: Any, k: int | None = None) -> jax.Array:
        """Greedy actions of seed `k` (every seed when k is None); ties go to the lowest index."""
        return jnp.argmax(self.q_values(obs, k), axis=-1)


def _check_seed(policy: Policy, k: Any) -> int:
    note = f" (the run has {policy.num_seeds})"
    return check_int("seed", k, 0, policy.num_seeds - 1, note=note)


def load_policy(run_dir: str | Path) -> Policy:
    """Load the config and the parameters of every seed from a run folder.

    Raises:
        FileNotFoundError: no such folder, or it lacks config.json or params.msgpack.
        ValueError: a sweep folder (pass one of its setting folders), or parameters that do
            not match the config's seed count.
    """
    folder = Path(run_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder: pass a run folder")
    if (folder / SWEEP_FILE).exists():
        settings = sorted(p.name for p in folder.iterdir() if (p / CONFIG_FILE).is_file())
        raise ValueError(
            f"{folder} is a sweep folder: pass one of its setting folders, e.g. "
            f"{folder / settings[0] if settings else folder / '<setting>'}; "
            f"settings: {', '.join(settings) or 'none'}"
        )
    record = read_record(folder)
    config, num_seeds, seed = record.config, record.num_seeds, record.seed
    if not (folder / PARAMS_FILE).is_file():
        raise FileNotFoundError(
            f"{folder} has no {PARAMS_FILE}: runs written before parameters were saved, or "
            "still running, have none; train again to get one"
        )
    params = serialization.msgpack_restore((folder / PARAMS_FILE).read_bytes())
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree.leaves(params)}
    if sizes != {num_seeds}:
        raise ValueError(
            f"{folder / PARAMS_FILE} holds parameters with leading axes {sorted(sizes, key=str)}"
            f" but {CONFIG_FILE} says num_seeds={num_seeds}"
        )
    return Policy(config, jax.tree.map(jnp.asarray, params), num_seeds, seed)


def evaluate_policy(
    policy: Policy,
    episodes: int = 10,
    epsilon: float = 0.0,
    seed: int = 0,
    max_steps: int | None = None,
) -> np.ndarray:
    """Return of `episodes` (epsilon-)greedy episodes of every seed, shape (num_seeds, episodes).

    Uses the training loop's own evaluation (`evaluate.make_evaluate`), every seed in one
    jitted vmap; seed k draws its episodes with `jax.random.split(rng.seed_key(seed),
    num_seeds)[k]`. `max_steps` defaults to the config's `eval_max_steps`, else the
    environment's episode limit. Refuses (ValueError) a policy with a diverged seed
    (`Policy.check_finite`).
    """
    policy.check_finite()
    episodes = check_int("episodes", episodes, 1)
    if not 0.0 <= float(epsilon) <= 1.0:  # NaN fails too
        raise ValueError(f"epsilon={epsilon!r} is not allowed: must be in [0, 1]")
    if max_steps is None:
        max_steps = policy.config.eval_max_steps or policy.spec.max_episode_steps
        if max_steps is None:
            raise ValueError(
                f"max_steps=None is not allowed for env {policy.config.env_id!r}: it has no "
                "episode step limit and the config no eval_max_steps; pass max_steps"
            )
    run = _evaluate_program(policy, episodes, check_int("max_steps", max_steps, 1))
    keys = jax.random.split(rng.seed_key(seed), policy.num_seeds)
    return np.asarray(run(policy.params, keys, jnp.float32(epsilon))["returns"])


# The compiled programs of the last few (policy, shape) pairs, so repeated calls reuse them.
@functools.lru_cache(maxsize=4)
def _evaluate_program(policy: Policy, episodes: int, max_steps: int) -> Callable:
    evaluate = make_evaluate(policy.spec.evaluation(), policy.network, episodes, max_steps)
    return jax.jit(jax.vmap(evaluate, in_axes=(0, 0, None)))


@functools.lru_cache(maxsize=4)
def _rollout_program(policy: Policy, max_steps: int) -> Callable:
    spec, network = policy.spec, policy.network

    def run(params: Any, key: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        reset_key, loop_key = jax.random.split(key)
        obs, state = spec.env.reset(reset_key, spec.params)

        def step(carry: tuple, step_key: jax.Array) -> tuple[tuple, tuple]:
            obs, state = carry
            action = jnp.argmax(network.apply(params, obs[None])[0])
            obs, next_state, reward, terminated, truncated, _ = spec.env.step(
                step_key, state, action, spec.params
            )
            return (obs, next_state), (state, reward, jnp.logical_or(terminated, truncated))

        return jax.lax.scan(step, (obs, state), jax.random.split(loop_key, max_steps))[1]

    return jax.jit(run)


@dataclass(frozen=True)
class Episode:
    """One greedy episode: the env state before each step, and the reward of each step."""

    states: list[Any]  # un-batched env states, one per step
    rewards: np.ndarray  # (length,)
    finished: bool  # False when cut off by max_steps

    @property
    def length(self) -> int:
        """Steps taken (also the number of frames drawn)."""
        return len(self.states)

    @property
    def episode_return(self) -> float:
        """Sum of the rewards."""
        return float(self.rewards.sum())


def rollout_policy(
    policy: Policy, k: int, max_steps: int = RENDER_MAX_STEPS, seed: int = 0
) -> Episode:
    """The first greedy episode of seed `k` in one environment reset from `key(seed)`,
    cut off after `max_steps` steps.
    """
    params = policy.seed_params(k)
    max_steps = check_int("max_steps", max_steps, 1)
    policy.check_finite([k])
    run = _rollout_program(policy, max_steps)
    states, rewards, dones = run(params, rng.seed_key(seed))
    dones = np.asarray(dones)
    finished = bool(dones.any())
    length = int(np.argmax(dones)) + 1 if finished else max_steps
    frames = [jax.tree.map(lambda leaf, t=t: leaf[t], states) for t in range(length)]
    return Episode(frames, np.asarray(rewards[:length], np.float32), finished)


def check_render(policy: Policy, k: int, out: str | Path, max_steps: int, fps: int) -> None:
    """Raise before any work if seed `k` of `policy` cannot be drawn to `out`.

    Raises:
        ValueError: a seed out of range or with non-finite parameters, a bad `max_steps` or
            `fps`, an environment gymnax cannot draw, or a non-GIF `out` without ffmpeg.
        ImportError: the `plot` extra (matplotlib, pygame) is missing.
    """
    _check_seed(policy, k)
    policy.check_finite([k])
    check_int("max_steps", max_steps, 1)
    if policy.config.env_id not in RENDERABLE_ENV_IDS:
        raise ValueError(
            f"env_id={policy.config.env_id!r} cannot be rendered: gymnax draws only "
            f"{', '.join(RENDERABLE_ENV_IDS)}"
        )
    check_int("fps", fps, 1, 100)
    try:
        from gymnax.visualize import Visualizer  # noqa: F401  (matplotlib, seaborn)
        from matplotlib import animation

        if policy.config.env_id in CLASSIC_CONTROL_IDS:  # gymnasium draws these with pygame
            os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
            os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # no sound card warnings
            if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
                os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
            import pygame  # noqa: F401
    except ImportError as error:
        raise ImportError(f"rendering needs {error.name}: {_PLOT_HINT}") from error
    if Path(out).suffix.lower() != ".gif" and not animation.writers.is_available("ffmpeg"):
        raise ValueError(f"out={str(out)!r} is not allowed: use a .gif (others need ffmpeg)")


def write_animation(spec: EnvSpec, episode: Episode, out: str | Path, fps: int) -> Path:
    """Draw `episode` with gymnax's Visualizer on an Agg canvas and save it to `out`."""
    from gymnax.visualize import Visualizer
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    class AggVisualizer(Visualizer):
        """gymnax's Visualizer on a figure of its own (not pyplot's), so the caller's
        backend and open figures are left alone.
        """

        def __init__(self) -> None:
            self.env, self.env_params = spec.env, spec.params
            self.state_seq, self.reward_seq = episode.states, np.cumsum(episode.rewards)
            self.fig = Figure(figsize=(6, 5))
            FigureCanvasAgg(self.fig)
            self.ax = self.fig.subplots()
            self.interval = max(1, round(1000 / fps))  # ms per frame; the GIF's fps follows

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    AggVisualizer().animate(str(out))
    return out


def render_policy(
    policy: Policy,
    k: int,
    out: str | Path,
    max_steps: int | None = None,
    seed: int = 0,
    fps: int = 30,
) -> Path:
    """Save an animation of seed `k`'s first greedy episode (see `rollout_policy`) to `out`.

    Drawn by `gymnax.visualize.Visualizer` on a figure with an Agg canvas of its own (pyplot's
    backend and figures are left alone), so only `RENDERABLE_ENV_IDS` are supported; one
    frame per step, at most `max_steps` (default 500); a GIF when `out` ends with .gif. Needs
    the `plot` extra (pygame draws the classic-control envs). Returns `out` as a Path.
    """
    max_steps = RENDER_MAX_STEPS if max_steps is None else max_steps
    check_render(policy, k, out, max_steps, fps)
    episode = rollout_policy(policy, k, max_steps, seed)
    return write_animation(policy.spec, episode, out, fps)
