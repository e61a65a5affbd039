"""Traced programs kept on disk, so a repeated run skips building, tracing and lowering.

JAX's persistent compilation cache (`experiment.enable_compile_cache`) saves the XLA
compile, but a run still imports the environment suite, builds `train`, traces and lowers
it before the cache is consulted (about 1.5 s on a 2-core CPU for CartPole). When that
cache is on and a run names its program (`program_key`), `parallel.execute` also keeps the
lowered program as a `jax.export` artifact beside it, under `purejaxdqn/`: a second run of
the same config and layout loads it, with the memory preflight's estimate, and goes
straight to the (cached) compile.

The key covers everything the program depends on: the caller's description (the full
config), the batch layout, the devices, the versions of jax and jaxlib, and a hash of
purejaxdqn's own source, so an edited checkout never loads a stale program.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import jax
from jax import export

_PACKAGE_DIR = Path(__file__).resolve().parent


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
    """A file-name-safe hash of `parts` (JSON-able), the code and the JAX versions."""
    versions = [importlib.metadata.version(name) for name in ("jax", "jaxlib")]
    text = json.dumps([parts, versions, _source_hash()], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _write(path: Path, data: bytes) -> None:
    """Write atomically: a reader sees the old file, no file, or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def load_estimate(name: str) -> int | None:
    """The memory estimate saved under `name`, or None."""
    folder = directory()
    path = None if folder is None else folder / f"{name}.bytes.json"
    if path is None or not path.exists():
        return None
    return int(json.loads(path.read_text())["bytes_per_run"])


def save_estimate(name: str, bytes_per_run: int) -> None:
    """Save a memory estimate under `name` (no-op when the cache is off)."""
    folder = directory()
    if folder is not None:
        _write(folder / f"{name}.bytes.json", json.dumps({"bytes_per_run": bytes_per_run}).encode())


def load_program(name: str) -> export.Exported | None:
    """The exported program saved under `name`, or None."""
    folder = directory()
    path = None if folder is None else folder / f"{name}.jaxexport"
    if path is None or not path.exists():
        return None
    return export.deserialize(bytearray(path.read_bytes()))


def save_program(name: str, program: export.Exported) -> None:
    """Save an exported program under `name` (no-op when the cache is off)."""
    folder = directory()
    if folder is not None:
        _write(folder / f"{name}.jaxexport", bytes(program.serialize()))
