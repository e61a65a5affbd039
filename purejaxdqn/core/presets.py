"""Tuned configurations per environment, with the result each reaches.

Each preset's comment says where its settings come from; what each reaches, measured by
`python benchmarks/learning.py`, is in benchmarks/README.md ("Learning") and
`benchmarks/results/learning_<env>.json`. Starting points were the
rl-baselines3-zoo DQN hyperparameters (CartPole, Acrobot, MountainCar) and the MinAtar
paper (Young & Tian, 2019) for the MinAtar games, rl-baselines3-zoo for LunarLander and
CleanRL's Atari DQN for Pong; the classic-control ones were tuned here by vmapping settings
x seeds.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from typing import Any

from purejaxdqn.core.config import DQNConfig
from purejaxdqn.envs import bridge

PRESETS: dict[str, DQNConfig] = {
    # Few large training bursts (32 vector steps of 8 envs, then 128 updates of batch 256),
    # double DQN, a learning rate annealed to 0 (the policy freezes once it balances) and a
    # half-way target update (tau 0.5) after every burst. Chosen by sweeps on base seed 100
    # (16 seeds per setting): tau 0.5 at lr 8e-4 ended 14/16 solved with mean 492, against
    # 12/16 and mean 458 for the former hard copy at lr 5e-4. Longer runs are worse
    # (153,600 steps: 10/16 on seed 100), as policies forget.
    "CartPole-v1": DQNConfig(
        env_id="CartPole-v1",
        num_envs=8,
        total_timesteps=102_400,
        buffer_size=100_000,
        learning_starts=1_000,
        batch_size=256,
        train_freq=32,
        gradient_steps=128,
        learning_rate=8e-4,
        anneal_lr=True,
        gamma=0.995,
        tau=0.5,
        target_update_interval=256,
        exploration_fraction=0.16,
        exploration_final_eps=0.01,
        double_q=True,
        num_log_points=20,
        eval_every=2,
        eval_episodes=20,
        solved_threshold=475.0,
    ),
    # rl-baselines3-zoo's Acrobot settings on 8 envs.
    "Acrobot-v1": DQNConfig(
        env_id="Acrobot-v1",
        num_envs=8,
        total_timesteps=102_400,
        buffer_size=50_000,
        learning_starts=1_000,
        batch_size=128,
        train_freq=1,
        gradient_steps=2,
        learning_rate=6.3e-4,
        gamma=0.99,
        target_update_interval=256,
        exploration_fraction=0.12,
        exploration_final_eps=0.1,
        num_log_points=20,
        eval_every=2,
        eval_episodes=20,
        solved_threshold=-100.0,
    ),
    # rl-baselines3-zoo's MountainCar settings on 8 envs; -110 is gym's threshold.
    "MountainCar-v0": DQNConfig(
        env_id="MountainCar-v0",
        num_envs=8,
        total_timesteps=121_600,
        buffer_size=10_000,
        learning_starts=1_000,
        batch_size=128,
        train_freq=2,
        gradient_steps=8,
        learning_rate=4e-3,
        gamma=0.98,
        target_update_interval=608,
        exploration_fraction=0.2,
        exploration_final_eps=0.07,
        num_log_points=20,
        eval_every=2,
        eval_episodes=20,
        solved_threshold=-110.0,
    ),
    # LunarLander through envpool (purejaxdqn[envpool]): rl-baselines3-zoo's DQN settings
    # (batch 128, 100k buffer, train every 4 steps, epsilon to 0.05 over 10%) on 8 envs
    # with a 128-128 MLP, double DQN, Huber loss, one update per 4 env steps at lr 1e-3
    # annealed to 0, and a hard target copy every 512 steps (a 256-256 MLP learned slower
    # per env step and ran slower; benchmarks/README.md).
    "LunarLander-v3": DQNConfig(
        env_id="LunarLander-v3",
        num_envs=8,
        total_timesteps=500_000,
        buffer_size=100_000,
        learning_starts=10_000,
        batch_size=128,
        train_freq=4,
        gradient_steps=8,
        learning_rate=1e-3,
        anneal_lr=True,
        gamma=0.99,
        target_update_interval=512,
        double_q=True,
        loss="huber",
        hidden_sizes=(128, 128),
        exploration_fraction=0.1,
        exploration_final_eps=0.05,
        num_log_points=25,
        eval_every=5,
        eval_episodes=10,
        solved_threshold=200.0,
    ),
    # Nature DQN's Atari settings as modern JAX DQNs run them (CleanRL's dqn_atari: Adam
    # 1e-4, batch 32, one update per 4 env steps, target copy every 1,000 steps, epsilon
    # 1 -> 0.01 over the first 10%, 80k steps of random play first), on 8 envs, with a
    # 200k-transition frame ring (1.4 GB per seed) instead of 1M. Every other Atari id
    # (<Game>NoFrameskip-v4, ALE/<Game>-v5) starts from it too (`config_for`). Not yet
    # measured: 10M steps need an accelerator.
    "PongNoFrameskip-v4": DQNConfig(
        env_id="PongNoFrameskip-v4",
        num_envs=8,
        total_timesteps=10_000_000,
        buffer_size=200_000,
        learning_starts=80_000,
        batch_size=32,
        train_freq=1,
        gradient_steps=2,
        learning_rate=1e-4,
        gamma=0.99,
        target_update_interval=1_000,
        exploration_fraction=0.1,
        exploration_final_eps=0.01,
        loss="huber",
        num_log_points=100,
        eval_every=10,
        eval_episodes=8,
        solved_threshold=19.0,
    ),
}


# The MinAtar games (gymnax). DQN of the MinAtar paper (Young & Tian, 2019) at its 5M-frame
# budget: 100k buffer, batch 32, Huber loss, target copy every 1,000 steps, 5,000 steps
# of random play first, gamma 0.99, a 16-filter 3x3 conv and 128 units (network=auto picks
# it for 10x10xC). Changed: Adam 2.5e-4 instead of RMSprop, double DQN, one update per 4
# env steps instead of per step (8 envs, 2 updates per vector step; as Dopamine's and
# "Revisiting Rainbow"'s MinAtar DQN), epsilon 1 -> 0.05 over the first 250k steps
# instead of 1 -> 0.1 over 100k. gymnax differs from MinAtar: minimal action sets (3-6
# actions, not 6), episodes capped at 1,000 steps (Freeway 2,500, as in MinAtar), no
# sticky actions (MinAtar's default is 0.1). Results against the paper's DQN:
# benchmarks/README.md ("MinAtar (gymnax)").
_MINATAR = DQNConfig(
    env_id="Breakout-MinAtar",
    num_envs=8,
    total_timesteps=5_000_000,
    buffer_size=100_000,
    learning_starts=5_000,
    batch_size=32,
    train_freq=1,
    gradient_steps=2,
    learning_rate=2.5e-4,
    gamma=0.99,
    target_update_interval=1_000,
    double_q=True,
    exploration_fraction=0.05,
    exploration_final_eps=0.05,
    loss="huber",
    hidden_sizes=(128,),
    num_log_points=50,
    eval_every=5,
    eval_episodes=10,
)
MINATAR_GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
PRESETS.update(
    {f"{game}-MinAtar": _MINATAR.replace(env_id=f"{game}-MinAtar") for game in MINATAR_GAMES}
)


ATARI_PRESET = "PongNoFrameskip-v4"


def _is_atari(env_id: str) -> bool:
    """Whether `env_id` is an Atari game with DQN's frame preprocessing (a frame stack)."""
    target = bridge.target_of(env_id)
    return target is not None and bool(target.train_options.get("stack_num"))


def _preset_name(env_id: str, presets: dict[str, Any] = PRESETS) -> str | None:
    """The entry of `presets` (keyed by env id, with `ATARI_PRESET` among them)
    `config_for(env_id)` starts from, or None for the defaults.
    """
    if env_id in presets:
        return env_id
    if _is_atari(env_id):
        return ATARI_PRESET
    task = env_id.removeprefix(bridge.GYMNASIUM_PREFIX).removeprefix(bridge.ENVPOOL_PREFIX)
    if task in presets and not _is_atari(task):  # a raw, unstacked Atari game is no match
        return task
    return None


def config_for(env_id: str) -> DQNConfig:
    """The starting config for `env_id`: its preset; the preset of the same task for a
    bridged id (`gymnasium:CartPole-v1`, `envpool:LunarLander-v3`); the Pong preset for any
    other Atari id; else the `DQNConfig` defaults (the classic CartPole settings). The
    env_id is always `env_id`.
    """
    name = _preset_name(env_id)
    if name is None:
        return DQNConfig(env_id=env_id)
    if name == env_id:
        return PRESETS[name]
    if name == ATARI_PRESET and _is_atari(env_id):  # Pong's solved score fits Pong only
        return PRESETS[name].replace(env_id=env_id, solved_threshold=None)
    return PRESETS[name].replace(env_id=env_id)


def describe_start(env_id: str, preset: str | None = None) -> str:
    """Which starting point `start_for(env_id, preset)` uses, in words (for the CLI to print)."""
    if preset == RAINBOW:
        name = _rainbow_name(env_id)
        if name is None:
            return (
                "Rainbow's generic settings (double, dueling, 3-step, prioritized replay, C51 "
                f"on [-10, 10], noisy nets) on top of {describe_start(env_id)}"
            )
        shared = " (shared by every Atari game)" if name == ATARI_PRESET != env_id else ""
        return f"preset rainbow for {name}{shared}"
    if preset is not None:
        return f"preset {preset}"
    name = _preset_name(env_id)
    if name is None:
        return f"no preset for {env_id}: DQNConfig defaults (the classic CartPole DQN settings)"
    if name == ATARI_PRESET and name != env_id:
        return f"preset {name} (shared by every Atari game; solved_threshold unset)"
    return f"preset {name}"


def get_preset(name: str) -> DQNConfig:
    """The preset for `name` (an environment id); raises with close matches if unknown.

    `--preset rainbow` depends on the env: see `rainbow_for` and `start_for`.
    """
    if name not in PRESETS:
        close = difflib.get_close_matches(name, [*PRESETS, RAINBOW], n=3, cutoff=0.4)
        hint = f" (did you mean {close}?)" if close else ""
        raise ValueError(
            f"preset={name!r} is not known{hint}; presets: {sorted(PRESETS)}, or {RAINBOW!r} "
            "(the Rainbow settings of --env)"
        )
    return PRESETS[name]


# Fields whose values `adapt` computes with; when one is not a positive integer it adapts
# nothing and lets `DQNConfig` reject the value.
_COUNTS = ("num_envs", "train_freq", "num_log_points", "total_timesteps", "buffer_size")


def adapt(base: DQNConfig, given: dict[str, Any]) -> tuple[DQNConfig, list[str]]:
    """`base` with the fields in `given` applied, adjusting the others so the result is valid.

    `base` is the preset (or defaults) a command starts from and `given` the `DQNConfig`
    fields its user typed. Where the combination would be rejected, fields the user did not
    give are adjusted (`given` ones never are, except `total_timesteps`, rounded):

    1. `buffer_size`: the multiple of num_envs nearest to it, at least num_envs * train_freq.
    2. `batch_size`: at most buffer_size.
    3. `total_timesteps`: the nearest positive multiple of num_envs * train_freq *
       num_log_points (ties up), unless all four were given.
    4. `eval_every`: the divisor of num_log_points nearest to it (ties: the smaller).
    5. `learning_starts`: 10% of total_timesteps, rounded down to whole iterations.
    6. `target_update_interval`: at least one iteration, num_envs * train_freq.

    The Python API stays strict: `DQNConfig` and `.replace` never adapt.

    Returns:
        The config and one note per adjusted field: what, from, to and why.

    Raises:
        ValueError: an unknown field, or a value or combination of given values that
            `DQNConfig` rejects.
    """
    names = {f.name for f in dataclasses.fields(DQNConfig)}
    unknown = sorted(set(given) - names, key=str)
    if unknown:
        raise ValueError(f"unknown DQNConfig fields {unknown}; allowed: {sorted(names)}")
    values = {**{name: getattr(base, name) for name in names}, **given}
    if not all(_is_count(values[name]) for name in _COUNTS):
        return base.replace(**given), []  # raises, naming the field
    changed: dict[str, int] = {}
    notes: list[str] = []

    def change(name: str, new: int, why: str) -> None:
        notes.append(f"{name} {values[name]} -> {new}: {why}")
        values[name] = changed[name] = new

    envs, freq, points = values["num_envs"], values["train_freq"], values["num_log_points"]
    per_iter = envs * freq
    iteration = f"num_envs * train_freq = {envs} * {freq} = {per_iter}"
    buffer = values["buffer_size"]
    if "buffer_size" not in given and (buffer % envs or buffer < per_iter):
        change(
            "buffer_size",
            max(_nearest_multiple(buffer, envs), per_iter),
            f"must be a multiple of num_envs = {envs} and at least {iteration}",
        )
    buffer = values["buffer_size"]
    if "batch_size" not in given and values["batch_size"] > buffer:
        change("batch_size", buffer, f"must be <= buffer_size = {buffer}")
    per_log = per_iter * points
    strict = {"total_timesteps", "num_envs", "train_freq", "num_log_points"} <= set(given)
    if values["total_timesteps"] % per_log and not strict:
        change(
            "total_timesteps",
            max(_nearest_multiple(values["total_timesteps"], per_log), per_log),
            "must be a multiple of num_envs * train_freq * num_log_points = "
            f"{envs} * {freq} * {points} = {per_log}",
        )
    every = values["eval_every"]
    if "eval_every" not in given and _is_count(every) and points % every:
        nearest = _nearest_divisor(points, every)
        change("eval_every", nearest, f"must divide num_log_points = {points} (nearest divisor)")
    total = values["total_timesteps"]
    if "learning_starts" not in given and values["learning_starts"] >= total:
        change(
            "learning_starts",
            total // 10 // per_iter * per_iter,
            f"must be < total_timesteps = {total}; 10% of the run, in whole iterations",
        )
    if "target_update_interval" not in given and values["target_update_interval"] < per_iter:
        change("target_update_interval", per_iter, f"must be >= one iteration, {iteration}")
    return base.replace(**{**given, **changed}), notes


def _is_count(value: Any) -> bool:
    """Whether `value` is an int >= 1 (not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _nearest_multiple(value: int, step: int) -> int:
    """The multiple of `step` nearest to `value`; ties go up."""
    return (value + step // 2) // step * step


def _divisors(n: int) -> list[int]:
    """The divisors of `n` >= 1, in increasing order."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)})


def _nearest_divisor(n: int, target: int) -> int:
    """The divisor of `n` nearest to `target`; ties go to the smaller."""
    return min(_divisors(n), key=lambda d: (abs(d - target), d))


# --- Rainbow (Hessel et al., 2018): double + dueling + n-step + prioritized replay + C51 +
# noisy nets ------------------------------------------------------------------------------

RAINBOW = "rainbow"  # `--preset rainbow`: the Rainbow settings of the env given by --env

# Rainbow's components with the paper's settings (Table 1): 3-step returns, proportional
# prioritized replay with alpha 0.5 and beta 0.4 -> 1, 51 atoms on [-10, 10] (Atari's clipped
# rewards), noisy nets with sigma0 0.5. Laid over an env's DQN settings where no
# env-specific Rainbow preset exists (`rainbow_for`).
RAINBOW_COMPONENTS: dict[str, Any] = {
    "double_q": True,
    "dueling": True,
    "n_step": 3,
    "prioritized_replay": True,
    "per_alpha": 0.5,
    "per_beta": 0.4,
    "distributional": "c51",
    "num_atoms": 51,
    "v_min": -10.0,
    "v_max": 10.0,
    "noisy": True,
    "noisy_sigma0": 0.5,
}


def _rainbow(base: DQNConfig, **changes: Any) -> DQNConfig:
    """`base` with Rainbow's components and then `changes`."""
    return base.replace(**{**RAINBOW_COMPONENTS, **changes})


RAINBOW_PRESETS: dict[str, DQNConfig] = {
    # The CartPole DQN preset with Rainbow's components; the support spans the returns of
    # gamma 0.995 (at most 1 / (1 - gamma) = 200 per state, truncations bootstrapping).
    "CartPole-v1": _rainbow(PRESETS["CartPole-v1"], v_min=0.0, v_max=200.0),
    # The Acrobot DQN preset with Rainbow's components; rewards are -1 per step, so values
    # lie in [-1 / (1 - gamma), 0] = [-100, 0].
    "Acrobot-v1": _rainbow(PRESETS["Acrobot-v1"], v_min=-100.0, v_max=0.0),
    # The LunarLander DQN preset with Rainbow's components; shaped rewards of up to +-100
    # per landing or crash: a support of [-200, 200].
    "LunarLander-v3": _rainbow(PRESETS["LunarLander-v3"], v_min=-200.0, v_max=200.0),
    # Rainbow's Atari settings (Hessel et al., 2018, Table 1): Adam 6.25e-5 with epsilon
    # 1.5e-4, 20k steps (80k frames) of random play, target copy every 8k steps (32k
    # frames), epsilon 0 (noisy nets explore), one update per 4 env steps (8 envs, 2
    # updates per vector step), on the Pong DQN preset's 200k-transition frame ring.
    "PongNoFrameskip-v4": _rainbow(
        PRESETS["PongNoFrameskip-v4"],
        learning_rate=6.25e-5,
        adam_eps=1.5e-4,
        learning_starts=20_000,
        target_update_interval=8_000,
        exploration_initial_eps=0.0,
        exploration_final_eps=0.0,
    ),
}
# The MinAtar games: the Rainbow of "Revisiting Rainbow" (Obando-Ceron & Castro, 2021) for
# MinAtar, on the MinAtar DQN preset: Adam epsilon 3.125e-4, 3-step returns, 51 atoms,
# noisy nets, prioritized replay, epsilon 1 -> 0.01. Changed: the DQN preset's learning
# rate 2.5e-4 instead of 1e-4, which learned Breakout about half as fast, and Rainbow's
# Atari support [-10, 10] instead of its MinAtar configs' [-100, 100], which ended
# Breakout at 2M steps with an IQM of 33.8 over 4 seeds against 60.7 (benchmarks/README.md,
# "The DQN family").
RAINBOW_PRESETS.update(
    {
        f"{game}-MinAtar": _rainbow(
            PRESETS[f"{game}-MinAtar"],
            adam_eps=3.125e-4,
            exploration_final_eps=0.01,
        )
        for game in MINATAR_GAMES
    }
)


def _rainbow_name(env_id: str) -> str | None:
    """The `RAINBOW_PRESETS` entry `rainbow_for(env_id)` starts from, or None."""
    name = _preset_name(env_id)
    return name if name in RAINBOW_PRESETS else None


def rainbow_for(env_id: str) -> DQNConfig:
    """The Rainbow config for `env_id`: its Rainbow preset (found as `config_for` finds DQN
    presets: bridged ids of the same task, the Pong one for any Atari game), else Rainbow's
    components (`RAINBOW_COMPONENTS`) on top of `config_for(env_id)`.
    """
    name = _rainbow_name(env_id)
    if name is None:
        return _rainbow(config_for(env_id))
    preset = RAINBOW_PRESETS[name]
    if name == env_id:
        return preset
    if name == ATARI_PRESET:  # Pong's solved score fits Pong only
        return preset.replace(env_id=env_id, solved_threshold=None)
    return preset.replace(env_id=env_id)


def start_for(env_id: str, preset: str | None = None) -> DQNConfig:
    """The config a command starts from: `rainbow_for(env_id)` for `preset='rainbow'`,
    the preset named `preset` (an env id), else `config_for(env_id)`.

    Raises:
        ValueError: `preset` names no preset.
    """
    if preset == RAINBOW:
        return rainbow_for(env_id)
    return config_for(env_id) if preset is None else get_preset(preset)
