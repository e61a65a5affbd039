"""The `purejaxdqn` command line.

    purejaxdqn train --env CartPole-v1 --num-seeds 16
    purejaxdqn train --env Acrobot-v1 --learning-rate 1e-3 --hidden-sizes 64,64
    purejaxdqn sweep --env Breakout-MinAtar --num-seeds 64 --learning-rate 1e-4,3e-4,1e-3
    purejaxdqn sweep --num-samples 20 --learning-rate 1e-5:1e-2 --gamma 0.95:0.999
    purejaxdqn train --env CartPole-v1 --output-dir runs/cp --checkpoint-every 5
    purejaxdqn train --resume runs/cp
    purejaxdqn eval runs/cp --episodes 20
    purejaxdqn render runs/cp --seed 3 --out cartpole.gif
    purejaxdqn plot runs/cp runs/other --out curves.png
    purejaxdqn train --help

`train` and `sweep` start from a preset (`--preset`, default the preset named by `--env`
if there is one, else the `DQNConfig` defaults) and apply the options given; every
`DQNConfig` field is an option, generated from the dataclass so the two never drift apart
(`options`). In `sweep`, a traced hyperparameter takes a comma list (a grid over every
combination) or a LO:HI range (sampled, with `--num-samples`).

Each command is a module (`train`, `sweep`, `eval`, `render`, `plot`) with an
`add_<name>_command(subparsers)` that declares its options and sets `handler`, which
`main` calls with the parsed arguments; `options` holds the options `train` and `sweep`
share, `common` what the commands share.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence

from purejaxdqn.run.devices import use_all_cpu_cores

from .common import PROG
from .eval import add_eval_command
from .options import CommandError, join_negative_values, unknown_arguments
from .plot import add_plot_command
from .render import add_render_command
from .sweep import add_sweep_command
from .train import add_train_command


def build_parser() -> argparse.ArgumentParser:
    """The `purejaxdqn` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Vectorized, high-throughput Deep Q-Networks in JAX.",
    )
    parser.add_argument(
        "--version", action="version", version=f"{PROG} {importlib.metadata.version(PROG)}"
    )
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    subparsers.required = True
    add_train_command(subparsers)
    add_sweep_command(subparsers)
    add_eval_command(subparsers)
    add_render_command(subparsers)
    add_plot_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `purejaxdqn` command line; returns the exit status.

    User errors (bad option values, unknown environment or preset, values `DQNConfig`
    rejects) print `purejaxdqn: error: <message>` and exit with status 2, before anything
    compiles. Exit statuses: 0 done; 2 bad input; 3 results written but a seed diverged
    (NaN/inf); 4 some result files could not be written; 128 + N stopped by signal N
    (`common.EXIT_DIVERGED`, `common.EXIT_NOT_WRITTEN`).
    """
    parser = build_parser()
    if argv is None:  # the real command line: this process is ours, use every core
        use_all_cpu_cores()
        argv = sys.argv[1:]
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    args, extras = parser.parse_known_args(join_negative_values(argv))
    if extras:
        args.parser.error(unknown_arguments(args.parser, extras))
    try:
        return args.handler(args)
    except CommandError as error:
        args.parser.error(str(error))  # prints usage and the message, exits with status 2
    return 2  # unreachable: parser.error exits


if __name__ == "__main__":
    sys.exit(main())
