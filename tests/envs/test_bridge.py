"""Simulator bridges: envpool (XLA custom calls) and gymnasium (host callback) inside jit."""

from __future__ import annotations

import envpool
import gymnasium
import jax
import numpy as np
import pytest

from purejaxdqn.envs import bridge
from purejaxdqn.envs.bridge import BridgeTarget, EnvpoolEnv, GymnasiumEnv
from purejaxdqn.envs.spec import make_env

STEPS = 200
RUNS, ENVS = 2, 3
# A 70-step time limit so a short sequence holds terminations, truncations and reset steps.
LANDER = BridgeTarget("envpool", "LunarLander-v3", {"max_episode_steps": 70}, {})


def _actions(steps: int = STEPS, runs: int = RUNS, envs: int = ENVS, n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).integers(0, n, (steps, runs, envs)).astype(np.int32)


def _rollout(pool_env, actions: np.ndarray, batched: bool = True) -> dict[str, np.ndarray]:
    """Reset, then step `actions` (steps, [runs,] envs) inside one jitted scan."""

    def run(key: jax.Array, actions: jax.Array) -> dict[str, jax.Array]:
        first, state = pool_env.vector_reset(key, actions.shape[-1])

        def body(state: jax.Array, action: jax.Array) -> tuple[jax.Array, tuple]:
            obs, state, reward, terminated, truncated, final, valid = pool_env.vector_step(
                state, action
            )
            return state, (obs, reward, terminated, truncated, final, valid)

        _, out = jax.lax.scan(body, state, actions)
        names = ("obs", "reward", "terminated", "truncated", "final_obs", "valid")
        return {"first": first, **dict(zip(names, out, strict=True))}

    if not batched:
        return jax.device_get(jax.jit(run)(jax.random.key(0), actions))
    keys = jax.random.split(jax.random.key(0), actions.shape[1])
    out = jax.jit(jax.vmap(run, in_axes=(0, 1)))(keys, actions)
    return jax.device_get(out)


@pytest.fixture(scope="module")
def lander_rollout() -> dict[str, np.ndarray]:
    return _rollout(EnvpoolEnv("lander", LANDER, 0, "train"), _actions())


def test_ids_route_to_the_right_backend():
    assert bridge.target_of("CartPole-v1") is None
    assert bridge.target_of("Breakout-MinAtar") is None
    lander = bridge.target_of("LunarLander-v3")
    assert lander.backend == "envpool" and lander.train_options == {}
    v4, v5 = bridge.target_of("PongNoFrameskip-v4"), bridge.target_of("ALE/Pong-v5")
    assert v4.task == v5.task == "Pong-v5"
    assert v4.train_options["repeat_action_probability"] == 0.0
    assert v5.train_options["repeat_action_probability"] == 0.25
    assert v4.train_options["episodic_life"] and v4.train_options["reward_clip"]
    assert not v4.eval_options["episodic_life"] and not v4.eval_options["reward_clip"]
    assert bridge.target_of("envpool:CartPole-v1").task == "CartPole-v1"
    assert bridge.target_of("envpool:Breakout-v5").train_options["stack_num"] == 4
    assert bridge.target_of("gymnasium:Acrobot-v1") == BridgeTarget(
        "gymnasium", "Acrobot-v1", {}, {}
    )


def test_envpool_bridge_equals_envpool_itself(lander_rollout):
    """Every run's transitions equal envpool's own host API on the same seeds and actions."""
    actions = _actions()
    host = envpool.make(
        "LunarLander-v3", "gymnasium", num_envs=RUNS * ENVS, seed=0, max_episode_steps=70
    )
    first, _ = host.reset()
    np.testing.assert_array_equal(lander_rollout["first"].reshape(first.shape), first)
    for t in range(STEPS):
        obs, reward, terminated, truncated, info = host.step(actions[t].reshape(-1))
        got = {
            k: v[:, t].reshape(RUNS * ENVS, *v.shape[3:])
            for k, v in lander_rollout.items()
            if k != "first"
        }
        np.testing.assert_array_equal(got["obs"], obs)
        np.testing.assert_array_equal(got["final_obs"], obs)
        np.testing.assert_array_equal(got["reward"], reward)
        np.testing.assert_array_equal(got["terminated"], terminated)
        np.testing.assert_array_equal(got["truncated"], truncated)
        np.testing.assert_array_equal(got["valid"], info["elapsed_step"] > 0)
    # the sequence exercised every case the bridge handles
    assert lander_rollout["terminated"].any() and lander_rollout["truncated"].any()
    assert (~lander_rollout["valid"]).any()


def test_reset_step_follows_every_episode_end(lander_rollout):
    done = lander_rollout["terminated"] | lander_rollout["truncated"]
    valid = lander_rollout["valid"]
    np.testing.assert_array_equal(~valid[:, 1:], done[:, :-1])  # exactly after each end
    assert np.all(lander_rollout["reward"][~valid] == 0.0)


def test_runs_in_one_pool_are_independent_and_match_lone_runs(lander_rollout):
    actions = _actions()
    changed = actions.copy()
    changed[:, 1] = (changed[:, 1] + 1) % 4  # run 1 acts differently
    other = _rollout(EnvpoolEnv("lander", LANDER, 0, "train"), changed)
    for name, value in lander_rollout.items():
        np.testing.assert_array_equal(other[name][0], value[0])  # run 0 untouched
    assert not np.array_equal(other["obs"][1], lander_rollout["obs"][1])
    # run 1 of a batch sees what a lone run with env_seed + 1 sees
    lone = _rollout(EnvpoolEnv("lander", LANDER, 1, "train"), actions[:, 1], batched=False)
    for name, value in lone.items():
        np.testing.assert_array_equal(value, lander_rollout[name][1])
    # and a lone run with env_seed 0 sees run 0's simulators
    lone0 = _rollout(EnvpoolEnv("lander", LANDER, 0, "train"), actions[:, 0], batched=False)
    np.testing.assert_array_equal(lone0["obs"], lander_rollout["obs"][0])


def test_nested_vmap_flattens_into_one_pool():
    pool_env = EnvpoolEnv("lander", LANDER, 0, "train")
    actions = _actions(steps=5, runs=4, envs=2).reshape(5, 2, 2, 2)

    def run(key: jax.Array, actions: jax.Array) -> jax.Array:
        obs, state = pool_env.vector_reset(key, 2)
        state, _ = jax.lax.scan(lambda s, a: (pool_env.vector_step(s, a)[1], None), state, actions)
        return obs

    keys = jax.random.split(jax.random.key(0), 4).reshape(2, 2)
    inner = jax.vmap(run, in_axes=(0, 1))
    obs = jax.jit(jax.vmap(inner, in_axes=(0, 2)))(keys, actions)
    assert obs.shape == (2, 2, 2, 8) and sorted(pool_env._pools) == [2, 4, 8]
    host = envpool.make("LunarLander-v3", env_type="gymnasium", num_envs=8, seed=0)
    np.testing.assert_array_equal(np.asarray(obs).reshape(8, 8), host.reset()[0])


def test_atari_frames_are_channels_last_uint8():
    spec = make_env("PongNoFrameskip-v4")
    assert spec.obs_shape == (84, 84, 4) and spec.obs_dtype == np.uint8
    assert spec.num_actions == 6 and spec.max_episode_steps == 27_000
    assert spec.bridged and spec.has_reset_steps and spec.frame_stack == 4
    out = _rollout(spec.env, _actions(steps=6, runs=1, envs=2, n=6))
    options = bridge.target_of("PongNoFrameskip-v4").train_options
    host = envpool.make("Pong-v5", env_type="gymnasium", num_envs=2, seed=0, **options)
    np.testing.assert_array_equal(out["first"][0], host.reset()[0].transpose(0, 2, 3, 1))
    for t, action in enumerate(_actions(steps=6, runs=1, envs=2, n=6)):
        obs = host.step(action[0])[0]
        np.testing.assert_array_equal(out["obs"][0, t], obs.transpose(0, 2, 3, 1))


def test_gymnasium_bridge_equals_gymnasium_itself():
    """Same-step autoreset: `obs` restarts, `final_obs` is the true last observation."""
    pool_env = GymnasiumEnv("cartpole", bridge.target_of("gymnasium:CartPole-v1"), 0, "train")
    actions = _actions(steps=60, runs=2, envs=2, n=2)
    out = _rollout(pool_env, actions)
    keys = jax.random.split(jax.random.key(0), 2)
    ends = 0
    for run in range(2):
        seeds = jax.random.randint(keys[run], (2,), 0, np.iinfo(np.int32).max)
        for e in range(2):
            env = gymnasium.make("CartPole-v1")
            obs, _ = env.reset(seed=int(seeds[e]))
            np.testing.assert_array_equal(out["first"][run, e], obs)
            for t in range(60):
                obs, reward, terminated, truncated, _ = env.step(int(actions[t, run, e]))
                np.testing.assert_array_equal(out["final_obs"][run, t, e], obs)
                assert out["reward"][run, t, e] == reward
                assert out["terminated"][run, t, e] == terminated
                assert out["truncated"][run, t, e] == truncated
                if terminated or truncated:
                    ends += 1
                    obs, _ = env.reset()
                np.testing.assert_array_equal(out["obs"][run, t, e], obs)
    assert ends > 0 and out["valid"].all()


def test_bad_ids_and_spaces_are_refused_clearly():
    with pytest.raises(ValueError, match="envpool has no task 'Pongg-v5'.*Pong-v5"):
        make_env("PonggNoFrameskip-v4")
    with pytest.raises(ValueError, match="Discrete"):
        make_env("envpool:LunarLanderContinuous-v3")
    with pytest.raises(ValueError, match="Discrete"):
        make_env("gymnasium:Pendulum-v1")
    with pytest.raises(ValueError, match="not a gymnax environment.*LunarLander-v3"):
        make_env("LunarLandr-v3")


def test_frame_ring_rebuilds_the_env_stacks_across_episode_boundaries():
    """Each frame stored once; stacks rebuilt at sample time equal the env's own stacks,
    across lost lives (stack continues), game ends and truncations (stack restarts), and
    after the ring wraps."""
    from purejaxdqn.core import replay

    options = {**bridge._ATARI, **bridge._ATARI_TRAIN, "max_episode_steps": 30}
    pool_env = EnvpoolEnv(
        "breakout", BridgeTarget("envpool", "Breakout-v5", options, {}), 0, "train"
    )
    steps, envs = 100, 2
    actions = np.random.default_rng(1).integers(0, 4, (steps, envs)).astype(np.int32)
    out = _rollout(pool_env, actions, batched=False)
    assert (~out["valid"]).sum() >= 4 and out["terminated"].any()
    acted_on = np.concatenate([out["first"][None], out["obs"][:-1]])

    def fill(frame_stack: int) -> replay.ReplayBuffer:
        buffer = replay.init((84, 84, 4), np.uint8, envs, 80, 30, True, frame_stack)
        add = jax.jit(replay.add, static_argnums=8)
        for t in range(steps):
            buffer = add(
                buffer, acted_on[t], actions[t], out["reward"][t], out["terminated"][t],
                out["truncated"][t], out["final_obs"][t], out["valid"][t], frame_stack,
            )  # fmt: skip
        return buffer

    whole, ring = fill(0), fill(4)
    assert replay.capacity_of(whole) == replay.capacity_of(ring, 4) == 80
    assert replay.nbytes(ring) < 1.01 * (80 + 2 * 4) * 84 * 84 < 0.3 * replay.nbytes(whole)
    key = jax.random.key(2)
    expected = replay.sample(whole, key, 2048, 0.99).batch
    rebuilt = replay.sample(ring, key, 2048, 0.99, 4).batch
    for name in ("obs", "next_obs", "action", "valid", "discount"):
        np.testing.assert_array_equal(getattr(rebuilt, name), getattr(expected, name), name)
    # the batch holds stacks that restart mid-stack (a game's first frame repeated)
    repeated = (np.asarray(expected.obs)[..., 0] == np.asarray(expected.obs)[..., 1]).all((1, 2))
    assert repeated.any() and not repeated.all()
