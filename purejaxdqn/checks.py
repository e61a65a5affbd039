"""The one checker of integer options, shared by configs, the runtime, policies and the CLI:
every message has the same shape, `name=value is not allowed: must be ...`.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_integer(value: Any) -> bool:
    """Whether `value` is an int or a numpy integer (bools are not integers here)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(
    name: str,
    value: Any,
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    or_none: bool = False,
    allowed: str | None = None,
    note: str = "",
) -> int | None:
    """`value` as a Python int (None passes when `or_none`), or a ValueError that names it.

    Args:
        name: the option as the user typed it (e.g. `num_seeds`, `--k`).
        value: the value to check.
        minimum: smallest allowed value (inclusive), or None for no bound.
        maximum: largest allowed value (inclusive), or None for no bound.
        or_none: None is allowed too.
        allowed: the allowed values in words, replacing the generated 'an integer >= 1'.
        note: appended to the message, e.g. '; the run has 4 seeds'.

    Raises:
        ValueError: `name=value is not allowed: must be an integer >= minimum[, or None]`.
    """
    if value is None and or_none:
        return None
    if is_integer(value):
        number = int(value)  # compared as a Python int: exact for every numpy integer type
        if (minimum is None or number >= minimum) and (maximum is None or number <= maximum):
            return number
    if allowed is None:
        if minimum is not None and maximum is not None:
            allowed = f"an integer in [{minimum}, {maximum}]"
        elif minimum is not None:
            allowed = f"an integer >= {minimum}"
        elif maximum is not None:
            allowed = f"an integer <= {maximum}"
        else:
            allowed = "an integer"
        allowed += ", or None" if or_none else ""
    raise ValueError(f"{name}={value!r} is not allowed: must be {allowed}{note}")
