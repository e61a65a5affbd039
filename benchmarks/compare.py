"""Speed comparison: purejaxdqn against reference DQN implementations at the same config.

    python benchmarks/compare.py --purejaxrl /path/to/purejaxrl      # seeds 1 and 16, 500k steps
    PUREJAXRL_PATH=/path/to/purejaxrl python benchmarks/compare.py --seeds 1 4 --skip-sb3
    python benchmarks/compare.py --seeds 1 2 --total-timesteps 20000 --sb3-timesteps 5000 \
        --purejaxrl /path/to/purejaxrl --results-dir /tmp/cmp_results        # a quick check

Every implementation runs `CLASSIC_CARTPOLE` (benchmarks/common.py): 10 envs, buffer 10k,
batch 128, Adam 2.5e-4, one update per vector step of 10 env steps, hard target copy every
500 env steps, learning starts at 10k, eps 1 -> 0.05 over the first half, gamma 0.99, MLP
120-84.

- purejaxdqn: as `run_experiment` and the CLI run it (`run.execute`: an `init` and a
  training program, every seed in one call, each device mapping `train` over its own seeds
  and calling it directly when it has one), once with every seed on one device and, when
  N > 1, once with the seeds sharded over all local devices (on CPU, `common` exposes one
  JAX device per core before JAX starts; see `purejaxdqn.devices`).
- purejaxrl `dqn.py` (https://github.com/luchris429/purejaxrl), imported at run time from
  `--purejaxrl` (repo root or the file) and adapted without edits: `wandb` stubbed if missing,
  `jax.tree_map` restored, its `LogWrapper` replaced by one returning the pre-gymnax-1.0
  5-tuple `(obs, state, reward, terminated | truncated, info)`. Needs `flashbax`.
  Timed as `jit(vmap(make_train(cfg)))` over the same N keys.
- stable-baselines3 DQN (if installed) on gymnasium CartPole-v1 with 10 vectorized envs, one
  seed, `--sb3-timesteps` env steps (it is far slower; N seeds run one after another would take
  N times as long). Differences it cannot avoid: Huber (smooth L1) loss instead of MSE, and its
  epsilon anneals over half of its own (shorter) run.

JAX rows time compilation apart from the run (purejaxdqn's compile column is everything
before the first step: memory preflight, tracing and compiling both programs); the SB3 row
puts model construction in the compile column. Both JAX implementations are compiled once at
a tiny size first (untimed), so neither timed compile pays the process's one-time start-up
costs. Env steps/s aggregate over seeds. "speedup" is purejaxdqn's best env steps/s at the
same seed count divided by the row's, "speedup, ours on 1 device" the same with purejaxdqn on
a single device (SB3: against purejaxdqn with 1 seed), "compile ratio" is purejaxdqn's
compile time divided by the row's. "final return" is the mean training episode return over
the last 10% of the run. Results go to
`<results-dir>/compare_<device>.json` and `.csv`.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import math
import os
import sys
import time
import types
from pathlib import Path
from typing import Any

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from purejaxdqn import DQNConfig, make_train_program  # noqa: E402
from purejaxdqn.outputs.report import package_versions  # noqa: E402
from purejaxdqn.run.execute import execute  # noqa: E402

LAST_FRACTION = 0.1  # final return: mean over the last 10% of the run
REFERENCE_PACKAGES = ("flashbax", "chex", "stable-baselines3", "torch", "gymnasium")


def _finite(value: Any) -> float | None:
    """`value` as a float, or None when it is missing or not finite (JSON has no NaN)."""
    return float(value) if value is not None and math.isfinite(float(value)) else None


def run_purejaxdqn(config: DQNConfig, num_seeds: int, seed: int, shard: bool) -> dict[str, Any]:
    """Time purejaxdqn on `num_seeds` seeds the way `run_experiment` runs them
    (`run.execute`: every seed in one call, sharded over the local devices when
    `shard`, else on one device); return one table row.
    """
    devices = jax.local_devices()[: None if shard else 1]
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    out = execute(
        make_train_program(config),
        keys,
        config.hparams(),
        max_runs_per_device=None,
        devices=devices,
    )
    timed = {"compile_seconds": out.compile_seconds, "run_seconds": out.run_seconds}
    metrics = out.metrics
    tail = max(1, round(LAST_FRACTION * config.num_log_points))
    episodes = metrics["episodes"][:, -tail:]  # episode-weighted mean of the period means
    return_sum = (np.nan_to_num(metrics["episode_return"][:, -tail:]) * episodes).sum()
    used = out.plan.num_devices
    return _row(
        f"purejaxdqn ({used} device{'s' if used > 1 else ''})",
        num_seeds,
        metrics["env_steps"][:, -1],
        metrics["updates"].sum(axis=1),
        timed,
        return_sum / episodes.sum() if episodes.sum() else None,
    )


def warm_up(module: types.ModuleType | None, config: DQNConfig) -> None:
    """Compile both JAX implementations once at a tiny size, untimed, so that neither
    timed compile pays the process's one-time costs (XLA start-up, first lowerings):
    whichever compiled first would otherwise look ~0.3-0.5 s slower.
    """
    tiny = config.replace(total_timesteps=config.learning_starts + 1000)
    keys = jax.random.split(jax.random.key(0), 1)
    execute(make_train_program(tiny), keys, tiny.hparams(), devices=jax.local_devices()[:1])
    if module is not None:
        jax.jit(jax.vmap(module.make_train(purejaxrl_config(tiny)))).lower(keys).compile()


def load_purejaxrl(path: str) -> types.ModuleType | None:
    """Import purejaxrl's dqn.py from `path` with run-time shims; None (with a message) if
    flashbax is missing.
    """
    location = Path(path)
    for candidate in (location, location / "purejaxrl" / "dqn.py", location / "dqn.py"):
        if candidate.is_file():
            break
    else:
        raise FileNotFoundError(f"no purejaxrl dqn.py at {path} (give the repo root or the file)")
    if importlib.util.find_spec("flashbax") is None:
        print("purejaxrl skipped: it needs flashbax; `pip install flashbax` to include it")
        return None
    if importlib.util.find_spec("wandb") is None:
        sys.modules["wandb"] = types.ModuleType("wandb")  # imported, unused when disabled
    if not hasattr(jax, "tree_map"):
        jax.tree_map = jax.tree.map  # removed from jax; dqn.py still calls it
    spec = importlib.util.spec_from_file_location("purejaxrl_dqn", candidate)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    class FiveTupleLogWrapper(module.LogWrapper):
        """gymnax 1.x LogWrapper with the old `(obs, state, reward, done, info)` step."""

        def step(self, key: Any, state: Any, action: Any, params: Any = None) -> tuple:
            obs, state, reward, terminated, truncated, info = super().step(
                key, state, action, params
            )
            return obs, state, reward, terminated | truncated, info

    module.LogWrapper = FiveTupleLogWrapper
    return module


def purejaxrl_config(config: DQNConfig) -> dict[str, Any]:
    """The config dict of purejaxrl's DQN for the same run as `config`."""
    return {
        "NUM_ENVS": config.num_envs,
        "BUFFER_SIZE": config.buffer_size,
        "BUFFER_BATCH_SIZE": config.batch_size,
        "TOTAL_TIMESTEPS": config.total_timesteps,
        "EPSILON_START": config.exploration_initial_eps,
        "EPSILON_FINISH": config.exploration_final_eps,
        "EPSILON_ANNEAL_TIME": round(config.exploration_fraction * config.total_timesteps),
        "TARGET_UPDATE_INTERVAL": config.target_update_interval,
        "LR": config.learning_rate,
        "LEARNING_STARTS": config.learning_starts,
        "TRAINING_INTERVAL": config.num_envs * config.train_freq,
        "LR_LINEAR_DECAY": False,
        "GAMMA": config.gamma,
        "TAU": config.tau,
        "ENV_NAME": config.env_id,
    }


def run_purejaxrl(
    module: types.ModuleType, config: DQNConfig, num_seeds: int, seed: int
) -> dict[str, Any]:
    """Time purejaxrl's DQN on `num_seeds` seeds (the same keys as ours); one table row."""
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    timed = common.time_compiled(jax.vmap(module.make_train(purejaxrl_config(config))), keys)
    train_state = timed["output"]["runner_state"][0]
    returns = np.asarray(timed["output"]["metrics"]["returns"])
    tail = max(1, round(LAST_FRACTION * returns.shape[1]))
    return _row(
        "purejaxrl",
        num_seeds,
        np.asarray(train_state.timesteps),
        np.asarray(train_state.n_updates),
        timed,
        returns[:, -tail:].mean(),
    )


def run_sb3(config: DQNConfig, timesteps: int, seed: int) -> dict[str, Any]:
    """Time stable-baselines3 DQN for `timesteps` env steps on one seed; one table row."""
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_vec_env

    start = time.perf_counter()
    env = make_vec_env(config.env_id, n_envs=config.num_envs, seed=seed)
    model = DQN(
        "MlpPolicy",
        env,
        learning_rate=config.learning_rate,
        buffer_size=config.buffer_size,
        learning_starts=config.learning_starts,
        batch_size=config.batch_size,
        tau=config.tau,
        gamma=config.gamma,
        train_freq=config.train_freq,
        gradient_steps=config.gradient_steps,
        # SB3 counts this in env steps: it copies every interval // n_envs vector steps.
        target_update_interval=config.target_update_interval,
        exploration_fraction=config.exploration_fraction,
        exploration_initial_eps=config.exploration_initial_eps,
        exploration_final_eps=config.exploration_final_eps,
        max_grad_norm=1e10,
        policy_kwargs={"net_arch": list(config.hidden_sizes)},
        seed=seed,
        device="cpu",
    )
    setup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    timed = {"compile_seconds": setup_seconds, "run_seconds": time.perf_counter() - start}
    # Monitor records per env: an episode ended in the last 10% if its env's step count then
    # (the cumulative episode lengths) was past 90% of that env's steps.
    final = []
    per_env_steps = model.num_timesteps / config.num_envs
    for rewards, lengths in zip(
        env.env_method("get_episode_rewards"), env.env_method("get_episode_lengths"), strict=True
    ):
        late = np.cumsum(lengths) > (1 - LAST_FRACTION) * per_env_steps
        final.extend(np.asarray(rewards)[late])
    return _row(
        "stable-baselines3",
        1,
        np.array([model.num_timesteps]),
        np.array([model._n_updates]),
        timed,
        np.mean(final) if final else None,
    )


def _row(
    name: str, seeds: int, env_steps: np.ndarray, updates: np.ndarray, timed: dict, final: Any
) -> dict[str, Any]:
    """A table row; per-seed counts must agree across seeds (else min..max is shown)."""

    def count(values: np.ndarray) -> int | str:
        lo, hi = int(np.min(values)), int(np.max(values))
        return lo if lo == hi else f"{lo}..{hi}"

    return {
        "implementation": name,
        "seeds": seeds,
        "env_steps_per_seed": count(env_steps),
        "updates_per_seed": count(updates),
        "compile_seconds": timed["compile_seconds"],
        "run_seconds": timed["run_seconds"],
        "env_steps_per_second": float(np.sum(env_steps)) / timed["run_seconds"],
        "final_return": _finite(final),
    }


COLUMNS = (
    ("implementation", "implementation"),
    ("seeds", "seeds"),
    ("env steps/seed", "env_steps_per_seed"),
    ("updates/seed", "updates_per_seed"),
    ("compile (SB3: setup) s", "compile_seconds"),
    ("run s", "run_seconds"),
    ("env steps/s", "env_steps_per_second"),
    ("speedup (ours ÷ this)", "speedup"),
    ("speedup, ours on 1 device", "speedup_one_device"),
    ("compile ratio (ours ÷ this)", "compile_ratio"),
    ("final return", "final_return"),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 16], help="seed counts")
    parser.add_argument(
        "--total-timesteps",
        type=int,
        default=500_000,
        help="env steps per seed for the JAX runs; a multiple of 1000 (10 envs x 100 log "
        "points) above learning_starts=10000; epsilon anneals over the first half",
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed of every key")
    parser.add_argument(
        "--purejaxrl",
        default=os.environ.get("PUREJAXRL_PATH"),
        help="purejaxrl repo root or dqn.py (default: $PUREJAXRL_PATH)",
    )
    parser.add_argument("--skip-sb3", action="store_true", help="do not run stable-baselines3")
    parser.add_argument(
        "--sb3-timesteps", type=int, default=50_000, help="env steps of the one SB3 seed"
    )
    parser.add_argument(
        "--results-dir", type=Path, default=common.RESULTS_DIR, help="where to write results"
    )
    return parser


def _run_jax(module: Any, config: Any, args: argparse.Namespace) -> tuple[list, dict, dict]:
    """The purejaxdqn rows (one device, and sharded) and purejaxrl's, per seed count."""
    rows, ours, ours_one_device = [], {}, {}
    for num_seeds in args.seeds:
        print(f"purejaxdqn, {num_seeds} seed(s), one device ...", flush=True)
        ours_one_device[num_seeds] = ours[num_seeds] = run_purejaxdqn(
            config, num_seeds, args.seed, shard=False
        )
        rows.append(ours[num_seeds])
        if min(num_seeds, len(jax.local_devices())) > 1:
            print(f"purejaxdqn, {num_seeds} seed(s), sharded over devices ...", flush=True)
            ours[num_seeds] = run_purejaxdqn(config, num_seeds, args.seed, shard=True)
            rows.append(ours[num_seeds])
        if module is not None:
            print(f"purejaxrl, {num_seeds} seed(s) ...", flush=True)
            rows.append(run_purejaxrl(module, config, num_seeds, args.seed))
    return rows, ours, ours_one_device


def _run_sb3(config: Any, args: argparse.Namespace, ours: dict) -> list:
    """Stable-Baselines3's one seed, when installed and not skipped."""
    if args.skip_sb3:
        print("stable-baselines3 skipped (--skip-sb3)")
        return []
    if importlib.util.find_spec("stable_baselines3") is None:
        print("stable-baselines3 skipped: not installed (`pip install stable-baselines3`)")
        return []
    if args.sb3_timesteps <= config.learning_starts:
        print(
            f"warning: --sb3-timesteps {args.sb3_timesteps} <= learning_starts "
            f"{config.learning_starts}: SB3 makes no updates"
        )
    print(f"stable-baselines3, 1 seed, {args.sb3_timesteps} steps ...", flush=True)
    row = run_sb3(config, args.sb3_timesteps, args.seed)
    if 1 not in ours:
        print("note: no 1-seed purejaxdqn run, so the SB3 row has no speedup")
    return [row]


def _add_ratios(rows: list, ours: dict, ours_one_device: dict) -> None:
    """Each reference row's speedups (ours ÷ it) and compile ratio, side by side."""
    for row in rows:
        if row["implementation"].startswith("purejaxdqn"):
            continue
        base = ours.get(row["seeds"])
        single = ours_one_device.get(row["seeds"])
        jax_ref = base is not None and row["implementation"] != "stable-baselines3"
        row["speedup"] = (
            base["env_steps_per_second"] / row["env_steps_per_second"] if base else None
        )
        row["speedup_one_device"] = (
            single["env_steps_per_second"] / row["env_steps_per_second"] if single else None
        )
        row["compile_ratio"] = base["compile_seconds"] / row["compile_seconds"] if jax_ref else None


def main(argv: list[str] | None = None) -> None:
    """Parse options, run every implementation, print the table and write the results."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = common.CLASSIC_CARTPOLE.replace(total_timesteps=args.total_timesteps)
    except ValueError as error:
        parser.error(str(error))

    module = None
    if args.purejaxrl is None:
        print("purejaxrl skipped: pass --purejaxrl PATH or set PUREJAXRL_PATH")
    else:
        module = load_purejaxrl(args.purejaxrl)

    print("warming up the compiler (untimed) ...", flush=True)
    warm_up(module, config)
    rows, ours, ours_one_device = _run_jax(module, config, args)
    rows += _run_sb3(config, args, ours)
    _add_ratios(rows, ours, ours_one_device)
    print(
        f"\nCartPole-v1, classic DQN config, {config.total_timesteps:,} env steps per seed "
        f"(SB3: {args.sb3_timesteps:,}, one seed), {common.device_slug()}\n"
    )
    print(common.markdown_table(rows, COLUMNS))
    dqn_file = Path(module.__file__) if module else None
    metadata = common.run_metadata()
    metadata.update(
        config=config.to_dict(),
        sb3_timesteps=args.sb3_timesteps,
        seed=args.seed,
        purejaxrl_path=args.purejaxrl,
        purejaxrl_dqn_sha256=dqn_file and hashlib.sha256(dqn_file.read_bytes()).hexdigest(),
        reference_versions=package_versions(REFERENCE_PACKAGES),
        final_return_fraction=LAST_FRACTION,
    )
    paths = common.write_results(
        f"compare_{common.device_slug()}", rows, metadata, args.results_dir
    )
    print("\nwrote " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
