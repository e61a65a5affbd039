"""The memory preflight's estimate: it bounds XLA's own figure, stays close to it for
ordinary configs, and refuses sizes JAX cannot index before anything compiles.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from conftest import TINY
from flax import struct
from gymnax.environments import environment, spaces

from purejaxdqn.core.loop import make_train_program
from purejaxdqn.core.presets import PRESETS
from purejaxdqn.run import memory
from purejaxdqn.run.compile import memory_of
from purejaxdqn.run.experiment import lazy_program, run_experiment
from purejaxdqn.run.plan import estimate_run_bytes, plan_batches


@struct.dataclass
class PixelState(environment.EnvState):
    time: int


@struct.dataclass
class PixelParams(environment.EnvParams):
    max_steps_in_episode: int = 20


class PixelEnv(environment.Environment):
    """84x84x4 uint8 frames (the Nature CNN's input) showing the step count."""

    @property
    def default_params(self):
        return PixelParams()

    def action_space(self, params=None):
        return spaces.Discrete(3)

    def observation_space(self, params):
        return spaces.Box(0, 255, (84, 84, 4), jnp.uint8)

    def reset_env(self, key, params):
        return jnp.zeros((84, 84, 4), jnp.uint8), PixelState(time=0)

    def step_env(self, key, state, action, params):
        state = state.replace(time=state.time + 1)
        obs = jnp.full((84, 84, 4), state.time, jnp.uint8)
        done = state.time >= params.max_steps_in_episode
        return obs, state, (action == 1).astype(jnp.float32), done, {}


SMALL_MINATAR = PRESETS["Breakout-MinAtar"].replace(
    buffer_size=4096,
    total_timesteps=3200,
    learning_starts=800,
    target_update_interval=800,
    num_log_points=4,
    eval_every=2,
)
NATURE = TINY.replace(
    env_id="pixels",
    buffer_size=256,
    total_timesteps=320,
    learning_starts=100,
    target_update_interval=16,
    eval_episodes=4,
    eval_max_steps=20,
)

# name: (config, custom env, most estimate / XLA allowed)
CASES = {
    "tiny": (TINY, None, 3),
    "large batch": (TINY.replace(batch_size=4096, buffer_size=4096), None, 3),
    "double dueling": (TINY.replace(double_q=True, dueling=True), None, 3),
    "minatar cnn": (SMALL_MINATAR, None, 3),
    "nature cnn": (NATURE, PixelEnv(), 3),
    # 200k CartPoles: many element-wise temporaries that XLA fuses away
    "many eval episodes": (TINY.replace(eval_episodes=200_000, eval_max_steps=5), None, 4),
}


def _xla_bytes(program, config) -> float:
    """XLA's figure per row for the chunk program `execute` compiles with one row per
    device: every log period, runner state donated, parameters returned as well.
    """
    hparams = config.hparams()
    state = jax.eval_shape(program.init, jax.random.key(0), hparams)
    periods = jax.ShapeDtypeStruct((program.num_periods,), jnp.int32)

    def chunk(state, hparams, periods):
        state, metrics, evals = program.run_periods(state, hparams, periods)
        return state, metrics, evals, state.params

    compiled = jax.jit(chunk, donate_argnums=0).lower(state, hparams, periods).compile()
    return memory_of(compiled, 1)


@pytest.mark.parametrize("name", list(CASES))
def test_estimate_bounds_xla_and_stays_close(name):
    config, env, most = CASES[name]
    program = make_train_program(config, env)
    estimate = estimate_run_bytes(program.train, config.hparams())
    compiled = _xla_bytes(program, config)
    assert compiled <= estimate <= most * compiled, (estimate, compiled)


def test_estimate_counts_evaluation_envs_and_batch():
    def estimate(config):
        return estimate_run_bytes(make_train_program(config).train, config.hparams())

    base = estimate(TINY)
    cartpole_obs = 4 * 4
    assert estimate(TINY.replace(eval_episodes=100_000)) - base > 100_000 * cartpole_obs
    big_batch = TINY.replace(batch_size=4096, buffer_size=4096)
    assert estimate(big_batch) - estimate(TINY.replace(buffer_size=4096)) > 4096 * cartpole_obs


def test_peak_leaves_out_in_place_writes_to_a_carried_buffer():
    rows = jnp.zeros((10, 1000), jnp.float32)

    def fill(store, rows):
        def write(store, row):
            return jax.lax.dynamic_update_slice(store, row[None], (0, 0)), row.sum()

        return jax.lax.scan(write, store, rows)

    jaxpr = jax.make_jaxpr(fill)(jnp.zeros((100_000, 1000), jnp.float32), rows).jaxpr
    assert memory.peak_bytes(jaxpr) < 2**20  # a row and the sums, not the 400 MB store


@pytest.mark.parametrize(
    "changes",
    [
        {"buffer_size": 10**12},
        {"total_timesteps": 2**34},
        {"target_update_interval": 2**31},
        {"eval_episodes": 2**31},
        {"gradient_steps": 2**23},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_sizes_past_int32_are_a_value_error_naming_the_field(changes):
    config = TINY.replace(**changes)
    field = next(iter(changes))
    with pytest.raises(ValueError, match=f"^{field}=") as error:
        estimate_run_bytes(lazy_program(config)[0].train, config.hparams())
    assert "\n" not in str(error.value)


def test_any_overflow_while_tracing_is_a_value_error():
    def train(key, hparams):
        return jnp.int32(1) % 2**40

    with pytest.raises(ValueError, match="overflow JAX's 32-bit integers"):
        estimate_run_bytes(train, TINY.hparams())


def test_huge_buffer_is_refused_before_compiling(monkeypatch):
    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled")

    monkeypatch.setattr(jax.stages.Lowered, "compile", no_compiling)
    with pytest.raises(ValueError, match="^buffer_size=1000000000000 is not allowed"):
        run_experiment(TINY.replace(buffer_size=10**12), num_seeds=1)


def test_absurd_sizes_within_int32_reach_the_device_refusal():
    config = TINY.replace(buffer_size=2**31 - 4, eval_max_steps=10**9)
    bytes_per_run = estimate_run_bytes(lazy_program(config)[0].train, config.hparams())
    assert bytes_per_run > 2 * (2**31 * 4 * 4) + 10**9 * 8  # buffer obs twice, eval keys
    with pytest.raises(ValueError, match="one run needs ~.* GiB"):
        plan_batches(1, bytes_per_run, device_bytes=64 * 2**30)
