r"""What a verified checkpoint costs: save (write, fsync, SHA-256) and restore (read, verify).

    python benchmarks/checkpoints.py
    python benchmarks/checkpoints.py --env Breakout-MinAtar --seeds 1 8 --repeats 3

For every env preset and seed count it builds the runner states of N seeds (`init` only,
nothing trained: a checkpoint's cost depends on its bytes, not their values), then times
`checkpoint.Checkpointer.save` and `checkpoint.restore` into a temporary folder and reports
the size and MB/s of each (median of the repeats). Results go to
`results/checkpoints_<device>.json` and `.csv`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from common import RESULTS_DIR, device_slug, markdown_table, run_metadata, write_results

from purejaxdqn import get_preset
from purejaxdqn.core.loop import make_train_program
from purejaxdqn.run import checkpoint
from purejaxdqn.run.execute import execute, state_shapes

COLUMNS = [
    ("env", "env_id"),
    ("seeds", "num_seeds"),
    ("MB", "megabytes"),
    ("save s", "save_seconds"),
    ("save MB/s", "save_mb_per_second"),
    ("restore s", "restore_seconds"),
    ("restore MB/s", "restore_mb_per_second"),
]


def measure(env_id: str, num_seeds: int, repeats: int) -> dict:
    """Median save and restore times of `num_seeds` runner states of `env_id`'s preset."""
    config = get_preset(env_id).replace(  # the preset's buffer, one vector step
        num_envs=8, train_freq=1, learning_starts=0, eval_every=0, num_log_points=1,
        total_timesteps=8,
    )  # fmt: skip
    program = make_train_program(config)
    states = []

    def keep(chunk):
        states.append(chunk.states())
        return True

    keys = jax.random.split(jax.random.key(0), num_seeds)
    execute(program, keys, config.hparams(), on_chunk=keep)
    leaves = states[0]
    size = sum(np.asarray(leaf).nbytes for leaf in leaves)
    like = state_shapes(program, config.hparams())
    identity = checkpoint.identity("bench", config, num_seeds, 0)
    saves, restores = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            writer = checkpoint.Checkpointer(folder, identity, keep=1)
            start = time.perf_counter()
            writer.save(1, leaves, {"env_steps": np.zeros((num_seeds, 1))}, {})
            saves.append(time.perf_counter() - start)
            start = time.perf_counter()
            checkpoint.restore(folder, like, identity)
            restores.append(time.perf_counter() - start)
    save, restore = statistics.median(saves), statistics.median(restores)
    return {
        "env_id": env_id,
        "num_seeds": num_seeds,
        "megabytes": round(size / 1e6, 1),
        "save_seconds": round(save, 3),
        "save_mb_per_second": round(size / 1e6 / save),
        "restore_seconds": round(restore, 3),
        "restore_mb_per_second": round(size / 1e6 / restore),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", nargs="+", default=["CartPole-v1", "Breakout-MinAtar"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    rows = [measure(env, seeds, args.repeats) for env in args.env for seeds in args.seeds]
    print(markdown_table(rows, COLUMNS))
    meta = {**run_metadata(), "repeats": args.repeats}
    write_results(f"checkpoints_{device_slug()}", rows, meta, args.results_dir)


if __name__ == "__main__":
    main()
