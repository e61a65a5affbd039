"""Checkpoints of a whole run, for exact resume, under `<run>/checkpoints/<log periods done>/`.

A checkpoint holds every seed's full runner state (online and target parameters, optimizer
state, replay buffer, environment states, PRNG keys as key data, episode counters), the
metrics and evaluations so far, and `manifest.json`: the run's identity (run id, full
config, seeds, device layout), the log periods done, and for every array its file, shape,
dtype, size and SHA-256.

- **Atomic.** Each checkpoint is written into a hidden temporary folder, every file is
  flushed to disk, the manifest is written last, and the folder is renamed into place: an
  interrupted save (a crash, SIGKILL, a full disk) never becomes a checkpoint. Temporary
  folders left by such a save are removed by the next `Checkpointer`.
- **Verified.** `restore` checks every array against its checksum and the manifest; a
  damaged or truncated checkpoint is reported and skipped for the newest intact one.
- **Owned.** `restore` compares the recorded identity with the run asking to resume and
  refuses, naming the fields that differ, to resume any other run.
- Arrays are plain `.npy` files (zero-size arrays included, e.g. the evaluations of a run
  checkpointed before its first evaluation); nothing but numpy is needed to read them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from purejaxdqn.run.execute import Resume
from purejaxdqn.run.states import data_shapes, flatten, unflatten

CHECKPOINT_DIR = "checkpoints"
MANIFEST = "manifest.json"
FORMAT = "purejaxdqn-checkpoint/1"
_TEMPORARY = ".tmp-"  # prefix of folders being written (or left by an interrupted save)
_GROUPS = ("state", "metrics", "evals")


class _HashingWriter:
    """A file-like object that writes to `file` and hashes what it writes."""

    def __init__(self, file: Any) -> None:
        self.file = file
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.file.write(data)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(16 * 2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_folder(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _numbered(folder: Path) -> list[int]:
    """Log-period numbers of the checkpoint folders in `folder`, newest first."""
    if not folder.is_dir():
        return []
    return sorted((int(p.name) for p in folder.iterdir() if p.name.isdigit()), reverse=True)


def _leaf_names(count: int) -> list[str]:
    return [f"{index:05d}" for index in range(count)]


def identity(
    run_id: str | None,
    config: Any,
    num_seeds: int,
    seed: int,
) -> dict[str, Any]:
    """The identity a checkpoint records and `restore` compares: run id, config, seeds."""
    return {
        "run_id": run_id,
        "config": config.to_dict(),
        "num_seeds": int(num_seeds),
        "seed": int(seed),
    }


class Checkpointer:
    """Writes checkpoints of one run into `<run_dir>/checkpoints/<periods done>/`.

    Args:
        run_dir: the run folder (the caller owns it: one writer at a time).
        run_identity: `identity(...)` of the run, stored in every manifest.
        keep: how many of the newest checkpoints to keep (>= 1).
    """

    def __init__(self, run_dir: str | Path, run_identity: Mapping[str, Any], keep: int = 3) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep={keep!r} is not allowed: must be an integer >= 1")
        self.folder = Path(run_dir) / CHECKPOINT_DIR
        self.identity = dict(run_identity)
        self.keep = keep
        remove_stale(run_dir)  # we own the folder: no save of ours can be in flight

    def save(
        self,
        periods_done: int,
        states: Any,
        metrics: Mapping[str, np.ndarray],
        evals: Mapping[str, np.ndarray],
        layout: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write one checkpoint, complete on disk when this returns; returns its folder.

        `states` is every seed's runner state, leaves with a leading seed axis: the flat
        list `execute.Chunk.states()` gives, or a state tree (flattened by
        `states.flatten`, typed PRNG keys as key data); `layout` the device layout that
        produced it (`experiment.layout_of`), which a resume keeps. A checkpoint with the
        same number is replaced. Raises OSError (the folder is left as it was) when the
        disk is full or not writable.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f"{_TEMPORARY}{periods_done}-{uuid.uuid4().hex[:8]}"
        leaves = flatten(states)
        groups = {
            "state": dict(zip(_leaf_names(len(leaves)), leaves, strict=True)),
            "metrics": dict(metrics),
            "evals": dict(evals),
        }
        try:
            arrays = {}
            for group, members in groups.items():
                (temporary / group).mkdir(parents=True)
                for name, value in members.items():
                    arrays[f"{group}/{name}"] = self._write_array(temporary, group, name, value)
            manifest = {
                "format": FORMAT,
                "periods_done": int(periods_done),
                **self.identity,
                "layout": None if layout is None else dict(layout),
                "arrays": arrays,
            }
            with (temporary / MANIFEST).open("w") as file:
                json.dump(manifest, file, indent=1, allow_nan=False)
                file.flush()
                os.fsync(file.fileno())
            _fsync_folder(temporary)
            final = self.folder / str(periods_done)
            if final.exists():  # the same point saved again: swap it out, then delete it
                old = self.folder / f"{_TEMPORARY}old-{periods_done}-{uuid.uuid4().hex[:8]}"
                final.rename(old)
                temporary.rename(final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                temporary.rename(final)
            _fsync_folder(self.folder)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        for old_point in _numbered(self.folder)[self.keep :]:
            shutil.rmtree(self.folder / str(old_point), ignore_errors=True)
        return final

    @staticmethod
    def _write_array(folder: Path, group: str, name: str, value: Any) -> dict[str, Any]:
        array = np.ascontiguousarray(np.asarray(value))
        relative = f"{group}/{name}.npy"
        with (folder / relative).open("wb") as file:
            writer = _HashingWriter(file)
            np.lib.format.write_array(writer, array, allow_pickle=False)
            file.flush()
            os.fsync(file.fileno())
        return {
            "file": relative,
            "shape": list(array.shape),
            "dtype": array.dtype.str,
            "bytes": writer.size,
            "sha256": writer.digest.hexdigest(),
        }

    def close(self) -> None:
        """Nothing to finish: every save is complete when it returns."""


def remove_stale(run_dir: str | Path) -> list[Path]:
    """Delete temporary folders that interrupted saves left in `run_dir`'s checkpoints.

    Call it only while owning the run folder (no save can be in flight). Returns them.
    """
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    stale = [path for path in folder.iterdir() if path.name.startswith(_TEMPORARY)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint read back.

    Attributes:
        resume: where `execute.execute` continues from.
        manifest: the checkpoint's manifest (identity, layout, periods done, arrays).
        path: its folder.
        skipped: one line per newer checkpoint that was damaged and skipped.
    """

    resume: Resume
    manifest: dict[str, Any]
    path: Path
    skipped: list[str] = field(default_factory=list)


class DamagedCheckpoint(ValueError):
    """A checkpoint that cannot be read back as it was written."""


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise DamagedCheckpoint(
            f"no {MANIFEST} (an incomplete save, or a checkpoint of purejaxdqn < 0.2 in "
            "orbax's format, which cannot be verified)"
        ) from None
    except (OSError, ValueError) as error:
        raise DamagedCheckpoint(f"unreadable {MANIFEST}: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise DamagedCheckpoint(f"{MANIFEST} has format {found!r}, expected {FORMAT!r}")
    return manifest


def _read_array(path: Path, name: str, entry: Mapping[str, Any]) -> np.ndarray:
    file = path / entry["file"]
    if not file.is_file():
        raise DamagedCheckpoint(f"{entry['file']} is missing")
    size = file.stat().st_size
    if size != entry["bytes"]:
        raise DamagedCheckpoint(f"{entry['file']} has {size} bytes, {entry['bytes']} written")
    if _sha256_of(file) != entry["sha256"]:
        raise DamagedCheckpoint(f"{entry['file']} fails its SHA-256 checksum")
    array = np.load(file, allow_pickle=False)
    if list(array.shape) != entry["shape"] or array.dtype.str != entry["dtype"]:
        raise DamagedCheckpoint(f"{entry['file']} does not hold the array its manifest lists")
    return array


def _read(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """The manifest and every array of the checkpoint at `path`, verified."""
    manifest = _read_manifest(path)
    groups: dict[str, dict[str, np.ndarray]] = {group: {} for group in _GROUPS}
    try:
        for name, entry in manifest["arrays"].items():
            group, _, member = name.partition("/")
            groups[group][member] = _read_array(path, name, entry)
    except (KeyError, TypeError, ValueError, OSError) as error:
        if isinstance(error, DamagedCheckpoint):
            raise
        raise DamagedCheckpoint(f"cannot be read: {error!r}") from None
    return manifest, groups


def identity_differences(recorded: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """One line per identity field (config fields one by one) where a checkpoint's record
    differs from the run that wants to resume it; empty when they are the same run.
    """
    lines = []
    for name in ("run_id", "num_seeds", "seed"):
        if recorded.get(name) != expected.get(name):
            lines.append(f"{name}: checkpoint {recorded.get(name)!r}, run {expected.get(name)!r}")
    old, new = recorded.get("config") or {}, expected.get("config") or {}
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            lines.append(f"{name}: checkpoint {old.get(name)!r}, run {new.get(name)!r}")
    return lines


def latest(run_dir: str | Path) -> int | None:
    """Log periods done at the newest checkpoint folder of `run_dir` (not verified), or None."""
    numbers = _numbered(Path(run_dir) / CHECKPOINT_DIR)
    return numbers[0] if numbers else None


def restore(
    run_dir: str | Path, state_like: Any, expected: Mapping[str, Any] | None = None
) -> Checkpoint:
    """Read the newest intact checkpoint of `run_dir` into the structure of `state_like`.

    Newer checkpoints that fail verification (missing or unreadable manifest, a missing,
    truncated or altered array) are skipped and listed in `Checkpoint.skipped`.

    Args:
        run_dir: a run folder written with checkpoints.
        state_like: one seed's runner state (arrays or `jax.ShapeDtypeStruct`s, e.g.
            `execute.state_shapes`), whose tree structure, shapes and dtypes the stored
            leaves must have (typed PRNG keys as their key data); `Checkpoint.resume`
            holds the state in this structure, keys as key data.
        expected: the `identity(...)` of the run resuming; None skips the comparison.

    Raises:
        ValueError: no checkpoint, none intact, one that belongs to another run (the
            message names every field that differs), or one that does not fit
            `state_like`.
    """
    folder = Path(run_dir) / CHECKPOINT_DIR
    numbers = _numbered(folder)
    if not numbers:
        raise ValueError(
            f"{run_dir} has no checkpoint (no complete {CHECKPOINT_DIR}/<log points>/ "
            "folder): run train with --checkpoint-every N, or stop a run with SIGINT/SIGTERM, "
            "to write one"
        )
    skipped = []
    for number in numbers:
        path = folder / str(number)
        try:
            manifest, groups = _read(path)
        except DamagedCheckpoint as error:
            skipped.append(f"checkpoint {path} is damaged: {error}")
            continue
        break
    else:
        raise ValueError(f"{run_dir} has no intact checkpoint: " + "; ".join(skipped))
    if expected is not None:
        differences = identity_differences(manifest, expected)
        if differences:
            raise ValueError(
                f"checkpoint {path} belongs to another run than {run_dir}'s config.json "
                f"(differences: {'; '.join(differences)}): refusing to resume it; restore "
                "the run's config.json, or start a new run in another folder"
            )
    like_data = data_shapes(state_like)  # typed keys as key data, as they were saved
    like_leaves = jax.tree.leaves(like_data)
    stored = [groups["state"][name] for name in sorted(groups["state"])]
    if len(stored) != len(like_leaves):
        raise ValueError(
            f"checkpoint {path} has {len(stored)} state arrays, this config's runner state "
            f"{len(like_leaves)}: it was written by another config"
        )
    for index, (leaf, like) in enumerate(zip(stored, like_leaves, strict=True)):
        if leaf.shape[1:] != tuple(like.shape) or leaf.dtype != like.dtype:
            raise ValueError(
                f"checkpoint {path}: state array {index} is {leaf.dtype}{list(leaf.shape[1:])} "
                f"per seed, this config expects {like.dtype}{list(like.shape)}: it was "
                "written by another config"
            )
    resume = Resume(
        states=unflatten(stored, like_data),
        periods_done=int(manifest["periods_done"]),
        metrics=groups["metrics"],
        evals=groups["evals"],
    )
    return Checkpoint(resume=resume, manifest=manifest, path=path, skipped=skipped)
