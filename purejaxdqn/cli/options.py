"""The options of `train` and `sweep`: how they are declared, parsed and checked.

- value parsers (`parse_int`, `parse_bool`, ...): each raises `argparse.ArgumentTypeError`,
  which argparse reports for the option;
- the config options, one per field of the chosen algorithm's config (`--algo`: `DQNConfig`
  or `PQNConfig`, see `purejaxdqn.algorithms`), generated from the dataclass (its type
  annotations and `metadata["doc"]`) so the two never drift apart, and the config they ask
  for (`start_config`);
- the run options (environment, seeds, output, layout, hosts, and how a run is watched and
  kept), with the checks of option combinations next to the options they concern.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

from purejaxdqn import algorithms
from purejaxdqn.algorithms import ALGORITHMS, DEFAULT_ALGO
from purejaxdqn.checks import check_int
from purejaxdqn.core import rng
from purejaxdqn.core.config import ConfigBase, DQNConfig
from purejaxdqn.core.pqn_presets import PQN_PRESETS
from purejaxdqn.core.presets import PRESETS, RAINBOW
from purejaxdqn.envs.spec import check_env_id
from purejaxdqn.outputs.rundir import prepare_folder
from purejaxdqn.run import sweep

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


def _checked_int(name: str, text: str, minimum: int, allowed: str | None = None) -> int:
    """`text` parsed as an integer and checked by `checks.check_int`, its error as argparse's."""
    value = parse_int(text)
    try:
        check_int(name, value, minimum, allowed=allowed)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value


def positive_int(name: str) -> Callable[[str], int]:
    """The parser of option `name`'s value, an integer >= 1; its message names `name`."""

    def parse_positive_int(text: str) -> int:
        return _checked_int(name, text, 1)

    parse_positive_int.__name__ = f"parse_{name}"
    return parse_positive_int


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
    return _checked_int("max_runs_per_device", text, 1, allowed="an integer >= 1, auto or none")


def parse_algo(text: str) -> str:
    """An algorithm name, a key of `algorithms.ALGORITHMS` (dqn, pqn)."""
    try:
        return algorithms.config_class(text).ALGO
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


# --- the config options: one per field of the algorithm's config ---------------------------

_PARSERS: dict[Any, tuple[Callable[[str], Any], str]] = {
    bool: (parse_bool, "{true,false}"),
    int: (parse_int, "INT"),
    float: (parse_float, "FLOAT"),
    str: (str, "STR"),
    tuple[int, ...]: (parse_int_tuple, "INT,INT,..."),
}


def _value_parser(name: str, annotation: Any) -> tuple[Callable[[str], Any], str]:
    """The parse function and metavar for a config field's type annotation (`name` is the
    field's qualified name, e.g. `DQNConfig.gamma`, for the error).
    """
    args = typing.get_args(annotation)
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    if is_union and type(None) in args and len(args) == 2:
        inner = next(a for a in args if a is not type(None))
        parse, metavar = _value_parser(name, inner)
        return optional(parse), f"{metavar}|none"
    if annotation in _PARSERS:
        return _PARSERS[annotation]
    raise TypeError(f"no command-line parser for {name}: {annotation!r}")


def show_value(value: Any) -> str:
    """A value as it would be typed on the command line (None as 'none', tuples as 1,2)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def option_name(field_name: str) -> str:
    """The command-line option of a config field: `buffer_size` -> `--buffer-size`."""
    return "--" + field_name.replace("_", "-")


def _config_fields() -> dict[str, str]:
    """The option of every config field of every algorithm (DQN's first, in field order),
    by field name; `env_id` is `--env`.
    """
    options = {}
    for config_type in ALGORITHMS.values():
        for field in dataclasses.fields(config_type):
            options[field.name] = option_name(field.name)
    options["env_id"] = "--env"
    return options


def _single_value(
    name: str, parse: Callable[[str], Any], is_list: bool, sweepable: Sequence[str]
) -> Callable[[str], Any]:
    """`parse` for a static field in `sweep`: a list (unless the field `is_list`, a tuple
    such as `hidden_sizes`) or a range gets a message saying why not and naming the
    `sweepable` fields.
    """

    def parse_static(text: str) -> Any:
        if ":" in text or ("," in text and not is_list):
            raise argparse.ArgumentTypeError(
                f"{name}={text!r} cannot be swept: it is static (it changes the compiled "
                f"program); only traced hyperparameters take lists or ranges: "
                f"{', '.join(sweepable)}"
            )
        return parse(text)

    parse_static.__name__ = parse.__name__
    return parse_static


def _config_group(
    parser: argparse.ArgumentParser, config_type: type[ConfigBase], sweepable: Sequence[str]
) -> argparse._ArgumentGroup:
    """The help group of `config_type`'s options ("DQN options", "PQN options")."""
    name = config_type.__name__
    log_scale = [field for field in sweepable if field in config_type.LOG_SCALE_HPARAMS]
    return parser.add_argument_group(
        f"{config_type.ALGO.upper()} options",
        f"Every {name} field. Only options given override the preset; the defaults shown "
        f"are {name}'s (a preset may differ)."
        + (
            " Traced hyperparameters take V1,V2,... (grid) or LO:HI (sampled with "
            f"--num-samples; log-uniform for {', '.join(log_scale)})."
            if sweepable
            else ""
        ),
    )


def add_config_options(
    parser: argparse.ArgumentParser,
    config_type: type[ConfigBase] = DQNConfig,
    sweepable: bool = False,
) -> None:
    """One option per field of `config_type` (an `algorithms.ALGORITHMS` class) except
    `env_id`, documented from the field metadata; `args.config_class` is `config_type`.

    With `sweepable`, the traced hyperparameters (`config_type.hparam_names`) take lists and
    ranges (`parse_sweep_values`), and the other fields refuse them.
    """
    traced = config_type().hparam_names() if sweepable else ()
    group = _config_group(parser, config_type, traced)
    hints = typing.get_type_hints(config_type)
    for field in dataclasses.fields(config_type):
        if field.name == "env_id":
            continue
        qualified = f"{config_type.__name__}.{field.name}"
        parse, metavar = _value_parser(qualified, hints[field.name])
        is_bool = parse is parse_bool
        if field.name in traced:
            parse, metavar = parse_sweep_values, "V[,V...]|LO:HI"
        elif sweepable:
            parse = _single_value(field.name, parse, "," in metavar, traced)
        doc = field.metadata.get("doc", "").replace("%", "%%")
        kwargs: dict[str, Any] = {
            "dest": field.name,
            "type": parse,
            "metavar": metavar,
            "default": argparse.SUPPRESS,
            "help": f"{doc} (default: {show_value(field.default)})",
        }
        if is_bool:
            kwargs.update(nargs="?", const=True)  # `--double-q` alone means true
        group.add_argument(option_name(field.name), **kwargs)
    parser.set_defaults(config_class=config_type)


def algo_of(args: argparse.Namespace) -> str:
    """The algorithm a parsed command names with `--algo` (default: dqn)."""
    return getattr(args, "algo", DEFAULT_ALGO)


def config_from_args(args: argparse.Namespace) -> ConfigBase:
    """The config a parsed `train` or `sweep` command asks for (see `start_config`)."""
    return start_config(args)[0]


def start_config(args: argparse.Namespace) -> tuple[ConfigBase, list[str]]:
    """The config (of `--algo`'s class) a parsed `train` or `sweep` command asks for, and
    what was adapted.

    It starts from the preset (`--preset`, else the one for `--env`, see
    `algorithms.describe_start`) and applies the options given (in `sweep`, traced
    hyperparameters given one value each). Fields the user did not give are adapted where
    the options given make the preset's values invalid (`algorithms.adapt`: the nearest
    valid total, a compatible eval_every, ...); the notes say what changed and why. Options
    that contradict each other stay errors. A simulator that steps outside JAX (its program
    is not checkpointable) is seeded by `--seed` unless `--env-seed` is given.

    Raises:
        ValueError: unknown environment or preset (checked first), a preset of another
            algorithm, a parser built for another algorithm than `--algo`'s, or a value the
            config rejects (the message names the field).
    """
    algo = algo_of(args)
    if args.config_class is not algorithms.config_class(algo):
        raise ValueError(
            f"algo={algo!r} is not allowed here: the parser's options are "
            f"{args.config_class.__name__}'s; build it with build_parser({algo!r})"
        )
    swept = sweep_space_from_args(args)
    given = {
        name: value[0] if isinstance(value, list) else value
        for name, value in vars(args).items()
        if name not in swept
    }
    env_id = given.get("env")
    if env_id is not None:
        check_env_id(env_id)  # before any check computed from the wrong preset
    base = algorithms.start_for(env_id or DEFAULT_ENV, algo, given.get("preset"))
    changes = {f.name: given[f.name] for f in dataclasses.fields(base) if f.name in given}
    if env_id is not None:
        changes["env_id"] = env_id
    config, notes = algorithms.adapt(base, changes)
    if "env_seed" not in given and not config.program_capabilities().checkpointable:
        config = config.replace(env_seed=given.get("seed", 0))  # --seed moves the simulators
    return config, notes


def sweep_space_from_args(args: argparse.Namespace) -> dict[str, list[float] | sweep.Range]:
    """The traced hyperparameters a `sweep` command varies: lists of 2+ values and ranges."""
    return {
        name: value
        for name, value in vars(args).items()
        if isinstance(value, sweep.Range) or (isinstance(value, list) and len(value) > 1)
    }


def name_option(message: str) -> str:
    """Prefix "argument --option: " when `message` starts with "<field>=" (as config errors do)."""
    name = message.split("=", 1)[0]
    options = {**_config_fields(), "preset": "--preset", "algo": "--algo"}
    if "=" in message and name in options:
        return f"argument {options[name]}: {message}"
    return message


# --- the run options: what is run where, and how it is watched and kept ---------------------

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
# options a resumed run takes from its folder, with the config fields
_RESUME_KEEPS = ("algo", "env", "preset", "num_seeds", "seed", "output_dir", "overwrite")


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


def max_runs(options: dict[str, Any]) -> int | str | None:
    """The `max_runs_per_device` the run options ask for (1 with --layout-independent)."""
    return 1 if options["layout_independent"] else options["max_runs_per_device"]


def add_run_options(parser: argparse.ArgumentParser, what: str, algo: str = DEFAULT_ALGO) -> None:
    """Options shared by `train` and `sweep`: algorithm, environment, seeds, output, devices,
    hosts.

    `what` completes the help of --num-seeds ("seeds trained at once", "seeds per setting");
    `algo` is the algorithm whose presets --preset's help lists.
    """
    _add_start_options(parser, what, algo)
    _add_output_options(parser)
    _add_layout_options(parser)
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors.")
    _add_host_options(parser)


def _preset_help(algo: str) -> str:
    """The help of --preset for the presets of `algo`."""
    if algo != DQNConfig.ALGO:
        return (
            "configuration to start from (default: the PQN preset named by --env if there is "
            "one, the Pong preset for other Atari ids, else the PQNConfig defaults); PQN "
            f"presets: {', '.join(sorted(PQN_PRESETS))}."
        )
    return (
        "configuration to start from (default: the preset named by --env if there is "
        "one, the Pong preset for other Atari ids, else the DQNConfig defaults); "
        f"presets: {', '.join(sorted(PRESETS))}; or '{RAINBOW}': Rainbow (double, dueling, "
        "3-step, prioritized replay, C51, noisy nets) with the settings of --env's Rainbow "
        "preset where it has one (CartPole-v1, Acrobot-v1, LunarLander-v3, the MinAtar "
        "games, Pong and the other Atari games), else Rainbow's generic settings on top of "
        "--env's DQN settings."
    )


def _add_start_options(parser: argparse.ArgumentParser, what: str, algo: str) -> None:
    """--algo, --env, --preset, --num-seeds and --seed: what a run starts from."""
    parser.add_argument(
        "--algo",
        metavar="{" + ",".join(ALGORITHMS) + "}",
        type=parse_algo,
        default=argparse.SUPPRESS,
        help=f"the algorithm (default: {DEFAULT_ALGO}); the config options below are its "
        "config's fields: with --algo pqn, --help lists PQNConfig's.",
    )
    parser.add_argument(
        "--env",
        metavar="ID",
        default=argparse.SUPPRESS,
        help=f"gymnax environment id (default: {DEFAULT_ENV}, or the preset's environment).",
    )
    parser.add_argument(
        "--preset", metavar="NAME", default=argparse.SUPPRESS, help=_preset_help(algo)
    )
    parser.add_argument(
        "--num-seeds",
        metavar="N",
        type=positive_int("num_seeds"),
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


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """--output-dir, --overwrite and --compile-cache: where results and programs go."""
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


def _add_layout_options(parser: argparse.ArgumentParser) -> None:
    """--max-runs-per-device and --layout-independent: how runs are laid out on devices."""
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


def _add_host_options(parser: argparse.ArgumentParser) -> None:
    """The "multiple hosts" group: joining a multi-process run (see `check_host_options`)."""
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


def check_host_options(args: argparse.Namespace) -> bool:
    """Whether the host options ask to join a multi-process run.

    Raises:
        CommandError: --num-processes or --process-id without a way to join.
    """
    if args.distributed or args.coordinator_address is not None:
        return True
    if args.num_processes is not None or args.process_id is not None:
        raise CommandError(
            "--num-processes and --process-id need --coordinator-address (or --distributed)"
        )
    return False


def add_watch_options(parser: argparse.ArgumentParser) -> None:
    """`train`'s "watch and keep the run" group: TensorBoard, checkpoints, --resume and
    --stop-when-solved (see `check_watch_options`, `check_resume_options`).
    """
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
        type=positive_int("checkpoint_every"),
        default=argparse.SUPPRESS,
        help="save a checkpoint (every seed's full runner state) every N log points and at "
        "the end, in OUTPUT_DIR/checkpoints (default: only when stopped by a signal).",
    )
    keep.add_argument(
        "--keep-checkpoints",
        metavar="N",
        type=positive_int("keep_checkpoints"),
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


def check_watch_options(options: dict[str, Any], config: ConfigBase) -> None:
    """Refuse option combinations a run cannot honour, before anything compiles.

    Raises:
        CommandError: --stop-when-solved without a threshold or evaluation; checkpoints of
            a program that cannot be checkpointed (a simulator outside JAX); checkpoints or
            TensorBoard in a multi-process run; a --tensorboard folder that cannot be used.
    """
    threshold = config.solved_threshold
    if options["stop_when_solved"] and (threshold is None or not config.num_evals):
        raise CommandError(
            "--stop-when-solved needs --solved-threshold (this config has "
            f"{threshold}) and greedy evaluation (--eval-every > 0; it is {config.eval_every})"
        )
    if not config.program_capabilities().checkpointable and options["checkpoint_every"]:
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


def check_resume_options(args: argparse.Namespace, extras: Sequence[str] = ()) -> None:
    """Refuse options that --resume takes from the run folder (algorithm, config, seeds,
    folder), among those parsed and, in `extras`, the config options of other algorithms.

    Raises:
        CommandError: naming the options to drop.
    """
    config_names = _config_fields()
    given = sorted(name for name in vars(args) if name in config_names or name in _RESUME_KEEPS)
    typed = [option_name(name) for name in given]
    typed += [name for name in _config_options_in(extras) if name not in typed]
    if typed:
        raise CommandError(
            f"--resume takes the config, seeds and folder from RUN_DIR; drop {', '.join(typed)}"
        )


# --- the command line as a whole -----------------------------------------------------------

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


def requested_algo(argv: Sequence[str]) -> str:
    """The algorithm `--algo` names in `argv` (the last one given), which picks the config
    options the parser declares; the default when it names none or an unknown one (the
    parser, which declares --algo too, then reports it).
    """
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    early.add_argument("--algo", nargs="?", default=DEFAULT_ALGO)
    algo = early.parse_known_args(list(argv))[0].algo
    return algo if algo in ALGORITHMS else DEFAULT_ALGO


def _config_options_in(extras: Sequence[str]) -> list[str]:
    """The options in `extras` that are config options of some algorithm."""
    options = set(_config_fields().values()) - {"--env"}
    return [e.split("=", 1)[0] for e in extras if e.split("=", 1)[0] in options]


def _typed_value(option: str, extras: Sequence[str]) -> str:
    """The value typed for `option` in `extras` (" VALUE"), or "" if there is none."""
    for index, token in enumerate(extras):
        if token.startswith(f"{option}="):
            return " " + token.split("=", 1)[1]
        if token == option:
            after = extras[index + 1] if index + 1 < len(extras) else ""
            return f" {after}" if after and not after.startswith("--") else ""
    return ""


def _other_algorithm_option(args: argparse.Namespace, option: str, extras: Sequence[str]) -> str:
    """The error for `option`, a config option of another algorithm than `args`'."""
    field = option.removeprefix("--").replace("-", "_")
    owners = [
        algo
        for algo, config_type in ALGORITHMS.items()
        if field in {f.name for f in dataclasses.fields(config_type)}
    ]
    algo, config_type = algo_of(args), args.config_class
    default = "" if hasattr(args, "algo") else ", the default"
    return (
        f"argument {option}: {option}{_typed_value(option, extras)} is an option of "
        f"{'/'.join(owner.upper() for owner in owners)}, not of {algo.upper()} "
        f"(--algo {algo}{default}): {config_type.__name__} has no {field}; drop it, or use "
        f"--algo {owners[0]}"
    )


def check_extras(args: argparse.Namespace, extras: list[str]) -> None:
    """Refuse the arguments (if any) the parser of `args` does not know: with --resume, the
    config options of any algorithm (--resume takes the config from the folder); in `train`
    and `sweep`, an option of another algorithm's config, named as such; else each unknown
    argument with the closest option (`unknown_arguments`).

    Raises:
        CommandError: when `extras` is not empty.
    """
    if not extras:
        return
    foreign = _config_options_in(extras)
    if foreign and getattr(args, "resume", None) is not None:
        check_resume_options(args, extras)
    if foreign and hasattr(args, "config_class"):
        raise CommandError(_other_algorithm_option(args, foreign[0], extras))
    raise CommandError(unknown_arguments(args.parser, extras))


def unknown_arguments(parser: argparse.ArgumentParser, extras: list[str]) -> str:
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
