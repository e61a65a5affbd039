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
`DQNConfig` field is an option, generated from the dataclass so the two never drift apart.
In `sweep`, a traced hyperparameter takes a comma list (a grid over every combination) or
a LO:HI range (sampled, with `--num-samples`).

Each subcommand is a pair of functions: `_add_<name>_command(subparsers)` declares its
options and sets `handler`, which `main` calls with the parsed arguments. `eval` and
`render` live in `policy`, `plot` in `plot`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import importlib.metadata
import json
import re
import signal
import sys
import types
import typing
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jax

from purejaxdqn.core import rng
from purejaxdqn.core.config import DQNConfig, HParams
from purejaxdqn.core.loop import make_train
from purejaxdqn.core.presets import PRESETS, adapt, config_for, describe_start, get_preset
from purejaxdqn.envs.bridge import is_bridged
from purejaxdqn.envs.spec import check_env_id
from purejaxdqn.outputs import plot, policy
from purejaxdqn.outputs.rundir import (
    SUMMARY_FILE,
    FolderError,
    RunFolder,
    RunRecord,
    new_run_id,
    prepare_folder,
    read_record,
    unique_folder,
    write_record,
)
from purejaxdqn.outputs.tensorboard import TensorBoardWriter
from purejaxdqn.run import checkpoint, program_cache, sweep
from purejaxdqn.run.checkpoint import Checkpointer
from purejaxdqn.run.devices import initialize_distributed, use_all_cpu_cores
from purejaxdqn.run.execute import state_shapes
from purejaxdqn.run.experiment import (
    ResultsNotWritten,
    built_before,
    enable_compile_cache,
    format_diverged,
    format_summary,
    lazy_program,
    run_experiment,
    write_run,
)
from purejaxdqn.run.monitor import Interrupted, Monitor, ProgressDisplay, SignalGuard

PROG = "purejaxdqn"
DEFAULT_ENV = "CartPole-v1"
_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")
_NONE = ("none", "null")


class CommandError(Exception):
    """A user error found after parsing, reported as `purejaxdqn: error: <message>`."""


# --- value parsers: each raises ArgumentTypeError, which argparse reports for the option ---


def parse_bool(text: str) -> bool:
    """'true'/'false' (also yes/no, 1/0, on/off; any case) as a bool."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}: use true or false")


def parse_int(text: str) -> int:
    """An integer; underscores and integral exponent forms are accepted (10_000, 1e5)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None and value.is_integer():
        return int(value)
    raise argparse.ArgumentTypeError(f"invalid integer {text!r}")


def parse_float(text: str) -> float:
    """A float (1e-3, 0.99, inf)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None


def parse_int_tuple(text: str) -> tuple[int, ...]:
    """A comma-separated list of integers, e.g. '120,84' -> (120, 84)."""
    parts = [part.strip() for part in text.split(",")]
    if not parts or any(not part for part in parts):
        raise argparse.ArgumentTypeError(
            f"invalid list {text!r}: use comma-separated integers, e.g. 120,84"
        )
    return tuple(parse_int(part) for part in parts)


def optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`parse`, except that 'none' (any case) gives None."""

    def parse_optional(text: str) -> Any:
        return None if text.strip().lower() in _NONE else parse(text)

    parse_optional.__name__ = f"optional_{parse.__name__}"
    return parse_optional


def parse_positive_int(text: str) -> int:
    """An integer >= 1 (argparse names the option in its message)."""
    value = parse_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: must be an integer >= 1")
    return value


def parse_seed(text: str) -> int:
    """A seed: an integer in [0, 2**64)."""
    try:
        return rng.check_seed(parse_int(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_path(text: str) -> Path:
    """A file or folder path; an empty one is refused (it would mean the working folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty: give a folder name")
    return Path(text).expanduser()


def parse_num_seeds(text: str) -> int:
    """An integer >= 1."""
    value = parse_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"num_seeds={value} is not allowed: must be an integer >= 1"
        )
    return value


def parse_sweep_values(text: str) -> list[float] | sweep.Range:
    """Values of a swept hyperparameter: 'V' or 'V1,V2,...' (a list) or 'LO:HI' (a range)."""
    if ":" in text:
        low, _, high = text.partition(":")
        return sweep.Range(parse_float(low), parse_float(high))
    parts = [part.strip() for part in text.split(",")]
    if any(not part for part in parts):
        raise argparse.ArgumentTypeError(
            f"invalid values {text!r}: use V, V1,V2,... or LO:HI, e.g. 1e-4,3e-4 or 1e-5:1e-3"
        )
    return [parse_float(part) for part in parts]


def parse_max_runs(text: str) -> int | str | None:
    """'auto', 'none' or an integer >= 1."""
    lowered = text.strip().lower()
    if lowered == "auto":
        return "auto"
    if lowered in _NONE:
        return None
    value = parse_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"max_runs_per_device={value} is not allowed: use an integer >= 1, auto or none"
        )
    return value


# --- the train and sweep commands -----------------------------------------------------------

_PARSERS: dict[Any, tuple[Callable[[str], Any], str]] = {
    bool: (parse_bool, "{true,false}"),
    int: (parse_int, "INT"),
    float: (parse_float, "FLOAT"),
    str: (str, "STR"),
    tuple[int, ...]: (parse_int_tuple, "INT,INT,..."),
}


def _value_parser(name: str, annotation: Any) -> tuple[Callable[[str], Any], str]:
    """The parse function and metavar for a `DQNConfig` field's type annotation."""
    args = typing.get_args(annotation)
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    if is_union and type(None) in args and len(args) == 2:
        inner = next(a for a in args if a is not type(None))
        parse, metavar = _value_parser(name, inner)
        return optional(parse), f"{metavar}|none"
    if annotation in _PARSERS:
        return _PARSERS[annotation]
    raise TypeError(f"no command-line parser for DQNConfig.{name}: {annotation!r}")


def _show(value: Any) -> str:
    """A default as it would be typed on the command line."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def option_name(field_name: str) -> str:
    """The command-line option of a `DQNConfig` field: `buffer_size` -> `--buffer-size`."""
    return "--" + field_name.replace("_", "-")


def _single_value(name: str, parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`parse` for a static field in `sweep`: a list or range gets a message saying why not."""

    def parse_static(text: str) -> Any:
        if ":" in text or ("," in text and name != "hidden_sizes"):
            raise argparse.ArgumentTypeError(
                f"{name}={text!r} cannot be swept: it is static (it changes the compiled "
                f"program); only traced hyperparameters take lists or ranges: "
                f"{', '.join(HParams._fields)}"
            )
        return parse(text)

    parse_static.__name__ = parse.__name__
    return parse_static


def _add_config_options(parser: argparse.ArgumentParser, sweepable: bool = False) -> None:
    """One option per `DQNConfig` field except `env_id`, documented from the field metadata.

    With `sweepable`, the traced hyperparameters take lists and ranges (`parse_sweep_values`).
    """
    group = parser.add_argument_group(
        "DQN options",
        "Every DQNConfig field. Only options given override the preset; the defaults shown "
        "are DQNConfig's (a preset may differ)."
        + (
            " Traced hyperparameters take V1,V2,... (grid) or LO:HI (sampled with "
            "--num-samples; log-uniform for learning_rate, huber_delta, max_grad_norm)."
            if sweepable
            else ""
        ),
    )
    hints = typing.get_type_hints(DQNConfig)
    for field in dataclasses.fields(DQNConfig):
        if field.name == "env_id":
            continue
        parse, metavar = _value_parser(field.name, hints[field.name])
        is_bool = parse is parse_bool
        if sweepable and field.name in HParams._fields:
            parse, metavar = parse_sweep_values, "V[,V...]|LO:HI"
        elif sweepable:
            parse = _single_value(field.name, parse)
        doc = field.metadata.get("doc", "").replace("%", "%%")
        kwargs: dict[str, Any] = {
            "dest": field.name,
            "type": parse,
            "metavar": metavar,
            "default": argparse.SUPPRESS,
            "help": f"{doc} (default: {_show(field.default)})",
        }
        if is_bool:
            kwargs.update(nargs="?", const=True)  # `--double-q` alone means true
        group.add_argument(option_name(field.name), **kwargs)


def _add_run_options(parser: argparse.ArgumentParser, what: str) -> None:
    """Options shared by `train` and `sweep`: environment, seeds, output, devices, hosts."""
    parser.add_argument(
        "--env",
        metavar="ID",
        default=argparse.SUPPRESS,
        help=f"gymnax environment id (default: {DEFAULT_ENV}, or the preset's environment).",
    )
    parser.add_argument(
        "--preset",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help=(
            "configuration to start from (default: the preset named by --env if there is "
            "one, the Pong preset for other Atari ids, else the DQNConfig defaults); "
            f"presets: {', '.join(sorted(PRESETS))}."
        ),
    )
    parser.add_argument(
        "--num-seeds",
        metavar="N",
        type=parse_num_seeds,
        default=argparse.SUPPRESS,
        help=f"seeds {what}, vmapped in one program (default: 1).",
    )
    parser.add_argument(
        "--seed",
        metavar="N",
        type=parse_seed,
        default=argparse.SUPPRESS,
        help="base seed, an integer in [0, 2**64); seed i uses "
        "jax.random.split(jax.random.key(seed), N)[i] (default: 0).",
    )
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        type=parse_path,
        default=argparse.SUPPRESS,
        help="results folder: new or empty (default: runs/<env>-<YYYYmmdd-HHMMSS>, made "
        "unique). A folder holding another run's results is refused unless --overwrite.",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        default=argparse.SUPPRESS,
        help="delete the results and checkpoints of the run already in --output-dir first "
        "(other files there are kept).",
    )
    parser.add_argument(
        "--compile-cache",
        metavar="DIR",
        type=parse_path,
        default=argparse.SUPPRESS,
        help="persistent XLA compilation cache folder: a later run of the same config and "
        "seed count loads the compiled program instead of compiling (default: off, or "
        "$JAX_COMPILATION_CACHE_DIR).",
    )
    parser.add_argument(
        "--max-runs-per-device",
        metavar="N|auto|none",
        type=parse_max_runs,
        default=argparse.SUPPRESS,
        help="cap on runs (seeds x settings) per device per compiled call; more run as "
        "sequential batches of one program. auto: on CPU 8, fewer for runs over 25 MB "
        "(aggregate throughput falls past that), memory only on accelerators; none: memory "
        "only (default: auto).",
    )
    parser.add_argument(
        "--layout-independent",
        action="store_true",
        default=argparse.SUPPRESS,
        help="run one seed per device per compiled call (--max-runs-per-device 1), so that "
        "each seed's result is exactly its single-run result for any number of devices and "
        "seeds on the same kind of machine; otherwise the layout changes float rounding, "
        "which RL amplifies (throughput cost: benchmarks/README.md).",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors.")
    hosts = parser.add_argument_group(
        "multiple hosts",
        "Run one process per host (or per GPU) with the same command; they join through "
        "jax.distributed.initialize, each trains its shard, process 0 writes the results.",
    )
    hosts.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run whose layout JAX detects (SLURM, or "
        "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID).",
    )
    hosts.add_argument(
        "--coordinator-address",
        metavar="HOST:PORT",
        default=None,
        help="address of process 0's coordinator (implies --distributed).",
    )
    hosts.add_argument("--num-processes", metavar="N", type=parse_int, default=None)
    hosts.add_argument("--process-id", metavar="I", type=parse_int, default=None)


def _add_train_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        prog=PROG,  # so errors read "purejaxdqn: error: ..."
        allow_abbrev=False,  # a prefix must not silently match a field added later
        usage=f"{PROG} train [--env ID] [--preset NAME] [--num-seeds N] [--OPTION VALUE ...]",
        help="train DQN on one environment over several seeds",
        description=(
            "Train DQN on one environment over --num-seeds seeds in one compiled program, "
            "then write config.json, metrics.csv, evals.csv and summary.json to --output-dir. "
            "Boolean options take true/false; alone (e.g. --double-q) they mean true. "
            "Optional numbers take 'none'."
        ),
    )
    _add_run_options(parser, "trained at once")
    keep = parser.add_argument_group(
        "watch and keep the run",
        "The run goes in compiled chunks of one log period each, with identical results; "
        "between chunks the progress line, TensorBoard and checkpoints are written. "
        "SIGINT/SIGTERM stop the run after the current chunk with a checkpoint saved.",
    )
    keep.add_argument(
        "--tensorboard",
        metavar="DIR",
        type=parse_path,
        default=argparse.SUPPRESS,
        help="write TensorBoard scalars (IQM/mean/min/max across seeds of training and "
        "eval return, loss, Q, epsilon, steps/s) to DIR; needs purejaxdqn[tensorboard].",
    )
    keep.add_argument(
        "--tensorboard-per-seed",
        action="store_true",
        default=argparse.SUPPRESS,
        help="also write each seed's return, loss and eval return.",
    )
    keep.add_argument(
        "--checkpoint-every",
        metavar="N",
        type=parse_positive_int,
        default=argparse.SUPPRESS,
        help="save a checkpoint (every seed's full runner state) every N log points and at "
        "the end, in OUTPUT_DIR/checkpoints (default: only when stopped by a signal).",
    )
    keep.add_argument(
        "--keep-checkpoints",
        metavar="N",
        type=parse_positive_int,
        default=argparse.SUPPRESS,
        help="how many of the latest checkpoints to keep (default: 3).",
    )
    keep.add_argument(
        "--resume",
        metavar="RUN_DIR",
        type=parse_path,
        default=None,
        help="continue the run in RUN_DIR from its newest intact checkpoint, with its "
        "config, seeds, folder, device layout and run options (--checkpoint-every, "
        "--tensorboard, ...: give one to change it); it ends bit for bit where an "
        "uninterrupted run would. A finished run is left as it is.",
    )
    keep.add_argument(
        "--stop-when-solved",
        action="store_true",
        default=argparse.SUPPRESS,
        help="end the run once every seed's greedy evaluation has reached "
        "--solved-threshold (the preset's by default).",
    )
    _add_config_options(parser)
    parser.set_defaults(handler=_train, parser=parser)


def _add_sweep_command(subparsers: Any) -> None:
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
    _add_run_options(parser, "per setting")
    parser.add_argument(
        "--num-samples",
        metavar="N",
        type=parse_positive_int,
        default=None,
        help="random search: N settings sampled from the ranges and lists given (drawn "
        "with --seed).",
    )
    _add_config_options(parser, sweepable=True)
    parser.set_defaults(handler=_sweep, parser=parser)


def config_from_args(args: argparse.Namespace) -> DQNConfig:
    """The `DQNConfig` a parsed `train` or `sweep` command asks for (see `start_config`)."""
    return start_config(args)[0]


def start_config(args: argparse.Namespace) -> tuple[DQNConfig, list[str]]:
    """The `DQNConfig` a parsed `train` or `sweep` command asks for, and what was adapted.

    It starts from the preset (`--preset`, else the one for `--env`, see
    `presets.describe_start`) and applies the options given (in `sweep`, traced
    hyperparameters given one value each). Fields the user did not give are adapted where
    the options given make the preset's values invalid (`presets.adapt`: the nearest valid
    total, a compatible eval_every, ...); the notes say what changed and why. Options that
    contradict each other stay errors.

    Raises:
        ValueError: unknown environment or preset (checked first), or a value `DQNConfig`
            rejects (the message names the field).
    """
    swept = sweep_space_from_args(args)
    given = {
        name: value[0] if isinstance(value, list) else value
        for name, value in vars(args).items()
        if name not in swept
    }
    env_id = given.get("env")
    if env_id is not None:
        check_env_id(env_id)  # before any check computed from the wrong preset
    preset = given.get("preset")
    base = config_for(env_id or DEFAULT_ENV) if preset is None else get_preset(preset)
    changes = {f.name: given[f.name] for f in dataclasses.fields(DQNConfig) if f.name in given}
    if env_id is not None:
        changes["env_id"] = env_id
    if is_bridged(changes.get("env_id", base.env_id)) and "env_seed" not in given:
        changes["env_seed"] = given.get("seed", 0)  # --seed moves the simulators too
    return adapt(base, changes)


def sweep_space_from_args(args: argparse.Namespace) -> dict[str, list[float] | sweep.Range]:
    """The traced hyperparameters a `sweep` command varies: lists of 2+ values and ranges."""
    return {
        name: value
        for name, value in vars(args).items()
        if isinstance(value, sweep.Range) or (isinstance(value, list) and len(value) > 1)
    }


def config_diff(config: DQNConfig, reference: DQNConfig | None = None) -> dict[str, Any]:
    """Fields of `config` that differ from `reference` (default: the `DQNConfig` defaults)."""
    reference = DQNConfig() if reference is None else reference
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(DQNConfig)
        if getattr(config, f.name) != getattr(reference, f.name)
    }


def default_output_dir(env_id: str, now: datetime | None = None) -> Path:
    """`runs/<env>-<YYYYmmdd-HHMMSS>`."""
    now = datetime.now() if now is None else now
    return Path("runs") / f"{env_id}-{now:%Y%m%d-%H%M%S}"


def _name_option(message: str) -> str:
    """Prefix "argument --option: " when `message` starts with "<field>=" (as config errors do)."""
    name = message.split("=", 1)[0]
    options = {f.name: option_name(f.name) for f in dataclasses.fields(DQNConfig)}
    options.update(env_id="--env", preset="--preset")
    if "=" in message and name in options:
        return f"argument {options[name]}: {message}"
    return message


def _join_processes(args: argparse.Namespace) -> None:
    """Join a multi-process run when asked (--distributed or --coordinator-address)."""
    if args.distributed or args.coordinator_address is not None:
        try:
            initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
        except ValueError as error:
            raise CommandError(str(error)) from error
    elif args.num_processes is not None or args.process_id is not None:
        raise CommandError(
            "--num-processes and --process-id need --coordinator-address (or --distributed)"
        )


def _silent(message: str) -> None:
    """The `say` of a quiet process."""


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    """Print a message, unless --quiet or this is not process 0."""
    if args.quiet or jax.process_index() != 0:
        return _silent

    def say(message: str) -> None:
        print(message, flush=True)

    return say


def _start(
    args: argparse.Namespace,
    config: DQNConfig | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[DQNConfig, Callable[[str], None]]:
    """Join a multi-process run if asked, build and check the config, print its diff.

    Returns the config (`config` if given, else the one the options ask for) and the `say`
    function (silent with --quiet and in every process but process 0).
    """
    _join_processes(args)
    say = _say(args)
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
            say(f"starting from {describe_start(getattr(args, 'preset', None) or config.env_id)}")
        if not built_before(config):  # a cached program was built from a checked config
            make_train(config)  # environment checks (unknown id, action space)
    except ImportError as error:  # a bridged env whose optional extra is missing
        raise CommandError(str(error)) from error
    except ValueError as error:
        raise CommandError(_name_option(str(error))) from error
    for note in notes:
        print(f"adapted to the options given: {note}", file=sys.stderr)

    diff = config_diff(config)
    say("config (differences from DQNConfig defaults):")
    width = max((len(name) for name in diff), default=0)
    for name, value in diff.items():
        say(f"  {name:<{width}}  {_show(value)}")
    if not diff:
        say("  (none)")
    return config, say


# Run-level options: how a run is watched and laid out, not what it computes. A run's
# config.json keeps them (`run_options`), so `--resume` runs on as the run started unless
# one is given again. Their parsers default to SUPPRESS, so `args` has only those given.
RUN_OPTION_DEFAULTS: dict[str, Any] = {
    "checkpoint_every": None,
    "keep_checkpoints": 3,
    "tensorboard": None,
    "tensorboard_per_seed": False,
    "stop_when_solved": False,
    "max_runs_per_device": "auto",
    "layout_independent": False,
    "compile_cache": None,
}
_RESUME_KEEPS = ("env", "preset", "num_seeds", "seed", "output_dir", "overwrite")

EXIT_DIVERGED = 3  # results written; at least one seed's loss, Q-values or parameters went NaN/inf
EXIT_NOT_WRITTEN = 4  # some result files could not be written (disk full, permissions)


def run_options(args: argparse.Namespace, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run-level options of a command: those given, else `stored` (a resumed run's),
    else the defaults; paths as strings (JSON-ready).
    """
    stored = stored or {}
    options = {}
    for name, default in RUN_OPTION_DEFAULTS.items():
        value = getattr(args, name, stored.get(name, default))
        options[name] = str(value) if isinstance(value, Path) else value
    return options


def _max_runs(options: dict[str, Any]) -> int | str | None:
    return 1 if options["layout_independent"] else options["max_runs_per_device"]


def _claim(folder: Path, **kwargs: Any) -> Any:
    """`rundir.RunFolder(folder, ...)` in process 0 (the one that writes), else nothing."""
    if jax.process_index() != 0:
        return contextlib.nullcontext()
    return RunFolder(folder, **kwargs)


def _guarded(run: Callable[[argparse.Namespace, SignalGuard], int], args: Any, what: str) -> int:
    """`run(args, guard)` under a `SignalGuard` that stops at once until `run` starts
    computing (it calls `guard.defer`); such a stop exits 128 + the signal, saying so.
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


def _train(args: argparse.Namespace) -> int:
    return _guarded(_resume if args.resume is not None else _new_run, args, "training")


def _new_run(args: argparse.Namespace, guard: SignalGuard) -> int:
    options = run_options(args)
    config, say = _start(args, options=options)
    num_seeds, seed = getattr(args, "num_seeds", 1), getattr(args, "seed", 0)
    output_dir = getattr(args, "output_dir", None) or unique_folder(
        default_output_dir(config.env_id)
    )
    _check_watch_options(options, config)
    overwrite = getattr(args, "overwrite", False)
    with _claim(output_dir, overwrite=overwrite, what="--output-dir") as folder:
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
    config_names = {f.name for f in dataclasses.fields(DQNConfig)}
    given = sorted(name for name in vars(args) if name in config_names or name in _RESUME_KEEPS)
    if given:
        raise CommandError(
            f"--resume takes the config, seeds and folder from RUN_DIR; drop "
            f"{', '.join(option_name(name) for name in given)}"
        )
    folder_path = args.resume
    with _claim(folder_path, resume=True, what="--resume") as folder:
        try:
            record = read_record(folder_path)
        except (OSError, ValueError) as error:
            raise CommandError(f"--resume {folder_path}: {error}") from error
        finished = finished_run(folder_path, record)
        if finished is not None:
            _say(args)(f"{folder_path}: {finished}; nothing to do (its results are unchanged)")
            return 0
        options = run_options(args, record.options)
        config, say = _start(args, record.config, options)
        _check_watch_options(options, config)
        program, _ = lazy_program(config)
        try:
            point = checkpoint.restore(
                folder_path,
                state_shapes(program, config.hparams()),
                expected=checkpoint.identity(record.run_id, config, record.num_seeds, record.seed),
            )
        except ValueError as error:
            raise CommandError(f"--resume {folder_path}: {error}") from error
        for line in point.skipped:
            print(f"warning: {line}; skipped", file=sys.stderr)
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


def _check_watch_options(options: dict[str, Any], config: DQNConfig) -> None:
    """Option combinations a run cannot honour, before anything compiles."""
    threshold = config.solved_threshold
    if options["stop_when_solved"] and (threshold is None or not config.num_evals):
        raise CommandError(
            "--stop-when-solved needs --solved-threshold (this config has "
            f"{threshold}) and greedy evaluation (--eval-every > 0; it is {config.eval_every})"
        )
    if is_bridged(config.env_id) and options["checkpoint_every"]:
        raise CommandError(
            f"--checkpoint-every and --resume are not available for {config.env_id}: a "
            "bridged simulator's state lives outside JAX and cannot be checkpointed"
        )
    if jax.process_count() > 1 and (options["checkpoint_every"] or options["tensorboard"]):
        raise CommandError(
            "--checkpoint-every, --resume and --tensorboard run in a single process only"
        )
    if options["tensorboard"] is not None:
        try:
            prepare_folder(options["tensorboard"], "TensorBoard folder")
        except ValueError as error:
            raise CommandError(f"argument --tensorboard: {error}") from error


def _monitor(
    options: dict[str, Any],
    config: DQNConfig,
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
    if jax.process_count() == 1 and not is_bridged(config.env_id):
        checkpointer = Checkpointer(output_dir, run_identity, keep=options["keep_checkpoints"])
    return Monitor(
        progress=progress,
        tensorboard=writer,
        checkpointer=checkpointer,
        checkpoint_every=options["checkpoint_every"],
        stop_threshold=config.solved_threshold if options["stop_when_solved"] else None,
        guard=guard,
    )


def _run(
    say: Callable[[str], None],
    config: DQNConfig,
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
    monitor = _monitor(options, config, identity, output_dir, guard, quiet=say is _silent)
    layout = (point.manifest.get("layout") or {}) if point is not None else {}
    if layout.get("device_kind") not in (None, jax.devices()[0].device_kind):
        print(
            f"warning: the run began on {layout['device_kind']} devices and continues on "
            f"{jax.devices()[0].device_kind}: its results will differ in rounding from an "
            "uninterrupted run",
            file=sys.stderr,
        )
    try:
        experiment = run_experiment(
            config,
            num_seeds,
            seed,
            max_runs_per_device=_max_runs(options),
            progress=say,
            on_chunk=monitor,
            on_start=guard.defer,
            resume=None if point is None else point.resume,
            runs_per_device=layout.get("runs_per_device"),
            num_devices=layout.get("num_devices"),
            run_id=run_id,
        )
    except ValueError as error:  # environment checks, the memory preflight, the layout
        raise CommandError(_name_option(str(error))) from error
    except KeyboardInterrupt:
        where = monitor.last_checkpoint or "none"
        print(
            f"interrupted at once by a second signal; latest checkpoint: {where}",
            file=sys.stderr,
        )
        return 128 + signal.SIGINT
    finally:
        monitor.close()
    experiment.summary["stop_reason"] = monitor.stop_reason
    status = 0
    if jax.process_index() == 0:
        try:
            folder = write_run(experiment, output_dir)
        except ResultsNotWritten as error:
            print(f"{PROG}: error: {error}", file=sys.stderr)
            status = EXIT_NOT_WRITTEN
        else:
            say("")
            say(format_summary(experiment.summary))
            say(f"results written to {folder}")
    if monitor.checkpoint_error is not None:
        print(f"warning: {monitor.checkpoint_error}", file=sys.stderr)
    if monitor.last_checkpoint is not None:
        say(f"checkpoint: {monitor.last_checkpoint}")
    if monitor.stop_reason == "solved":
        say(
            f"every seed solved the task; stopped at {experiment.summary['env_steps_done']:,} "
            "env steps"
        )
    elif monitor.stop_reason is not None:
        how = (
            f"continue with: {PROG} train --resume {output_dir}"
            if monitor.last_checkpoint is not None
            else "no checkpoint (bridged simulators cannot be resumed)"
            if is_bridged(config.env_id)
            else "no checkpoint could be written"
        )
        steps = experiment.summary["env_steps_done"]
        print(f"stopped by {monitor.stop_reason} at {steps:,} env steps; {how}", file=sys.stderr)
        return 128 + int(guard.received or 0)
    if status == 0 and experiment.summary.get("num_diverged"):
        print(
            f"{PROG}: {format_diverged(experiment.summary)}; exit status {EXIT_DIVERGED}",
            file=sys.stderr,
        )
        status = EXIT_DIVERGED
    return status


def _sweep(args: argparse.Namespace) -> int:
    return _guarded(_run_sweep, args, "the sweep")


def _run_sweep(args: argparse.Namespace, guard: SignalGuard) -> int:
    options = run_options(args)
    config, say = _start(args, options=options)
    space = sweep_space_from_args(args)
    try:
        if args.num_samples is not None:
            settings = sweep.sample(space, args.num_samples, seed=getattr(args, "seed", 0))
        else:
            ranges = [name for name, value in space.items() if isinstance(value, sweep.Range)]
            if ranges:
                raise ValueError(
                    f"{ranges[0]} is given a LO:HI range, which needs --num-samples N "
                    "(random search); give a comma list for a grid"
                )
            settings = sweep.grid(space)
    except ValueError as error:
        raise CommandError(_name_option(str(error))) from error
    num_seeds, seed = getattr(args, "num_seeds", 1), getattr(args, "seed", 0)
    output_dir = getattr(args, "output_dir", None) or unique_folder(
        default_output_dir(f"sweep-{config.env_id}")
    )
    overwrite = getattr(args, "overwrite", False)
    with _claim(output_dir, overwrite=overwrite, what="--output-dir") as folder:
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
                max_runs_per_device=_max_runs(options),
                progress=say,
                on_chunk=monitor,
                on_start=guard.defer,
            )
        except ValueError as error:
            raise CommandError(_name_option(str(error))) from error
        except Interrupted:
            if folder is not None:
                folder.discard()
            raise
        finally:
            if display is not None:
                display.close()
        if jax.process_index() == 0:
            try:
                sweep.write_sweep(result, output_dir)
            except ResultsNotWritten as error:
                print(f"{PROG}: error: {error}", file=sys.stderr)
                return EXIT_NOT_WRITTEN
            say("")
            say(sweep.format_ranking(result.ranking))
            say(
                f"compile {result.compile_seconds:.1f} s, run {result.run_seconds:.1f} s; "
                f"results written to {output_dir}"
            )
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


# --- entry point ----------------------------------------------------------------------------


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
    _add_train_command(subparsers)
    _add_sweep_command(subparsers)
    policy.add_eval_command(subparsers)
    policy.add_render_command(subparsers)
    plot.add_plot_command(subparsers)
    return parser


_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-inf(inity)?$", re.IGNORECASE)


def join_negative_values(argv: Sequence[str]) -> list[str]:
    """`--option -1e-3` as `--option=-1e-3`: argparse reads a value that starts with '-' and
    is not a plain number (an exponent, -inf) as an option, not as the option's value.
    """
    joined: list[str] = []
    for token in argv:
        previous = joined[-1] if joined else ""
        if _NUMBER.match(token) and previous.startswith("--") and "=" not in previous:
            joined[-1] = f"{previous}={token}"
        else:
            joined.append(token)
    return joined


def _unknown(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """The error for arguments `parser` does not know, with the closest option for each."""
    known = [o for action in parser._actions for o in action.option_strings]
    hints = []
    for extra in extras:
        name = extra.split("=", 1)[0]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if name.startswith("-") and close:
            hints.append(f"{name} (did you mean {close[0]}?)")
        else:
            hints.append(extra)
    return f"unrecognized arguments: {' '.join(hints)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `purejaxdqn` command line; returns the exit status.

    User errors (bad option values, unknown environment or preset, values `DQNConfig`
    rejects) print `purejaxdqn: error: <message>` and exit with status 2, before anything
    compiles. Exit statuses: 0 done; 2 bad input; 3 results written but a seed diverged
    (NaN/inf); 4 some result files could not be written; 128 + N stopped by signal N.
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
        args.parser.error(_unknown(args.parser, extras))
    try:
        return args.handler(args)
    except CommandError as error:
        args.parser.error(str(error))  # prints usage and the message, exits with status 2
    return 2  # unreachable: parser.error exits


if __name__ == "__main__":
    sys.exit(main())
