"""The runtime's execution core: `execute` (chunks, batches, sharding, resume), its plan
(`run/plan.py`) and its state codec (`run/states.py`), with DQN and with a second program
(`second_program`, a bandit) that shares nothing with DQN but the contract.

Device counts are fixed when JAX starts, so multi-device runs happen in fresh processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY, all_close, leaves_equal
from second_program import ARMS, bandit_hparams, make_bandit_program

from purejaxdqn import make_train, make_train_program
from purejaxdqn.program import Capabilities
from purejaxdqn.run import checkpoint, program_cache, states
from purejaxdqn.run.checkpoint import Checkpointer
from purejaxdqn.run.execute import (
    CPU_BYTES_PER_DEVICE,
    CPU_RUNS_PER_DEVICE,
    Resume,
    estimate_run_bytes,
    execute,
    plan_batches,
    state_shapes,
)
from purejaxdqn.run.plan import chunk_length, plan_run

HERE = Path(__file__).resolve().parent
KEYS = jax.random.split(jax.random.key(7), 3)
BANDIT_KEYS = jax.random.split(jax.random.key(11), 4)
# one step size per run (swept), one noise level for all (shared)
BANDIT_HP = bandit_hparams(np.array([0.1, 0.2, 0.3, 0.4], np.float32), np.float32(0.5))
DQN_SOURCE = (
    "DQNConfig(env_id='CartPole-v1', num_envs=4, total_timesteps=1600, buffer_size=512, "
    "learning_starts=200, batch_size=32, target_update_interval=40, hidden_sizes=(16,), "
    "num_log_points=4, eval_every=2, eval_episodes=2, eval_max_steps=50)"
)


def _outputs_equal(first, second) -> bool:
    return leaves_equal(
        (first.metrics, first.evals, first.params), (second.metrics, second.evals, second.params)
    )


def _run(script: str, env: dict[str, str] | None = None) -> dict:
    """Run `script` in a fresh interpreter (this folder and tests/ importable); it prints
    one JSON line last.
    """
    path = os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path, **(env or {})},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cpus(count):
    return [SimpleNamespace(platform="cpu")] * count


# --- plan ----------------------------------------------------------------------------------


def test_plan_pads_uneven_counts_and_caps_rows_per_cpu_device():
    plan = plan_batches(6, 1000, devices=_cpus(4), device_bytes=10**9)
    assert (plan.num_devices, plan.runs_per_device, plan.num_batches, plan.padding) == (4, 2, 1, 2)
    plan = plan_batches(64, 1000, devices=_cpus(2), device_bytes=10**9)
    assert plan.runs_per_device == CPU_RUNS_PER_DEVICE and plan.num_batches == 4
    assert plan.padding == 0
    # batches are spread evenly: 20 rows on 2 devices, cap 8 -> 2 batches of 5 per device
    plan = plan_batches(20, 1000, devices=_cpus(2), device_bytes=10**9)
    assert (plan.runs_per_device, plan.num_batches, plan.padding) == (5, 2, 0)
    plan = plan_batches(64, 1000, max_runs_per_device=None, devices=_cpus(2), device_bytes=10**9)
    assert (plan.runs_per_device, plan.num_batches) == (32, 1)
    # large rows (MinAtar's 100k buffers) get a smaller CPU cap
    plan = plan_batches(64, CPU_BYTES_PER_DEVICE // 2, devices=_cpus(2), device_bytes=10**12)
    assert (plan.runs_per_device, plan.num_batches) == (2, 16)
    # fewer rows than devices: use only as many devices as rows
    assert plan_batches(1, 1000, devices=_cpus(2), device_bytes=10**9).num_devices == 1
    gpus = [SimpleNamespace(platform="gpu")] * 2
    assert plan_batches(4096, 1000, devices=gpus, device_bytes=10**12).num_batches == 1


def test_plan_splits_into_sequential_batches_when_memory_is_short():
    # 100 MB per run, 1 GB per device: 80% fits 8 runs per device
    plan = plan_batches(64, 10**8, max_runs_per_device=None, devices=_cpus(2), device_bytes=10**9)
    assert plan.runs_per_device == 8 and plan.num_batches == 4
    assert plan.runs_per_device * plan.bytes_per_run <= 0.8 * 10**9


def test_plan_rejects_a_run_larger_than_a_device_naming_both_sizes():
    with pytest.raises(ValueError, match=r"one run needs ~2.00 GiB.*of 1.00 GiB.*buffer_size"):
        plan_batches(4, 2 * 2**30, devices=_cpus(1), device_bytes=2**30)
    with pytest.raises(ValueError, match="max_runs_per_device=0 is not allowed"):
        plan_batches(4, 100, max_runs_per_device=0, devices=_cpus(1), device_bytes=2**30)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "all", "8"])
def test_plan_names_a_bad_max_runs_per_device_and_the_allowed_values(value):
    message = (
        f"max_runs_per_device={value!r} is not allowed: must be an integer >= 1, 'auto' "
        "(a measured cap on CPU, memory only on accelerators) or None (memory only)"
    )
    with pytest.raises(ValueError) as error:
        plan_batches(4, 100, max_runs_per_device=value, devices=_cpus(1), device_bytes=2**30)
    assert str(error.value) == message
    plan = plan_batches(
        4, 100, max_runs_per_device=np.int64(1), devices=_cpus(1), device_bytes=2**30
    )
    assert plan.num_batches == 4  # numpy integers are integers


def test_chunk_length_defaults_and_refusals():
    assert chunk_length(4, None, chunked=False) == 4  # all in one call
    assert chunk_length(4, None, chunked=True) == 1  # a callback sees every period
    assert chunk_length(4, 2, chunked=True) == 2
    assert chunk_length(0, None, chunked=True) == 1  # a finished run resumed: nothing to run
    for bad in (3, -2):
        with pytest.raises(ValueError, match=f"periods_per_chunk={bad} is not allowed: must be "):
            chunk_length(4, bad, chunked=False)


def test_plan_run_keeps_a_layout_and_puts_a_single_device_program_on_one_device():
    devices = _cpus(4)
    kept = plan_run(
        8,
        1000,
        Capabilities(),
        devices,
        max_runs_per_device=1,
        runs_per_device=2,
        device_bytes=10**9,
    )
    assert (kept.num_devices, kept.runs_per_device, kept.num_batches) == (4, 2, 1)
    with pytest.raises(ValueError, match="runs_per_device=3 cannot be kept here"):
        plan_run(
            8,
            1000,
            Capabilities(),
            devices,
            max_runs_per_device="auto",
            runs_per_device=3,
            device_bytes=10**9,
        )
    single = Capabilities(single_device=True, checkpointable=False, exportable=False)
    plan = plan_run(
        8, 1000, single, devices, max_runs_per_device=1, runs_per_device=None, device_bytes=10**9
    )
    assert (plan.num_devices, plan.runs_per_device, plan.num_batches) == (1, 8, 1)
    with pytest.raises(
        ValueError, match="8 runs do not fit in one device.*must run them in one call"
    ):
        plan_run(
            8,
            2 * 10**8,
            single,
            devices,
            max_runs_per_device=None,
            runs_per_device=None,
            device_bytes=10**9,
        )


# --- the state codec -----------------------------------------------------------------------


def _two_impl_state(rows: tuple[int, ...] = ()) -> dict:
    """A state with threefry and rbg keys, a zero-size leaf and an empty subtree."""
    key = jax.random.key(3)
    if rows:
        key = jax.random.split(key, rows[0])
    return {
        "w": jnp.arange(np.prod(rows + (3,)), dtype=jnp.float32).reshape(rows + (3,)),
        "keys": (key, jax.random.wrap_key_data(jnp.ones(rows + (4,), jnp.uint32), impl="rbg")),
        "empty": jnp.zeros(rows + (0, 5), jnp.int8),
        "none": None,
        "count": jnp.full(rows, 7, jnp.int32),
    }


@pytest.mark.parametrize("rows", [(), (2,)])
def test_codec_round_trips_typed_keys_of_two_impls_and_zero_size_leaves(rows):
    state = _two_impl_state(rows)
    shapes = jax.eval_shape(lambda: _two_impl_state())  # one row's, typed keys kept
    leaves = states.flatten(state)
    assert [leaf.dtype for leaf in leaves] == [
        np.int32,
        np.int8,
        np.uint32,
        np.uint32,
        np.float32,
    ]  # keys as key data, in tree order
    assert [leaf.shape for leaf in leaves][:4] == [rows, rows + (0, 5), rows + (2,), rows + (4,)]
    back = states.unflatten([np.asarray(leaf) for leaf in leaves], shapes)
    assert jax.tree.structure(back) == jax.tree.structure(state)
    assert [jax.random.key_impl(k) for k in back["keys"]] == [
        jax.random.key_impl(k) for k in state["keys"]
    ]
    assert leaves_equal(states.flatten(back), leaves)
    # keys as data: the shapes of what flatten makes, and back without wrapping
    data = states.data_shapes(shapes)
    assert [leaf.shape for leaf in jax.tree.leaves(data)] == [
        leaf.shape[len(rows) :] for leaf in leaves
    ]
    assert leaves_equal(states.unflatten(leaves, data), states.keys_as_data(state))
    # a flat list flattens to itself
    assert states.flatten(leaves) == leaves


def test_codec_rebuilds_keys_inside_jit_and_refuses_a_wrong_count():
    state = _two_impl_state((3,))
    shapes = jax.eval_shape(lambda: _two_impl_state())

    @jax.jit
    def next_keys(leaves):
        tree = states.unflatten(leaves, shapes)
        split = jax.vmap(lambda k: jax.random.split(k)[0])
        return states.flatten({**tree, "keys": tuple(split(k) for k in tree["keys"])})

    moved = next_keys(states.flatten(state))
    split = jax.vmap(lambda k: jax.random.split(k)[0])
    expected = states.flatten({**state, "keys": tuple(split(k) for k in state["keys"])})
    assert leaves_equal(moved, expected)
    with pytest.raises(ValueError, match="4 state arrays given for a runner state of 5"):
        states.unflatten(states.flatten(state)[:4], shapes)


def test_checkpoints_save_and_restore_through_the_codec(tmp_path):
    state = _two_impl_state((2,))
    shapes = jax.eval_shape(lambda: _two_impl_state())
    identity = {"run_id": "r", "config": {}, "num_seeds": 2, "seed": 0}
    Checkpointer(tmp_path, identity).save(1, state, {"x": np.zeros((2, 1))}, {})  # a tree
    point = checkpoint.restore(tmp_path, shapes, expected=identity)  # typed shapes
    assert jax.tree.structure(point.resume.states) == jax.tree.structure(state)
    assert leaves_equal(point.resume.states, states.keys_as_data(state))
    back = states.unflatten(states.flatten(point.resume.states), shapes)
    assert leaves_equal(back, state)
    assert [str(key.dtype) for key in back["keys"]] == ["key<fry>", "key<rbg>"]


# --- execute: a second, non-DQN program ----------------------------------------------------


@pytest.fixture(scope="module")
def bandit():
    return make_bandit_program()


@pytest.fixture(scope="module")
def bandit_one_call(bandit):
    return execute(bandit, BANDIT_KEYS, BANDIT_HP)


def test_second_program_runs_every_row_as_its_single_run(bandit, bandit_one_call):
    out = bandit_one_call
    assert out.metrics["env_steps"].shape == (4, 4) and out.evals["return"].shape == (4, 2)
    assert out.params["w"].shape == (4, ARMS)  # program.policy_params, not state.params
    assert (out.periods_done, out.periods_run) == (4, 4)
    train = jax.jit(bandit.train)
    for row in range(4):
        hp = bandit_hparams(BANDIT_HP["step"]["size"][row], BANDIT_HP["noise"])
        state, metrics, evals = train(BANDIT_KEYS[row], hp)
        assert leaves_equal(metrics, {k: v[row] for k, v in out.metrics.items()})
        assert leaves_equal(evals, {k: v[row] for k, v in out.evals.items()})
        assert leaves_equal(state["params"], {"w": out.params["w"][row]})
    assert len({tuple(row) for row in out.params["w"]}) == 4  # four different runs


def test_second_program_chunked_and_batched_equal_one_call_bitwise(bandit, bandit_one_call):
    seen = []
    chunked = execute(bandit, BANDIT_KEYS, BANDIT_HP, on_chunk=lambda c: seen.append(c) and False)
    assert [c.periods_done for c in seen] == [1, 2, 3, 4]
    assert [c.evals["return"].shape[1] for c in seen] == [0, 1, 0, 1]
    assert [c.env_steps for c in seen] == [8, 16, 24, 32]
    assert _outputs_equal(chunked, bandit_one_call)
    two = execute(bandit, BANDIT_KEYS, BANDIT_HP, periods_per_chunk=2)
    assert _outputs_equal(two, bandit_one_call)
    for runs in (1, 2):  # sequential batches, one and two rows per device
        batched = execute(bandit, BANDIT_KEYS, BANDIT_HP, max_runs_per_device=runs)
        assert batched.plan.num_batches == 4 // runs // batched.plan.num_devices
        assert _outputs_equal(batched, bandit_one_call)
    odd = execute(bandit, BANDIT_KEYS[:3], BANDIT_HP | {"step": {"size": np.float32(0.2)}})
    assert odd.metrics["env_steps"].shape == (3, 4)


def test_second_program_resumes_from_a_checkpoint_bitwise(bandit, bandit_one_call, tmp_path):
    identity = {"run_id": "bandit", "config": {}, "num_seeds": 4, "seed": 11}
    saved = {}

    def save(chunk):
        Checkpointer(tmp_path / str(chunk.periods_done), identity).save(
            chunk.periods_done, chunk.states(), chunk.metrics_so_far, chunk.evals_so_far
        )
        saved[chunk.periods_done] = chunk.states()
        return chunk.periods_done == 2  # stop after 2 of 4 periods

    partial = execute(bandit, BANDIT_KEYS, BANDIT_HP, on_chunk=save)
    assert partial.periods_done == 2 and partial.metrics["env_steps"].shape == (4, 2)
    like = state_shapes(bandit, BANDIT_HP)
    point = checkpoint.restore(tmp_path / "2", like, expected=identity)
    assert leaves_equal(point.resume.states, saved[2])  # every leaf, both keys included
    assert point.resume.states["history"].shape == (4, 0)
    resumed = execute(bandit, BANDIT_KEYS, BANDIT_HP, resume=point.resume)
    assert (resumed.periods_done, resumed.periods_run) == (4, 2)
    assert _outputs_equal(resumed, bandit_one_call)
    # the flat list of leaves resumes as well, in chunks
    flat = Resume(saved[2], 2, point.resume.metrics, point.resume.evals)
    assert _outputs_equal(
        execute(bandit, BANDIT_KEYS, BANDIT_HP, resume=flat, on_chunk=save), bandit_one_call
    )
    # nothing left to run: the parameters are the checkpoint's, through policy_params
    final = checkpoint.restore(tmp_path / "4", like, expected=identity)
    done = execute(bandit, BANDIT_KEYS, BANDIT_HP, resume=final.resume, on_chunk=lambda c: False)
    assert done.periods_run == 0 and _outputs_equal(done, bandit_one_call)


def test_capabilities_decide_devices_resume_and_cache(
    bandit, bandit_one_call, tmp_path, monkeypatch
):
    single = Capabilities(single_device=True, checkpointable=False, exportable=False)
    program = bandit._replace(capabilities=single)
    out = execute(program, BANDIT_KEYS, BANDIT_HP, max_runs_per_device=1)  # cap ignored
    assert (out.plan.num_devices, out.plan.num_batches, out.plan.runs_per_device) == (1, 1, 4)
    assert _outputs_equal(out, bandit_one_call)  # vmapped, as on one device
    resume = Resume([], 2, {}, {})  # refused before its states are read
    with pytest.raises(ValueError, match="resume is not allowed for this program"):
        execute(program, BANDIT_KEYS, BANDIT_HP, resume=resume)
    monkeypatch.setattr(program_cache, "directory", lambda: tmp_path)
    not_exported = execute(program, BANDIT_KEYS, BANDIT_HP, program_key={"bandit": 1})
    assert not_exported.program_cache is None and not list(tmp_path.iterdir())
    first = execute(bandit, BANDIT_KEYS, BANDIT_HP, program_key={"bandit": 1})
    second = execute(bandit, BANDIT_KEYS, BANDIT_HP, program_key={"bandit": 1})
    assert (first.program_cache, second.program_cache) == ("miss", "hit")
    assert _outputs_equal(first, bandit_one_call) and _outputs_equal(second, bandit_one_call)


def test_second_program_on_two_devices_with_one_and_two_rows_each():
    result = _run(
        """
        import json, jax, numpy as np
        from second_program import bandit_hparams, make_bandit_program
        from purejaxdqn.run.execute import execute
        program = make_bandit_program()
        keys = jax.random.split(jax.random.key(11), 4)
        hp = bandit_hparams(np.array([0.1, 0.2, 0.3, 0.4], np.float32), np.float32(0.5))
        outs = [execute(program, keys, hp, runs_per_device=r) for r in (1, 2)]
        outs.append(execute(program, keys, hp, devices=jax.devices()[:1]))
        outs.append(execute(program, keys, hp, max_runs_per_device=1, periods_per_chunk=2))
        flat = lambda o: [np.asarray(x) for x in jax.tree.leaves((o.metrics, o.evals, o.params))]
        print(json.dumps({
            "layouts": [[o.plan.num_devices, o.plan.runs_per_device, o.plan.num_batches]
                        for o in outs],
            "equal": [all(np.array_equal(a, b) for a, b in zip(flat(o), flat(outs[2])))
                      for o in outs],
        }))
        """,
        env={"JAX_NUM_CPU_DEVICES": "2"},
    )
    assert result == {
        "layouts": [[2, 1, 2], [2, 2, 1], [1, 4, 1], [2, 1, 2]],
        "equal": [True, True, True, True],
    }


# --- execute: DQN ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_call(tiny_program):
    """Every log period in one compiled call."""
    return execute(tiny_program, KEYS, TINY.hparams())


def test_chunked_equals_one_call_bitwise(tiny_program, one_call):
    seen = []
    chunked = execute(
        tiny_program, KEYS, TINY.hparams(), on_chunk=lambda c: seen.append(c) and False
    )
    assert [c.periods_done for c in seen] == [1, 2, 3, 4]
    assert [c.evals["return"].shape[1] for c in seen] == [0, 1, 0, 1]
    assert leaves_equal(chunked.metrics, one_call.metrics)
    assert leaves_equal(chunked.evals, one_call.evals)
    assert leaves_equal(chunked.params, one_call.params)
    two = execute(tiny_program, KEYS, TINY.hparams(), periods_per_chunk=2)
    assert leaves_equal(two.metrics, one_call.metrics)
    with pytest.raises(ValueError, match="periods_per_chunk=3"):
        execute(tiny_program, KEYS, TINY.hparams(), periods_per_chunk=3)


def test_one_fused_train_program_agrees_to_rounding(tiny_vmapped, one_call):
    fused = tiny_vmapped(KEYS, TINY.hparams())
    for name, value in one_call.metrics.items():
        np.testing.assert_allclose(np.asarray(fused.metrics[name]), value, rtol=1e-4)
    np.testing.assert_array_equal(np.asarray(fused.evals["env_steps"]), one_call.evals["env_steps"])


def test_checkpoint_restores_every_leaf_and_resume_is_bitwise(tiny_program, one_call, tmp_path):
    saved = {}

    def stop_after_two(chunk):
        if chunk.periods_done == 2:
            saved["states"] = chunk.states()
            Checkpointer(tmp_path, checkpoint.identity("r", TINY, 3, 7)).save(
                2, saved["states"], chunk.metrics_so_far, chunk.evals_so_far
            )
            return True
        return False

    partial = execute(tiny_program, KEYS, TINY.hparams(), on_chunk=stop_after_two)
    assert partial.periods_done == 2 and partial.metrics["env_steps"].shape == (3, 2)
    assert checkpoint.latest(tmp_path) == 2
    point = checkpoint.restore(tmp_path, state_shapes(tiny_program, TINY.hparams()))
    assert point.manifest["periods_done"] == 2 and point.manifest["num_seeds"] == 3
    assert leaves_equal(point.resume.states, saved["states"])  # every leaf, keys included
    like = state_shapes(tiny_program, TINY.hparams())
    assert jax.tree.structure(point.resume.states) == jax.tree.structure(like)
    resumed = execute(tiny_program, KEYS, TINY.hparams(), resume=point.resume)
    assert resumed.periods_done == 4 and resumed.periods_run == 2
    assert leaves_equal(resumed.metrics, one_call.metrics)
    assert leaves_equal(resumed.evals, one_call.evals)
    assert leaves_equal(resumed.params, one_call.params)


def test_run_too_large_for_the_device_fails_before_compiling(tiny_program, monkeypatch):
    def no_jit(*args, **kwargs):
        raise AssertionError("jax.jit called: the preflight must fail before compiling")

    monkeypatch.setattr(jax, "jit", no_jit)
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(ValueError, match="one run needs"):
        execute(tiny_program, keys, TINY.hparams(), device_bytes=1000)


BATCH_KEYS = jax.random.split(jax.random.key(2), 3)


def _three_batches(program, offload):
    """The three BATCH_KEYS runs as three sequential batches of one row, chunk by chunk."""
    seen = []
    outputs = execute(
        program,
        BATCH_KEYS,
        TINY.hparams(),
        max_runs_per_device=1,
        on_chunk=lambda chunk: seen.append(chunk.periods_done) and False,
        offload_idle_batches=offload,
    )
    assert outputs.plan.num_batches == 3 and seen == [1, 2, 3, 4]
    return outputs


@pytest.fixture(scope="module")
def three_batches_kept(tiny_program):
    """Idle batches kept on the device (shared by the two tests below)."""
    return _three_batches(tiny_program, offload=False)


def test_sequential_batches_equal_one_batch(tiny_vmapped, three_batches_kept):
    reference = tiny_vmapped(BATCH_KEYS, TINY.hparams())
    outputs = three_batches_kept
    assert all_close(jax.tree.map(np.asarray, reference.metrics), outputs.metrics)
    assert all_close(jax.tree.map(np.asarray, reference.evals), outputs.evals)
    assert outputs.compiled_bytes_per_run <= outputs.plan.bytes_per_run  # estimate bounds XLA


def test_idle_batches_offloaded_to_the_host_give_the_same_results(tiny_program, three_batches_kept):
    kept, offloaded = three_batches_kept, _three_batches(tiny_program, offload=True)
    for a, b in ((kept.metrics, offloaded.metrics), (kept.evals, offloaded.evals)):
        assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    leaves = zip(jax.tree.leaves(kept.params), jax.tree.leaves(offloaded.params), strict=True)
    assert all(np.array_equal(x, y) for x, y in leaves)


def test_estimate_counts_the_replay_buffer(tiny_train):
    small = estimate_run_bytes(tiny_train, TINY.hparams())
    big_config = TINY.replace(buffer_size=TINY.buffer_size * 8)
    big = estimate_run_bytes(make_train(big_config), big_config.hparams())
    obs_bytes = 4 * 4  # CartPole: 4 float32
    assert big - small >= 2 * 7 * TINY.buffer_size * obs_bytes


def test_compiled_memory_counts_the_donated_state_once():
    """The runner state is donated from chunk to chunk, so the compiled program's memory
    holds one copy of the replay buffer, not an input and an output copy.
    """
    config = TINY.replace(buffer_size=2**16, eval_every=0)  # the buffer dominates the state
    program = make_train_program(config)
    keys = jax.random.split(jax.random.key(0), 1)
    outputs = execute(program, keys, config.hparams())
    shapes = jax.tree.leaves(state_shapes(program, config.hparams()))
    state = sum(s.size * s.dtype.itemsize for s in shapes)
    assert state <= outputs.compiled_bytes_per_run < 1.25 * state


def test_sharded_seeds_match_single_device_run():
    """jit(vmap) over sharded keys, and `execute` with one and two seeds per device."""
    result = _run(
        f"""
        import json, jax, numpy as np
        from purejaxdqn import DQNConfig, make_train, make_train_program
        from purejaxdqn.run.devices import use_all_cpu_cores, seed_sharding
        from purejaxdqn.run.execute import execute
        assert use_all_cpu_cores() is False  # JAX_NUM_CPU_DEVICES is set: left alone
        config = {DQN_SOURCE}
        keys = jax.random.split(jax.random.key(3), 4)
        train = jax.jit(jax.vmap(make_train(config), in_axes=(0, None)))
        sharded = jax.device_put(keys, seed_sharding(4))
        one = train(keys, config.hparams())
        many = train(sharded, config.hparams())
        def close(a, b):  # per-device batch shapes change float rounding, not behaviour
            a, b = np.asarray(a), np.asarray(b)
            if a.dtype.kind in "iub":
                return bool(np.array_equal(a, b))
            return bool(np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True))

        def plain(tree):  # typed PRNG keys compare by their bits
            is_key = lambda x: jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
            return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)

        same = jax.tree.map(close, plain(one), plain(many))
        # parallel.execute: one seed per device runs train directly, two are vmapped
        program = make_train_program(config)
        direct = execute(program, keys[:2], config.hparams())
        mapped = execute(program, keys, config.hparams())
        print(json.dumps({{
            "devices": len(jax.devices()),
            "used": len(many.metrics["loss"].sharding.device_set),
            "equal": all(jax.tree.leaves(same)),
            "odd": len(seed_sharding(3).device_set),
            "layouts": [[o.plan.num_devices, o.plan.runs_per_device] for o in (direct, mapped)],
            "direct_equal": all(
                close(direct.metrics[k], mapped.metrics[k][:2])
                and close(direct.metrics[k], np.asarray(one.metrics[k])[:2])
                for k in direct.metrics
            ),
        }}))
        """,
        env={"JAX_NUM_CPU_DEVICES": "2"},
    )
    assert result == {
        "devices": 2,
        "used": 2,
        "equal": True,
        "odd": 1,
        "layouts": [[2, 1], [2, 2]],
        "direct_equal": True,
    }
