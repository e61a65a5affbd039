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

`--algo pqn` compares purejaxdqn's PQN with purejaxql's (https://github.com/mttga/purejaxql):

    python benchmarks/compare.py --algo pqn --purejaxql /path/to/purejaxql  # seeds 1 and 16
    python benchmarks/compare.py --algo pqn --purejaxql /path/to/purejaxql --seeds 1 \
        --env CartPole-v1 --cartpole-timesteps 40960 --eval-envs 8 --results-dir /tmp/cmp

- purejaxql: `pqn_gymnax.py` with `config/alg/pqn_cartpole.yaml` on CartPole-v1 and
  `pqn_minatar.py` with `pqn_minatar.yaml` on Breakout-MinAtar, imported unmodified from
  `--purejaxql` (repo root or its `purejaxql/` folder) at run time. Its config dict is
  what its hydra entry point builds (`config/config.yaml`'s top-level keys with the alg
  yaml merged in), with TOTAL_TIMESTEPS = TOTAL_TIMESTEPS_DECAY = the run length (CartPole:
  491,520, our preset's 240 iterations; Breakout: `--minatar-timesteps`), WANDB_MODE
  disabled, TEST_NUM_ENVS from `--eval-envs` if given. Shims for what changed since it was
  written, nothing else: missing `hydra`, `omegaconf`, `wandb`, `safetensors` are stubbed
  (imported, never used by `make_train`); its `LogWrapper` steps gymnax 1.x's six values and
  returns the old five, `done = terminated | truncated` (as gymnax < 1.0 did), without the
  info keys gymnax 1.x added. Timed as `jit(vmap(make_train(config)))` over the raw key
  data of the same N keys (lower + compile apart from the run, `block_until_ready`).
- purejaxdqn: `PQNConfig` built from the same yaml values (the preset's network: an MLP of
  HIDDEN_SIZE x NUM_LAYERS, or the MinAtar CNN), run as `run_experiment` runs it, on one
  device and, for N > 1, sharded over the local devices. Fields where this differs from
  `pqn_config_for(env)` (the preset) are printed and recorded (`differences_from_preset`).
- Evaluation (`--evaluation`): `matched` (default) turns on both sides' greedy tests at
  purejaxql's TEST_INTERVAL (every int(0.05 * iterations) iterations; ours: one log point
  per interval, `eval_every=1`), TEST_NUM_ENVS envs for the env's episode limit of steps
  each at EPS_TEST = 0. The loads differ only in that purejaxql also tests once before
  training (21 tests to our 20). `off` turns both off (speed rows without evaluation).
- "final greedy return" of a seed, at the end of training (the last test): purejaxql's
  `test/returned_episode_returns`, the mean return of every episode that ended within the
  test's steps (auto-reset envs, so short episodes count more than once); ours, the mean
  return of each test env's first episode (`evals["return"]`). Equal for a policy whose
  episodes all last the full test (CartPole at 500). Seeds are not paired across the two
  implementations (the same keys, split differently), so compare distributions.
- Known differences in the algorithms: purejaxql treats CartPole's 500-step truncation as a
  termination (targets do not bootstrap there), ours bootstraps it from the true final
  observation (one forward pass over each env's last observation and truncated final
  observations per rollout; both reuse the acting pass's Q-values elsewhere); purejaxql's
  networks also run a BatchNorm on the input whose output is discarded, and its MinAtar
  CNN divides MinAtar's 0/1 observations by 255 (ours: no scaling). Both use He-normal
  kernels in the MinAtar CNN and LeCun-normal (flax's default) in the MLP.
- Ratios: "speedup" is purejaxdqn's env steps/s (sharded when N > 1) ÷ the row's,
  "speedup, ours on 1 device" the same for our one-device row (the like-for-like one:
  purejaxql runs on one device), "compile ratio" ours (sharded) ÷ the row's, "return
  ratio" our one-device mean final greedy return ÷ the row's.
- Compute floor (rows without evaluation; `compute_floor.py`): each run's floating-point
  operations (XLA's count of one iteration's pieces × iterations × seeds; ours also run
  the network on each env's truncated final observations), its rate ("GFLOP/s"), that rate as a
  fraction of the fastest float32 matrix product timed at the end of the same run ("of
  matmul peak"), and for purejaxql's rows the "speedup ceiling": its run time ÷ the time
  our operations would take at that peak, the most any program computing what ours does
  could gain over it here. Results go to `<results-dir>/compare_pqn_<device>.json` and
  `.csv`.
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
from collections.abc import Collection
from pathlib import Path
from typing import Any

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import compute_floor  # noqa: E402

from purejaxdqn import DQNConfig, make_train_program  # noqa: E402
from purejaxdqn.core.pqn_config import PQNConfig  # noqa: E402
from purejaxdqn.core.pqn_presets import pqn_config_for  # noqa: E402
from purejaxdqn.envs.spec import make_env  # noqa: E402
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


def import_with_five_value_step(
    name: str, path: Path, drop_info: Collection[str] = ()
) -> types.ModuleType:
    """Import the peer script at `path` unmodified as module `name`, its `LogWrapper`
    replaced by gymnax 1.x's with the old `(obs, state, reward, done, info)` step
    (`done = terminated | truncated`) and without the info keys in `drop_info`.
    """
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    class FiveTupleLogWrapper(module.LogWrapper):
        """gymnax 1.x LogWrapper with the old `(obs, state, reward, done, info)` step."""

        def step(self, key: Any, state: Any, action: Any, params: Any = None) -> tuple:
            obs, state, reward, terminated, truncated, info = super().step(
                key, state, action, params
            )
            info = {k: v for k, v in info.items() if k not in drop_info}
            return obs, state, reward, terminated | truncated, info

    module.LogWrapper = FiveTupleLogWrapper
    return module


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
    return import_with_five_value_step("purejaxrl_dqn", candidate)


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


def _is_ours(row: dict[str, Any]) -> bool:
    """Whether a table row is one of purejaxdqn's (not a reference implementation's)."""
    return row["implementation"].startswith("purejaxdqn")


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


# --- --algo pqn: purejaxql's PQN against purejaxdqn's ------------------------------------

# Per env: purejaxql's script and its alg config (in its config/alg/).
PQN_SCRIPTS = {
    "CartPole-v1": ("pqn_gymnax.py", "pqn_cartpole.yaml"),
    "Breakout-MinAtar": ("pqn_minatar.py", "pqn_minatar.yaml"),
}
# Imported at the top of purejaxql's scripts, never used by `make_train` with wandb
# disabled and nothing saved: stubbed when not installed.
PQN_STUBBED_PACKAGES = ("hydra", "omegaconf", "wandb", "safetensors")
# Keys gymnax 1.x added to a step's info: purejaxql averages every info key and masks each
# with `returned_episode` in its tests, which fails on the per-observation final_observation.
GYMNAX1_INFO_KEYS = frozenset(
    {"final_observation", "terminated", "truncated", "returned_episode_valid"}
)
PQN_REFERENCE_PACKAGES = ("gymnax", "flax", "optax", "chex", "pyyaml")
PQN_COLUMNS = (
    ("env", "env_id"),
    ("evaluation", "evaluation"),
    ("implementation", "implementation"),
    ("seeds", "seeds"),
    ("env steps/seed", "env_steps_per_seed"),
    ("updates/seed", "updates_per_seed"),
    ("compile s", "compile_seconds"),
    ("run s", "run_seconds"),
    ("env steps/s", "env_steps_per_second"),
    ("speedup (ours ÷ this)", "speedup"),
    ("speedup, ours on 1 device", "speedup_one_device"),
    ("compile ratio (ours ÷ this)", "compile_ratio"),
    ("final greedy return, mean", "final_return"),
    ("per seed", "final_returns_text"),
    ("return ratio (ours 1 dev ÷ this)", "return_ratio"),
    ("GFLOP/s", "gflops_per_second"),
    ("of matmul peak", "fraction_of_matmul_peak"),
    ("speedup ceiling (ours at the peak ÷ this)", "speedup_ceiling"),
)


def purejaxql_package(path: str) -> Path:
    """The folder of purejaxql's scripts (holding `config/`), from its repo root or itself."""
    for candidate in (Path(path) / "purejaxql", Path(path)):
        if (candidate / "config" / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"no purejaxql at {path} (give the repo root or its purejaxql/)")


def stub_missing_packages() -> list[str]:
    """Stub the packages of `PQN_STUBBED_PACKAGES` that are not installed; their names."""

    def unavailable(*_: Any, **__: Any) -> Any:
        raise RuntimeError("stubbed by benchmarks/compare.py: not installed")

    stubs = {
        "hydra": {"main": lambda **_: lambda function: function},  # only decorates main()
        "omegaconf": {"OmegaConf": types.SimpleNamespace(to_yaml=unavailable, save=unavailable)},
        "wandb": {"init": unavailable, "log": unavailable},
        "safetensors": {},
        "safetensors.flax": {"load_file": unavailable, "save_file": unavailable},
    }
    stubbed = []
    for name in PQN_STUBBED_PACKAGES:
        if importlib.util.find_spec(name) is not None:
            continue
        stubbed.append(name)
        for module_name, attrs in stubs.items():
            if module_name.partition(".")[0] == name:
                module = types.ModuleType(module_name)
                module.__dict__.update(attrs)
                sys.modules[module_name] = module
    if "safetensors" in stubbed:
        sys.modules["safetensors"].flax = sys.modules["safetensors.flax"]
    return stubbed


def load_purejaxql(package: Path, script: str) -> types.ModuleType:
    """Import purejaxql's `script` from `package` unmodified, with gymnax 1.x's `LogWrapper`
    giving the five-value step it was written for.
    """
    return import_with_five_value_step(
        f"purejaxql_{Path(script).stem}", package / script, drop_info=GYMNAX1_INFO_KEYS
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    """A yaml file as a dict, with numbers such as `5e5` (strings to PyYAML, floats to
    OmegaConf, which purejaxql reads its configs with) as floats.
    """
    import re

    import yaml

    number = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return float(value) if isinstance(value, str) and number.fullmatch(value) else value

    return convert(yaml.safe_load(path.read_text()) or {})


def purejaxql_config(package: Path, alg_file: str, args: argparse.Namespace, total: int) -> dict:
    """The config dict purejaxql's entry point would build for `+alg=<alg_file>` (the
    top-level config with the alg's keys merged in), for a run of `total` env steps.
    """
    config = _read_yaml(package / "config" / "config.yaml")
    alg = {**config.get("alg", {}), **_read_yaml(package / "config" / "alg" / alg_file)}
    # single_run: {**config, **config["alg"]}; make_train never reads the nested "alg",
    # which keeps the yaml's own TOTAL_TIMESTEPS and ENV_NAME: left out, not to mislead.
    config = {**{k: v for k, v in config.items() if k != "alg"}, **alg}
    config.update(
        TOTAL_TIMESTEPS=total,
        TOTAL_TIMESTEPS_DECAY=total,
        WANDB_MODE="disabled",
        SEED=args.seed,
        SAVE_PATH=None,
    )
    if args.eval_envs is not None:
        config["TEST_NUM_ENVS"] = args.eval_envs
    return config


def pqn_log_points(ql: dict[str, Any], env_id: str) -> int:
    """Our log points per run: one per purejaxql test interval (int(TEST_INTERVAL *
    iterations) iterations), so that our evaluations fall where its tests do.
    """
    rollout = int(ql["NUM_ENVS"] * ql["NUM_STEPS"])
    iterations, rest = divmod(int(ql["TOTAL_TIMESTEPS"]), rollout)

    def interval(n: int) -> int:
        return int(n * ql["TEST_INTERVAL"])

    if rest or not interval(iterations) or iterations % interval(iterations):
        valid = [n for n in range(1, 4 * iterations + 40) if interval(n) and n % interval(n) == 0]
        near = sorted(valid, key=lambda n: abs(n - iterations))[:2]
        raise SystemExit(
            f"{env_id}: {int(ql['TOTAL_TIMESTEPS'])} env steps is not a whole number of "
            f"rollouts ({rollout} env steps) whose count N is a multiple of purejaxql's test "
            f"interval int({ql['TEST_INTERVAL']} * N); nearest: "
            + " or ".join(f"{n * rollout} (N = {n})" for n in sorted(near))
        )
    return iterations // interval(iterations)


def pqn_config_from(ql: dict[str, Any], env_id: str, script: str, evaluation: str) -> PQNConfig:
    """Our `PQNConfig` for the run that purejaxql's config dict `ql` describes."""
    if ql.get("NORM_INPUT", False) or ql["NORM_TYPE"] not in ("layer_norm", "none"):
        raise SystemExit(f"{env_id}: purejaxql's NORM_INPUT / batch_norm have no counterpart")
    if script == "pqn_gymnax.py":  # its QNetwork: NUM_LAYERS dense layers of HIDDEN_SIZE
        network = {
            "network": "mlp",
            "hidden_sizes": (int(ql.get("HIDDEN_SIZE", 128)),) * int(ql.get("NUM_LAYERS", 2)),
            "kernel_init": "lecun_normal",  # flax's default, which it keeps
        }
    else:  # pqn_minatar.py's CNN: 16 3x3 filters, then a dense layer of 128, He-normal
        network = {"network": "minatar_cnn", "hidden_sizes": (128,), "kernel_init": "he_normal"}
    return pqn_config_for(env_id).replace(
        num_envs=int(ql["NUM_ENVS"]),
        num_steps=int(ql["NUM_STEPS"]),
        total_timesteps=int(ql["TOTAL_TIMESTEPS"]),
        num_epochs=int(ql["NUM_EPOCHS"]),
        num_minibatches=int(ql["NUM_MINIBATCHES"]),
        learning_rate=float(ql["LR"]),
        anneal_lr=bool(ql.get("LR_LINEAR_DECAY", False)),
        max_grad_norm=float(ql["MAX_GRAD_NORM"]),
        gamma=float(ql["GAMMA"]),
        lam=float(ql["LAMBDA"]),
        reward_scale=float(ql.get("REW_SCALE", 1.0)),
        exploration_initial_eps=float(ql["EPS_START"]),
        exploration_final_eps=float(ql["EPS_FINISH"]),
        exploration_fraction=float(ql["EPS_DECAY"]),
        norm=ql["NORM_TYPE"],
        num_log_points=pqn_log_points(ql, env_id),
        eval_every=1 if evaluation == "matched" else 0,
        eval_episodes=int(ql["TEST_NUM_ENVS"]),
        eval_epsilon=float(ql["EPS_TEST"]),
        eval_max_steps=ql.get("TEST_NUM_STEPS"),
        **network,
    )


def differences_from_preset(config: PQNConfig) -> dict[str, list]:
    """Fields of `config` that differ from `pqn_config_for(env)`, but for the run length,
    the log points and the evaluation: {field: [preset's, ours here]}; `network` compares
    the network class each builds ('auto' resolved).
    """
    spec = make_env(config.env_id)

    def fields(c: PQNConfig) -> dict[str, Any]:
        network = c.q_network(spec.obs_shape, spec.num_actions)[0]
        return {**c.to_dict(), "network": type(network).__name__}

    preset, ours = fields(pqn_config_for(config.env_id)), fields(config)
    skip = {"total_timesteps", "num_log_points", "solved_threshold"}
    return {
        name: [preset.get(name), value]
        for name, value in ours.items()
        if preset.get(name) != value and name not in skip and not name.startswith("eval_")
    }


def _pqn_row(name: str, env_id: str, evaluation: str, finals: Any, *counts: Any) -> dict:
    """A PQN table row: `_row(name, *counts)` with the env, the evaluation and the final
    greedy return of every seed (`finals`, None without evaluation).
    """
    mean = None if finals is None or np.isnan(finals).all() else np.nanmean(finals)
    listed = None if finals is None else [_finite(v) for v in np.asarray(finals)]
    text = None
    if listed:
        finite = [v for v in listed if v is not None]
        if len(listed) <= 4:
            text = ", ".join("nan" if v is None else f"{v:.1f}" for v in listed)
        elif finite:
            text = f"{min(finite):.1f}..{max(finite):.1f}"
            text += f" ({len(listed) - len(finite)} nan)" if len(finite) < len(listed) else ""
    return {
        "env_id": env_id,
        "evaluation": evaluation,
        **_row(name, *counts, mean),
        "final_returns": listed,
        "final_returns_text": text,
    }


def run_pqn_ours(config: PQNConfig, keys: jax.Array, shard: bool, test_steps: int) -> dict:
    """Time purejaxdqn's PQN on `keys` as `run_experiment` runs it (`run.execute`), on one
    device or sharded over the local devices; one table row.
    """
    devices = jax.local_devices()[: None if shard else 1]
    out = execute(
        config.make_program(), keys, config.hparams(), max_runs_per_device=None, devices=devices
    )
    timed = {"compile_seconds": out.compile_seconds, "run_seconds": out.run_seconds}
    evaluation = "off"
    finals = None
    if config.eval_every:
        finals = out.evals["return"][:, -1]
        evaluation = f"{config.num_evals} x {config.eval_episodes} envs x {test_steps} steps"
    used = out.plan.num_devices
    return _pqn_row(
        f"purejaxdqn ({used} device{'s' if used > 1 else ''})",
        config.env_id,
        evaluation,
        finals,
        len(keys),
        out.metrics["env_steps"][:, -1],
        out.metrics["updates"].sum(axis=1),
        timed,
    )


def run_pqn_theirs(module: types.ModuleType, ql: dict, keys: jax.Array, env_id: str) -> dict:
    """Time purejaxql's `jit(vmap(make_train(config)))` on the raw data of `keys`; one row."""
    ql = dict(ql, NUM_SEEDS=len(keys))  # make_train adds NUM_UPDATES and others to it
    train = module.make_train(ql)
    timed = common.time_compiled(jax.vmap(train), jax.random.key_data(keys))
    train_state = timed["output"]["runner_state"][0]
    metrics = timed["output"]["metrics"]
    evaluation, finals = "off", None
    if ql.get("TEST_DURING_TRAINING", False):
        finals = np.asarray(metrics["test/returned_episode_returns"])[:, -1]
        tests = int(ql["NUM_UPDATES"]) // int(ql["NUM_UPDATES"] * ql["TEST_INTERVAL"]) + 1
        evaluation = (
            f"{tests} x {ql['TEST_NUM_ENVS']} envs x {ql['TEST_NUM_STEPS']} steps (1 before "
            "training)"
        )
    return _pqn_row(
        "purejaxql",
        env_id,
        evaluation,
        finals,
        len(keys),
        np.asarray(train_state.timesteps),
        np.asarray(train_state.grad_steps),
        timed,
    )


def pqn_warm_up(module: types.ModuleType, ql: dict, config: PQNConfig) -> None:
    """Compile (and for ours run) both at one iteration without evaluation, untimed, so
    neither timed compile pays the process's one-time costs.
    """
    rollout = config.steps_per_iteration
    tiny = config.replace(total_timesteps=rollout, num_log_points=1, eval_every=0)
    keys = jax.random.split(jax.random.key(0), 1)
    execute(tiny.make_program(), keys, tiny.hparams(), devices=jax.local_devices()[:1])
    tiny_ql = dict(ql, TOTAL_TIMESTEPS=rollout, TOTAL_TIMESTEPS_DECAY=rollout)
    tiny_ql["TEST_DURING_TRAINING"] = False
    train = module.make_train(tiny_ql)
    jax.jit(jax.vmap(train)).lower(jax.random.key_data(keys)).compile()


def _run_pqn_seeds(
    module: types.ModuleType, ql: dict, config: PQNConfig, args: argparse.Namespace, steps: int
) -> list[dict]:
    """Every seed count of one env and evaluation mode: our rows (one device, and sharded
    for N > 1) and purejaxql's, with the ratios.
    """
    rows, ours, ours_one_device = [], {}, {}
    for num_seeds in args.seeds:
        keys = jax.random.split(jax.random.key(args.seed), num_seeds)
        label = f"{config.env_id}, evaluation {'on' if config.eval_every else 'off'}"
        print(f"{label}: purejaxdqn, {num_seeds} seed(s), one device ...", flush=True)
        ours[num_seeds] = ours_one_device[num_seeds] = run_pqn_ours(config, keys, False, steps)
        rows.append(ours[num_seeds])
        if min(num_seeds, len(jax.local_devices())) > 1:
            print(f"{label}: purejaxdqn, {num_seeds} seed(s), sharded ...", flush=True)
            ours[num_seeds] = run_pqn_ours(config, keys, True, steps)
            rows.append(ours[num_seeds])
        print(f"{label}: purejaxql, {num_seeds} seed(s) ...", flush=True)
        rows.append(run_pqn_theirs(module, ql, keys, config.env_id))
    _add_ratios(rows, ours, ours_one_device)
    for row in rows:
        single = ours_one_device[row["seeds"]]["final_return"]
        if not _is_ours(row):
            theirs = row["final_return"]
            row["return_ratio"] = single / theirs if single is not None and theirs else None
    return rows


def run_pqn_env(env_id: str, package: Path, args: argparse.Namespace) -> tuple[list, dict]:
    """Both implementations on `env_id` in every evaluation mode; the rows and a record of
    the configs, the differences from our preset and the files used.
    """
    script, alg_file = PQN_SCRIPTS[env_id]
    module = load_purejaxql(package, script)
    total = args.cartpole_timesteps if env_id == "CartPole-v1" else args.minatar_timesteps
    ql_base = {**purejaxql_config(package, alg_file, args, total), "ENV_NAME": env_id}
    steps = int(ql_base.get("TEST_NUM_STEPS") or make_env(env_id).max_episode_steps)
    record: dict[str, Any] = {
        "script": script,
        "alg_config": alg_file,
        "sha256": {
            name: hashlib.sha256(path.read_bytes()).hexdigest()
            for name, path in (
                (script, package / script),
                (alg_file, package / "config" / "alg" / alg_file),
                ("config.yaml", package / "config" / "config.yaml"),
            )
        },
        "runs": {},
    }
    rows = []
    for evaluation in args.evaluation:
        ql = dict(ql_base, TEST_DURING_TRAINING=evaluation == "matched")
        config = pqn_config_from(ql, env_id, script, evaluation)
        if not rows:
            differences = differences_from_preset(config)
            record["differences_from_preset"] = differences
            print(f"{env_id}: purejaxql's config differs from our preset in {differences}")
            print(f"{env_id}: warming up the compiler (untimed) ...", flush=True)
            pqn_warm_up(module, ql, config)
            record["flops_per_iteration_per_seed"] = compute_floor.pqn_iteration_flops(config)
        new_rows = _run_pqn_seeds(module, ql, config, args, steps)
        if evaluation == "off":  # the greedy tests' operations are not counted
            _count_flops(new_rows, record["flops_per_iteration_per_seed"], config.num_iterations)
        rows += new_rows
        record["runs"][evaluation] = {
            "purejaxdqn": config.to_dict(),
            "purejaxql": {**ql, "NUM_SEEDS": "each row's seeds"},
        }
    return rows, record


def _count_flops(rows: list[dict], flops: dict[str, float], iterations: int) -> None:
    """Each row's floating-point operations (`flops`, per iteration of one seed for each
    side) over its run, ours at its seed count, and its rate.
    """
    for row in rows:
        ours = _is_ours(row)
        row["flops"] = flops["purejaxdqn" if ours else "purejaxql"] * iterations * row["seeds"]
        row["our_flops"] = flops["purejaxdqn"] * iterations * row["seeds"]
        row["gflops_per_second"] = row["flops"] / row["run_seconds"] / 1e9


def add_compute_floor(rows: list[dict]) -> dict[str, float] | None:
    """Time this machine's matrix products (after every run, so on the same machine
    state), then give each row that counted its operations its fraction of that peak and
    each purejaxql row its speedup ceiling; the measured rates (None when no row counted).
    """
    counted = [row for row in rows if "flops" in row]
    if not counted:
        return None
    print("timing this machine's matrix products (the compute floor) ...", flush=True)
    rates = compute_floor.matmul_peak_flops(jax.local_devices())
    for row in counted:
        row["fraction_of_matmul_peak"] = row["flops"] / row["run_seconds"] / rates["peak"]
        if not _is_ours(row):
            row["speedup_ceiling"] = row["run_seconds"] / (row["our_flops"] / rates["peak"])
    return rates


def main_pqn(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """`--algo pqn`: run both PQNs on every env, print the table and write the results."""
    if args.purejaxql is None:
        parser.error("--algo pqn needs --purejaxql PATH (or $PUREJAXQL_PATH)")
    package = purejaxql_package(args.purejaxql)
    stubbed = stub_missing_packages()
    if stubbed:
        print(f"stubbed (not installed, unused by purejaxql's make_train): {stubbed}")
    rows, records = [], {}
    for env_id in args.env:
        env_rows, records[env_id] = run_pqn_env(env_id, package, args)
        rows += env_rows
    peak = add_compute_floor(rows)
    print(
        f"\nPQN, purejaxdqn against purejaxql at purejaxql's configs, {common.device_slug()}; "
        "evaluation: the greedy tests each side ran during the timed run (off: none)\n"
    )
    print(common.markdown_table(rows, PQN_COLUMNS))
    metadata = common.run_metadata()
    metadata.update(
        algo="pqn",
        seed=args.seed,
        seeds=args.seeds,
        evaluation=args.evaluation,
        purejaxql_path=str(package),
        purejaxql_stubbed_packages=stubbed,
        shims=[
            "LogWrapper.step returns (obs, state, reward, terminated | truncated, info) "
            f"without gymnax 1.x's info keys {sorted(GYMNAX1_INFO_KEYS)}",
            f"stub modules for missing {list(PQN_STUBBED_PACKAGES)}",
        ],
        envs=records,
        reference_versions=package_versions(PQN_REFERENCE_PACKAGES),
        matmul_flops_per_second=peak,
        compute_floor=(
            "rows without evaluation: flops = the floating-point operations of the run "
            "(compute_floor.pqn_iteration_flops x iterations x seeds), GFLOP/s = flops / "
            "run s, 'of matmul peak' = that / the fastest float32 matrix product measured "
            "in this run (matmul_flops_per_second), speedup ceiling = the row's run s / "
            "(our flops / that peak): the most any program doing our operations could "
            "gain over the row on this machine"
        ),
        final_return=(
            "final greedy return of a seed at the end of training: purejaxql's last "
            "test/returned_episode_returns (mean over every episode ended within the test's "
            "steps), ours the mean return of each evaluation env's first episode"
        ),
    )
    name = f"compare_pqn_{common.device_slug()}"
    paths = common.write_results(name, rows, metadata, args.results_dir)
    print("\nwrote " + ", ".join(map(str, paths)))


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
    parser.add_argument(
        "--algo",
        choices=["dqn", "pqn"],
        default="dqn",
        help="dqn: against purejaxrl and SB3 (default); pqn: our PQN against purejaxql's",
    )
    pqn = parser.add_argument_group("--algo pqn")
    pqn.add_argument(
        "--purejaxql",
        default=os.environ.get("PUREJAXQL_PATH"),
        help="purejaxql repo root or its purejaxql/ folder (default: $PUREJAXQL_PATH)",
    )
    pqn.add_argument(
        "--env",
        nargs="+",
        choices=list(PQN_SCRIPTS),
        default=list(PQN_SCRIPTS),
        help="envs to compare (CartPole-v1: pqn_gymnax.py; Breakout-MinAtar: pqn_minatar.py)",
    )
    pqn.add_argument(
        "--cartpole-timesteps",
        type=int,
        default=pqn_config_for("CartPole-v1").total_timesteps,
        help="CartPole-v1 env steps per seed (default: our preset's 491,520 = 240 iterations)",
    )
    pqn.add_argument(
        "--minatar-timesteps",
        type=int,
        default=409_600,
        help="Breakout-MinAtar env steps per seed (default 409,600 = 100 iterations of "
        "128 envs x 32 steps, a short CPU run; the preset's is 10,240,000)",
    )
    pqn.add_argument(
        "--evaluation",
        nargs="+",
        choices=["matched", "off"],
        default=["matched"],
        help="matched: both sides run their greedy tests at purejaxql's schedule (final "
        "greedy returns); off: neither does (training speed only); both: 'matched off'",
    )
    pqn.add_argument(
        "--eval-envs",
        type=int,
        default=None,
        help="test envs per evaluation, both sides (default: the yaml's TEST_NUM_ENVS, 128)",
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
        if _is_ours(row):
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
    if args.algo == "pqn":
        main_pqn(args, parser)
        return
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
