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
import dataclasses
import json
import sys
import types
import typing
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jax

from purejaxdqn import checkpoint, plot, policy, sweep
from purejaxdqn.bridge import is_bridged
from purejaxdqn.checkpoint import Checkpointer
from purejaxdqn.config import DQNConfig, HParams, read_run_config, write_run_config
from purejaxdqn.devices import initialize_distributed, use_all_cpu_cores
from purejaxdqn.experiment import (
    built_before,
    enable_compile_cache,
    format_summary,
    lazy_program,
    run_experiment,
    write_run,
)
from purejaxdqn.monitor import Monitor, ProgressDisplay, SignalGuard
from purejaxdqn.parallel import state_shapes
from purejaxdqn.presets import PRESETS, config_for, get_preset
from purejaxdqn.tensorboard import TensorBoardWriter
from purejaxdqn.train import make_train

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
        type=parse_int,
        default=argparse.SUPPRESS,
        help="base seed; seed i uses jax.random.split(jax.random.key(seed), N)[i] (default: 0).",
    )
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        type=Path,
        default=None,
        help="results folder (default: runs/<env>-<YYYYmmdd-HHMMSS>).",
    )
    parser.add_argument(
        "--compile-cache",
        metavar="DIR",
        type=Path,
        default=None,
        help="persistent XLA compilation cache folder: a later run of the same config and "
        "seed count loads the compiled program instead of compiling (default: off, or "
        "$JAX_COMPILATION_CACHE_DIR).",
    )
    parser.add_argument(
        "--max-runs-per-device",
        metavar="N|auto|none",
        type=parse_max_runs,
        default="auto",
        help="cap on runs (seeds x settings) per device per compiled call; more run as "
        "sequential batches of one program. auto: on CPU 8, fewer for runs over 25 MB "
        "(aggregate throughput falls past that), memory only on accelerators; none: memory "
        "only (default: auto).",
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
        type=Path,
        default=None,
        help="write TensorBoard scalars (IQM/mean/min/max across seeds of training and "
        "eval return, loss, Q, epsilon, steps/s) to DIR; needs purejaxdqn[tensorboard].",
    )
    keep.add_argument(
        "--tensorboard-per-seed",
        action="store_true",
        help="also write each seed's return, loss and eval return.",
    )
    keep.add_argument(
        "--checkpoint-every",
        metavar="N",
        type=parse_num_seeds,
        default=None,
        help="save a checkpoint (every seed's full runner state) every N log points and at "
        "the end, in OUTPUT_DIR/checkpoints (default: only when stopped by a signal).",
    )
    keep.add_argument(
        "--keep-checkpoints",
        metavar="N",
        type=parse_num_seeds,
        default=3,
        help="how many of the latest checkpoints to keep (default: 3).",
    )
    keep.add_argument(
        "--resume",
        metavar="RUN_DIR",
        type=Path,
        default=None,
        help="continue the run in RUN_DIR from its latest checkpoint, with its config, "
        "seeds and folder; it ends bit for bit where an uninterrupted run would.",
    )
    keep.add_argument(
        "--stop-when-solved",
        action="store_true",
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
        type=parse_num_seeds,
        default=None,
        help="random search: N settings sampled from the ranges and lists given (drawn "
        "with --seed).",
    )
    _add_config_options(parser, sweepable=True)
    parser.set_defaults(handler=_sweep, parser=parser)


def config_from_args(args: argparse.Namespace) -> DQNConfig:
    """The `DQNConfig` a parsed `train` or `sweep` command asks for: its preset plus the
    options given (in `sweep`, traced hyperparameters given one value each).

    Raises:
        ValueError: unknown preset, or a value `DQNConfig` rejects (message names the field).
    """
    swept = sweep_space_from_args(args)
    given = {
        name: value[0] if isinstance(value, list) else value
        for name, value in vars(args).items()
        if name not in swept
    }
    env_id = given.get("env")
    preset = given.get("preset")
    if preset is None:
        preset = env_id or DEFAULT_ENV
        base = config_for(preset)
    else:
        base = get_preset(preset)
    changes = {f.name: given[f.name] for f in dataclasses.fields(DQNConfig) if f.name in given}
    if env_id is not None:
        changes["env_id"] = env_id
    if is_bridged(changes.get("env_id", base.env_id)) and "env_seed" not in given:
        changes["env_seed"] = given.get("seed", 0)  # --seed moves the simulators too
    return base.replace(**changes)


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


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    """Print a message, unless --quiet or this is not process 0."""

    def say(message: str) -> None:
        if not args.quiet and jax.process_index() == 0:
            print(message, flush=True)

    return say


def _start(
    args: argparse.Namespace, config: DQNConfig | None = None
) -> tuple[DQNConfig, Callable[[str], None]]:
    """Join a multi-process run if asked, build and check the config, print its diff.

    Returns the config (`config` if given, else the one the options ask for) and the `say`
    function (silent with --quiet and in every process but process 0).
    """
    _join_processes(args)
    say = _say(args)
    if args.compile_cache is not None:
        enable_compile_cache(args.compile_cache)
    try:
        config = config_from_args(args) if config is None else config
        if not built_before(config):  # a cached program was built from a checked config
            make_train(config)  # environment checks (unknown id, action space)
    except ImportError as error:  # a bridged env whose optional extra is missing
        raise CommandError(str(error)) from error
    except ValueError as error:
        raise CommandError(_name_option(str(error))) from error

    diff = config_diff(config)
    say("config (differences from DQNConfig defaults):")
    width = max((len(name) for name in diff), default=0)
    for name, value in diff.items():
        say(f"  {name:<{width}}  {_show(value)}")
    if not diff:
        say("  (none)")
    return config, say


_RESUME_KEEPS = ("env", "preset", "num_seeds", "seed")  # present in args only when given


def _resume_point(args: argparse.Namespace) -> tuple[DQNConfig, int, int, Any]:
    """The config, seeds and `parallel.Resume` of `--resume RUN_DIR`."""
    config_names = {f.name for f in dataclasses.fields(DQNConfig)}
    given = sorted(name for name in vars(args) if name in config_names or name in _RESUME_KEEPS)
    given += ["output_dir"] if args.output_dir is not None else []
    if given:
        raise CommandError(
            f"--resume takes the config, seeds and folder from RUN_DIR; drop "
            f"{', '.join(option_name(name) for name in given)}"
        )
    try:
        config, num_seeds, seed = read_run_config(args.resume)
    except (OSError, ValueError) as error:
        raise CommandError(f"--resume {args.resume}: {error}") from error
    program, _ = lazy_program(config)
    try:
        point = checkpoint.restore(args.resume, state_shapes(program, config.hparams()))
    except ValueError as error:
        raise CommandError(f"--resume {args.resume}: {error}") from error
    return config, num_seeds, seed, point


def _monitor(
    args: argparse.Namespace,
    config: DQNConfig,
    num_seeds: int,
    seed: int,
    output_dir: Path,
    guard: SignalGuard,
) -> Monitor:
    """The `Monitor` the train options ask for (progress, TensorBoard, checkpoints)."""
    threshold = config.solved_threshold
    if args.stop_when_solved and (threshold is None or not config.num_evals):
        raise CommandError(
            "--stop-when-solved needs --solved-threshold (this config has "
            f"{threshold}) and greedy evaluation (--eval-every > 0; it is {config.eval_every})"
        )
    single = jax.process_count() == 1
    bridged = is_bridged(config.env_id)
    if bridged and (args.checkpoint_every or args.resume):
        raise CommandError(
            f"--checkpoint-every and --resume are not available for {config.env_id}: a "
            "bridged simulator's state lives outside JAX and cannot be checkpointed"
        )
    if not single and (args.checkpoint_every or args.resume or args.tensorboard):
        raise CommandError(
            "--checkpoint-every, --resume and --tensorboard run in a single process only"
        )
    writer = None
    if args.tensorboard is not None:
        try:
            writer = TensorBoardWriter(args.tensorboard, per_seed=args.tensorboard_per_seed)
        except ImportError as error:
            raise CommandError(str(error)) from error
        writer.write_text("config", json.dumps(config.to_dict(), indent=2))
    progress = None
    if not args.quiet and jax.process_index() == 0:
        progress = ProgressDisplay(config.env_id, config.total_timesteps)
    return Monitor(
        progress=progress,
        tensorboard=writer,
        checkpointer=(
            Checkpointer(output_dir, config, num_seeds, seed, keep=args.keep_checkpoints)
            if single and not bridged
            else None
        ),
        checkpoint_every=args.checkpoint_every,
        stop_threshold=threshold if args.stop_when_solved else None,
        guard=guard,
    )


def _train(args: argparse.Namespace) -> int:
    resume = None
    if args.resume is not None:
        config, num_seeds, seed, point = _resume_point(args)
        config, say = _start(args, config)
        output_dir, resume = args.resume, point.resume
        say(f"resuming {output_dir} from {point.path} ({resume.periods_done} log points done)")
    else:
        config, say = _start(args)
        num_seeds, seed = getattr(args, "num_seeds", 1), getattr(args, "seed", 0)
        output_dir = args.output_dir or default_output_dir(config.env_id)
    with SignalGuard() as guard:
        monitor = _monitor(args, config, num_seeds, seed, output_dir, guard)
        if jax.process_index() == 0:
            write_run_config(output_dir, config, num_seeds, seed)  # a killed run can resume
        try:
            experiment = run_experiment(
                config,
                num_seeds,
                seed,
                max_runs_per_device=args.max_runs_per_device,
                progress=say,
                on_chunk=monitor,
                resume=resume,
            )
        except ValueError as error:  # environment checks, the memory preflight
            raise CommandError(_name_option(str(error))) from error
        finally:
            monitor.close()
    if jax.process_index() == 0:
        folder = write_run(experiment, output_dir)
        say("")
        say(format_summary(experiment.summary))
        say(f"results written to {folder}")
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
        )
        steps = experiment.summary["env_steps_done"]
        print(f"stopped by {monitor.stop_reason} at {steps:,} env steps; {how}", file=sys.stderr)
        return 128 + int(guard.received or 0)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    config, say = _start(args)
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
        num_seeds, seed = getattr(args, "num_seeds", 1), getattr(args, "seed", 0)
        say(f"{len(settings)} setting(s) x {num_seeds} seed(s)")
        display = None
        if not args.quiet and jax.process_index() == 0:
            display = ProgressDisplay(f"sweep {config.env_id}", config.total_timesteps)
        try:
            result = sweep.run(
                config,
                settings,
                num_seeds,
                seed,
                max_runs_per_device=args.max_runs_per_device,
                progress=say,
                on_chunk=None if display is None else Monitor(progress=display),
            )
        finally:
            if display is not None:
                display.close()
    except ValueError as error:
        raise CommandError(_name_option(str(error))) from error
    output_dir = args.output_dir or default_output_dir(f"sweep-{config.env_id}")
    if jax.process_index() == 0:
        folder = sweep.write_sweep(result, output_dir)
        say("")
        say(sweep.format_ranking(result.ranking))
        say(
            f"compile {result.compile_seconds:.1f} s, run {result.run_seconds:.1f} s; "
            f"results written to {folder}"
        )
    return 0


# --- entry point ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The `purejaxdqn` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Vectorized, high-throughput Deep Q-Networks in JAX.",
    )
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    subparsers.required = True
    _add_train_command(subparsers)
    _add_sweep_command(subparsers)
    policy.add_eval_command(subparsers)
    policy.add_render_command(subparsers)
    plot.add_plot_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `purejaxdqn` command line; returns the exit status.

    User errors (bad option values, unknown environment or preset, values `DQNConfig`
    rejects) print `purejaxdqn: error: <message>` and exit with status 2, before anything
    compiles.
    """
    parser = build_parser()
    if argv is None:  # the real command line: this process is ours, use every core
        use_all_cpu_cores()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except CommandError as error:
        args.parser.error(str(error))  # prints usage and the message, exits with status 2
    return 2  # unreachable: parser.error exits


if __name__ == "__main__":
    sys.exit(main())
