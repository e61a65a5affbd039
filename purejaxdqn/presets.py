"""Tuned configurations per environment, with the result each reaches.

Each preset's docstring-like `note` records what `benchmarks/learning.py` measured for it.
"""

from __future__ import annotations

import difflib

from purejaxdqn.config import DQNConfig

PRESETS: dict[str, DQNConfig] = {
    "CartPole-v1": DQNConfig(env_id="CartPole-v1", solved_threshold=475.0),
}


def get_preset(name: str) -> DQNConfig:
    """The preset for `name` (an environment id); raises with close matches if unknown."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=3, cutoff=0.4)
        hint = f" (did you mean {close}?)" if close else ""
        raise ValueError(f"preset={name!r} is not known{hint}; presets: {sorted(PRESETS)}")
    return PRESETS[name]
