"""`purejaxdqn plot RUN_DIR ...`: learning curves of run and sweep folders in one figure."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from purejaxdqn.outputs.plot import BANDS, load_curves, plot_curves

from .common import PROG


def add_plot_command(subparsers: Any) -> None:
    """Declare the `plot` subcommand on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "plot",
        prog=PROG,  # so errors read "purejaxdqn: error: ..."
        allow_abbrev=False,
        usage=f"{PROG} plot RUN_DIR [RUN_DIR ...] [--out PATH] [--band iqm|mean] [--labels A,B]",
        help="plot learning curves of run and sweep folders",
        description=(
            "Plot training and greedy-evaluation return against env steps for run folders "
            "(from train) and sweep folders (one curve per setting), overlaid in one figure."
        ),
    )
    parser.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="run or sweep folder")
    parser.add_argument(
        "--out",
        metavar="PATH",
        default="curves.png",
        help="image file; the suffix picks the format (default: curves.png)",
    )
    parser.add_argument(
        "--band",
        choices=BANDS,
        default="iqm",
        help="iqm: IQM with a 95%% bootstrap band over seeds (default); mean: mean ± std",
    )
    parser.add_argument(
        "--labels",
        metavar="A,B,...",
        default=None,
        help="legend names, comma-separated, one per curve",
    )
    parser.set_defaults(handler=_plot, parser=parser)


def _plot(args: argparse.Namespace) -> int:
    """The `plot` handler: load every folder's curves, then draw them; the exit status."""
    curves = []
    for path in args.run_dirs:
        if not Path(path).is_dir():
            args.parser.error(f"{path!r}: no such folder")
        try:
            curves.extend(load_curves(path))
        except ValueError as error:
            args.parser.error(str(error))
    labels = None if args.labels is None else [label.strip() for label in args.labels.split(",")]
    if labels is not None and len(labels) != len(curves):
        args.parser.error(
            f"--labels {args.labels!r} gives {len(labels)} labels for {len(curves)} curves "
            f"({', '.join(curve.label for curve in curves)}): give one each"
        )
    try:
        out = plot_curves(curves, Path(args.out), args.band, labels)
    except ImportError as error:
        args.parser.exit(1, f"{PROG}: error: {error}\n")
    print(f"wrote {out}")
    return 0
