"""Learning-curve plots of run and sweep folders (`purejaxdqn.plot`).

The folders are real output: one tiny two-setting, two-seed sweep (one compile for the
module) written with `write_sweep`. Its setting folders are `write_run` folders, the same as
`purejaxdqn train` writes, so they serve as the run folders too.
"""

import argparse
import csv
import dataclasses
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

from purejaxdqn.cli.plot import add_plot_command
from purejaxdqn.outputs import plot
from purejaxdqn.outputs.plot import Curves, load_curves, plot_runs
from purejaxdqn.run import sweep
from purejaxdqn.run.experiment import write_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LEARNING_RATES = [1e-3, 3e-3]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(sweep result, {name: folder}) for a sweep, its two settings and a run without evals."""
    result = sweep.run(TINY, {"learning_rate": LEARNING_RATES}, num_seeds=2, seed=0)
    root = tmp_path_factory.mktemp("plot")
    sweep_dir = sweep.write_sweep(result, root / "sweep")
    names = [sweep.setting_name(i, s) for i, s in enumerate(result.settings)]
    no_evals = dataclasses.replace(result.experiments[0], evals={})
    return result, {
        "sweep": sweep_dir,
        "a": sweep_dir / names[0],
        "b": sweep_dir / names[1],
        "no_evals": write_run(no_evals, root / "no-evals"),
    }


def _rows(path: Path, column: str) -> np.ndarray:
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    return np.array([float(row[column] or "nan") for row in rows])


# --- load_curves ----------------------------------------------------------------------------


def test_load_curves_of_a_run_folder_matches_its_csvs(folders):
    result, paths = folders
    (curves,) = load_curves(paths["a"])
    experiment = result.experiments[0]
    assert isinstance(curves, Curves)
    assert curves.label == paths["a"].name
    assert curves.env_id == "CartPole-v1"
    assert curves.num_seeds == 2
    assert curves.returns.shape == (2, TINY.num_log_points)
    np.testing.assert_array_equal(curves.env_steps, experiment.metrics["env_steps"][0])
    np.testing.assert_allclose(curves.returns, experiment.metrics["episode_return"], rtol=1e-6)
    assert curves.returns.ravel() == pytest.approx(
        _rows(paths["a"] / "metrics.csv", "episode_return"), nan_ok=True
    )
    num_evals = TINY.num_log_points // TINY.eval_every
    assert curves.eval_returns.shape == (2, num_evals)
    np.testing.assert_array_equal(curves.eval_env_steps, experiment.evals["env_steps"][0])
    np.testing.assert_allclose(curves.eval_returns, experiment.evals["return"], rtol=1e-6)


def test_load_curves_of_a_sweep_folder_gives_one_curve_per_setting(folders):
    _, paths = folders
    curves = load_curves(paths["sweep"])
    assert [c.label for c in curves] == [paths["a"].name, paths["b"].name]
    for curve, name in zip(curves, ["a", "b"], strict=True):
        (alone,) = load_curves(paths[name])
        np.testing.assert_array_equal(curve.returns, alone.returns)
        np.testing.assert_array_equal(curve.eval_returns, alone.eval_returns)


def test_load_curves_without_evals_and_with_empty_cells(folders, tmp_path):
    _, paths = folders
    (curves,) = load_curves(paths["no_evals"])
    assert curves.eval_env_steps is None and curves.eval_returns is None
    assert (paths["no_evals"] / "evals.csv").read_text().strip() == "seed,env_steps,return,length"

    copy = shutil.copytree(paths["a"], tmp_path / "blank")
    lines = (copy / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index("episode_return")] = ""  # how write_run writes NaN
    (copy / "metrics.csv").write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    (curves,) = load_curves(copy)
    assert math.isnan(curves.returns[0, 0])
    assert np.isfinite(curves.returns.ravel()[1:]).all()


def test_load_curves_rejects_folders_that_are_not_runs(tmp_path):
    with pytest.raises(ValueError, match="empty.*neither a run folder"):
        load_curves(tmp_path / "empty")
    (tmp_path / "sweepish").mkdir()
    (tmp_path / "sweepish" / "sweep_summary.json").write_text("{}")
    with pytest.raises(ValueError, match="sweepish.*sweep_summary.json"):
        load_curves(tmp_path / "sweepish")


def test_bands_ignore_nan_and_are_deterministic():
    values = np.array([[1.0, np.nan, np.nan], [3.0, np.nan, 4.0], [5.0, np.nan, 8.0]])
    centre, low, high = plot._band(values, "mean")
    np.testing.assert_allclose(centre, [3.0, np.nan, 6.0])
    np.testing.assert_allclose(high - centre, [np.std([1, 3, 5]), np.nan, 2.0])
    rng = np.random.default_rng(1)
    values = rng.normal(size=(16, 5))
    values[:3, 2] = np.nan
    centre, low, high = plot._band(values, "iqm")
    assert centre[2] == pytest.approx(plot.iqm_rows(values[3:, 2][None])[0])
    assert (low < centre).all() and (centre < high).all()
    np.testing.assert_array_equal(plot._band(values, "iqm")[1], low)


# --- plot_runs ------------------------------------------------------------------------------


def _check_png(path: Path, height: int, width: int) -> None:
    image = pytest.importorskip("matplotlib.image")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = image.imread(path)
    assert pixels.shape[:2] == (height, width)  # figsize x dpi 150
    assert pixels[..., :3].var() > 0


@pytest.mark.parametrize("band", ["iqm", "mean"])
def test_plot_runs_draws_runs_and_sweeps(folders, tmp_path, band):
    pytest.importorskip("matplotlib")
    _, paths = folders
    one = plot_runs(paths["a"], tmp_path / "nested" / "one.png", band=band)
    assert one == tmp_path / "nested" / "one.png"
    _check_png(one, 690, 1800)  # two panels: 12 x 4.6 inches
    several = plot_runs(
        [paths["a"], paths["b"], paths["no_evals"]],
        tmp_path / "several.png",
        band=band,
        labels=["lr=1e-3", "lr=3e-3", "no evals"],
    )
    _check_png(several, 690, 1800)
    _check_png(plot_runs([str(paths["sweep"])], tmp_path / "sweep.png", band=band), 690, 1800)
    _check_png(plot_runs(paths["no_evals"], tmp_path / "train_only.png", band=band), 690, 900)


def test_plot_runs_rejects_bad_arguments(folders, tmp_path):
    _, paths = folders
    with pytest.raises(ValueError, match="1 labels given for 2 curves"):
        plot_runs(paths["sweep"], tmp_path / "x.png", labels=["only one"])
    with pytest.raises(ValueError, match="band='median'"):
        plot_runs(paths["a"], tmp_path / "x.png", band="median")
    assert not (tmp_path / "x.png").exists()


def test_matplotlib_is_optional(folders, tmp_path, monkeypatch):
    code = "import sys, purejaxdqn.plot; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'purejaxdqn\[plot\]'") as caught:
        plot_runs(folders[1]["a"], tmp_path / "x.png")
    assert isinstance(caught.value.__cause__, ImportError)


# --- command line ---------------------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="purejaxdqn")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_plot_command(subparsers)
    return parser.parse_args(argv)


def test_plot_command_writes_the_figure(folders, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    _, paths = folders
    out = tmp_path / "cli" / "curves.png"
    args = _parse(["plot", str(paths["a"]), str(paths["b"]), "--out", str(out)])
    assert (args.band, args.labels) == ("iqm", None)
    assert args.handler(args) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    _check_png(out, 690, 1800)
    args = _parse(
        [
            "plot",
            str(paths["sweep"]),
            "--out",
            str(out),
            "--band",
            "mean",
            "--labels",
            "small lr, large lr",
        ]
    )
    assert args.handler(args) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--labels", "one,two,three"], "gives 3 labels for 2 curves"),
        (["missing-folder"], "'missing-folder': no such folder"),
        (["not-a-run"], "not-a-run' is neither a run folder"),
    ],
)
def test_plot_command_user_errors_exit_with_status_2(
    folders, tmp_path, capsys, argv, message, monkeypatch
):
    _, paths = folders
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-a-run").mkdir()
    args = _parse(["plot", str(paths["sweep"]), *argv, "--out", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit) as caught:
        args.handler(args)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
