"""The algorithms the command line and results folders know, by their `--algo` name.

    ALGORITHMS["pqn"]                         # PQNConfig
    config_class("pqn")                       # the same, or a ValueError naming algo
    start_for("Breakout-MinAtar", "pqn")      # the config a PQN command starts from
    config, notes = adapt(start, {"num_envs": 8})

`ALGORITHMS` is the one table of them; each config class names itself (`ALGO`). What
differs per algorithm (presets, how a preset adapts to the options given) is dispatched
here, so the CLI and `outputs.rundir` never name an algorithm.
"""

from __future__ import annotations

import difflib
from typing import Any

from purejaxdqn.core import presets
from purejaxdqn.core.config import ConfigBase, DQNConfig
from purejaxdqn.core.pqn_config import PQNConfig
from purejaxdqn.core.pqn_presets import PQN_PRESETS, adapt_pqn, pqn_config_for

ALGORITHMS: dict[str, type[ConfigBase]] = {DQNConfig.ALGO: DQNConfig, PQNConfig.ALGO: PQNConfig}
DEFAULT_ALGO = DQNConfig.ALGO  # what a command without --algo and a config.json without "algo" mean


def config_class(algo: str) -> type[ConfigBase]:
    """The config class of the algorithm named `algo` (`ALGORITHMS[algo]`).

    Raises:
        ValueError: `algo='<value>' is not allowed: must be one of dqn, pqn`.
    """
    if not isinstance(algo, str) or algo not in ALGORITHMS:
        raise ValueError(f"algo={algo!r} is not allowed: must be one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[algo]


def start_for(env_id: str, algo: str = DEFAULT_ALGO, preset: str | None = None) -> ConfigBase:
    """The config a command for `algo` starts from on `env_id`: DQN's `presets.start_for`
    (which also serves `preset='rainbow'`); for PQN, the PQN preset named `preset` (an env
    id) if given, else `pqn_config_for(env_id)`.

    Raises:
        ValueError: an unknown `algo`, a `preset` that names no preset of `algo`, or
            `preset='rainbow'` (a DQN configuration) with PQN.
    """
    if config_class(algo) is DQNConfig:
        return presets.start_for(env_id, preset)
    if preset is None:
        return pqn_config_for(env_id)
    if preset == presets.RAINBOW:
        raise ValueError(
            f"preset={preset!r} is not allowed with algo={algo!r}: Rainbow is a DQN "
            "configuration (replay, target network, C51, noisy nets); use algo 'dqn' for it, "
            f"or a PQN preset: {', '.join(sorted(PQN_PRESETS))}"
        )
    if preset not in PQN_PRESETS:
        close = difflib.get_close_matches(preset, list(PQN_PRESETS), n=3, cutoff=0.4)
        hint = f" (did you mean {close}?)" if close else ""
        raise ValueError(
            f"preset={preset!r} is not known for algo={algo!r}{hint}; PQN presets: "
            f"{sorted(PQN_PRESETS)}"
        )
    return PQN_PRESETS[preset]


def describe_start(env_id: str, algo: str = DEFAULT_ALGO, preset: str | None = None) -> str:
    """Which starting point `start_for(env_id, algo, preset)` uses, in words (for the CLI)."""
    if config_class(algo) is DQNConfig:
        return presets.describe_start(env_id, preset)
    if preset is not None:
        return f"PQN preset {preset}"
    name = presets._preset_name(env_id, PQN_PRESETS)
    if name is None:
        return f"no PQN preset for {env_id}: PQNConfig defaults (purejaxql's CartPole settings)"
    if name == presets.ATARI_PRESET and name != env_id:
        return f"PQN preset {name} (shared by every Atari game; solved_threshold unset)"
    return f"PQN preset {name}"


def adapt(base: ConfigBase, given: dict[str, Any]) -> tuple[ConfigBase, list[str]]:
    """`base` with the fields in `given` applied, the others adjusted where the result
    would be invalid: `presets.adapt` for a `DQNConfig`, `adapt_pqn` for a `PQNConfig`.

    Returns:
        The config and one note per adjusted field.

    Raises:
        ValueError: an unknown field, or a value or combination the config rejects.
    """
    adapt_of = {DQNConfig.ALGO: presets.adapt, PQNConfig.ALGO: adapt_pqn}
    return adapt_of[base.ALGO](base, given)
