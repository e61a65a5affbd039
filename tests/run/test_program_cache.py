"""The on-disk program cache: damaged entries are evicted and rebuilt, JAX's own damaged
entries are recompiled, and the cache directory is checked before use.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import TINY
from jax import export
from jax.experimental.compilation_cache import compilation_cache

from purejaxdqn.outputs import rundir
from purejaxdqn.run import program_cache
from purejaxdqn.run.experiment import Experiment, enable_compile_cache, run_experiment

SETTINGS = (
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes",
)


@contextlib.contextmanager
def compile_cache(directory: Path) -> Iterator[None]:
    """`enable_compile_cache(directory)`, then JAX's settings and cache as they were.

    JAX opens its persistent cache once per process, so it is reset on the way in (to open
    `directory`) and on the way out (so later tests see no cache).
    """
    saved = {name: getattr(jax.config, name) for name in SETTINGS}
    compilation_cache.reset_cache()
    enable_compile_cache(directory)
    try:
        yield
    finally:
        for name, value in saved.items():
            jax.config.update(name, value)
        compilation_cache.reset_cache()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Iterator[Path]:
    """The folder of `program_cache`'s entries, with the cache on in `tmp_path`."""
    with compile_cache(tmp_path):
        yield tmp_path / "purejaxdqn"


def double_program() -> export.Exported:
    return export.export(jax.jit(lambda x: 2 * x))(jax.ShapeDtypeStruct((3,), np.float32))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def strip_header(path: Path) -> None:
    """An entry as written before entries had a header."""
    path.write_bytes(path.read_bytes().partition(b"\n")[2])


def garbage(path: Path) -> None:
    path.write_bytes(b'{"bytes_per_run": 12')


def empty(path: Path) -> None:
    path.write_bytes(b"")


DAMAGES = [truncate, flip_last_byte, strip_header, garbage, empty]


def test_entries_round_trip(cache_dir):
    assert program_cache.load_program("p") is None
    assert program_cache.load_estimate("e") is None
    program_cache.save_program("p", double_program())
    program_cache.save_estimate("e", 1234)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = program_cache.load_program("p")
        assert program_cache.load_estimate("e") == 1234
    np.testing.assert_array_equal(loaded.call(np.arange(3, dtype=np.float32)), [0, 2, 4])
    assert sorted(path.name for path in cache_dir.iterdir()) == ["e.bytes.json", "p.jaxexport"]


def test_entries_are_a_no_op_when_the_cache_is_off():
    assert program_cache.directory() is None
    program_cache.save_estimate("e", 1)
    assert program_cache.load_estimate("e") is None


def expect_evicted(load, path: Path) -> None:
    with pytest.warns(program_cache.DamagedEntryWarning, match=path.name):
        assert load() is None
    assert not path.exists()


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_program_is_evicted(cache_dir, damage):
    program_cache.save_program("p", double_program())
    path = cache_dir / "p.jaxexport"
    damage(path)
    expect_evicted(lambda: program_cache.load_program("p"), path)
    program_cache.save_program("p", double_program())  # what the caller does next
    assert program_cache.load_program("p") is not None


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_estimate_is_evicted(cache_dir, damage):
    program_cache.save_estimate("e", 1234)
    path = cache_dir / "e.bytes.json"
    damage(path)
    expect_evicted(lambda: program_cache.load_estimate("e"), path)


@pytest.mark.parametrize("payload", [b"{oops", b"[]", b'{"bytes_per_run": "12"}'])
def test_intact_entry_with_a_bad_payload_is_evicted(cache_dir, payload):
    """The checksum matches, but the payload is not what a save writes."""
    path = cache_dir / "e.bytes.json"
    program_cache._write(path, payload)
    expect_evicted(lambda: program_cache.load_estimate("e"), path)
    path = cache_dir / "p.jaxexport"
    program_cache._write(path, payload)
    expect_evicted(lambda: program_cache.load_program("p"), path)


def train(directory: Path) -> tuple[Experiment, list[str]]:
    """Run TINY on one seed with the caches in `directory`; return the warnings too."""
    with compile_cache(directory), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        experiment = run_experiment(TINY, num_seeds=1)
    return experiment, [str(warning.message) for warning in caught]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Path, Experiment]:
    """A cache directory filled by one run (copy it before use), and that run."""
    directory = tmp_path_factory.mktemp("first")
    experiment, _ = train(directory)
    assert experiment.summary.program_cache == "miss"
    return directory, experiment


def assert_same_results(first: Experiment, second: Experiment) -> None:
    for name, value in first.metrics.items():
        np.testing.assert_array_equal(second.metrics[name], value)
    for name, value in first.evals.items():
        np.testing.assert_array_equal(second.evals[name], value)


def test_run_rebuilds_damaged_program_cache_entries(first_run, tmp_path):
    source, first = first_run
    shutil.copytree(source, tmp_path, dirs_exist_ok=True)
    entries = sorted((tmp_path / "purejaxdqn").iterdir())
    assert {path.suffix for path in entries} == {".jaxexport", ".json"}
    for index, path in enumerate(entries):
        DAMAGES[index % len(DAMAGES)](path)

    second, messages = train(tmp_path)

    assert second.summary.program_cache == "miss"
    assert sum("damaged program cache entry" in message for message in messages) == len(entries)
    assert_same_results(first, second)
    assert sorted((tmp_path / "purejaxdqn").iterdir()) == entries
    with compile_cache(tmp_path), warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in entries:
            if path.suffix == ".jaxexport":
                assert program_cache.load_program(path.stem) is not None
            else:
                assert program_cache.load_estimate(path.name.removesuffix(".bytes.json"))


def train_in_new_process(directory: Path) -> dict:
    """`train(directory)` in a fresh interpreter, whose JAX has to read its cache from disk
    (this one would serve the programs it compiled from memory).
    """
    script = f"""
        import json, sys
        sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}]
        from test_program_cache import train
        experiment, messages = train(__import__("pathlib").Path({str(directory)!r}))
        print(json.dumps({{
            "program_cache": experiment.summary.program_cache,
            "metrics": {{k: v.tolist() for k, v in experiment.metrics.items()}},
            "evals": {{k: v.tolist() for k, v in experiment.evals.items()}},
            "messages": messages,
        }}))
        """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_run_recompiles_damaged_jax_cache_entries(tmp_path):
    """JAX 0.10 warns about an unreadable entry of its own and compiles again."""
    first = train_in_new_process(tmp_path)
    entries = sorted(tmp_path.glob("jit_*-cache"))
    programs = [path for path in entries if path.name.startswith("jit_call-")]  # init, chunk
    assert len(programs) == 2
    for index, path in enumerate(entries):
        DAMAGES[index % 2](path)  # truncated or with a flipped byte

    second = train_in_new_process(tmp_path)

    assert second["program_cache"] == "hit"  # so JAX compiled the very same programs
    unreadable = [m for m in second["messages"] if "Error reading persistent compilation" in m]
    assert sum("entry for 'jit_call'" in message for message in unreadable) == len(programs)
    assert (second["metrics"], second["evals"]) == (first["metrics"], first["evals"])


def test_prepare_directory_creates_and_expands(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = program_cache.prepare_directory("~/a/b")
    assert folder == tmp_path / "a" / "b" and folder.is_dir()
    assert program_cache.prepare_directory(folder) == folder  # an existing one is fine
    assert list(folder.iterdir()) == []  # the probe is gone


def test_prepare_directory_refuses_an_empty_path():
    with pytest.raises(ValueError, match="'' as a cache directory: the path is empty"):
        program_cache.prepare_directory("")


def test_prepare_directory_refuses_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(ValueError, match="file' as a cache directory: it exists and is not a"):
        program_cache.prepare_directory(path)


def test_prepare_directory_refuses_a_path_it_cannot_create(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="sub' as a cache directory: cannot create it"):
        program_cache.prepare_directory(tmp_path / "file" / "sub")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_prepare_directory_refuses_a_read_only_folder(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ValueError, match="read-only' as a cache directory: it is not writ"):
            program_cache.prepare_directory(folder)
    finally:
        folder.chmod(0o755)


def test_prepare_directory_refuses_a_folder_it_cannot_write(tmp_path, monkeypatch):
    """As the read-only case, also when running as root."""

    def refuse(**kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(rundir.tempfile, "mkstemp", refuse)
    with pytest.raises(ValueError, match="it is not writable \\(Permission denied\\)"):
        program_cache.prepare_directory(tmp_path)
