"""`purejaxdqn eval RUN_DIR`: evaluate the greedy policy of every trained seed of a run."""

from __future__ import annotations

import argparse
from typing import Any

from purejaxdqn.outputs.policy import evaluate_policy, load_policy
from purejaxdqn.outputs.stats import iqm

from .common import add_run_dir_command


def add_eval_command(subparsers: Any) -> None:
    """Declare `purejaxdqn eval RUN_DIR`: evaluate every trained seed of a run folder."""
    parser = add_run_dir_command(
        subparsers,
        "eval",
        "evaluate the greedy policy of every seed of a run folder",
        "Load RUN_DIR's parameters and run --episodes (epsilon-)greedy episodes per trained "
        "seed, every seed in one compiled program; print each seed's mean, min and max return "
        "and the IQM and mean over seeds.",
    )
    add = parser.add_argument
    add("--episodes", metavar="N", type=int, default=10, help="per seed (default: 10).")
    add("--epsilon", metavar="E", type=float, default=0.0, help="in [0, 1] (default: 0).")
    add("--seed", metavar="S", type=int, default=0, help="evaluation seed (default: 0).")
    add(
        "--max-steps",
        metavar="N",
        type=int,
        default=None,
        help="step limit per episode (default: the config's eval_max_steps, else the env's).",
    )
    parser.set_defaults(handler=_eval, parser=parser)


def _eval(args: argparse.Namespace) -> int:
    """The `eval` handler: print every seed's returns and their summary; the exit status."""
    try:
        policy = load_policy(args.run_dir)
        returns = evaluate_policy(policy, args.episodes, args.epsilon, args.seed, args.max_steps)
    except (ValueError, FileNotFoundError) as error:
        args.parser.error(str(error))  # exits with status 2
    config, means = policy.config, returns.mean(axis=1)
    print(f"{config.env_id}: {args.episodes} episode(s) per seed, epsilon {args.epsilon:g}")
    print(f"{'seed':>4}  {'mean':>10}  {'min':>10}  {'max':>10}")
    for k, row in enumerate(returns):
        print(f"{k:>4}  {row.mean():>10.2f}  {row.min():>10.2f}  {row.max():>10.2f}")
    print(f"over {policy.num_seeds} seed(s): IQM {iqm(means):.2f}, mean {means.mean():.2f}")
    threshold = config.solved_threshold
    if threshold is None:
        print("solved threshold: none set")
    else:
        solved = int((means >= threshold).sum())
        print(f"solved threshold {threshold:g}: {solved}/{policy.num_seeds} seeds reach it")
    return 0
