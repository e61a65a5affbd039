"""`purejaxdqn train`: a new run, or `--resume` of a stopped one, under a signal guard.

A run goes in compiled chunks of one log period; between chunks a `Monitor` shows
progress, writes TensorBoard and checkpoints, and stops the run on a signal (with a
checkpoint) or once every seed has solved the task. A finished run is left as it is.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from purejaxdqn import algorithms
from purejaxdqn.core.config import ConfigBase
from purejaxdqn.outputs.report import format_diverged, format_summary
from purejaxdqn.outputs.results import ResultsNotWritten, write_run
from purejaxdqn.outputs.rundir import (
    SUMMARY_FILE,
    RunRecord,
    new_run_id,
    read_record,
    unique_folder,
    write_record,
)
from purejaxdqn.outputs.tensorboard import TensorBoardWriter
from purejaxdqn.run import checkpoint
from purejaxdqn.run.checkpoint import Checkpointer
from purejaxdqn.run.execute import state_shapes
from purejaxdqn.run.experiment import Experiment, lazy_program, run_experiment
from purejaxdqn.run.monitor import Interrupted, Monitor, ProgressDisplay, SignalGuard

from .common import (
    EXIT_DIVERGED,
    EXIT_NOT_WRITTEN,
    PROG,
    claim,
    default_output_dir,
    guarded,
    make_say,
    print_error,
    silent,
    start,
)
from .options import (
    CommandError,
    add_config_options,
    add_run_options,
    add_watch_options,
    check_resume_options,
    check_watch_options,
    max_runs,
    name_option,
    option_name,
    run_options,
)


def add_train_command(subparsers: Any, algo: str = algorithms.DEFAULT_ALGO) -> None:
    """Declare `purejaxdqn train`: the run options, the watch options and every field of
    the config of `algo`.
    """
    name = algo.upper()
    parser = subparsers.add_parser(
        "train",
        prog=PROG,  # so errors read "purejaxdqn: error: ..."
        allow_abbrev=False,  # a prefix must not silently match a field added later
        usage=f"{PROG} train [--env ID] [--preset NAME] [--num-seeds N] [--OPTION VALUE ...]",
        help=f"train {name} on one environment over several seeds",
        description=(
            f"Train {name} on one environment over --num-seeds seeds in one compiled program, "
            "then write config.json, metrics.csv, evals.csv and summary.json to --output-dir. "
            f"Boolean options take true/false; alone (e.g. {_bool_example(algo)}) they mean "
            "true. Optional numbers take 'none'."
        ),
    )
    add_run_options(parser, "trained at once", algo)
    add_watch_options(parser)
    add_config_options(parser, algorithms.config_class(algo))
    parser.set_defaults(handler=_train, parser=parser)


def _bool_example(algo: str) -> str:
    """A boolean option of `algo`'s config for the help: --double-q for DQN, else its first."""
    hints = typing.get_type_hints(algorithms.config_class(algo))
    names = [name for name, hint in hints.items() if hint is bool]
    return option_name("double_q" if "double_q" in names else names[0])


def _train(args: argparse.Namespace) -> int:
    """The `train` handler: a new run, or the run --resume names; the exit status."""
    return guarded(_resume if args.resume is not None else _new_run, args, "training")


def _new_run(args: argparse.Namespace, guard: SignalGuard) -> int:
    """Start a run in a new (or emptied) folder: its record first, then training."""
    options = run_options(args)
    config, say = start(args, options=options)
    num_seeds, seed = getattr(args, "num_seeds", 1), getattr(args, "seed", 0)
    output_dir = getattr(args, "output_dir", None) or unique_folder(
        default_output_dir(config.env_id)
    )
    check_watch_options(options, config)
    overwrite = getattr(args, "overwrite", False)
    with claim(output_dir, overwrite=overwrite, what="--output-dir") as folder:
        run_id = new_run_id()
        if folder is not None:
            write_record(output_dir, RunRecord(config, num_seeds, seed, run_id, options))
        try:
            return _run(say, config, num_seeds, seed, Path(output_dir), run_id, options, guard)
        except Interrupted:
            if folder is not None:
                folder.discard()
            raise


def _resume(args: argparse.Namespace, guard: SignalGuard) -> int:
    """Continue the run in --resume's folder from its newest intact checkpoint."""
    check_resume_options(args)
    folder_path = args.resume
    with claim(folder_path, resume=True, what="--resume") as folder:
        try:
            record = read_record(folder_path)
        except (OSError, ValueError) as error:
            raise CommandError(f"--resume {folder_path}: {error}") from error
        finished = finished_run(folder_path, record)
        if finished is not None:
            make_say(args)(f"{folder_path}: {finished}; nothing to do (its results are unchanged)")
            return 0
        options = run_options(args, record.options)
        config, say = start(args, record.config, options)
        check_watch_options(options, config)
        point = _restore(folder_path, record, config)
        if folder is not None and options != record.options:
            write_record(folder_path, dataclasses.replace(record, options=options))
        say(
            f"resuming {folder_path} from {point.path} "
            f"({point.resume.periods_done} log points done)"
        )
        return _run(
            say, config, record.num_seeds, record.seed, folder_path, record.run_id, options,
            guard, point,
        )  # fmt: skip


def _restore(folder: Path, record: RunRecord, config: ConfigBase) -> checkpoint.Checkpoint:
    """The newest intact checkpoint of the run in `folder`, warning of any skipped."""
    program, _ = lazy_program(config)
    try:
        point = checkpoint.restore(
            folder,
            state_shapes(program, config.hparams()),
            expected=checkpoint.identity(record.run_id, config, record.num_seeds, record.seed),
        )
    except ValueError as error:
        raise CommandError(f"--resume {folder}: {error}") from error
    for line in point.skipped:
        print(f"warning: {line}; skipped", file=sys.stderr)
    return point


def finished_run(folder: Path, record: RunRecord) -> str | None:
    """Why the run in `folder` needs no resume (it ended, or stopped once solved), or None."""
    try:
        summary = json.loads((folder / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    if summary.get("run_id") != record.run_id:
        return None
    if summary.get("stop_reason") == "solved":
        return f"finished: every seed solved the task at {summary['env_steps_done']:,} env steps"
    if not summary.get("stopped_early", True):
        return f"finished: all {summary['env_steps_done']:,} env steps done"
    return None


def _monitor(
    options: dict[str, Any],
    config: ConfigBase,
    run_identity: dict[str, Any],
    output_dir: Path,
    guard: SignalGuard,
    quiet: bool,
) -> Monitor:
    """The `Monitor` the run options ask for (progress, TensorBoard, checkpoints)."""
    writer = None
    if options["tensorboard"] is not None:
        try:
            writer = TensorBoardWriter(
                options["tensorboard"], per_seed=options["tensorboard_per_seed"]
            )
        except ImportError as error:
            raise CommandError(str(error)) from error
        writer.write_text("config", json.dumps(config.to_dict(), indent=2))
    progress = None
    if not quiet and jax.process_index() == 0:
        progress = ProgressDisplay(config.env_id, config.total_timesteps)
    checkpointer = None
    if jax.process_count() == 1 and config.program_capabilities().checkpointable:
        checkpointer = Checkpointer(output_dir, run_identity, keep=options["keep_checkpoints"])
    return Monitor(
        progress=progress,
        tensorboard=writer,
        checkpointer=checkpointer,
        checkpoint_every=options["checkpoint_every"],
        stop_threshold=config.solved_threshold if options["stop_when_solved"] else None,
        guard=guard,
    )


def _resumed_layout(point: checkpoint.Checkpoint | None) -> dict[str, Any]:
    """The device layout a resumed run keeps (empty for a new run), warning when the devices
    are of another kind than those it began on.
    """
    layout = (point.manifest.get("layout") or {}) if point is not None else {}
    if layout.get("device_kind") not in (None, jax.devices()[0].device_kind):
        print(
            f"warning: the run began on {layout['device_kind']} devices and continues on "
            f"{jax.devices()[0].device_kind}: its results will differ in rounding from an "
            "uninterrupted run",
            file=sys.stderr,
        )
    return layout


def _run(
    say: Callable[[str], None],
    config: ConfigBase,
    num_seeds: int,
    seed: int,
    output_dir: Path,
    run_id: str,
    options: dict[str, Any],
    guard: SignalGuard,
    point: checkpoint.Checkpoint | None = None,
) -> int:
    """Train (or continue) a run, write its results, print the summary; the exit status."""
    identity = checkpoint.identity(run_id, config, num_seeds, seed)
    monitor = _monitor(options, config, identity, output_dir, guard, quiet=say is silent)
    layout = _resumed_layout(point)
    try:
        experiment = run_experiment(
            config,
            num_seeds,
            seed,
            max_runs_per_device=max_runs(options),
            progress=say,
            on_chunk=monitor,
            on_start=guard.defer,
            resume=None if point is None else point.resume,
            runs_per_device=layout.get("runs_per_device"),
            num_devices=layout.get("num_devices"),
            run_id=run_id,
            stop_reason=lambda: monitor.stop_reason,
        )
    except ValueError as error:  # environment checks, the memory preflight, the layout
        raise CommandError(name_option(str(error))) from error
    except KeyboardInterrupt:
        where = monitor.last_checkpoint or "none"
        print(
            f"interrupted at once by a second signal; latest checkpoint: {where}",
            file=sys.stderr,
        )
        return 128 + signal.SIGINT
    finally:
        monitor.close()
    status = _write_results(say, experiment, output_dir)
    return _finish(say, config, experiment, monitor, output_dir, guard, status)


def _write_results(say: Callable[[str], None], experiment: Experiment, output_dir: Path) -> int:
    """Write the run's results (process 0) and say its summary; 0, or EXIT_NOT_WRITTEN."""
    if jax.process_index() != 0:
        return 0
    try:
        folder = write_run(experiment, output_dir)
    except ResultsNotWritten as error:
        print_error(str(error))
        return EXIT_NOT_WRITTEN
    say("")
    say(format_summary(experiment.summary))
    say(f"results written to {folder}")
    return 0


def _finish(
    say: Callable[[str], None],
    config: ConfigBase,
    experiment: Experiment,
    monitor: Monitor,
    output_dir: Path,
    guard: SignalGuard,
    status: int,
) -> int:
    """Report the checkpoint and why the run stopped; the exit status (`status` unless a
    signal stopped the run or a seed diverged).
    """
    if monitor.checkpoint_error is not None:
        print(f"warning: {monitor.checkpoint_error}", file=sys.stderr)
    if monitor.last_checkpoint is not None:
        say(f"checkpoint: {monitor.last_checkpoint}")
    if monitor.stop_reason == "solved":
        say(
            f"every seed solved the task; stopped at {experiment.summary.env_steps_done:,} "
            "env steps"
        )
    elif monitor.stop_reason is not None:
        how = (
            f"continue with: {PROG} train --resume {output_dir}"
            if monitor.last_checkpoint is not None
            else "no checkpoint (bridged simulators cannot be resumed)"
            if not config.program_capabilities().checkpointable
            else "no checkpoint could be written"
        )
        steps = experiment.summary.env_steps_done
        print(f"stopped by {monitor.stop_reason} at {steps:,} env steps; {how}", file=sys.stderr)
        return 128 + int(guard.received or 0)
    if status == 0 and experiment.summary.num_diverged:
        print(
            f"{PROG}: {format_diverged(experiment.summary)}; exit status {EXIT_DIVERGED}",
            file=sys.stderr,
        )
        status = EXIT_DIVERGED
    return status
