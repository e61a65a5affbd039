"""Learning curves of run and sweep folders (the `purejaxdqn plot` command draws them).

A run folder (`results.write_run`) holds `config.json`, `metrics.csv` and `evals.csv`;
a sweep folder (`sweep.write_sweep`) holds `sweep_summary.json` and one run folder per
setting. Curves show, per env step, the IQM across seeds with a 95% percentile-bootstrap
band over seeds (`band="iqm"`) or the mean ± one standard deviation (`band="mean"`); NaN
entries (log periods in which no episode finished) are left out column by column.

Matplotlib is optional (`pip install 'purejaxdqn[plot]'`) and imported only when drawing.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from purejaxdqn.outputs.rundir import RUN_CONFIG_FILE
from purejaxdqn.outputs.stats import bootstrap_ci, iqm_rows

BANDS = ("iqm", "mean")
_RUN_FILES = (RUN_CONFIG_FILE, "metrics.csv", "evals.csv")


@dataclass(frozen=True)
class Curves:
    """The learning curves of one run: every seed's training and greedy-evaluation returns.

    Attributes:
        label: legend name (the run folder's name, or the setting's folder in a sweep).
        env_id: the environment, from config.json.
        env_steps: (num_log_points,) env steps per seed at each log point.
        returns: (num_seeds, num_log_points) mean training episode return (NaN: none ended).
        eval_env_steps: (num_evals,) env steps at each greedy evaluation, None without evals.
        eval_returns: (num_seeds, num_evals) greedy evaluation return, None without evals.
    """

    label: str
    env_id: str
    env_steps: np.ndarray
    returns: np.ndarray
    eval_env_steps: np.ndarray | None
    eval_returns: np.ndarray | None

    @property
    def num_seeds(self) -> int:
        """The number of seeds (rows of `returns`)."""
        return self.returns.shape[0]


def _read_long_csv(path: Path, column: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(env_steps, values (num_seeds, n)) from a long-format CSV; None if it has no rows."""
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    if not rows:
        return None
    if column not in rows[0] or "seed" not in rows[0] or "env_steps" not in rows[0]:
        raise ValueError(f"{path}: expected columns seed, env_steps and {column}")
    seeds = sorted({int(row["seed"]) for row in rows})
    by_seed = {seed: [row for row in rows if int(row["seed"]) == seed] for seed in seeds}
    lengths = {len(seed_rows) for seed_rows in by_seed.values()}
    if len(lengths) != 1:
        raise ValueError(f"{path}: seeds have different numbers of rows ({sorted(lengths)})")
    values = [[float(row[column] or "nan") for row in by_seed[seed]] for seed in seeds]
    steps = [int(float(row["env_steps"])) for row in by_seed[seeds[0]]]
    return np.asarray(steps), np.asarray(values, dtype=np.float64)


def _load_run(folder: Path, label: str) -> Curves:
    config = json.loads((folder / RUN_CONFIG_FILE).read_text())
    train = _read_long_csv(folder / "metrics.csv", "episode_return")
    if train is None:
        raise ValueError(f"{folder / 'metrics.csv'}: no rows")
    evals = _read_long_csv(folder / "evals.csv", "return")
    return Curves(
        label=label,
        env_id=str(config.get("env_id", "?")),
        env_steps=train[0],
        returns=train[1],
        eval_env_steps=None if evals is None else evals[0],
        eval_returns=None if evals is None else evals[1],
    )


def _is_run(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _RUN_FILES)


def load_curves(path: str | os.PathLike[str]) -> list[Curves]:
    """The curves of a run folder (one `Curves`) or of a sweep folder (one per setting).

    Raises:
        ValueError: naming the path, if it is neither a run folder (config.json,
            metrics.csv, evals.csv) nor a sweep folder (sweep_summary.json and run folders),
            or if its CSVs are malformed.
    """
    folder = Path(path)
    if _is_run(folder):
        return [_load_run(folder, folder.resolve().name)]
    settings = sorted(sub for sub in folder.glob("*") if sub.is_dir() and _is_run(sub))
    if (folder / "sweep_summary.json").is_file() and settings:
        return [_load_run(sub, sub.name) for sub in settings]
    raise ValueError(
        f"{str(folder)!r} is neither a run folder ({', '.join(_RUN_FILES)}) nor a sweep "
        "folder (sweep_summary.json and one run folder per setting)"
    )


def _band(values: np.ndarray, band: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre, low, high) per column of (num_seeds, n) `values`, ignoring NaN entries."""
    centre, low, high = (np.full(values.shape[1], np.nan) for _ in range(3))
    for column in range(values.shape[1]):
        finite = values[:, column][np.isfinite(values[:, column])]
        if finite.size == 0:
            continue
        if band == "iqm":
            centre[column] = iqm_rows(finite[None])[0]
            low[column], high[column] = bootstrap_ci(finite, iqm_rows, seed=0)
        else:
            centre[column] = finite.mean()
            low[column], high[column] = centre[column] - finite.std(), centre[column] + finite.std()
    return centre, low, high


def plot_runs(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    band: str = "iqm",
    labels: Sequence[str] | None = None,
) -> Path:
    """Draw the learning curves of run and sweep folders, overlaid, into one image file.

    Args:
        paths: one or more run or sweep folders (a sweep gives one curve per setting).
        out: the image file (its suffix picks the format, e.g. .png, .pdf); parent folders
            are created.
        band: "iqm" (IQM across seeds, 95% percentile-bootstrap band) or "mean" (mean ± std).
        labels: legend names, one per curve (default: the run or setting folder names).

    Returns:
        `out`, as a `Path`.

    Raises:
        ValueError: for a folder that is not a run or sweep folder, an unknown band or a
            wrong number of labels.
        ImportError: if matplotlib is not installed.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    curves = [curve for path in paths for curve in load_curves(path)]
    return plot_curves(curves, out, band, labels)


def plot_curves(
    curves: Sequence[Curves],
    out: str | os.PathLike[str],
    band: str = "iqm",
    labels: Sequence[str] | None = None,
) -> Path:
    """Draw `curves` (from `load_curves`), overlaid, into one image file; see `plot_runs`.

    Returns:
        `out`, as a `Path`.

    Raises:
        ValueError: an unknown band or a wrong number of labels.
        ImportError: if matplotlib is not installed.
    """
    out = Path(out)
    if band not in BANDS:
        raise ValueError(f"band={band!r} is not allowed: use one of {', '.join(BANDS)}")
    if labels is not None and len(labels) != len(curves):
        raise ValueError(f"{len(labels)} labels given for {len(curves)} curves: give one each")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import EngFormatter
    except ImportError as error:
        raise ImportError(
            "purejaxdqn plot needs matplotlib: pip install 'purejaxdqn[plot]'"
        ) from error

    with_evals = any(curve.eval_returns is not None for curve in curves)
    panels = 2 if with_evals else 1
    fig, axes = plt.subplots(
        1, panels, figsize=(6 * panels, 4.6), squeeze=False, layout="constrained"
    )
    names = labels or [curve.label for curve in curves]
    for index, (curve, name) in enumerate(zip(curves, names, strict=True)):
        color = f"C{index % 10}"
        seeds = f"{curve.num_seeds} seed{'s' if curve.num_seeds != 1 else ''}"
        series = [(axes[0, 0], curve.env_steps, curve.returns, None)]
        if curve.eval_returns is not None:
            series.append((axes[0, 1], curve.eval_env_steps, curve.eval_returns, "o"))
        for ax, steps, values, marker in series:
            centre, low, high = _band(values, band)
            ax.plot(
                steps,
                centre,
                color=color,
                marker=marker,
                markersize=3,
                lw=1.6,
                label=f"{name} ({seeds})" if ax is axes[0, 0] else None,
            )
            ax.fill_between(steps, low, high, color=color, alpha=0.2, lw=0)
    titles = ["training episode return", "greedy evaluation return"]
    what = "IQM, 95% bootstrap CI over seeds" if band == "iqm" else "mean ± std over seeds"
    for ax, title in zip(axes[0], titles, strict=False):
        ax.set_title(f"{title} ({what})", fontsize=10)
        ax.set_xlabel("env steps (per seed)")
        ax.set_ylabel("return")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    env_ids = ", ".join(dict.fromkeys(curve.env_id for curve in curves))
    fig.suptitle(env_ids)
    handles, legend_labels = axes[0, 0].get_legend_handles_labels()
    widest = max(len(text) for text in legend_labels) + 8  # characters, with the handle
    columns = max(1, min(len(curves), 65 * panels // widest))  # ~65 characters per panel
    fig.legend(handles, legend_labels, loc="outside lower center", ncols=columns, frameon=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out
