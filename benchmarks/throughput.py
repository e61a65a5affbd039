r"""Seed-scaling throughput: env steps/s and memory of N seeds in one compiled program.

    python benchmarks/throughput.py                                   # both envs, 1..256 seeds
    python benchmarks/throughput.py --env CartPole-v1 --seeds 1 4 16 64 256 1024
    python benchmarks/throughput.py --seeds 1 2 --cartpole-timesteps 20000 \
        --minatar-timesteps 4000 --results-dir /tmp/tp_results        # quick smoke run
    python benchmarks/throughput.py --components --env CartPole-v1 --seeds 1 16
    python benchmarks/throughput.py --components prioritized c51 --env CartPole-v1 --seeds 1

For every env and seed count N it trains N seeds the way `run_experiment` does
(`run.execute`: keys `jax.random.split(jax.random.key(seed), N)`, one compiled
`jit(vmap(train))` program sharded over the local devices, on CPU one device per core, and
run in sequential batches past `--max-runs-per-device`, on CPU by default 8 per device
(fewer for large runs: 2 for MinAtar's 100k buffers)),
compile timed apart from run, and records aggregate and per-seed env steps/s, the layout,
the replay buffer's bytes per seed (from `jax.eval_shape`, nothing run) against the
raw compact observation bytes (buffer_size * obs size * storage itemsize; the target is
replay / raw <= 1.25 for MinAtar at buffer 100,000), the compiled program's memory
(argument + output + temp of one batch) and, where the backend reports it (GPU), the device's
`peak_bytes_in_use`: a high-water mark of the whole process, so it only grows across points.

Seed counts grow until the next point is estimated not to fit memory (linear extrapolation
of the measured points, at least N replay buffers), an out-of-memory error is raised, or a
point ran longer than `--max-seconds`; the larger points are recorded as skipped, with why.
Configs: CartPole-v1 is `common.CLASSIC_CARTPOLE`, other envs their preset with evaluation
off; `total_timesteps` comes from the options, `learning_starts` keeps the classic 2% prefill
and `num_log_points` drops to the largest valid value if needed. Results go to
`<results-dir>/throughput_<device>.json` and `.csv`.

`--components` measures the DQN family instead: one row per component (double, dueling,
n-step, prioritized replay, C51, QR, noisy nets, Munchausen, and all of Rainbow) switched on
over the same config (the env's as above, with a 100,000-transition buffer so prioritized
replay draws from a full-size sum tree), against plain DQN, at each seed count. It reports
env steps/s and the microseconds of one update (sample, loss and gradient, optimizer step,
priorities back) of the whole vmapped program: the run time of gradient_steps=3 minus that
of gradient_steps=1, divided by the extra updates, so acting and env steps cancel out.
Results go to `<results-dir>/throughput_components_<device>.json` and `.csv`.

`--algo pqn` sweeps PQN instead (default: CartPole-v1's PQN preset, `pqn_config_for`, at
1, 2, 4, ..., 256 seeds), with evaluation off, the preset's run length or `--pqn-timesteps`
(a whole number of rollouts; the log points drop to the largest valid count) and the same
layout, compile/run split, memory stop rules and table; PQN has no replay buffer, so the
replay columns are left out. Results go to `<results-dir>/throughput_pqn_<device>.json`
and `.csv`:

    python benchmarks/throughput.py --algo pqn                       # CartPole-v1, 1..256 seeds
    python benchmarks/throughput.py --algo pqn --seeds 1 16 --pqn-timesteps 98304
"""

from __future__ import annotations

import argparse
import gc
import math
from pathlib import Path
from typing import Any

import jax
from common import (
    CLASSIC_CARTPOLE,
    RESULTS_DIR,
    device_slug,
    markdown_table,
    run_metadata,
    write_results,
)

from purejaxdqn import DQNConfig, get_preset, make_train
from purejaxdqn.cli.options import parse_max_runs
from purejaxdqn.core.pqn_config import PQNConfig
from purejaxdqn.core.pqn_presets import pqn_config_for
from purejaxdqn.core.presets import RAINBOW_COMPONENTS
from purejaxdqn.core.replay import nbytes as replay_nbytes
from purejaxdqn.envs.spec import make_env
from purejaxdqn.outputs.report import device_description
from purejaxdqn.run.execute import execute, host_available_bytes

MB = 1e6
PREFILL_FRACTION = CLASSIC_CARTPOLE.learning_starts / CLASSIC_CARTPOLE.total_timesteps
FIT_FRACTION = 0.9  # a point must be estimated below this share of the memory limit
COLUMNS = [
    ("env", "env_id"),
    ("seeds", "num_seeds"),
    ("env steps/s", "env_steps_per_second"),
    ("per-seed steps/s", "env_steps_per_second_per_seed"),
    ("speedup", "speedup"),
    ("compile s", "compile_seconds"),
    ("run s", "run_seconds"),
    ("batches x seeds/device", "layout"),
    ("replay MB/seed", "replay_mb_per_seed"),
    ("replay ÷ raw obs", "replay_over_raw_obs"),
    ("peak MB", "peak_mb"),
    ("process peak MB", "device_peak_mb"),
    ("skipped", "skipped"),
]


def scaled_config(base: DQNConfig, total_timesteps: int) -> DQNConfig:
    """`base` shortened to `total_timesteps`, with a 2% prefill and valid log points."""
    iterations, rest = divmod(total_timesteps, base.steps_per_iteration)
    if rest or not iterations:
        raise SystemExit(
            f"{base.env_id}: total_timesteps={total_timesteps} must be a positive multiple "
            f"of num_envs * train_freq = {base.steps_per_iteration}"
        )
    log_points = max(d for d in range(1, base.num_log_points + 1) if iterations % d == 0)
    return base.replace(
        total_timesteps=total_timesteps,
        learning_starts=round(PREFILL_FRACTION * total_timesteps),
        num_log_points=log_points,
        eval_every=0,
    )


def bench_config(env_id: str, args: argparse.Namespace) -> DQNConfig:
    """CartPole-v1: the classic config; any other env: its preset with evaluation off."""
    if env_id == "CartPole-v1":
        return scaled_config(CLASSIC_CARTPOLE, args.cartpole_timesteps)
    return scaled_config(get_preset(env_id).replace(eval_every=0), args.minatar_timesteps)


def pqn_bench_config(env_id: str, total_timesteps: int | None) -> PQNConfig:
    """The env's PQN preset with evaluation off, shortened to `total_timesteps` (a whole
    number of rollouts) if given, with the most log points up to the preset's that divide
    its iterations.
    """
    base = pqn_config_for(env_id).replace(eval_every=0)
    if total_timesteps is None:
        return base
    iterations, rest = divmod(total_timesteps, base.steps_per_iteration)
    if rest or not iterations:
        raise SystemExit(
            f"{env_id}: --pqn-timesteps {total_timesteps} must be a positive multiple of "
            f"num_envs * num_steps = {base.steps_per_iteration}"
        )
    log_points = max(d for d in range(1, base.num_log_points + 1) if iterations % d == 0)
    return base.replace(total_timesteps=total_timesteps, num_log_points=log_points)


def replay_memory(config: DQNConfig) -> dict[str, Any]:
    """Replay bytes per seed (every array of the buffer, from `jax.eval_shape`) and raw
    compact observation bytes (buffer_size * obs size * storage itemsize).
    """
    shapes = jax.eval_shape(make_train(config), jax.random.key(0), config.hparams())
    replay = replay_nbytes(shapes.runner_state.buffer)
    spec = make_env(config.env_id, obs_storage_dtype=config.obs_storage_dtype)
    raw = config.buffer_size * math.prod(spec.obs_shape) * spec.storage_dtype.itemsize
    return {
        "replay_bytes_per_seed": int(replay),
        "raw_obs_bytes_per_seed": int(raw),
        "replay_mb_per_seed": replay / MB,
        "replay_over_raw_obs": replay / raw,
    }


def memory_limit() -> int | None:
    """Bytes free for a program: the device's limit less bytes in use on GPU, else the
    host's available memory (`run.plan.host_available_bytes`); None if unknown.
    """
    stats = jax.devices()[0].memory_stats()
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return host_available_bytes()


def run_point(
    config: DQNConfig | PQNConfig,
    num_seeds: int,
    seed: int,
    max_runs_per_device: int | str | None,
) -> dict[str, Any]:
    """Compile and run `num_seeds` seeds of `config` the way `run_experiment` does
    (`run.execute`: sharded over the devices, in sequential batches past
    `max_runs_per_device`); speed, layout and memory of the program.
    """
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    outputs = execute(
        config.make_program(),  # DQN: make_train_program(config); PQN: make_pqn_program
        keys,
        config.hparams(),
        max_runs_per_device=max_runs_per_device,
    )
    plan = outputs.plan
    per_run = outputs.compiled_bytes_per_run
    peak = None if per_run is None else int(per_run * plan.runs_per_batch)
    stats = jax.devices()[0].memory_stats() or {}
    device_peak = stats.get("peak_bytes_in_use")
    compile_seconds, run_seconds = outputs.compile_seconds, outputs.run_seconds
    del outputs
    gc.collect()
    return {
        "env_steps_per_second": num_seeds * config.total_timesteps / run_seconds,
        "env_steps_per_second_per_seed": config.total_timesteps / run_seconds,
        "compile_seconds": compile_seconds,
        "run_seconds": run_seconds,
        "num_devices": plan.num_devices,
        "runs_per_device": plan.runs_per_device,
        "num_batches": plan.num_batches,
        "estimated_bytes_per_seed": plan.bytes_per_run,
        "peak_bytes": peak,
        "peak_mb": None if peak is None else peak / MB,
        "device_peak_bytes_in_use": device_peak,
        "device_peak_mb": None if device_peak is None else device_peak / MB,
    }


def estimate_bytes(num_seeds: int, measured: list[tuple[int, int]], replay_bytes: int) -> int:
    """Memory estimate for `num_seeds`: linear through the last two measured (seeds, bytes)
    points (proportional from one), and never below `num_seeds` replay buffers.
    """
    estimate = num_seeds * replay_bytes
    if len(measured) == 1:
        ((n0, b0),) = measured
        estimate = max(estimate, b0 * num_seeds // n0)
    elif measured:
        (n0, b0), (n1, b1) = measured[-2:]
        estimate = max(estimate, int(b1 + (b1 - b0) / (n1 - n0) * (num_seeds - n1)))
    return estimate


def is_out_of_memory(error: Exception) -> bool:
    """Whether `error` is XLA's allocation failure."""
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def print_row(row: dict[str, Any]) -> None:
    """One progress line for a measured or skipped point."""
    head = f"{row['env_id']:<18} {row['num_seeds']:>6} seeds: "
    if row["skipped"]:
        print(head + f"skipped ({row['skipped']})", flush=True)
        return
    peak = "n/a" if row["peak_mb"] is None else f"{row['peak_mb']:,.0f} MB"
    print(
        head + f"{row['env_steps_per_second']:>12,.0f} env steps/s "
        f"({row['env_steps_per_second_per_seed']:,.0f}/seed), compile "
        f"{row['compile_seconds']:.1f} s, run {row['run_seconds']:.1f} s, peak {peak}",
        flush=True,
    )


def sweep_env(config: DQNConfig | PQNConfig, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measure every seed count of `args.seeds` for `config`, smallest first, until one
    would not fit memory or a point ran longer than `args.max_seconds`.
    """
    memory: dict[str, Any] = {}  # PQN: no replay buffer
    if isinstance(config, DQNConfig):
        memory = replay_memory(config)
        target = " (target <= 1.25)" if config.env_id.endswith("-MinAtar") else ""
        print(
            f"\n{config.env_id}: replay {memory['replay_mb_per_seed']:.2f} MB/seed, raw "
            f"compact obs {memory['raw_obs_bytes_per_seed'] / MB:.2f} MB, replay ÷ raw obs = "
            f"{memory['replay_over_raw_obs']:.3f}{target} at buffer {config.buffer_size:,}"
        )
    rows: list[dict[str, Any]] = []
    measured: list[tuple[int, int]] = []
    stop: str | None = None
    for num_seeds in args.seeds:
        row = {
            "env_id": config.env_id,
            "num_seeds": num_seeds,
            "total_timesteps": config.total_timesteps,
            **memory,
            "skipped": stop,
        }
        limit = memory_limit()
        estimate = estimate_bytes(num_seeds, measured, memory.get("replay_bytes_per_seed", 0))
        if not stop and limit and estimate > FIT_FRACTION * limit:
            stop = row["skipped"] = (
                f"{num_seeds} seeds estimated {estimate / MB:,.0f} MB > {FIT_FRACTION:.0%} of "
                f"{limit / MB:,.0f} MB available"
            )
        if not stop:
            try:
                row.update(run_point(config, num_seeds, args.seed, args.max_runs_per_device))
            except Exception as error:  # XLA raises its runtime error type for OOM
                if not is_out_of_memory(error):
                    raise
                stop = row["skipped"] = f"out of memory: {str(error).splitlines()[0][:200]}"
            else:
                if row["peak_bytes"] is not None:
                    measured.append((num_seeds, row["peak_bytes"]))
                if row["run_seconds"] > args.max_seconds:
                    stop = (
                        f"{num_seeds} seeds ran {row['run_seconds']:.1f} s > "
                        f"--max-seconds {args.max_seconds:g}"
                    )
        rows.append(row)
        print_row(row)
    done = [r for r in rows if not r["skipped"]]
    for r in done:
        r["speedup_base_seeds"] = done[0]["num_seeds"]
        r["speedup"] = r["env_steps_per_second"] / done[0]["env_steps_per_second"]
    return rows


def layout(row: dict[str, Any]) -> str:
    """'4 x 8 on 2 dev' for a measured row, '-' for a skipped one."""
    if row["skipped"]:
        return "-"
    return f"{row['num_batches']} x {row['runs_per_device']} on {row['num_devices']} dev"


NOISE_TOLERANCE = 0.9  # a point below this share of a smaller count's rate counts as a fall


def monotonic_report(rows: list[dict[str, Any]]) -> str:
    """Whether aggregate env steps/s never falls as seeds grow, for one env's rows.

    A point counts as a fall when it is below `NOISE_TOLERANCE` times the best rate of a
    smaller seed count (run-to-run noise on a shared machine is about 5-10%); the lowest
    ratio is printed either way.
    """
    done = [r for r in rows if not r["skipped"]]
    rates = ", ".join(f"{r['num_seeds']}: {r['env_steps_per_second']:,.0f}" for r in done)
    env_id = rows[0]["env_id"]
    if len(done) < 2:
        verdict = "one point only" if done else "no point measured"
        return f"{env_id}: aggregate env steps/s non-decreasing in seeds: {verdict} [{rates}]"
    best, ratios = done[0], []
    for row in done[1:]:
        ratios.append((row["env_steps_per_second"] / best["env_steps_per_second"], row, best))
        if row["env_steps_per_second"] > best["env_steps_per_second"]:
            best = row
    lowest, row, peak = min(ratios, key=lambda item: item[0])
    worst = f"lowest: {row['num_seeds']} seeds at {lowest:.2f}x of {peak['num_seeds']} seeds"
    verdict = "yes" if lowest >= NOISE_TOLERANCE else "NO"
    return (
        f"{env_id}: aggregate env steps/s non-decreasing in seeds (within "
        f"{1 - NOISE_TOLERANCE:.0%} noise): {verdict}, {worst} [{rates}]"
    )


# --components: each component of the family switched on over the same config
COMPONENTS: dict[str, dict[str, Any]] = {
    "dqn": {},
    "double": {"double_q": True},
    "dueling": {"dueling": True},
    "n_step_3": {"n_step": 3},
    "prioritized": {"prioritized_replay": True},
    "c51": {"distributional": "c51"},
    "qr": {"distributional": "qr"},
    "noisy": {"noisy": True},
    "munchausen": {"munchausen": True},
    "rainbow": RAINBOW_COMPONENTS,  # all six, with Rainbow's settings (the preset's)
}
COMPONENT_BUFFER = 100_000
EXTRA_GRADIENT_STEPS = 2  # gradient_steps 1 + 2 against 1: the cost of 2 updates more
COMPONENT_COLUMNS = [
    ("env", "env_id"),
    ("component", "component"),
    ("seeds", "num_seeds"),
    ("env steps/s", "env_steps_per_second"),
    ("÷ dqn", "speed_vs_dqn"),
    ("µs per update", "us_per_update"),
    ("÷ dqn", "update_cost_vs_dqn"),
    ("compile s", "compile_seconds"),
]


def selected_components(names: list[str]) -> dict[str, dict[str, Any]]:
    """The `COMPONENTS` named (all if none), plain DQN first as the reference."""
    return {k: v for k, v in COMPONENTS.items() if not names or k == "dqn" or k in names}


def component_rows(config: DQNConfig, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per component and seed count: env steps/s at gradient_steps=1 and the time
    of one update from the difference to a run with `EXTRA_GRADIENT_STEPS` more.
    """
    base = config.replace(buffer_size=COMPONENT_BUFFER)
    rows = []
    for num_seeds in args.seeds:
        reference: dict[str, Any] = {}
        for name, changes in selected_components(args.components).items():
            variant = base.replace(**changes)
            more = variant.replace(gradient_steps=1 + EXTRA_GRADIENT_STEPS)
            one = run_point(variant, num_seeds, args.seed, args.max_runs_per_device)
            extra = run_point(more, num_seeds, args.seed, args.max_runs_per_device)
            updates = variant.num_updates * EXTRA_GRADIENT_STEPS  # per seed, all vmapped
            row = {
                "env_id": config.env_id,
                "component": name,
                "changes": changes,
                "num_seeds": num_seeds,
                "total_timesteps": variant.total_timesteps,
                "buffer_size": variant.buffer_size,
                "env_steps_per_second": one["env_steps_per_second"],
                "us_per_update": 1e6 * (extra["run_seconds"] - one["run_seconds"]) / updates,
                "compile_seconds": one["compile_seconds"],
                "run_seconds": one["run_seconds"],
                "run_seconds_more_updates": extra["run_seconds"],
                "layout": layout({**one, "skipped": None}),
            }
            reference = reference or row
            row["speed_vs_dqn"] = row["env_steps_per_second"] / reference["env_steps_per_second"]
            row["update_cost_vs_dqn"] = row["us_per_update"] / reference["us_per_update"]
            print(
                f"{config.env_id:<18} {name:<12} {num_seeds:>3} seeds: "
                f"{row['env_steps_per_second']:>10,.0f} env steps/s "
                f"({row['speed_vs_dqn']:.2f}x dqn), {row['us_per_update']:,.1f} us/update "
                f"({row['update_cost_vs_dqn']:.2f}x dqn)",
                flush=True,
            )
            rows.append(row)
    return rows


def main_components(configs: dict[str, DQNConfig], args: argparse.Namespace) -> None:
    """`--components`: measure, print and save the family's rows."""
    rows = [row for config in configs.values() for row in component_rows(config, args)]
    print("\n" + markdown_table(rows, COMPONENT_COLUMNS) + "\n")
    metadata = {
        **run_metadata(),
        "device_slug": device_slug(),
        "seed": args.seed,
        "components": selected_components(args.components),
        "configs": {
            env_id: c.replace(buffer_size=COMPONENT_BUFFER).to_dict()
            for env_id, c in configs.items()
        },
    }
    name = f"throughput_components_{device_slug()}"
    paths = write_results(name, rows, metadata, args.results_dir)
    print("wrote " + ", ".join(map(str, paths)))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, with --env and --seeds defaulting per --algo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--algo",
        choices=["dqn", "pqn"],
        default="dqn",
        help="dqn (default): the classic CartPole config and DQN presets; pqn: PQN presets",
    )
    parser.add_argument(
        "--env",
        nargs="+",
        default=None,
        help="CartPole-v1 (classic config) or an env with a preset (default: CartPole-v1 and "
        "Breakout-MinAtar; --algo pqn: CartPole-v1, its PQN preset)",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help="seed counts (default 1 4 16 64 256; --algo pqn: 1 2 4 ... 256)",
    )
    parser.add_argument("--cartpole-timesteps", type=int, default=50_000)
    parser.add_argument(
        "--minatar-timesteps",
        type=int,
        default=20_000,
        help="env steps per seed of every env other than CartPole-v1",
    )
    parser.add_argument(
        "--pqn-timesteps",
        type=int,
        default=None,
        help="--algo pqn: env steps per seed, a multiple of num_envs * num_steps (default: "
        "each preset's, 491,520 for CartPole-v1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed of the per-seed keys")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=600.0,
        help="skip larger seed counts once a point's run took longer",
    )
    parser.add_argument(
        "--max-runs-per-device",
        type=parse_max_runs,
        default="auto",
        help="seeds per device per compiled call, the rest in sequential batches: N, auto "
        "(the library default: on CPU 8, fewer for large runs) or none (all seeds in one call)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--components",
        nargs="*",
        metavar="NAME",
        choices=list(COMPONENTS),
        help="one row per DQN-family component against plain DQN (see the module "
        f"docstring): the ones named (of {list(COMPONENTS)}; 'dqn' is always run), or all",
    )
    return _checked(parser.parse_args(argv), parser)


def _checked(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """`args` with --env and --seeds defaulted per --algo, checked."""
    pqn = args.algo == "pqn"
    if pqn and args.components is not None:
        parser.error("--components is for --algo dqn")
    if args.env is None:
        args.env = ["CartPole-v1"] if pqn else ["CartPole-v1", "Breakout-MinAtar"]
    if args.seeds is None:
        args.seeds = [2**i for i in range(9)] if pqn else [1, 4, 16, 64, 256]
    args.seeds = sorted(set(args.seeds))
    if args.seeds[0] < 1:
        parser.error("--seeds must be >= 1")
    return args


def describe(c: DQNConfig | PQNConfig) -> str:
    """One line on the run each seed makes."""
    head = f"{c.env_id}: {c.total_timesteps:,} env steps/seed, {c.num_envs} envs, "
    tail = f"{c.num_log_points} log points, eval off"
    if isinstance(c, PQNConfig):
        return head + (
            f"PQN: {c.num_steps} steps per rollout, {c.num_epochs} epochs x "
            f"{c.num_minibatches} minibatches of {c.minibatch_size}, {tail}"
        )
    return head + (
        f"learning_starts {c.learning_starts:,}, buffer {c.buffer_size:,}, batch "
        f"{c.batch_size}, train_freq {c.train_freq}, gradient_steps {c.gradient_steps}, {tail}"
    )


def main(argv: list[str] | None = None) -> None:
    """Parse options, sweep every env over the seed counts, print and save the results."""
    args = _parse_args(argv)
    pqn = args.algo == "pqn"
    if pqn:
        configs = {env_id: pqn_bench_config(env_id, args.pqn_timesteps) for env_id in args.env}
    else:
        configs = {env_id: bench_config(env_id, args) for env_id in args.env}
    print(f"device: {device_description()}")
    if args.components is not None:
        main_components(configs, args)
        return
    for c in configs.values():
        print(describe(c))
    rows = [row for config in configs.values() for row in sweep_env(config, args)]

    bases = sorted({r.get("speedup_base_seeds") for r in rows} - {None})
    base = f"{bases[0]} seed{'s' * (bases[0] != 1)}" if len(bases) == 1 else "fewest seeds"
    replay = ("replay_mb_per_seed", "replay_over_raw_obs")
    columns = [
        (f"speedup vs {base}" if key == "speedup" else name, key)
        for name, key in COLUMNS
        if not (pqn and key in replay)
    ]
    table = [{**row, "skipped": row["skipped"] or "-", "layout": layout(row)} for row in rows]
    print("\n" + markdown_table(table, columns) + "\n")
    for env_id in configs:
        print(monotonic_report([r for r in rows if r["env_id"] == env_id]))

    metadata = {
        **run_metadata(),
        "algo": args.algo,
        "device_slug": device_slug(),
        "seed": args.seed,
        "max_seconds": args.max_seconds,
        "max_runs_per_device": args.max_runs_per_device,
        "configs": {env_id: c.to_dict() for env_id, c in configs.items()},
    }
    name = f"throughput_{'pqn_' if pqn else ''}{device_slug()}"
    paths = write_results(name, rows, metadata, args.results_dir)
    print("wrote " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
