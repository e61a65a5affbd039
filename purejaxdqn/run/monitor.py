"""Watching a run from the thin Python loop between its compiled chunks.

`run.execute` calls `on_chunk(chunk)` after every chunk of log periods; a `Monitor` is
such a callback. It updates a progress display (a rich progress bar on a terminal, a line
per log point or two otherwise), writes TensorBoard scalars, saves checkpoints every N log
points, at the end and when the process is asked to stop (SIGINT/SIGTERM, caught by
`SignalGuard`), and stops the run once every seed has solved the task. None of this touches
the compiled programs, so a watched run computes exactly what an unwatched one does.
"""

from __future__ import annotations

import signal
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import numpy as np

from purejaxdqn import program as names
from purejaxdqn.outputs.report import layout_of
from purejaxdqn.outputs.stats import iqm
from purejaxdqn.run.checkpoint import Checkpointer
from purejaxdqn.run.execute import Chunk

MAX_PLAIN_LINES = 20  # progress lines when the output is not a terminal


def _nan_iqm(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(iqm(finite)) if finite.size else None


def _duration(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def progress_line(chunk: Chunk, total_env_steps: int) -> str:
    """One line about `chunk`: env steps per seed, aggregate steps/s, ETA, and the IQM
    across seeds of the latest training episode returns and greedy evaluation.
    """
    env_steps = chunk.env_steps
    rate = chunk.env_steps_per_second
    per_row = rate / chunk.metrics[names.ENV_STEPS].shape[0]
    parts = [
        f"{env_steps:,}/{total_env_steps:,} env steps ({env_steps / total_env_steps:.0%})",
        f"{rate:,.0f} steps/s",
        f"ETA {_duration((total_env_steps - env_steps) / per_row) if rate else '?'}",
    ]
    score = _nan_iqm(chunk.metrics_so_far[names.EPISODE_RETURN][:, -1])
    parts.append("return IQM " + ("n/a" if score is None else f"{score:.1f}"))
    if chunk.evals_so_far and chunk.evals_so_far[names.EVAL_RETURN].shape[1]:
        parts.append(f"eval IQM {_nan_iqm(chunk.evals_so_far['return'][:, -1]):.1f}")
    diverged = num_diverged(chunk)
    if diverged:
        parts.append(f"DIVERGED {diverged}/{chunk.metrics['env_steps'].shape[0]} seeds")
    return " | ".join(parts)


def num_diverged(chunk: Chunk) -> int:
    """Seeds whose loss, Q-values or parameters have become non-finite so far."""
    flags = chunk.metrics_so_far.get(names.NONFINITE_STEP)
    return 0 if flags is None else int(np.any(flags >= 0, axis=1).sum())


class ProgressDisplay:
    """Shows progress after each chunk: a rich progress bar when `stream` is a terminal,
    else at most `MAX_PLAIN_LINES` plain lines (one per log point or per few).
    """

    def __init__(self, label: str, total_env_steps: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total_env_steps = total_env_steps
        self.stream = sys.stderr if stream is None else stream
        self._bar: Any = None
        self._task: Any = None
        if self.stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[line]}"),
                console=Console(file=self.stream),
            )
            self._task = self._bar.add_task(label, total=total_env_steps, line="compiled")
            self._bar.start()

    def __call__(self, chunk: Chunk) -> None:
        """Show `chunk`'s progress."""
        line = progress_line(chunk, self.total_env_steps)
        if self._bar is not None:
            self._bar.update(self._task, completed=chunk.env_steps, line=line)
            return
        every = max(1, -(-chunk.num_periods // MAX_PLAIN_LINES))
        if chunk.periods_done % every == 0 or chunk.periods_done == chunk.num_periods:
            print(f"{self.label}: {line}", file=self.stream, flush=True)

    def close(self) -> None:
        """Stop the progress bar (leaving its last state on screen)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class Interrupted(Exception):
    """A signal that arrived before the run started computing (see `SignalGuard`)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class SignalGuard:
    """Within `with SignalGuard():`, SIGINT and SIGTERM only set `received` (the signal
    number), so the run can stop after the chunk in flight and save a checkpoint. A second
    signal of either kind interrupts at once (KeyboardInterrupt). Outside the main thread
    it does nothing.

    With `defer=False` a signal raises `Interrupted` at once instead, until `defer()` is
    called: before a run has computed anything (building, compiling) there is nothing to
    save, and stopping at once is what the user asked for.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, defer: bool = True) -> None:
        self.received: int | None = None
        self.deferring = defer
        self._previous: dict[int, Any] = {}

    def defer(self) -> None:
        """From now on, the first signal only sets `received`."""
        self.deferring = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.deferring:
            self.received = signum
            raise Interrupted(signum)
        if self.received is not None:  # asked twice: stop now
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> SignalGuard:
        try:
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous.clear()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @property
    def name(self) -> str | None:
        """The received signal's name, e.g. 'SIGTERM', or None."""
        return None if self.received is None else signal.Signals(self.received).name


def all_solved(chunk: Chunk, threshold: float) -> bool:
    """Whether every seed's greedy evaluation has reached `threshold` at least once."""
    evals = chunk.evals_so_far
    if not evals or evals[names.EVAL_RETURN].shape[1] == 0:
        return False
    return bool(np.all(np.any(evals[names.EVAL_RETURN] >= threshold, axis=1)))


class Monitor:
    """The `on_chunk` callback of a watched run: progress, TensorBoard, checkpoints, stops.

    Args:
        progress: shows each chunk (e.g. a `ProgressDisplay`), or None.
        tensorboard: a `tensorboard.TensorBoardWriter`, or None.
        checkpointer: a `checkpoint.Checkpointer`, or None for no checkpoints.
        checkpoint_every: save every this many log points and at the end (None: only
            when stopped by a signal).
        stop_threshold: stop once every seed's greedy evaluation has reached it (None:
            never stop early).
        guard: a `SignalGuard` whose signal stops the run after the current chunk.
    """

    def __init__(
        self,
        progress: Callable[[Chunk], None] | None = None,
        tensorboard: Any = None,
        checkpointer: Checkpointer | None = None,
        checkpoint_every: int | None = None,
        stop_threshold: float | None = None,
        guard: SignalGuard | None = None,
    ) -> None:
        self.progress = progress
        self.tensorboard = tensorboard
        self.checkpointer = checkpointer
        self.checkpoint_every = checkpoint_every
        self.stop_threshold = stop_threshold
        self.guard = guard
        self.stop_reason: str | None = None
        self.last_checkpoint: Path | None = None
        self.checkpoint_error: str | None = None
        self.checkpoint_seconds = 0.0

    def __call__(self, chunk: Chunk) -> bool:
        """Handle one chunk; True asks `execute` to stop."""
        if self.progress is not None:
            self.progress(chunk)
        if self.tensorboard is not None:
            self.tensorboard.write_metrics(chunk.metrics)
            if chunk.evals and chunk.evals[names.EVAL_RETURN].shape[1]:
                self.tensorboard.write_evals(chunk.evals)
            self.tensorboard.write_throughput(chunk.env_steps, chunk.env_steps_per_second)
        if self.guard is not None and self.guard.received is not None:
            self.stop_reason = self.guard.name
        elif self.stop_threshold is not None and all_solved(chunk, self.stop_threshold):
            self.stop_reason = "solved"
        every = self.checkpoint_every
        end = chunk.periods_done == chunk.num_periods or self.stop_reason == "solved"
        due = every is not None and (chunk.periods_done % every == 0 or end)
        signalled = self.stop_reason not in (None, "solved")
        if self.checkpointer is not None and (due or signalled):
            self._save(chunk)
        return self.stop_reason is not None

    def _save(self, chunk: Chunk) -> None:
        """Save a checkpoint of `chunk`; a failure (a full disk) is reported, not raised:
        the run goes on and the next save tries again.
        """
        start = time.perf_counter()
        try:
            self.last_checkpoint = self.checkpointer.save(
                chunk.periods_done,
                chunk.states(),
                chunk.metrics_so_far,
                chunk.evals_so_far,
                layout=None if chunk.plan is None else layout_of(chunk.plan),
            )
            self.checkpoint_error = None
        except OSError as error:
            self.checkpoint_error = (
                f"checkpoint at {chunk.periods_done} log points could not be written to "
                f"{self.checkpointer.folder}: {error.strerror or error}"
            )
            warnings.warn(self.checkpoint_error, RuntimeWarning, stacklevel=2)
        self.checkpoint_seconds += time.perf_counter() - start

    def close(self) -> None:
        """Close the progress display, the TensorBoard writer and the checkpointer."""
        for part in (self.progress, self.tensorboard, self.checkpointer):
            close = getattr(part, "close", None)
            if close is not None:
                close()
