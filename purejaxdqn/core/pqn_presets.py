"""PQN's tuned configurations per environment, each with its source.

purejaxql (Gallici et al.'s code for "Simplifying Deep Temporal Difference Learning",
github.com/mttga/purejaxql, `purejaxql/config/alg/pqn_*.yaml`) is the source of every
preset: its gymnax config for CartPole-v1 and Acrobot-v1, its MinAtar config for the five
MinAtar games and its Atari config for Pong (and every other Atari id). Its run lengths
are rounded to whole log periods; what each reaches is in benchmarks/README.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from purejaxdqn.core.pqn_config import PQNConfig
from purejaxdqn.core.presets import (
    ATARI_PRESET,
    MINATAR_GAMES,
    _is_count,
    _nearest_divisor,
    _nearest_multiple,
    _preset_name,
)

# purejaxql's pqn_cartpole.yaml (which also names Acrobot-v1): the PQNConfig defaults,
# 240 iterations of 32 envs x 64 steps (491,520 env steps; its 5e5 makes 244), a greedy
# evaluation every 12 iterations (5% of the run, its TEST_INTERVAL).
_GYMNAX = PQNConfig(eval_episodes=32)

# purejaxql's pqn_minatar.yaml: 128 envs x 32 steps, 2 epochs of 32 minibatches, RAdam 5e-4
# decayed linearly, lambda 0.65, epsilon 1 -> 0.05 over 10%, no reward scaling; the
# MinAtar CNN (16 3x3 filters, dense 128) with LayerNorm. 2,500 iterations (10,240,000
# env steps; its 1e7 makes 2,441). Its pqn_minatar.py draws He-normal kernels and divides
# MinAtar's 0/1 observations by 255; the preset keeps LeCun-normal kernels and the
# observations as they are, which ended no worse (benchmarks/README.md, "PQN results").
_MINATAR = PQNConfig(
    env_id="Breakout-MinAtar",
    num_envs=128,
    num_steps=32,
    total_timesteps=10_240_000,
    num_epochs=2,
    num_minibatches=32,
    learning_rate=5e-4,
    lam=0.65,
    reward_scale=1.0,
    exploration_final_eps=0.05,
    exploration_fraction=0.1,
    network="minatar_cnn",
    hidden_sizes=(128,),
    num_log_points=50,
    eval_every=5,
    eval_episodes=16,
)

PQN_PRESETS: dict[str, PQNConfig] = {
    "CartPole-v1": _GYMNAX.replace(solved_threshold=475.0),
    "Acrobot-v1": _GYMNAX.replace(env_id="Acrobot-v1", solved_threshold=-100.0),
    **{f"{game}-MinAtar": _MINATAR.replace(env_id=f"{game}-MinAtar") for game in MINATAR_GAMES},
    # purejaxql's pqn_atari.yaml: 128 envs x 32 steps, 2 epochs of 32 minibatches, RAdam
    # 2.5e-4 (no decay), lambda 0.65, epsilon 1 -> 0.001 over 10%, the Nature CNN with
    # LayerNorm (LeCun-normal kernels, as the MinAtar presets; its pqn_atari.py draws
    # He-normal ones), on envpool's Atari wrappers (episodic life and clipped rewards in
    # training, as its ENV_KWARGS). 10,240,000 env steps (40M frames) instead of its 5e7.
    ATARI_PRESET: PQNConfig(
        env_id=ATARI_PRESET,
        num_envs=128,
        num_steps=32,
        total_timesteps=10_240_000,
        num_epochs=2,
        num_minibatches=32,
        learning_rate=2.5e-4,
        anneal_lr=False,
        lam=0.65,
        reward_scale=1.0,
        exploration_final_eps=0.001,
        exploration_fraction=0.1,
        network="nature_cnn",
        num_log_points=100,
        eval_every=10,
        eval_episodes=8,
        solved_threshold=19.0,
    ),
}


def pqn_config_for(env_id: str) -> PQNConfig:
    """The starting PQN config for `env_id`: its preset; the preset of the same task for a
    bridged id; the Pong preset for any other Atari id (without Pong's solved score); else
    the `PQNConfig` defaults. The env_id is always `env_id`.
    """
    name = _preset_name(env_id, PQN_PRESETS)
    if name is None:
        return PQNConfig(env_id=env_id)
    preset = PQN_PRESETS[name]
    if name == env_id:
        return preset
    if name == ATARI_PRESET:
        return preset.replace(env_id=env_id, solved_threshold=None)
    return preset.replace(env_id=env_id)


def adapt_pqn(base: PQNConfig, given: dict[str, Any]) -> tuple[PQNConfig, list[str]]:
    """`base` with the fields in `given` applied, adjusting others so the result is valid.

    The CLI's counterpart of `presets.adapt` for DQN; fields the user gave are never
    adjusted (except `total_timesteps`, rounded):

    1. `num_minibatches`: the divisor of num_envs * num_steps nearest to it.
    2. `total_timesteps`: the nearest positive multiple of num_envs * num_steps *
       num_log_points (ties up), unless all four were given.
    3. `eval_every`: the divisor of num_log_points nearest to it.

    Returns:
        The config and one note per adjusted field: what, from, to and why.

    Raises:
        ValueError: an unknown field, or a value or combination `PQNConfig` rejects.
    """
    names = {f.name for f in dataclasses.fields(PQNConfig)}
    unknown = sorted(set(given) - names, key=str)
    if unknown:
        raise ValueError(f"unknown PQNConfig fields {unknown}; allowed: {sorted(names)}")
    values = {**{name: getattr(base, name) for name in names}, **given}
    counts = ("num_envs", "num_steps", "num_log_points", "total_timesteps", "num_minibatches")
    every = values["eval_every"]
    if not all(_is_count(values[name]) for name in counts) or not (_is_count(every) or every == 0):
        return base.replace(**given), []  # raises, naming the field
    changed: dict[str, int] = {}
    notes: list[str] = []

    def change(name: str, new: int, why: str) -> None:
        notes.append(f"{name} {values[name]} -> {new}: {why}")
        values[name] = changed[name] = new

    rollout = values["num_envs"] * values["num_steps"]
    if "num_minibatches" not in given and rollout % values["num_minibatches"]:
        near = _nearest_divisor(rollout, values["num_minibatches"])
        change("num_minibatches", near, f"must divide num_envs * num_steps = {rollout}")
    per_log = rollout * values["num_log_points"]
    strict = {"total_timesteps", "num_envs", "num_steps", "num_log_points"} <= set(given)
    if values["total_timesteps"] % per_log and not strict:
        total = max(_nearest_multiple(values["total_timesteps"], per_log), per_log)
        change(
            "total_timesteps",
            total,
            f"must be a multiple of num_envs * num_steps * num_log_points = {per_log}",
        )
    points = values["num_log_points"]
    if "eval_every" not in given and every and points % every:
        near = _nearest_divisor(points, every)
        change("eval_every", near, f"must divide num_log_points = {points} (nearest divisor)")
    return base.replace(**{**given, **changed}), notes
