"""CPU cores as devices and the persistent compilation cache (seed sharding and `execute` on
several devices: test_parallel.py).

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
            "program_cache": result.summary.program_cache,
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
