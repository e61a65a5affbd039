"""Learning benchmark: train each preset over many seeds and check it reaches its target.

    python benchmarks/learning.py                          # every preset with a target
    python benchmarks/learning.py --env CartPole-v1        # one preset
    python benchmarks/learning.py --env Acrobot-v1 --num-seeds 4 --seed 1
    python benchmarks/learning.py --env Freeway-MinAtar --total-timesteps 2000000
    python benchmarks/learning.py --preset rainbow --env Breakout-MinAtar --num-seeds 2
    python benchmarks/learning.py --preset rainbow --without noisy --env Breakout-MinAtar

For every environment it trains `purejaxdqn.PRESETS[env]` on N seeds in one compiled
program (`purejaxdqn.experiment.run_experiment`, seeds sharded over one CPU device per
core and run in batches as the `purejaxdqn` command does), prints one table row (IQM and mean of
the final greedy evaluation return across seeds, fraction of seeds at or above the
preset's `solved_threshold`, the target, pass/fail, compile and run time, throughput) and
writes `benchmarks/results/learning_<env>.json`: the experiment summary plus the target,
the pass flag, the date and the config. `--preset rainbow` trains the Rainbow preset of
each environment instead (`presets.rainbow_for`) and writes
`learning_rainbow_<env>.json`; `--without COMPONENT` switches one of Rainbow's components
off (an ablation) and writes `learning_rainbow-without-<component>_<env>.json`.

`--algo pqn` trains the PQN preset of each environment instead
(`purejaxdqn.core.pqn_presets.pqn_config_for`, purejaxql's configurations) the same way and
writes `learning_pqn_<env>.json`; its targets are `PQN_TARGETS` (CartPole-v1: at least 90%
of 32 seeds end at a greedy return >= 475; Acrobot-v1 and MinAtar: the DQN targets, which
are properties of the task, not of DQN). `--total-timesteps` is rounded to a whole number of
log periods for PQN (printed).

    python benchmarks/learning.py --algo pqn --env CartPole-v1          # 32 seeds, 491,520 steps

The final greedy return of a seed is the mean over `eval_episodes` greedy episodes at the
last evaluation (the end of training). IQM is the interquartile mean over seeds. A run
with fewer seeds or env steps than the target's records both and says so in its "note".
Every record also holds `wall_seconds`: the whole `run_experiment` call (compile, run and
progress output).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from purejaxdqn.core.pqn_config import PQNConfig
from purejaxdqn.core.pqn_presets import adapt_pqn, pqn_config_for
from purejaxdqn.core.presets import MINATAR_GAMES, RAINBOW, get_preset, rainbow_for
from purejaxdqn.run.devices import use_all_cpu_cores
from purejaxdqn.run.experiment import run_experiment
from purejaxdqn.run.monitor import ProgressDisplay

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Target:
    """What a preset must reach: IQM of the final greedy return across seeds at least
    `min_iqm`, and (if set) at least `min_fraction_solved` of the seeds at or above the
    preset's `solved_threshold`. `min_iqm=None` means no target (the result is recorded).
    """

    num_seeds: int
    min_iqm: float | None
    min_fraction_solved: float | None = None

    def describe(self) -> str:
        """A short text such as 'IQM>=475, solved>=90%', or '-' for no target."""
        parts = []
        if self.min_iqm is not None:
            parts.append(f"IQM>={self.min_iqm:g}")
        if self.min_fraction_solved is not None:
            parts.append(f"solved>={self.min_fraction_solved:.0%}")
        return ", ".join(parts) or "-"

    def passed(self, summary: dict[str, Any]) -> bool | None:
        """Whether `summary` meets this target; None when there is no target."""
        if self.min_iqm is None and self.min_fraction_solved is None:
            return None
        ok = True
        if self.min_iqm is not None:
            iqm = summary["iqm_final_eval_return"]
            ok = ok and iqm is not None and iqm >= self.min_iqm
        if self.min_fraction_solved is not None:
            fraction = summary["fraction_solved"]
            ok = ok and fraction is not None and fraction >= self.min_fraction_solved
        return bool(ok)


# Default seeds and targets per preset (the number of seeds is part of the target).
TARGETS: dict[str, Target] = {
    "CartPole-v1": Target(num_seeds=32, min_iqm=475.0, min_fraction_solved=0.9),
    "Acrobot-v1": Target(num_seeds=16, min_iqm=-100.0),
    "MountainCar-v0": Target(num_seeds=16, min_iqm=-150.0),
    # MinAtar: DQN's return at 5M frames in the MinAtar paper (Young & Tian, 2019).
    "Asterix-MinAtar": Target(num_seeds=4, min_iqm=17.0),
    "Breakout-MinAtar": Target(num_seeds=4, min_iqm=10.0),
    "Freeway-MinAtar": Target(num_seeds=4, min_iqm=50.0),
    "Seaquest-MinAtar": Target(num_seeds=4, min_iqm=20.0),
    "SpaceInvaders-MinAtar": Target(num_seeds=4, min_iqm=43.0),
    "LunarLander-v3": Target(num_seeds=8, min_iqm=200.0),  # needs purejaxdqn[envpool]
}

# PQN's targets: the solved fraction on CartPole-v1; elsewhere the DQN targets, which are
# properties of the task (Acrobot's -100, the MinAtar paper's DQN returns as a floor).
PQN_TARGETS: dict[str, Target] = {
    "CartPole-v1": Target(num_seeds=32, min_iqm=None, min_fraction_solved=0.9),
    "Acrobot-v1": TARGETS["Acrobot-v1"],
    **{f"{game}-MinAtar": TARGETS[f"{game}-MinAtar"] for game in MINATAR_GAMES},
}

COLUMNS = (
    ("env", 16),
    ("seeds", 5),
    ("env steps", 10),
    ("IQM", 7),
    ("mean", 7),
    ("solved", 13),
    ("target", 21),
    ("pass", 4),
    ("compile s", 9),
    ("run s", 7),
    ("env steps/s", 11),
)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table_header() -> str:
    """The header line and the separator of the results table (markdown)."""
    names = " | ".join(f"{name:<{width}}" for name, width in COLUMNS)
    rule = "|".join("-" * (width + 2) for _, width in COLUMNS)
    return f"| {names} |\n|{rule}|"


def table_row(record: dict[str, Any]) -> str:
    """One markdown table row for a result record written by `run_one`."""
    threshold = record["solved_threshold"]
    fraction = record["fraction_solved"]
    solved = "-" if threshold is None else f"{fraction:.0%} >= {threshold:g}"
    passed = {True: "PASS", False: "FAIL", None: "-"}[record["passed"]]
    cells = (
        record["env_id"],
        str(record["num_seeds"]),
        f"{record['total_timesteps']:,}",
        _fmt(record["iqm_final_eval_return"]),
        _fmt(record["mean_final_eval_return"]),
        solved,
        record["target"],
        passed,
        _fmt(record["compile_seconds"]),
        _fmt(record["run_seconds"]),
        _fmt(record["env_steps_per_second"], 0),
    )
    return "| " + " | ".join(f"{c:<{w}}" for c, (_, w) in zip(cells, COLUMNS, strict=True)) + " |"


# `--without NAME`: the fields that switch one of Rainbow's components off
RAINBOW_ABLATIONS: dict[str, dict[str, Any]] = {
    "double_q": {"double_q": False},
    "dueling": {"dueling": False},
    "n_step": {"n_step": 1},
    "prioritized_replay": {"prioritized_replay": False},
    "distributional": {"distributional": "none"},
    "noisy": {"noisy": False},
}


def preset_config(
    env_id: str, preset: str | None, without: str | None, algo: str = "dqn"
) -> tuple[Any, str]:
    """The config to train and the prefix of its results file: the env's DQN preset
    ('learning'), or its Rainbow preset ('learning_rainbow'), with one component off, or
    with `algo='pqn'` its PQN preset ('learning_pqn').
    """
    if algo == "pqn":
        return pqn_config_for(env_id), "learning_pqn"
    if preset is None:
        return get_preset(env_id), "learning"
    config = rainbow_for(env_id)
    if without is None:
        return config, f"learning_{RAINBOW}"
    return config.replace(**RAINBOW_ABLATIONS[without]), f"learning_{RAINBOW}-without-{without}"


def run_one(
    env_id: str,
    num_seeds: int | None,
    seed: int,
    results_dir: Path,
    total_timesteps: int | None = None,
    preset: str | None = None,
    without: str | None = None,
    algo: str = "dqn",
) -> dict[str, Any]:
    """Train the preset for `env_id` (its Rainbow preset with `preset='rainbow'`, one
    component off with `without`, its PQN preset with `algo='pqn'`; for `total_timesteps`
    env steps per seed if given, else the preset's), write its JSON record and return it.
    """
    config, prefix = preset_config(env_id, preset, without, algo)
    budget = config.total_timesteps
    if total_timesteps is not None and algo == "pqn":
        config, notes = adapt_pqn(config, {"total_timesteps": total_timesteps})
        for note in notes:
            print(f"  [{env_id}] {note}", flush=True)
    elif total_timesteps is not None:
        config = config.replace(total_timesteps=total_timesteps)
    targets = PQN_TARGETS if algo == "pqn" else TARGETS
    target = targets.get(env_id, Target(num_seeds=16, min_iqm=None))
    num_seeds = target.num_seeds if num_seeds is None else num_seeds
    started = datetime.datetime.now(datetime.timezone.utc)
    wall_start = time.perf_counter()
    display = ProgressDisplay(f"  [{env_id}]", config.total_timesteps, stream=sys.stdout)
    try:
        experiment = run_experiment(
            config,
            num_seeds,
            seed,
            progress=lambda msg: print(f"  [{env_id}] {msg}", flush=True),
            on_chunk=display,  # results are the same bit for bit however a run is chunked
        )
    finally:
        display.close()
    wall_seconds = time.perf_counter() - wall_start
    summary = experiment.summary.to_json()
    record = {
        **summary,
        "target": target.describe(),
        "target_num_seeds": target.num_seeds,
        "target_min_iqm": target.min_iqm,
        "target_min_fraction_solved": target.min_fraction_solved,
        "passed": target.passed(summary),
        "date": started.strftime("%Y-%m-%d"),
        "started_utc": started.isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/learning.py", *sys.argv[1:]]),
        "preset": prefix.removeprefix("learning").removeprefix("_") or "dqn",
        "algo": algo,
        "wall_seconds": wall_seconds,
        "config": config.to_dict(),
    }
    if config.total_timesteps != budget:
        record["preset_total_timesteps"] = budget
    if record["passed"] is not None:
        # The target is defined for target.num_seeds seeds and the preset's budget; say
        # where this run differs rather than hide it.
        notes = []
        if num_seeds != target.num_seeds:
            notes.append(f"ran {num_seeds} seeds; the target is defined for {target.num_seeds}")
        if config.total_timesteps != budget:
            notes.append(f"ran {config.total_timesteps:,} of the preset's {budget:,} env steps")
        if notes:
            record["note"] = "; ".join(notes)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{prefix}_{env_id}.json"
    with path.open("w") as file:
        json.dump(record, file, indent=2, allow_nan=False)
        file.write("\n")
    return record


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train each preset over many seeds; report the final greedy return "
        "(IQM over seeds) against its target and write benchmarks/results/learning_<env>.json."
    )
    parser.add_argument(
        "--algo",
        choices=["dqn", "pqn"],
        default="dqn",
        help="dqn (default): the DQN (or --preset rainbow) presets; pqn: the PQN presets, "
        "written to learning_pqn_<env>.json",
    )
    parser.add_argument(
        "--env",
        nargs="+",
        default=None,
        metavar="ID",
        help=f"preset(s) to run (default: all of {list(TARGETS)}; --algo pqn: all of "
        f"{list(PQN_TARGETS)})",
    )
    parser.add_argument(
        "--num-seeds",
        type=int,
        default=None,
        help="seeds per preset (default: the target's, e.g. 32 for CartPole-v1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument(
        "--preset",
        choices=[RAINBOW],
        default=None,
        help="train each env's Rainbow preset instead of its DQN preset",
    )
    parser.add_argument(
        "--without",
        choices=sorted(RAINBOW_ABLATIONS),
        default=None,
        help="with --preset rainbow: switch this component off (an ablation)",
    )
    parser.add_argument(
        "--total-timesteps",
        type=int,
        default=None,
        help="env steps per seed instead of the preset's (recorded, and noted against the target)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where to write learning_<env>.json (default benchmarks/results)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    use_all_cpu_cores()  # one JAX device per core, as the purejaxdqn command does
    args = parser.parse_args(argv)
    if args.without is not None and args.preset is None:
        parser.error("--without needs --preset rainbow")
    if args.algo == "pqn" and args.preset is not None:
        parser.error("--preset is for --algo dqn")
    if args.env is None:
        args.env = list(PQN_TARGETS if args.algo == "pqn" else TARGETS)
    for env_id in args.env:
        get_preset(env_id)  # fail on an unknown id before spending minutes on the others
        if args.algo == "pqn" and pqn_config_for(env_id) == PQNConfig(env_id=env_id):
            print(f"note: no PQN preset for {env_id}: it trains PQNConfig's defaults")

    records = []
    for env_id in args.env:
        records.append(
            run_one(
                env_id,
                args.num_seeds,
                args.seed,
                args.results_dir,
                args.total_timesteps,
                args.preset,
                args.without,
                args.algo,
            )
        )
        print(f"  [{env_id}] wall time {records[-1]['wall_seconds']:.1f} s")
        print(table_header())
        print(table_row(records[-1]), flush=True)
    print()
    print(table_header())
    for record in records:
        print(table_row(record))
    return 0 if all(r["passed"] is not False for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
