"""Run folders: who owns them, what they record, and how files get into them safely.

- **Ownership.** `RunFolder` claims a folder for one run: it takes an exclusive lock
  (`fcntl.flock` on `.purejaxdqn.lock`, released by the OS however the process ends), so a
  second process gets a clear error instead of writing into the same folder; a new run
  refuses a folder that holds another run's files unless asked to `overwrite` them, which
  removes that run's files and checkpoints first (files that are not a run's are never
  removed).
- **The run record** (`config.json`): the algorithm (`"algo"`; a file without it is a DQN
  run's), the full config, the seeds, a run id made when the run starts, and the run-level
  options of the command that made it (checkpoint interval,
  TensorBoard folder, ...), so a resume keeps them and checkpoints can prove which run
  they belong to.
- **Atomic writes.** `write_atomic` writes a temporary file beside the target, flushes it
  to disk and renames it over the target: a reader sees the old file or the new one, never
  half of one, and a failed write (a full disk) leaves the old file in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from purejaxdqn.algorithms import DEFAULT_ALGO, config_class
from purejaxdqn.program import AlgorithmConfig

RUN_CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
LOCK_FILE = ".purejaxdqn.lock"
# What a run (or a sweep) writes into its folder; `overwrite` removes exactly these, and
# setting folders of a sweep (sub-folders holding a config.json).
RUN_FILES = (
    RUN_CONFIG_FILE,
    "metrics.csv",
    "evals.csv",
    SUMMARY_FILE,
    "params.msgpack",
    "checkpoints",
    "sweep_summary.csv",
    "sweep_summary.json",
)


class FolderError(ValueError):
    """A run folder that cannot be used as asked (the message says why, in one line)."""


def new_run_id() -> str:
    """A fresh run id: the start time and 8 random hex digits, e.g. 20261130-081500-1a2b3c4d."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"


def check_path(path: str | Path | None, what: str = "output folder") -> Path:
    """`path` as an expanded Path; FolderError for an empty path or an existing file."""
    if path is None or not str(path).strip():
        raise FolderError(f"the {what} path is empty: give a folder name")
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise FolderError(f"{folder} is a file, not a folder: give a folder for the {what}")
    return folder


def prepare_folder(path: str | Path, what: str) -> Path:
    """`path` expanded, created if needed and checked writable (a probe file is made and
    removed), for a folder the run will write into later (a cache, TensorBoard).

    Raises:
        ValueError: one line naming the path and `what` it is for, when the path is empty,
            an existing file, cannot be created or is not writable.
    """

    def refuse(reason: str) -> ValueError:
        return ValueError(f"cannot use {str(path)!r} as a {what}: {reason}")

    if not str(path).strip():
        raise refuse("the path is empty")
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise refuse("it exists and is not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise refuse(f"cannot create it ({error.strerror or error})") from error
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".probe-")
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise refuse(f"it is not writable ({error.strerror or error})") from error
    return folder


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write `data` to `path` atomically (temporary file, fsync, rename); returns the path.

    On failure (e.g. OSError for a full disk) the temporary file is removed and any old
    file at `path` is left as it was.
    """
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private (0600)
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def unique_folder(path: str | Path) -> Path:
    """`path`, or `path-2`, `path-3`, ... for the first that does not exist yet."""
    path = Path(path)
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


# --- the run record (config.json) ------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """What a run folder's `config.json` records.

    Attributes:
        config: the run's configuration (a `DQNConfig`, `PQNConfig`, ...: its class's
            `ALGO` is written as `"algo"`, which `read_record` reads it back by).
        num_seeds: seeds trained together.
        seed: the base seed.
        run_id: made when the run started; None in folders of purejaxdqn < 0.2.
        options: run-level options of the command (e.g. `checkpoint_every`,
            `tensorboard`), which a resume keeps unless given again.
    """

    config: AlgorithmConfig
    num_seeds: int
    seed: int
    run_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready contents of config.json (`"algo"` first where the config's class
        names its algorithm).
        """
        algo = getattr(type(self.config), "ALGO", None)
        data: dict[str, Any] = {
            **({} if algo is None else {"algo": algo}),
            **self.config.to_dict(),
            "num_seeds": self.num_seeds,
            "seed": self.seed,
        }
        if self.run_id is not None:
            data["run_id"] = self.run_id
        if self.options:
            data["run_options"] = self.options
        return data


def write_record(folder: str | Path, record: RunRecord) -> Path:
    """Write `<folder>/config.json` atomically from `record`."""
    path = Path(folder) / RUN_CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, json.dumps(record.to_dict(), indent=2, allow_nan=False) + "\n")


def read_record(folder: str | Path) -> RunRecord:
    """The `RunRecord` of a run folder.

    The config is of the class its `"algo"` names (`algorithms.ALGORITHMS`; DQN's when
    there is none, as in folders written before PQN).

    Raises:
        FileNotFoundError: the folder has no config.json.
        ValueError: the file is not JSON, or names an unknown algorithm, or holds unknown
            fields or values the algorithm's config rejects.
    """
    path = Path(folder) / RUN_CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {RUN_CONFIG_FILE}: not a purejaxdqn run folder")
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    num_seeds, seed = data.pop("num_seeds", 1), data.pop("seed", 0)
    for name, value in (("num_seeds", num_seeds), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (name == "num_seeds"):
            raise ValueError(f"{path}: {name}={value!r} is not allowed")
    run_id, options = data.pop("run_id", None), data.pop("run_options", {})
    try:
        config_type = config_class(data.pop("algo", DEFAULT_ALGO))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return RunRecord(config_type.from_dict(data), num_seeds, seed, run_id, dict(options))


# --- ownership -------------------------------------------------------------------------------

_HELD: dict[Path, RunFolder] = {}  # folders this process holds, so a nested claim is reentrant


def run_files(folder: Path) -> list[Path]:
    """The files and folders in `folder` that a purejaxdqn run or sweep wrote."""
    if not folder.is_dir():
        return []
    found = [folder / name for name in RUN_FILES if (folder / name).exists()]
    found += [p for p in folder.iterdir() if p.is_dir() and (p / RUN_CONFIG_FILE).is_file()]
    return found


def _describe(folder: Path) -> str:
    """A few words on the run in `folder`, from its config.json when readable."""
    try:
        record = read_record(folder)
    except (OSError, ValueError):
        return "another run's results"
    run = f"run {record.run_id}" if record.run_id else "a run"
    return f"{run} ({record.config.env_id}, {record.num_seeds} seed(s))"


class RunFolder:
    """Exclusive use of a run folder by this process, as a context manager.

    Args:
        path: the folder (created if needed).
        overwrite: a new run may replace another run's files there (they are removed).
        resume: the folder's own run continues (its files are kept).
        what: the option that named the folder, for messages (e.g. "--output-dir").

    Raises (on entering):
        FolderError: the path is empty, a file, cannot be created or written, another
            process holds it, or (neither `overwrite` nor `resume`) it holds another
            run's files or files that are not a run's.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        overwrite: bool = False,
        resume: bool = False,
        what: str = "output folder",
    ) -> None:
        self.path = check_path(path, what)
        self.overwrite = overwrite
        self.resume = resume
        self.what = what
        self.created = False
        self._lock: Any = None
        self._nested = False

    def __enter__(self) -> RunFolder:
        key = self.path.resolve()
        if key in _HELD:  # already ours (e.g. the CLI holds it while write_run writes)
            self._nested = True
            return self
        self.created = not self.path.exists()
        if self.resume and self.created:
            raise FolderError(f"{self.what} {self.path} does not exist: nothing to continue")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = (self.path / LOCK_FILE).open("a+")
        except OSError as error:
            raise FolderError(
                f"{self.what} {self.path} cannot be used: {error.strerror or error}"
            ) from None
        self._take_lock()
        _HELD[key] = self
        try:
            self._check_contents()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _take_lock(self) -> None:
        import fcntl

        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.seek(0)
            holder = self._lock.read().strip() or "unknown"
            self._lock.close()
            self._lock = None
            raise FolderError(
                f"{self.what} {self.path} is in use by another purejaxdqn process "
                f"(pid {holder}): wait for it to finish or choose another folder"
            ) from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(f"{os.getpid()}\n")
        self._lock.flush()

    def _check_contents(self) -> None:
        if self.resume:
            return
        ours = run_files(self.path)
        others = [p for p in self.path.iterdir() if p.name != LOCK_FILE and p not in ours]
        if ours and not self.overwrite:
            raise FolderError(
                f"{self.what} {self.path} holds {_describe(self.path)}: choose another "
                f"folder, continue it with `purejaxdqn train --resume {self.path}`, or pass "
                "--overwrite to delete its results and checkpoints first"
            )
        if others and not self.overwrite:
            raise FolderError(
                f"{self.what} {self.path} is not empty and holds no purejaxdqn run "
                f"({others[0].name}, ...): choose a new or empty folder"
            )
        for path in ours:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def discard(self) -> None:
        """Remove what a new run wrote here before computing anything (its config.json and
        the lock file), and the folder if this claim created it and it is now empty.
        """
        if self.resume or self._nested:
            return
        (self.path / RUN_CONFIG_FILE).unlink(missing_ok=True)
        (self.path / LOCK_FILE).unlink(missing_ok=True)
        if self.created:
            with contextlib.suppress(OSError):  # not empty: leave it
                self.path.rmdir()

    def __exit__(self, *exc_info: object) -> None:
        if self._nested or self._lock is None:
            return
        _HELD.pop(self.path.resolve(), None)
        self._lock.close()  # releases the flock
        self._lock = None
