"""Probe environments with known optimal Q-values, for debugging a DQN end to end.

Each is a tiny gymnax 1.x environment; a correct agent learns the value in its docstring
within a few thousand steps. They isolate one mechanism each: value regression,
bootstrapping across a time-limit truncation, credit for the chosen action, and returns
summed over several steps up to a termination (n-step returns).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class ProbeState(environment.EnvState):
    """Step counter and the sign shown in the observation."""

    time: int
    sign: float


@struct.dataclass
class ProbeParams(environment.EnvParams):
    """Step limit of an episode (a truncation, never a termination)."""

    max_steps_in_episode: int = 100


class _Probe(environment.Environment[ProbeState, ProbeParams]):
    """Shared plumbing: a 1-D observation and a fixed number of actions."""

    actions = 1

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams()

    @property
    def num_actions(self) -> int:
        return self.actions

    def action_space(self, params: ProbeParams | None = None) -> spaces.Discrete:
        """`actions` discrete actions."""
        return spaces.Discrete(self.actions)

    def observation_space(self, params: ProbeParams) -> spaces.Box:
        """One float in [-1, 1]."""
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    def _observe(self, state: ProbeState) -> jax.Array:
        return jnp.array([state.sign], jnp.float32)

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[jax.Array, ProbeState]:
        """Start at time 0 with sign 1 (subclasses may randomise it)."""
        state = ProbeState(time=0, sign=1.0)
        return self._observe(state), state


class ConstantRewardProbe(_Probe):
    """One action, reward 1, episode terminates after one step: Q(s, a) = 1."""

    def step_env(self, key, state, action, params):  # noqa: D102 (gymnax interface)
        state = state.replace(time=state.time + 1)
        return self._observe(state), state, jnp.float32(1.0), jnp.bool_(True), {}


class TruncationProbe(_Probe):
    """One action, reward 1 every step, never terminates; with `max_steps_in_episode=1`
    every step is truncated. Bootstrapping through truncation gives Q = 1 / (1 - gamma);
    treating truncation as termination would give Q = 1.
    """

    @property
    def default_params(self) -> ProbeParams:
        """Every episode is cut after one step."""
        return ProbeParams(max_steps_in_episode=1)

    def step_env(self, key, state, action, params):  # noqa: D102 (gymnax interface)
        state = state.replace(time=state.time + 1)
        return self._observe(state), state, jnp.float32(1.0), jnp.bool_(False), {}


class ActionMatchProbe(_Probe):
    """Observation is +1 or -1 at random; two actions; reward 1 for action 1 on +1 and
    action 0 on -1, else 0; one-step episodes. Q(+1, 1) = Q(-1, 0) = 1, the others 0,
    and the greedy return is 1 per episode.
    """

    actions = 2

    def reset_env(self, key, params):  # noqa: D102 (gymnax interface)
        sign = jnp.where(jax.random.bernoulli(key), 1.0, -1.0)
        state = ProbeState(time=0, sign=sign)
        return self._observe(state), state

    def step_env(self, key, state, action, params):  # noqa: D102 (gymnax interface)
        correct = jnp.where(state.sign > 0, 1, 0)
        reward = jnp.where(action == correct, 1.0, 0.0).astype(jnp.float32)
        state = state.replace(time=state.time + 1)
        return self._observe(state), state, reward, jnp.bool_(True), {}


class CountdownProbe(_Probe):
    """One action, reward 1 every step, termination after `LENGTH` steps; the observation
    is the fraction of the episode left, (LENGTH - t) / LENGTH. The state t steps in has
    Q = (1 - gamma**(LENGTH - t)) / (1 - gamma): an n-step target must sum the rewards with
    gamma**k and stop the bootstrap at the termination inside its window.
    """

    LENGTH = 4

    def _observe(self, state: ProbeState) -> jax.Array:
        return jnp.array([(self.LENGTH - state.time) / self.LENGTH], jnp.float32)

    def step_env(self, key, state, action, params):  # noqa: D102 (gymnax interface)
        state = state.replace(time=state.time + 1)
        done = jnp.bool_(state.time >= self.LENGTH)
        return self._observe(state), state, jnp.float32(1.0), done, {}
