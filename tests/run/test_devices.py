"""Seed sharding over several CPU devices and the persistent compilation cache.

Device counts are fixed when JAX starts, so these run small programs in fresh processes.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from purejaxdqn.run.devices import use_all_cpu_cores

TINY = (
    "DQNConfig(env_id='CartPole-v1', num_envs=4, total_timesteps=1600, buffer_size=512, "
    "learning_starts=200, batch_size=32, target_update_interval=40, hidden_sizes=(16,), "
    "num_log_points=4, eval_every=2, eval_episodes=2, eval_max_steps=50)"
)


def _run(script: str, env: dict[str, str] | None = None) -> dict:
    """Run `script` in a fresh interpreter; it prints one JSON line last."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_sharded_seeds_match_single_device_run():
    """jit(vmap) over sharded keys, and `execute` with one and two seeds per device."""
    result = _run(
        f"""
        import json, jax, numpy as np
        from purejaxdqn import DQNConfig, make_train, make_train_program
        from purejaxdqn.run.devices import use_all_cpu_cores, seed_sharding
        from purejaxdqn.run.execute import execute
        assert use_all_cpu_cores() is False  # JAX_NUM_CPU_DEVICES is set: left alone
        config = {TINY}
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
        alone = execute(program, keys[:2], config.hparams(), devices=jax.devices()[:1])
        print(json.dumps({{
            "devices": len(jax.devices()),
            "used": len(many.metrics["loss"].sharding.device_set),
            "equal": all(jax.tree.leaves(same)),
            "odd": len(seed_sharding(3).device_set),
            "layouts": [[o.plan.num_devices, o.plan.runs_per_device] for o in (direct, alone)],
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
        "layouts": [[2, 1], [1, 2]],
        "direct_equal": True,
    }


def test_compile_cache_serves_second_process(tmp_path):
    script = f"""
        import json, sys, jax
        from jax import monitoring
        from purejaxdqn import DQNConfig
        from purejaxdqn.run.experiment import enable_compile_cache, run_experiment
        hits, misses = [], []
        monitoring.register_event_listener(
            lambda event, **kw: hits.append(event) if "cache_hits" in event else None
        )
        monitoring.register_event_listener(
            lambda event, **kw: misses.append(event) if "cache_misses" in event else None
        )
        enable_compile_cache({str(tmp_path)!r})
        result = run_experiment({TINY}, num_seeds=2)
        print(json.dumps({{
            "hits": len(hits),
            "misses": len(misses),
            "program_cache": result.summary["program_cache"],
            "gymnax_imported": "gymnax" in sys.modules,
            "loss": result.metrics["loss"].tolist(),
            "returns": result.evals["return"].tolist(),
        }}))
        """
    first = _run(script)
    assert any(name.startswith("jit_") for name in os.listdir(tmp_path))
    second = _run(script)
    # every XLA compile of the second run came from the cache
    assert first["misses"] >= 1 and second["misses"] == 0 and second["hits"] >= 1
    # the traced program too: the second run never built the env nor traced train
    assert (first["program_cache"], second["program_cache"]) == ("miss", "hit")
    assert first["gymnax_imported"] and not second["gymnax_imported"]
    assert second["loss"] == first["loss"] and second["returns"] == first["returns"]
    # an edited config is another program
    third = _run(script.replace("eval_max_steps=50", "eval_max_steps=40"))
    assert third["program_cache"] == "miss"


def test_use_all_cpu_cores_is_a_no_op_once_jax_has_started(monkeypatch):
    import jax

    from purejaxdqn.run import devices

    jax.devices()  # the test session's backend exists (one CPU device)
    monkeypatch.delenv("JAX_NUM_CPU_DEVICES", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setattr(devices, "available_cores", lambda: len(jax.devices("cpu")) + 1)
    with pytest.warns(RuntimeWarning, match="came after JAX started"):
        assert use_all_cpu_cores() is False  # too late: says so, changes nothing
    assert len(jax.devices("cpu")) == devices.available_cores() - 1


@pytest.mark.parametrize("variable", ["JAX_NUM_CPU_DEVICES", "XLA_FLAGS"])
def test_use_all_cpu_cores_respects_the_users_choice(monkeypatch, variable):
    value = "1" if variable == "JAX_NUM_CPU_DEVICES" else "--xla_force_host_platform_device_count=1"
    monkeypatch.setenv(variable, value)
    assert use_all_cpu_cores() is False
