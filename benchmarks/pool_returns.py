"""Pool the final greedy returns of several `compare.py --algo pqn` runs, per environment,
and test whether purejaxdqn's PQN ends worse than purejaxql's.

One compare run holds few seeds (on a 2-core CPU, four Breakout-MinAtar seeds at 2M env
steps take about half an hour for the two implementations together), so whether our
returns are "no worse" is judged on the seeds of several runs at once. Runs are pooled
only when they agree on everything but their base seed: the same purejaxdqn config, the
same purejaxql config and script, and each (base seed, seed count) once, so no seed's key
is counted twice. Both implementations train every seed from the same key, but their
random streams differ, so the two groups are compared as independent samples.

Reported per environment and implementation: seeds, mean and IQM with 95% percentile-
bootstrap intervals over seeds, the fraction of seeds at or above the preset's solved
threshold (where it has one). For each of our rows against purejaxql's: the difference of
means with a 95% bootstrap interval (seeds resampled within each implementation), its
lower end as a fraction of purejaxql's mean (how much worse the data still allow ours to
be), a two-sided Mann-Whitney U test, and Fisher's exact test on the solved counts.

    python benchmarks/pool_returns.py RUN.json [RUN.json ...] --name NAME

writes `<results-dir>/pool_<NAME>.json` and `.csv` and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import common
import numpy as np
from scipy import stats as scipy_stats

from purejaxdqn import PQN_PRESETS, PQNConfig
from purejaxdqn.outputs.stats import bootstrap_ci, iqm, mean_rows

REFERENCE = "purejaxql"
RESAMPLES = 10_000


def _setup(run: dict[str, Any], env_id: str) -> dict[str, Any]:
    """What must agree between pooled runs of `env_id`: both configs and purejaxql's files,
    the base seed left out. A PQNConfig field that a run's file lacks (it predates the
    option) takes its default, which keeps the behaviour from before the option existed.
    """
    env = run["envs"][env_id]
    configs = env["runs"].get("matched")
    if configs is None:
        raise SystemExit(f"{env_id}: a run without evaluation 'matched' has no returns to pool")
    ours = {**PQNConfig(env_id=env_id).to_dict(), **configs["purejaxdqn"]}
    theirs = {key: value for key, value in configs["purejaxql"].items() if key != "SEED"}
    return {"purejaxdqn": ours, "purejaxql": theirs, "sha256": env["sha256"]}


def _differences(first: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """'part.key: first's value -> other's' for every setting where two setups differ."""
    return [
        f"{part}.{key}: {first[part].get(key)!r} -> {other[part].get(key)!r}"
        for part in first
        for key in sorted(set(first[part]) | set(other[part]))
        if first[part].get(key) != other[part].get(key)
    ]


def pool(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Per environment: its setup, the runs pooled and every implementation's returns.

    Raises SystemExit if two runs of an environment differ in setup or repeat a
    (base seed, seed count).
    """
    pooled: dict[str, dict[str, Any]] = {}
    repeated = sorted({str(path) for path in paths if paths.count(path) > 1})
    if repeated:
        raise SystemExit(f"{', '.join(repeated)} given more than once")
    for path in paths:
        run = json.loads(path.read_text())
        if run.get("algo") != "pqn":
            raise SystemExit(
                f"{path}: not a compare.py --algo pqn result (algo={run.get('algo')!r})"
            )
        for row in run["rows"]:
            if row.get("final_returns") is None:
                continue
            env_id = row["env_id"]
            setup = _setup(run, env_id)
            entry = pooled.setdefault(
                env_id, {"setup": setup, "runs": {}, "returns": {}, "rows": {}}
            )
            differences = _differences(entry["setup"], setup)
            if differences:
                first = next(iter(entry["runs"].values()))
                raise SystemExit(
                    f"{path}: its {env_id} setup differs from {first}'s in "
                    f"{'; '.join(differences)}; only runs that differ in --seed alone can "
                    "be pooled"
                )
            keys = (run["seed"], row["seeds"])
            owner = entry["runs"].setdefault(keys, str(path))
            if owner != str(path):
                raise SystemExit(
                    f"{path}: base seed {keys[0]} with {keys[1]} seeds is already in {owner}; "
                    "pooling it again would count the same keys twice"
                )
            entry["returns"].setdefault(row["implementation"], []).extend(row["final_returns"])
            entry["rows"][row["implementation"]] = entry["rows"].get(row["implementation"], 0) + 1
    return pooled


def _difference_ci(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    """95% percentile-bootstrap interval of mean(ours) - mean(theirs), resampling the seeds
    of each group independently.
    """
    rng = np.random.default_rng(0)
    draws_ours = ours[rng.integers(0, ours.size, size=(RESAMPLES, ours.size))]
    draws_theirs = theirs[rng.integers(0, theirs.size, size=(RESAMPLES, theirs.size))]
    differences = mean_rows(draws_ours) - mean_rows(draws_theirs)
    low, high = np.quantile(differences, [0.025, 0.975])
    return float(low), float(high)


def summarise(env_id: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per implementation of `env_id`: its statistics and, for ours, the tests
    against purejaxql.
    """
    preset = PQN_PRESETS.get(env_id)
    threshold = None if preset is None else preset.solved_threshold
    reference = np.asarray(entry["returns"].get(REFERENCE, []), dtype=np.float64)
    rows = []
    for name, values in entry["returns"].items():
        returns = np.asarray(values, dtype=np.float64)
        row: dict[str, Any] = {
            "env_id": env_id,
            "implementation": name,
            "seeds": int(returns.size),
            "rows_pooled": entry["rows"][name],
            "mean": float(returns.mean()),
            "mean_ci": list(bootstrap_ci(returns, mean_rows, resamples=RESAMPLES)),
            "iqm": iqm(returns),
            "iqm_ci": list(bootstrap_ci(returns, resamples=RESAMPLES)),
            "min": float(returns.min()),
            "max": float(returns.max()),
            "solved_threshold": threshold,
            "solved": None if threshold is None else int((returns >= threshold).sum()),
        }
        if name != REFERENCE and reference.size:
            low, high = _difference_ci(returns, reference)
            row["mean_difference"] = float(returns.mean() - reference.mean())
            row["mean_difference_ci"] = [low, high]
            row["worst_case_fraction_of_reference"] = low / abs(float(reference.mean()))
            row["mann_whitney_p"] = float(
                scipy_stats.mannwhitneyu(returns, reference, alternative="two-sided").pvalue
            )
            if threshold is not None:
                solved_ref = int((reference >= threshold).sum())
                table = [
                    [row["solved"], returns.size - row["solved"]],
                    [solved_ref, reference.size - solved_ref],
                ]
                row["fisher_solved_p"] = float(scipy_stats.fisher_exact(table).pvalue)
        rows.append(row)
    return rows


def _interval(values: list[float]) -> str:
    return f"[{values[0]:.1f}, {values[1]:.1f}]"


def table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of the pooled statistics."""
    lines = [
        "| env | implementation | seeds (rows) | mean [95% CI] | IQM [95% CI] | solved "
        "| mean − purejaxql's [95% CI] | CI low end ÷ purejaxql's mean | Mann-Whitney p "
        "| Fisher p (solved) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        solved = "–" if row["solved"] is None else f"{row['solved']}/{row['seeds']}"
        if "mean_difference" in row:
            tests = [
                f"{row['mean_difference']:+.1f} {_interval(row['mean_difference_ci'])}",
                f"{row['worst_case_fraction_of_reference']:+.1%}",
                f"{row['mann_whitney_p']:.2f}",
                f"{row['fisher_solved_p']:.2f}" if "fisher_solved_p" in row else "–",
            ]
        else:
            tests = ["–"] * 4
        cells = [
            row["env_id"],
            row["implementation"],
            f"{row['seeds']} ({row['rows_pooled']})",
            f"{row['mean']:.1f} {_interval(row['mean_ci'])}",
            f"{row['iqm']:.1f} {_interval(row['iqm_ci'])}",
            solved,
            *tests,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="compare_pqn_*.json files")
    parser.add_argument("--name", required=True, help="results go to pool_<NAME>.json/.csv")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path(__file__).parent / "results",
        help="folder for the results (default: benchmarks/results)",
    )
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.runs if not path.is_file()]
    if missing:
        parser.error(f"no such result file: {', '.join(missing)}")
    pooled = pool([path.resolve() for path in args.runs])
    if not pooled:
        parser.error(
            "none of the given runs has final returns (run compare.py with --evaluation matched)"
        )
    rows = [row for env_id, entry in pooled.items() for row in summarise(env_id, entry)]
    print(table(rows))
    metadata = {
        **common.run_metadata(),
        "runs": {env_id: sorted(set(entry["runs"].values())) for env_id, entry in pooled.items()},
        "setups": {env_id: entry["setup"] for env_id, entry in pooled.items()},
    }
    for path in common.write_results(f"pool_{args.name}", rows, metadata, args.results_dir):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
