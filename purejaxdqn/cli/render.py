"""`purejaxdqn render RUN_DIR`: an animation of one trained seed's greedy episode."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from purejaxdqn.outputs.policy import (
    RENDER_MAX_STEPS,
    check_render,
    load_policy,
    rollout_policy,
    write_animation,
)

from .common import add_run_dir_command


def add_render_command(subparsers: Any) -> None:
    """Declare `purejaxdqn render RUN_DIR`: animate one trained seed's greedy episode."""
    parser = add_run_dir_command(
        subparsers,
        "render",
        "save an animation (GIF) of one trained seed's greedy episode",
        "Roll out the greedy policy of trained seed --seed of RUN_DIR for one episode and draw "
        "it with gymnax's visualizer (needs the plot extra: pip install 'purejaxdqn[plot]').",
    )
    add = parser.add_argument
    add("--seed", metavar="K", type=int, default=0, help="which trained seed (default: 0).")
    add("--out", metavar="FILE", type=Path, help="a .gif (default: RUN_DIR/policy-seed<K>.gif).")
    add(
        "--max-steps",
        metavar="N",
        type=int,
        default=RENDER_MAX_STEPS,
        help="at most N frames (default: 500).",
    )
    add("--env-seed", metavar="S", type=int, default=0, help="episode seed (default: 0).")
    add("--fps", metavar="F", type=int, default=30, help="frames per second (default: 30).")
    parser.set_defaults(handler=_render, parser=parser)


def _render(args: argparse.Namespace) -> int:
    """The `render` handler: check everything, roll out, then draw; the exit status."""
    out = args.out or args.run_dir / f"policy-seed{args.seed}.gif"
    try:
        policy = load_policy(args.run_dir)
        check_render(policy, args.seed, out, args.max_steps, args.fps)
        episode = rollout_policy(policy, args.seed, args.max_steps, args.env_seed)
    except (ValueError, FileNotFoundError, ImportError) as error:
        args.parser.error(str(error))  # exits with status 2
    print(f"drawing {episode.length} frames...", file=sys.stderr, flush=True)
    path = write_animation(policy.spec, episode, out, args.fps)
    print(f"wrote {path} ({episode.length} frames, return {episode.episode_return:g})")
    return 0
