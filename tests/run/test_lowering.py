"""The DQN train programs lower for GPU and TPU on this CPU machine (`jax.export` needs no
accelerator to lower), with the standard paths there and the CPU workarounds on CPU.

Each program is `init` and `run_periods` vmapped over 2 seeds, with a learning rate per
seed, on an MLP (CartPole-v1), the MinAtar CNN (Breakout-MinAtar) and the Nature CNN (a
small gymnax env of 84x84x4 uint8 frames). Markers in the lowered StableHLO text:

- JAX's own threefry is a function `@threefry2x32`; `rng.FAST_THREEFRY` is straight-line
  code whose `split` ends in an `optimization_barrier`;
- `nn.Conv` lowers to `stablehlo.convolution`; `PatchConv` to slices and a `dot_general`.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY
from flax import struct
from gymnax.environments import environment, spaces
from jax import export

from purejaxdqn import backend
from purejaxdqn.program import TrainProgram, hparams_in_axes


@struct.dataclass
class FrameState(environment.EnvState):
    time: int


@struct.dataclass
class FrameParams(environment.EnvParams):
    max_steps_in_episode: int = 8


class FrameEnv(environment.Environment):
    """84x84x4 uint8 frames (the Nature CNN's input) filled with the step count."""

    @property
    def default_params(self) -> FrameParams:
        return FrameParams()

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(3)

    def observation_space(self, params) -> spaces.Box:
        return spaces.Box(0, 255, (84, 84, 4), jnp.uint8)

    def reset_env(self, key, params):
        return jnp.zeros((84, 84, 4), jnp.uint8), FrameState(time=0)

    def step_env(self, key, state, action, params):
        state = state.replace(time=state.time + 1)
        obs = jnp.full((84, 84, 4), state.time, jnp.uint8)
        done = state.time >= params.max_steps_in_episode
        return obs, state, (action == 1).astype(jnp.float32), done, {}


SMALL = dict(
    num_envs=2,
    total_timesteps=64,
    buffer_size=32,
    learning_starts=8,
    batch_size=4,
    target_update_interval=8,
    num_log_points=2,
    eval_every=1,
    eval_episodes=2,
    eval_max_steps=8,
)
CASES = {
    "mlp": (TINY.replace(**SMALL, hidden_sizes=(8,)), None),
    "minatar_cnn": (TINY.replace(**SMALL, env_id="Breakout-MinAtar", hidden_sizes=(8,)), None),
    "nature_cnn": (TINY.replace(**SMALL, env_id="frames", network="nature_cnn"), FrameEnv()),
}


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    monkeypatch.delenv(backend.ENV_VAR, raising=False)


@pytest.fixture(scope="module", params=list(CASES))
def case(request) -> tuple[str, TrainProgram, object]:
    """(network name, its train program, hyperparameters with a learning rate per seed)."""
    config, env = CASES[request.param]
    hparams = config.hparams(learning_rate=np.array([1e-3, 5e-4], np.float32))
    return request.param, config.make_program(env), hparams


def _lowered_texts(program: TrainProgram, hparams, platform: str) -> tuple[str, str]:
    """StableHLO text of vmapped `init` and `run_periods` (2 seeds) exported for `platform`,
    traced under `backend.target(platform)` (fresh functions: jit's trace cache does not
    know the target).
    """
    axes = hparams_in_axes(hparams)
    keys = jax.random.split(jax.random.key(0), 2)
    periods = jax.ShapeDtypeStruct((2,), jnp.int32)
    with backend.target(platform):
        init = jax.vmap(program.init, in_axes=(0, axes))
        run = jax.vmap(program.run_periods, in_axes=(0, axes, None))
        init_program = export.export(jax.jit(init), platforms=(platform,))(keys, hparams)
        state = jax.eval_shape(init, keys, hparams)
        run_program = export.export(jax.jit(run), platforms=(platform,))(state, hparams, periods)
    for exported in (init_program, run_program):
        assert exported.platforms == (platform,)
        assert jax.tree.leaves(exported.in_avals)[0].shape[0] == 2  # the seed axis
    return init_program.mlir_module(), run_program.mlir_module()


def _jax_threefry(text: str) -> bool:
    return re.search(r"func\.func \w* ?@threefry2x32\b", text) is not None


def _fast_threefry(text: str) -> bool:
    return "stablehlo.optimization_barrier" in text


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_accelerator_lowering_takes_the_standard_paths(case, platform):
    name, program, hparams = case
    init_text, run_text = _lowered_texts(program, hparams, platform)
    for text in (init_text, run_text):
        assert _jax_threefry(text) and not _fast_threefry(text)
    assert ("stablehlo.convolution" in run_text) == (name != "mlp")


def test_cpu_lowering_takes_the_workarounds(case):
    program, hparams = case[1:]
    for text in _lowered_texts(program, hparams, "cpu"):
        assert _fast_threefry(text) and not _jax_threefry(text)
        assert "stablehlo.convolution" not in text


def test_override_lowers_the_standard_paths_on_cpu(case, monkeypatch):
    """PUREJAXDQN_WORKAROUNDS=standard: the A/B switch makes CPU lower like an accelerator."""
    name, program, hparams = case
    monkeypatch.setenv(backend.ENV_VAR, "standard")
    run_text = _lowered_texts(program, hparams, "cpu")[1]
    assert _jax_threefry(run_text) and not _fast_threefry(run_text)
    assert ("stablehlo.convolution" in run_text) == (name != "mlp")
