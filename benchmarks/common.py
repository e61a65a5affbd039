"""Shared pieces of the speed benchmarks: the classic config, timing, tables and results.

purejaxdqn runs through `run.execute`, which times its compile apart from its run;
other JAX programs (the reference implementations) are timed with `time_compiled`, which
reports the compile time (trace + lower + compile) apart from the run time. Every script
prints a markdown table with `markdown_table`, and saves its rows with `write_results`
(JSON and CSV under `benchmarks/results/`, stamped with date, device and versions).
"""

from __future__ import annotations

import csv
import datetime
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

from purejaxdqn.run.devices import use_all_cpu_cores

use_all_cpu_cores()  # before any array exists: one CPU device per core (see purejaxdqn.devices)

from purejaxdqn.core.config import DQNConfig  # noqa: E402
from purejaxdqn.outputs.report import device_description, package_versions  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# The classic CartPole DQN of CleanRL / purejaxrl: 10 envs, buffer 10k, batch 128, Adam
# 2.5e-4 (no gradient clipping), one update per vector step of 10 env steps, hard target
# copy every 500 env steps, learning starts at 10k, epsilon 1 -> 0.05 over the first half,
# gamma 0.99, MLP 120-84, 500k env steps, no evaluation during training.
CLASSIC_CARTPOLE = DQNConfig(
    env_id="CartPole-v1",
    num_envs=10,
    total_timesteps=500_000,
    buffer_size=10_000,
    learning_starts=10_000,
    batch_size=128,
    train_freq=1,
    gradient_steps=1,
    learning_rate=2.5e-4,
    max_grad_norm=None,
    gamma=0.99,
    tau=1.0,
    target_update_interval=500,
    exploration_fraction=0.5,
    exploration_initial_eps=1.0,
    exploration_final_eps=0.05,
    loss="mse",
    double_q=False,
    hidden_sizes=(120, 84),
    num_log_points=100,
    eval_every=0,
)


def time_compiled(fn: Callable, *args: Any, donate_argnums: Sequence[int] = ()) -> dict:
    """Compile `jax.jit(fn)` for `args`, run it once, and time both phases.

    Returns:
        `{"compile_seconds", "run_seconds", "output", "compiled"}`; the run time covers the
        compiled call until every output is ready; `compiled` is the executable (for
        `memory_analysis()` or `cost_analysis()`).
    """
    start = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=tuple(donate_argnums)).lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    output = jax.block_until_ready(compiled(*args))
    run_seconds = time.perf_counter() - start
    return {
        "compile_seconds": compile_seconds,
        "run_seconds": run_seconds,
        "output": output,
        "compiled": compiled,
    }


def device_slug() -> str:
    """A file-name-safe device label, e.g. 'cpu' or 'NVIDIA-H100-80GB-HBM3'."""
    device = jax.devices()[0]
    kind = device.platform if device.platform == "cpu" else device.device_kind
    return "".join(c if c.isalnum() else "-" for c in kind).strip("-")


def run_metadata(command: str | None = None) -> dict[str, Any]:
    """Date, command, device and package versions to store beside benchmark rows."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "date": now.strftime("%Y-%m-%d"),
        "started_utc": now.isoformat(timespec="seconds"),
        "command": command or " ".join(["python", *sys.argv]),
        "device": device_description(),
        "versions": package_versions(),
    }


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A markdown table of `rows` with (header, key) `columns`; floats get 3 significant
    digits (or thousands separators when large), None is shown as 'n/a'.
    """

    def cell(value: Any) -> str:
        if value is None:
            return "n/a"
        if isinstance(value, float):
            return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    header = "| " + " | ".join(name for name, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(row.get(key)) for _, key in columns) + " |" for row in rows]
    return "\n".join([header, rule, *body])


def write_results(
    name: str, rows: Sequence[dict[str, Any]], metadata: dict[str, Any], results_dir: Path
) -> tuple[Path, Path]:
    """Write `<name>.json` (metadata plus rows) and `<name>.csv` (rows) in `results_dir`."""
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path = results_dir / f"{name}.json"
    with json_path.open("w") as file:
        json.dump({**metadata, "rows": list(rows)}, file, indent=2, allow_nan=False)
        file.write("\n")
    csv_path = results_dir / f"{name}.csv"
    keys = list(dict.fromkeys(key for row in rows for key in row))
    with csv_path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return json_path, csv_path
