import jax
import jax.numpy as jnp
import numpy as np

from purejaxdqn.envs import make_env, vector_reset, vector_step


def test_final_observation_is_the_true_successor_at_episode_ends():
    spec = make_env("CartPole-v1")
    obs, state = vector_reset(spec, jax.random.key(0), 8)

    def step(carry, key):
        obs, state = carry
        action_key, env_key = jax.random.split(key)
        actions = jax.random.randint(action_key, (8,), 0, 2)
        next_obs, state, reward, terminated, truncated, final, valid = vector_step(
            spec, env_key, state, actions
        )
        assert valid is None  # gymnax: every transition is real
        return (next_obs, state), (next_obs, terminated | truncated, final, terminated, truncated)

    _, (next_obs, done, final, terminated, truncated) = jax.lax.scan(
        step, (obs, state), jax.random.split(jax.random.key(1), 300)
    )
    done, next_obs, final = np.asarray(done), np.asarray(next_obs), np.asarray(final)
    assert done.sum() > 10
    np.testing.assert_array_equal(final[~done], next_obs[~done])  # ongoing: same observation
    assert not np.allclose(final[done], next_obs[done])  # ended: next_obs is a reset state
    # CartPole ends by termination (pole fell), final obs outside the allowed angle/position
    fell = np.asarray(terminated)
    out_of_bounds = (np.abs(final[..., 2]) > 0.2094) | (np.abs(final[..., 0]) > 2.4)
    np.testing.assert_array_equal(out_of_bounds[fell], True)


def test_minatar_observations_are_binary_so_uint8_storage_is_lossless():
    spec = make_env("Breakout-MinAtar")
    assert spec.storage_dtype == np.uint8 and spec.obs_dtype == np.float32
    obs, state = vector_reset(spec, jax.random.key(0), 4)

    def step(carry, key):
        obs, state = carry
        actions = jax.random.randint(key, (4,), 0, spec.num_actions)
        obs, state, *_ = vector_step(spec, key, state, actions)
        return (obs, state), obs

    _, seen = jax.lax.scan(step, (obs, state), jax.random.split(jax.random.key(1), 200))
    seen = np.asarray(seen)
    np.testing.assert_array_equal(seen.astype(np.uint8).astype(np.float32), seen)


def test_spec_shapes_come_from_reset_not_the_space():
    spec = make_env("Catch-bsuite")  # space says int32, observations are float32
    assert spec.obs_dtype == jnp.float32 and spec.obs_shape == (10, 5)
    assert spec.num_actions == 3 and spec.max_episode_steps is not None


DISCRETE_IDS = [
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "Seaquest-MinAtar",
    "SpaceInvaders-MinAtar",
    "Catch-bsuite",
    "DeepSea-bsuite",
    "MemoryChain-bsuite",
    "UmbrellaChain-bsuite",
    "DiscountingChain-bsuite",
    "SimpleBandit-bsuite",
    "FourRooms-misc",
    "MetaMaze-misc",
    "BernoulliBandit-misc",
    "GaussianBandit-misc",
    "Pong-misc",
    "FrozenLake-misc",
]


def test_every_discrete_gymnax_env_traces_through_train():
    from purejaxdqn import DQNConfig, make_train

    for env_id in DISCRETE_IDS:
        config = DQNConfig(
            env_id=env_id,
            num_envs=2,
            total_timesteps=40,
            buffer_size=20,
            learning_starts=10,
            batch_size=4,
            num_log_points=2,
            eval_every=1,
            eval_episodes=2,
            eval_max_steps=5,
            hidden_sizes=(4,),
            target_update_interval=4,
        )
        out = jax.eval_shape(make_train(config), jax.random.key(0), config.hparams())
        assert out.metrics["episode_return"].shape == (2,), env_id
        assert out.evals["return"].shape == (2,), env_id
