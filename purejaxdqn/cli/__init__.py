"""The `purejaxdqn` command line.

    purejaxdqn train --env CartPole-v1 --num-seeds 16
    purejaxdqn train --env Acrobot-v1 --learning-rate 1e-3 --hidden-sizes 64,64
    purejaxdqn train --algo pqn --env CartPole-v1 --num-seeds 16
    purejaxdqn sweep --algo pqn --env Breakout-MinAtar --lam 0.5,0.65,0.8
    purejaxdqn sweep --env Breakout-MinAtar --num-seeds 64 --learning-rate 1e-4,3e-4,1e-3
    purejaxdqn sweep --num-samples 20 --learning-rate 1e-5:1e-2 --gamma 0.95:0.999
    purejaxdqn train --env CartPole-v1 --output-dir runs/cp --checkpoint-every 5
    purejaxdqn train --resume runs/cp
    purejaxdqn eval runs/cp --episodes 20
    purejaxdqn render runs/cp --seed 3 --out cartpole.gif
    purejaxdqn plot runs/cp runs/other --out curves.png
    purejaxdqn train --help

`train` and `sweep` train the algorithm `--algo` names (`dqn`, the default, or `pqn`; see
`purejaxdqn.algorithms`). They start from one of its presets (`--preset`, default the
preset named by `--env` if there is one, else its config's defaults) and apply the options
given; every field of its config (`DQNConfig`, `PQNConfig`) is an option, generated from the
dataclass so the two never drift apart (`options`): `--algo` is read first, then the parser
of that algorithm's options is built. In `sweep`, a traced hyperparameter takes a comma list
(a grid over every combination) or a LO:HI range (sampled, with `--num-samples`).

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

from purejaxdqn.algorithms import DEFAULT_ALGO
from purejaxdqn.run.devices import use_all_cpu_cores

from .common import PROG
from .eval import add_eval_command
from .options import CommandError, check_extras, join_negative_values, requested_algo
from .plot import add_plot_command
from .render import add_render_command
from .sweep import add_sweep_command
from .train import add_train_command


def build_parser(algo: str = DEFAULT_ALGO) -> argparse.ArgumentParser:
    """The `purejaxdqn` parser with every subcommand, `train` and `sweep` declaring the
    config options of `algo` (`algorithms.ALGORITHMS`; `parse_command_line` picks it from
    the command line's `--algo`).
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Vectorized, high-throughput Deep Q-Networks in JAX.",
    )
    parser.add_argument(
        "--version", action="version", version=f"{PROG} {importlib.metadata.version(PROG)}"
    )
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    subparsers.required = True
    add_train_command(subparsers, algo)
    add_sweep_command(subparsers, algo)
    add_eval_command(subparsers)
    add_render_command(subparsers)
    add_plot_command(subparsers)
    return parser


def parse_command_line(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """`argv` parsed by the parser of the algorithm its `--algo` names (default dqn): the
    arguments and the ones that parser does not know (`options.check_extras` refuses them).
    """
    argv = join_negative_values(argv)
    return build_parser(requested_algo(argv)).parse_known_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `purejaxdqn` command line; returns the exit status.

    User errors (bad option values, unknown environment or preset, values the algorithm's
    config rejects, an option of another algorithm) print `purejaxdqn: error: <message>`
    and exit with status 2, before anything compiles. Exit statuses: 0 done; 2 bad input;
    3 results written but a seed diverged (NaN/inf); 4 some result files could not be
    written; 128 + N stopped by signal N (`common.EXIT_DIVERGED`, `common.EXIT_NOT_WRITTEN`).
    """
    if argv is None:  # the real command line: this process is ours, use every core
        use_all_cpu_cores()
        argv = sys.argv[1:]
    if not argv:
        build_parser().print_help(sys.stderr)
        return 2
    args, extras = parse_command_line(argv)
    try:
        check_extras(args, extras)
        return args.handler(args)
    except CommandError as error:
        args.parser.error(str(error))  # prints usage and the message, exits with status 2
    return 2  # unreachable: parser.error exits


if __name__ == "__main__":
    sys.exit(main())
