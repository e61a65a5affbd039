r"""A/B speed of two revisions of purejaxdqn, and of a run's layouts, in alternating processes.

    python benchmarks/ab.py --base 170f10f                  # this checkout against 170f10f
    python benchmarks/ab.py --base HEAD~3 --seeds 1 16 --repeats 3 --total-timesteps 200000
    python benchmarks/ab.py --layouts                       # default vs --layout-independent

A change on the hot path is measured against the revision before it: both run the classic
CartPole DQN (`common.CLASSIC_CARTPOLE`) through `run.execute` for each seed count,
each trial in a fresh process on a clean checkout of its revision (a `git worktree`), the
two revisions alternating (A B A B ...) so that the machine's load hits both alike. With
`--layouts` the same checkout is timed with the default layout and with one seed per device
per call (`max_runs_per_device=1`, which makes every seed's result its single-run result).
The table gives the median env steps/s and compile seconds of each, and their ratios; the
rows go to `results/ab_revisions_<base>_<device>` (or `ab_layouts_<device>`) `.json` and `.csv`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import RESULTS_DIR, device_slug, markdown_table, run_metadata, write_results

ROOT = Path(__file__).resolve().parent.parent

# One trial, run with the checkout under test first on sys.path (python -c puts the
# working folder there): the classic CartPole config, N seeds, timed by execute itself.
TRIAL = """
import json, sys
sys.path.insert(0, "benchmarks")
from common import CLASSIC_CARTPOLE
import jax
from purejaxdqn.parallel import execute  # module names that every revision has
from purejaxdqn.train import make_train_program
config = CLASSIC_CARTPOLE.replace(total_timesteps={steps}, learning_starts={steps} // 50)
keys = jax.random.split(jax.random.key(0), {seeds})
out = execute(make_train_program(config), keys, config.hparams(), max_runs_per_device={cap!r})
print(json.dumps({{"compile_seconds": out.compile_seconds, "run_seconds": out.run_seconds,
                  "env_steps_per_second": {seeds} * config.total_timesteps / out.run_seconds,
                  "runs_per_device": out.plan.runs_per_device,
                  "num_devices": out.plan.num_devices}}))
"""


def trial(tree: Path, seeds: int, steps: int, cap: int | str) -> dict:
    """One timed run in a fresh process whose `import purejaxdqn` is `tree`'s."""
    done = subprocess.run(
        [sys.executable, "-c", TRIAL.format(steps=steps, seeds=seeds, cap=cap)],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    if done.returncode:
        raise RuntimeError(f"trial in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(arms: dict[str, tuple[Path, int | str]], args: argparse.Namespace) -> list[dict]:
    """Median speed of each arm per seed count, the arms alternating in every repeat."""
    rows = []
    names = list(arms)
    for seeds in args.seeds:
        trials: dict[str, list[dict]] = {name: [] for name in names}
        for _ in range(args.repeats):
            for name in names:
                tree, cap = arms[name]
                trials[name].append(trial(tree, seeds, args.total_timesteps, cap))
        medians = {
            name: {
                key: statistics.median(t[key] for t in trials[name])
                for key in ("env_steps_per_second", "compile_seconds")
            }
            for name in names
        }
        a, b = names
        rows.append(
            {
                "seeds": seeds,
                **{f"{n}_steps_per_s": round(medians[n]["env_steps_per_second"]) for n in names},
                "ratio_steps": round(
                    medians[b]["env_steps_per_second"] / medians[a]["env_steps_per_second"], 3
                ),
                **{f"{n}_compile_s": round(medians[n]["compile_seconds"], 2) for n in names},
                "ratio_compile": round(
                    medians[b]["compile_seconds"] / medians[a]["compile_seconds"], 3
                ),
                "layouts": {n: trials[n][0]["runs_per_device"] for n in names},
                "trials": trials,
            }
        )
        print(f"{seeds} seed(s): {rows[-1]['ratio_steps']}x env steps/s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="revision A (B is this checkout as it is on disk)")
    parser.add_argument("--layouts", action="store_true", help="default vs one seed per device")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--total-timesteps", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    if args.layouts == (args.base is not None):
        parser.error("give --base REV or --layouts")
    with tempfile.TemporaryDirectory() as scratch:
        if args.layouts:
            name = "layouts"
            arms = {"default": (ROOT, "auto"), "independent": (ROOT, 1)}
        else:
            name = f"revisions_{args.base}"
            base = Path(scratch) / "base"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(base), args.base],
                cwd=ROOT, check=True, capture_output=True,
            )  # fmt: skip
            arms = {"base": (base, "auto"), "this": (ROOT, "auto")}
        try:
            rows = compare(arms, args)
        finally:
            if not args.layouts:
                subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT)
    table = [{k: v for k, v in row.items() if k not in ("trials", "layouts")} for row in rows]
    print(markdown_table(table, [(key, key) for key in table[0]]))
    meta = {**run_metadata(), "base": args.base, "total_timesteps": args.total_timesteps,
            "repeats": args.repeats, "runs_per_device": [row["layouts"] for row in rows],
            "trials": [row["trials"] for row in rows]}  # fmt: skip
    write_results(f"ab_{name}_{device_slug()}", table, meta, args.results_dir)


if __name__ == "__main__":
    main()
