"""Traced programs kept on disk, so a repeated run skips building, tracing and lowering.

JAX's persistent compilation cache (`experiment.enable_compile_cache`) saves the XLA
compile, but a run still imports the environment suite, builds `train`, traces and lowers
it before the cache is consulted. When that cache is on and a run names its program
(`program_key`), `compile.compile_programs` also keeps the lowered program as a
`jax.export` artifact beside it, under `purejaxdqn/`: a second run of the same config and
layout loads it, with the memory preflight's estimate, and goes straight to the (cached)
compile. The programs take and return runner states as `states.flatten` lays them out
(flat lists of arrays, keys as key data), which `jax.export` can serialise.

The key covers everything the program depends on: the caller's description (the full
config), the batch layout, the devices, the versions of jax and jaxlib, and a hash of
purejaxdqn's own source, so an edited checkout never loads a stale program.

Every entry starts with a header line, `purejaxdqn-cache/1 <sha256 of the rest>`, and is
written atomically. An entry that fails its check on load (truncated, corrupted, unparsable,
or written in another format) is deleted with a `DamagedEntryWarning`, and the caller sees a
miss: it rebuilds the entry and saves it again.

JAX's own entries need no such care to keep a run going: JAX (0.10) warns about an
unreadable one and compiles again, though it leaves the file, and so the warning, in place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import jax
from jax import export

from purejaxdqn import backend
from purejaxdqn.outputs.rundir import prepare_folder, write_atomic

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_FORMAT = b"purejaxdqn-cache/1"
_T = TypeVar("_T")


class DamagedEntryWarning(UserWarning):
    """A cache entry failed its check on load; it was deleted and will be rebuilt."""


def directory() -> Path | None:
    """`<jax compilation cache dir>/purejaxdqn`, or None when that cache is off."""
    root = jax.config.jax_compilation_cache_dir
    return None if not root else Path(root).expanduser() / "purejaxdqn"


@cache
def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(_PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def key(*parts: Any) -> str:
    """A file-name-safe hash of `parts` (JSON-able), the code, the JAX versions and the
    backend workarounds in force (which an override can change, see `backend`).
    """
    versions = [importlib.metadata.version(name) for name in ("jax", "jaxlib")]
    paths = dataclasses.astuple(backend.workarounds())
    text = json.dumps([parts, versions, _source_hash(), paths], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def prepare_directory(path: str | Path) -> Path:
    """`path` expanded, created if needed and checked writable, for the compile caches.

    Raises:
        ValueError: (one line, naming the path) when the path is empty, is an existing
            file, cannot be created or is not writable.
    """
    return prepare_folder(path, "cache directory")


def _write(path: Path, payload: bytes) -> None:
    """Write the header and `payload` atomically: a reader sees the old file, no file, or
    the whole new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    header = _FORMAT + b" " + hashlib.sha256(payload).hexdigest().encode() + b"\n"
    write_atomic(path, header + payload)


def _load(path: Path | None, parse: Callable[[bytes], _T]) -> _T | None:
    """`parse(payload)` of the entry at `path`; None when there is none or it is damaged
    (then it is deleted, with a `DamagedEntryWarning`).
    """
    if path is None or not path.exists():
        return None
    try:
        header, _, payload = path.read_bytes().partition(b"\n")
        tag, _, checksum = header.partition(b" ")
        if tag != _FORMAT:
            raise ValueError("not in the purejaxdqn-cache/1 format")
        if checksum.decode(errors="replace") != hashlib.sha256(payload).hexdigest():
            raise ValueError("checksum mismatch: truncated or corrupted")
        return parse(payload)
    except FileNotFoundError:  # another process evicted it meanwhile
        return None
    except Exception as error:  # whatever the damage, rebuilding is the cure
        reason = f"{type(error).__name__}: {error}"
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        reason += f"; could not delete it: {error.strerror or error}"
    warnings.warn(
        f"damaged program cache entry {path} ({reason}); deleted it, rebuilding",
        DamagedEntryWarning,
        stacklevel=3,
    )
    return None


def _entry(name: str, suffix: str) -> Path | None:
    folder = directory()
    return None if folder is None else folder / f"{name}{suffix}"


def _parse_estimate(payload: bytes) -> int:
    value = json.loads(payload)["bytes_per_run"]
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"bytes_per_run is {value!r}, not a count of bytes")
    return value


def load_estimate(name: str) -> int | None:
    """The memory estimate saved under `name`, or None (also when damaged)."""
    return _load(_entry(name, ".bytes.json"), _parse_estimate)


def save_estimate(name: str, bytes_per_run: int) -> None:
    """Save a memory estimate under `name` (no-op when the cache is off)."""
    path = _entry(name, ".bytes.json")
    if path is not None:
        _write(path, json.dumps({"bytes_per_run": bytes_per_run}).encode())


def load_program(name: str) -> export.Exported | None:
    """The exported program saved under `name`, or None (also when damaged)."""
    return _load(_entry(name, ".jaxexport"), lambda payload: export.deserialize(bytearray(payload)))


def save_program(name: str, program: export.Exported) -> None:
    """Save an exported program under `name` (no-op when the cache is off)."""
    path = _entry(name, ".jaxexport")
    if path is not None:
        _write(path, bytes(program.serialize()))
