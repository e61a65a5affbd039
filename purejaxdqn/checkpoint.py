"""Checkpoints of a whole run, for exact resume: orbax-checkpoint under `<run>/checkpoints/`.

A checkpoint holds every seed's full runner state (online and target parameters,
optimizer state, replay buffer, environment states, PRNG keys as key data, episode
counters), the metrics and evaluations so far, and a JSON record (log periods done,
config, seeds). Orbax writes each one to a temporary folder and renames it when complete,
so an interrupted save never becomes the latest checkpoint; the last `keep` are kept.

orbax-checkpoint comes with flax; it is imported only when a checkpoint is written or
read (it takes about a second to import).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from purejaxdqn.config import DQNConfig
from purejaxdqn.parallel import Resume

CHECKPOINT_DIR = "checkpoints"


def _manager(run_dir: str | Path, keep: int | None = None, create: bool = False) -> Any:
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create)
    return ocp.CheckpointManager(Path(run_dir).resolve() / CHECKPOINT_DIR, options=options)


def _leaf_names(count: int) -> list[str]:
    return [f"{index:05d}" for index in range(count)]


class Checkpointer:
    """Writes checkpoints of one run into `<run_dir>/checkpoints/<periods done>/`."""

    def __init__(
        self, run_dir: str | Path, config: DQNConfig, num_seeds: int, seed: int, keep: int = 3
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep={keep} is not allowed: must be an integer >= 1")
        self.run_dir = Path(run_dir)
        self.record = {"config": config.to_dict(), "num_seeds": num_seeds, "seed": seed}
        self.keep = keep
        self._manager: Any = None

    def save(
        self,
        periods_done: int,
        states: Any,
        metrics: dict[str, np.ndarray],
        evals: dict[str, np.ndarray],
    ) -> Path:
        """Write one checkpoint and wait until it is complete on disk; returns its folder.

        `states` is every seed's runner state as numpy arrays with PRNG keys as key data
        (`parallel.Chunk.states()`).
        """
        import orbax.checkpoint as ocp

        if self._manager is None:
            self._manager = _manager(self.run_dir, self.keep, create=True)
        leaves = jax.tree.leaves(states)
        arrays = {
            "state": dict(zip(_leaf_names(len(leaves)), leaves, strict=True)),
            "metrics": dict(metrics),
            "evals": dict(evals),
        }
        record = {**self.record, "periods_done": periods_done}
        self._manager.save(
            periods_done,
            args=ocp.args.Composite(
                arrays=ocp.args.PyTreeSave(arrays), record=ocp.args.JsonSave(record)
            ),
            force=True,
        )
        self._manager.wait_until_finished()
        return self._manager.directory / str(periods_done)

    def close(self) -> None:
        """Finish any pending write."""
        if self._manager is not None:
            self._manager.wait_until_finished()
            self._manager.close()


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read back: the `Resume` point and its JSON record."""

    resume: Resume
    record: dict[str, Any]
    path: Path


def latest(run_dir: str | Path) -> int | None:
    """Log periods done at the latest complete checkpoint of `run_dir`, None if none."""
    if not (Path(run_dir) / CHECKPOINT_DIR).is_dir():
        return None
    return _manager(run_dir).latest_step()


def restore(run_dir: str | Path, state_like: Any) -> Checkpoint:
    """Read the latest checkpoint of `run_dir` into the structure of `state_like`.

    Args:
        run_dir: a run folder written with checkpoints.
        state_like: one seed's runner state (arrays or `jax.ShapeDtypeStruct`s, keys as
            key data), whose tree structure, shapes and dtypes the stored leaves must have.

    Raises:
        ValueError: no checkpoint, or one that does not fit `state_like` (another config).
    """
    import orbax.checkpoint as ocp

    step = latest(run_dir)
    if step is None:
        raise ValueError(
            f"{run_dir} has no checkpoint (no complete {CHECKPOINT_DIR}/<step>/ folder): run "
            "train with --checkpoint-every N, or stop a run with SIGINT/SIGTERM, to write one"
        )
    manager = _manager(run_dir)
    restored = manager.restore(
        step,
        args=ocp.args.Composite(arrays=ocp.args.PyTreeRestore(), record=ocp.args.JsonRestore()),
    )
    manager.close()
    arrays, record = restored["arrays"], restored["record"]
    like_leaves, treedef = jax.tree.flatten(state_like)
    stored = [arrays["state"][name] for name in sorted(arrays["state"])]
    if len(stored) != len(like_leaves):
        raise ValueError(
            f"checkpoint {run_dir}/{CHECKPOINT_DIR}/{step} has {len(stored)} state arrays, "
            f"this config's runner state {len(like_leaves)}: it was written by another config"
        )
    for index, (leaf, like) in enumerate(zip(stored, like_leaves, strict=True)):
        if leaf.shape[1:] != tuple(like.shape) or leaf.dtype != like.dtype:
            raise ValueError(
                f"checkpoint {run_dir}/{CHECKPOINT_DIR}/{step}: state array {index} is "
                f"{leaf.dtype}{list(leaf.shape[1:])} per seed, this config expects "
                f"{like.dtype}{list(like.shape)}: it was written by another config"
            )
    resume = Resume(
        states=jax.tree.unflatten(treedef, [np.asarray(leaf) for leaf in stored]),
        periods_done=int(record["periods_done"]),
        metrics={k: np.asarray(v) for k, v in arrays["metrics"].items()},
        evals={k: np.asarray(v) for k, v in arrays.get("evals", {}).items()},
    )
    return Checkpoint(resume=resume, record=record, path=manager.directory / str(step))
