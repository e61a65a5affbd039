"""What watching a run costs: one compiled call against chunks of one log period.

    python benchmarks/chunking.py                         # CartPole classic, 1 and 16 seeds
    python benchmarks/chunking.py --seeds 16 --repeats 3

`purejaxdqn train` runs the log periods in equal-length compiled chunks from a Python loop
(progress bar, TensorBoard, checkpoints between chunks). For each seed count this runs the
same `run.execute` three ways, in one process, alternating so machine noise hits
every mode alike:

- `one call`: every log period in one compiled call (no callback);
- `chunks`: one call per log period, a callback that does nothing;
- `chunks + watch`: one call per log period with the progress line and a checkpoint every
  25 log points (the checkpoint time is reported apart, `watch s`).

It checks that the three give bit-identical metrics, and prints and writes
(`results/chunking_<device>.json/.csv`) compile time, run time (the callback's time
excluded), env steps/s and each mode's speed relative to `one call`.
"""

from __future__ import annotations

import argparse
import io
import tempfile
from typing import Any

import jax
import numpy as np
from common import (
    CLASSIC_CARTPOLE,
    RESULTS_DIR,
    device_slug,
    markdown_table,
    run_metadata,
    write_results,
)

from purejaxdqn.core.loop import make_train_program
from purejaxdqn.run.checkpoint import Checkpointer
from purejaxdqn.run.execute import Chunk, execute
from purejaxdqn.run.monitor import Monitor, ProgressDisplay

MODES = ("one call", "chunks", "chunks + watch")


def _run(config: Any, num_seeds: int, mode: str) -> tuple[dict[str, Any], dict]:
    keys = jax.random.split(jax.random.key(0), num_seeds)
    program = make_train_program(config)
    with tempfile.TemporaryDirectory() as folder:
        on_chunk = None
        if mode == "chunks":

            def on_chunk(chunk: Chunk) -> bool:
                return False

        elif mode == "chunks + watch":
            on_chunk = Monitor(
                progress=ProgressDisplay("bench", config.total_timesteps, io.StringIO()),
                checkpointer=Checkpointer(folder, config, num_seeds, 0),
                checkpoint_every=25,
            )
        outputs = execute(program, keys, config.hparams(), on_chunk=on_chunk)
        if isinstance(on_chunk, Monitor):
            on_chunk.close()
    steps = num_seeds * config.total_timesteps
    row = {
        "seeds": num_seeds,
        "mode": mode,
        "chunks": 1 if on_chunk is None else config.num_log_points,
        "compile_s": outputs.compile_seconds,
        "run_s": outputs.run_seconds,
        "watch_s": outputs.watch_seconds,
        "env_steps_per_s": steps / outputs.run_seconds,
    }
    return row, outputs.metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--total-timesteps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    config = CLASSIC_CARTPOLE.replace(total_timesteps=args.total_timesteps, learning_starts=2_000)
    rows = []
    for num_seeds in args.seeds:
        best: dict[str, dict[str, Any]] = {}
        reference = None
        for repeat in range(args.repeats):
            order = MODES if repeat % 2 == 0 else MODES[::-1]
            for mode in order:
                row, metrics = _run(config, num_seeds, mode)
                if reference is None:
                    reference = metrics
                same = all(
                    np.array_equal(metrics[k], reference[k], equal_nan=True) for k in metrics
                )
                if not same:
                    raise SystemExit(f"{mode} at {num_seeds} seeds differs from the first run")
                if mode not in best or row["run_s"] < best[mode]["run_s"]:
                    best[mode] = row
        base = best["one call"]["env_steps_per_s"]
        for mode in MODES:
            best[mode]["vs_one_call"] = best[mode]["env_steps_per_s"] / base
            best[mode]["bitwise_equal"] = True
            rows.append(best[mode])
    columns = [
        ("seeds", "seeds"),
        ("mode", "mode"),
        ("compiled calls", "chunks"),
        ("compile s", "compile_s"),
        ("run s", "run_s"),
        ("watch s", "watch_s"),
        ("env steps/s", "env_steps_per_s"),
        ("÷ one call", "vs_one_call"),
    ]
    print(
        f"CartPole classic, {args.total_timesteps:,} env steps per seed, "
        f"{config.num_log_points} log points; best of {args.repeats}; {jax.devices()[0]}"
    )
    print(markdown_table(rows, columns))
    paths = write_results(f"chunking_{device_slug()}", rows, run_metadata(), RESULTS_DIR)
    print("written:", *paths)


if __name__ == "__main__":
    main()
