"""`purejaxdqn sweep`: every seed of every hyperparameter setting in one program, ranked.

The traced hyperparameters (`hparam_names` of `--algo`'s config) take a comma list (a grid
over every combination) or a LO:HI range (sampled, with `--num-samples`); every other
option is one value, as in `train`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from purejaxdqn import algorithms
from purejaxdqn.core.config import ConfigBase
from purejaxdqn.outputs.results import ResultsNotWritten
from purejaxdqn.outputs.rundir import unique_folder
from purejaxdqn.run import sweep
from purejaxdqn.run.monitor import Interrupted, Monitor, ProgressDisplay, SignalGuard

from .common import (
    EXIT_DIVERGED,
    EXIT_NOT_WRITTEN,
    PROG,
    claim,
    default_output_dir,
    guarded,
    print_error,
    start,
)
from .options import (
    CommandError,
    add_config_options,
    add_run_options,
    max_runs,
    name_option,
    option_name,
    positive_int,
    run_options,
    sweep_space_from_args,
)


def add_sweep_command(subparsers: Any, algo: str = algorithms.DEFAULT_ALGO) -> None:
    """Declare `purejaxdqn sweep`: the run options, --num-samples and every field of the
    config of `algo`, the traced hyperparameters taking lists and ranges.
    """
    parser = subparsers.add_parser(
        "sweep",
        prog=PROG,
        allow_abbrev=False,
        usage=(
            f"{PROG} sweep [--env ID] [--num-seeds N] [--num-samples N] "
            "[--HPARAM V1,V2,...|LO:HI ...] [--OPTION VALUE ...]"
        ),
        help="train every seed of every hyperparameter setting in one program and rank them",
        description=(
            "Sweep traced hyperparameters: --learning-rate 1e-4,3e-4 --gamma 0.99,0.995 "
            "trains every combination (a grid); with --num-samples N, LO:HI ranges are "
            "sampled (random search; lists are sampled from). Every seed of every setting "
            "runs in one compiled program sharded over every device. Writes one run folder "
            "per setting and sweep_summary.csv/.json, ranking settings by the IQM of final "
            "greedy return with 95%% bootstrap confidence intervals over seeds."
        ),
    )
    add_run_options(parser, "per setting", algo)
    parser.add_argument(
        "--num-samples",
        metavar="N",
        type=positive_int("num_samples"),
        default=None,
        help="random search: N settings sampled from the ranges and lists given (drawn "
        "with --seed).",
    )
    add_config_options(parser, algorithms.config_class(algo), sweepable=True)
    parser.set_defaults(handler=_sweep, parser=parser)


def _sweep(args: argparse.Namespace) -> int:
    """The `sweep` handler; the exit status."""
    return guarded(_run_sweep, args, "the sweep")


def _settings(args: argparse.Namespace, config: ConfigBase) -> list[sweep.Setting]:
    """The settings the command asks for: a grid of the lists given, or --num-samples
    settings drawn from the ranges and lists (names checked against `config.hparam_names`).
    """
    space = sweep_space_from_args(args)
    unused = getattr(config, "unused_hparams", dict)()
    for name in space:
        if name in unused:
            raise CommandError(
                f"argument {option_name(name)}: sweeping {name} is not allowed here: "
                f"{unused[name]}, so every setting would train the same"
            )
    try:
        if args.num_samples is not None:
            return sweep.sample(
                space, args.num_samples, seed=getattr(args, "seed", 0), config=config
            )
        ranges = [name for name, value in space.items() if isinstance(value, sweep.Range)]
        if ranges:
            raise ValueError(
                f"{ranges[0]} is given a LO:HI range, which needs --num-samples N "
                "(random search); give a comma list for a grid"
            )
        return sweep.grid(space, config)
    except ValueError as error:
        raise CommandError(name_option(str(error))) from error


def _run_sweep(args: argparse.Namespace, guard: SignalGuard) -> int:
    """Train every setting, write the sweep folder and say the ranking; the exit status."""
    options = run_options(args)
    config, say = start(args, options=options)
    settings = _settings(args, config)
    num_seeds, seed = getattr(args, "num_seeds", 1), getattr(args, "seed", 0)
    output_dir = getattr(args, "output_dir", None) or unique_folder(
        default_output_dir(f"sweep-{config.env_id}")
    )
    overwrite = getattr(args, "overwrite", False)
    with claim(output_dir, overwrite=overwrite, what="--output-dir") as folder:
        say(f"{len(settings)} setting(s) x {num_seeds} seed(s)")
        display = None
        if not args.quiet and jax.process_index() == 0:
            display = ProgressDisplay(f"sweep {config.env_id}", config.total_timesteps)
        monitor = Monitor(progress=display, guard=guard)
        try:
            result = sweep.run(
                config,
                settings,
                num_seeds,
                seed,
                max_runs_per_device=max_runs(options),
                progress=say,
                on_chunk=monitor,
                on_start=guard.defer,
            )
        except ValueError as error:
            raise CommandError(name_option(str(error))) from error
        except Interrupted:
            if folder is not None:
                folder.discard()
            raise
        finally:
            if display is not None:
                display.close()
        if jax.process_index() == 0 and not _write(say, result, output_dir):
            return EXIT_NOT_WRITTEN
    return _finish(result, monitor, guard)


def _write(say: Callable[[str], None], result: sweep.SweepResult, output_dir: Path) -> bool:
    """Write the sweep folder and say the ranking; False if some files could not be written."""
    try:
        sweep.write_sweep(result, output_dir)
    except ResultsNotWritten as error:
        print_error(str(error))
        return False
    say("")
    say(sweep.format_ranking(result.ranking))
    say(
        f"compile {result.compile_seconds:.1f} s, run {result.run_seconds:.1f} s; "
        f"results written to {output_dir}"
    )
    return True


def _finish(result: sweep.SweepResult, monitor: Monitor, guard: SignalGuard) -> int:
    """Report a stop by signal or diverged settings; the exit status."""
    if monitor.stop_reason is not None:
        print(
            f"stopped by {monitor.stop_reason}: partial results (every setting up to the same "
            "env step) written; sweeps have no checkpoints",
            file=sys.stderr,
        )
        return 128 + int(guard.received or 0)
    diverged = [row for row in result.ranking if row.get("num_diverged")]
    if diverged:
        print(
            f"{PROG}: {len(diverged)} of {len(result.ranking)} settings had diverged seeds "
            f"(ranked last, marked in the table); exit status {EXIT_DIVERGED}",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    return 0
