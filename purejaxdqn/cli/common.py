"""What the commands share: exit statuses, printing, run folders, signals and the start of a
`train` or `sweep` command (joining hosts, the compile cache, the config and its diff).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import jax

from purejaxdqn.algorithms import describe_start
from purejaxdqn.core.config import ConfigBase
from purejaxdqn.outputs.rundir import FolderError, RunFolder
from purejaxdqn.run import program_cache
from purejaxdqn.run.devices import initialize_distributed
from purejaxdqn.run.experiment import built_before, enable_compile_cache
from purejaxdqn.run.monitor import Interrupted, SignalGuard

from .options import (
    CommandError,
    algo_of,
    check_host_options,
    name_option,
    show_value,
    start_config,
)

PROG = "purejaxdqn"
EXIT_DIVERGED = 3  # results written; at least one seed's loss, Q-values or parameters went NaN/inf
EXIT_NOT_WRITTEN = 4  # some result files could not be written (disk full, permissions)


# --- printing -------------------------------------------------------------------------------


def silent(message: str) -> None:
    """The `say` of a quiet process."""


def make_say(args: argparse.Namespace) -> Callable[[str], None]:
    """Print a message, unless --quiet or this is not process 0."""
    if args.quiet or jax.process_index() != 0:
        return silent

    def say(message: str) -> None:
        print(message, flush=True)

    return say


def print_error(message: str) -> None:
    """Print `purejaxdqn: error: <message>` to stderr (an error that is not a usage error)."""
    print(f"{PROG}: error: {message}", file=sys.stderr)


# --- run folders and signals ----------------------------------------------------------------


def default_output_dir(env_id: str, now: datetime | None = None) -> Path:
    """`runs/<env>-<YYYYmmdd-HHMMSS>`."""
    now = datetime.now() if now is None else now
    return Path("runs") / f"{env_id}-{now:%Y%m%d-%H%M%S}"


def claim(folder: Path, **kwargs: Any) -> Any:
    """`rundir.RunFolder(folder, ...)` in process 0 (the one that writes), else nothing."""
    if jax.process_index() != 0:
        return contextlib.nullcontext()
    return RunFolder(folder, **kwargs)


def guarded(run: Callable[[argparse.Namespace, SignalGuard], int], args: Any, what: str) -> int:
    """`run(args, guard)` under a `SignalGuard` that stops at once until `run` starts
    computing (it calls `guard.defer`); such a stop exits 128 + the signal, saying so.

    Raises:
        CommandError: the results folder cannot be claimed (`rundir.FolderError`).
    """
    with SignalGuard(defer=False) as guard:
        try:
            return run(args, guard)
        except Interrupted as stop:
            print(
                f"stopped by {stop} before {what} started: nothing was computed, and no "
                "checkpoint or results were written",
                file=sys.stderr,
            )
            return 128 + stop.signum
        except FolderError as error:
            raise CommandError(str(error)) from error


# --- the start of train and sweep -----------------------------------------------------------


def config_diff(config: ConfigBase, reference: ConfigBase | None = None) -> dict[str, Any]:
    """Fields of `config` that differ from `reference` (default: the defaults of its class,
    e.g. `DQNConfig()` or `PQNConfig()`).
    """
    reference = type(config)() if reference is None else reference
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if getattr(config, f.name) != getattr(reference, f.name)
    }


def _join_processes(args: argparse.Namespace) -> None:
    """Join a multi-process run when asked (--distributed or --coordinator-address)."""
    if check_host_options(args):
        try:
            initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
        except ValueError as error:
            raise CommandError(str(error)) from error


def _print_config(say: Callable[[str], None], config: ConfigBase) -> None:
    """Say the fields of `config` that differ from the defaults of its class."""
    diff = config_diff(config)
    say(f"config (differences from {type(config).__name__} defaults):")
    width = max((len(name) for name in diff), default=0)
    for name, value in diff.items():
        say(f"  {name:<{width}}  {show_value(value)}")
    if not diff:
        say("  (none)")


def start(
    args: argparse.Namespace,
    config: ConfigBase | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[ConfigBase, Callable[[str], None]]:
    """Join a multi-process run if asked, build and check the config, print its diff.

    Returns the config (`config` if given, else the one the options ask for) and the `say`
    function (silent with --quiet and in every process but process 0).

    Raises:
        CommandError: a bad --compile-cache folder, host options, environment or config.
    """
    _join_processes(args)
    say = make_say(args)
    cache = (options or {}).get("compile_cache")
    if cache is not None:
        try:
            enable_compile_cache(program_cache.prepare_directory(cache))
        except ValueError as error:
            raise CommandError(f"argument --compile-cache: {error}") from error
    notes = []
    try:
        if config is None:
            config, notes = start_config(args)
            preset = getattr(args, "preset", None)
            say(f"starting from {describe_start(config.env_id, algo_of(args), preset)}")
        if not built_before(config):  # a cached program was built from a checked config
            config.make_program()  # environment checks (unknown id, action space)
    except ImportError as error:  # a bridged env whose optional extra is missing
        raise CommandError(str(error)) from error
    except ValueError as error:
        raise CommandError(name_option(str(error))) from error
    for note in notes:
        print(f"adapted to the options given: {note}", file=sys.stderr)
    _print_config(say, config)
    return config, say


# --- eval and render ------------------------------------------------------------------------


def add_run_dir_command(
    subparsers: Any, name: str, help: str, description: str
) -> argparse.ArgumentParser:
    """A subcommand `purejaxdqn <name> RUN_DIR` that reads one run folder."""
    parser = subparsers.add_parser(
        name, prog=f"{PROG} {name}", allow_abbrev=False, help=help, description=description
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a run folder.")
    return parser
