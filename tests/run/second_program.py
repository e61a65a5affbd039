"""A second, non-DQN training program for the runtime's tests: a noisy multi-armed bandit.

Nothing in it comes from `purejaxdqn.core`: it is built by hand on the contract of
`purejaxdqn.program`, with a runner state and hyperparameters shaped unlike DQN's:

- state: `{"params": {"w": (ARMS,) float32}, "key": typed key (the rows' impl),
  "tag": typed rbg key, "count": int32, "history": (0,) float32}`: two key impls and a
  zero-size leaf;
- hyperparameters: a dict `{"step": {"size": ...}, "noise": ...}`; either leaf may be a
  scalar (shared by every run) or hold one value per run.

Each env step pulls a uniformly random arm, observes its mean plus uniform noise and
moves that arm's estimate towards it. Every op is element-wise or a sequential sum, so a
run's results do not depend on how many runs share a device.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxdqn.program import (
    ENV_STEPS,
    EPISODE_RETURN,
    EPISODES,
    EVAL_RETURN,
    Capabilities,
    TrainProgram,
)

ARMS = 4
STEPS_PER_PERIOD = 8
MEANS = np.linspace(0.0, 1.0, ARMS, dtype=np.float32)


def bandit_hparams(step_size: Any = 0.1, noise: Any = 0.5) -> dict[str, Any]:
    """The bandit's hyperparameter dict."""
    return {"step": {"size": step_size}, "noise": noise}


def make_bandit_program(
    num_periods: int = 4, eval_every: int = 2, capabilities: Capabilities | None = None
) -> TrainProgram:
    """The bandit as a `TrainProgram` of `num_periods` log periods (default capabilities:
    everything allowed).
    """
    means = jnp.asarray(MEANS)

    def init(key: jax.Array, hp: dict) -> dict:
        key, w_key, tag_key = jax.random.split(key, 3)
        tag_data = jax.random.bits(tag_key, (4,), jnp.uint32)
        return {
            "params": {"w": jax.random.uniform(w_key, (ARMS,)) * 0.01},
            "key": key,
            "tag": jax.random.wrap_key_data(tag_data, impl="rbg"),
            "count": jnp.zeros((), jnp.int32),
            "history": jnp.zeros((0,), jnp.float32),
        }

    def env_step(carry: tuple, _: None, hp: dict) -> tuple[tuple, None]:
        state, total = carry
        key, arm_key, noise_key = jax.random.split(state["key"], 3)
        arm = jax.random.randint(arm_key, (), 0, ARMS)
        noise = jax.random.uniform(noise_key, minval=-1.0, maxval=1.0)
        reward = means[arm] + hp["noise"] * noise
        w = state["params"]["w"]
        w = w.at[arm].set(w[arm] + hp["step"]["size"] * (reward - w[arm]))
        state = {**state, "params": {"w": w}, "key": key, "count": state["count"] + 1}
        return (state, total + reward), None

    def period_step(state: dict, period: jax.Array, hp: dict) -> tuple[dict, tuple]:
        (state, total), _ = jax.lax.scan(
            lambda c, x: env_step(c, x, hp),
            (state, jnp.zeros((), jnp.float32)),
            None,
            length=STEPS_PER_PERIOD,
        )
        state = {**state, "tag": jax.random.split(state["tag"])[0]}
        steps = (period + 1) * STEPS_PER_PERIOD
        metrics = {
            ENV_STEPS: steps,
            EPISODE_RETURN: total,
            EPISODES: jnp.ones((), jnp.int32),
            "best_arm": jnp.argmax(state["params"]["w"]).astype(jnp.int32),
        }
        if not eval_every:
            return state, (metrics, {})

        def evaluation() -> dict:
            return {ENV_STEPS: steps, EVAL_RETURN: means[jnp.argmax(state["params"]["w"])]}

        evals = jax.lax.cond(
            (period + 1) % eval_every == 0,
            evaluation,
            lambda: jax.tree.map(jnp.zeros_like, jax.eval_shape(evaluation)),
        )
        return state, (metrics, evals)

    def run_periods(state: dict, hp: dict, periods: jax.Array) -> tuple[dict, dict, dict]:
        state, (metrics, evals) = jax.lax.scan(lambda s, p: period_step(s, p, hp), state, periods)
        return state, metrics, evals

    def train(key: jax.Array, hp: dict) -> tuple[dict, dict, dict]:
        state, metrics, evals = run_periods(init(key, hp), hp, jnp.arange(num_periods))
        if eval_every:
            due = slice(eval_every - 1, None, eval_every)
            evals = {name: value[due] for name, value in evals.items()}
        return state, metrics, evals

    return TrainProgram(
        init=init,
        run_periods=run_periods,
        train=train,
        num_periods=num_periods,
        eval_every=eval_every,
        capabilities=capabilities or Capabilities(),
        policy_params=lambda state: state["params"],
    )
