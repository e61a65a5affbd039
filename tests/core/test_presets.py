"""Starting configs per env id, and preset overrides that adapt instead of failing."""

import dataclasses
import random

import pytest

from purejaxdqn import DQNConfig, get_preset
from purejaxdqn.core.config import validate
from purejaxdqn.core.presets import (
    MINATAR_GAMES,
    PRESETS,
    RAINBOW_COMPONENTS,
    RAINBOW_PRESETS,
    adapt,
    config_for,
    describe_start,
    rainbow_for,
    start_for,
)

CARTPOLE = get_preset("CartPole-v1")
LOOP = ("total_timesteps", "num_envs", "train_freq", "num_log_points")


def test_adapt_rounds_total_timesteps_to_whole_log_points():
    config, notes = adapt(CARTPOLE, {"total_timesteps": 10_000})
    assert config == CARTPOLE.replace(total_timesteps=10_240)
    assert notes == [
        "total_timesteps 10000 -> 10240: must be a multiple of num_envs * train_freq * "
        "num_log_points = 8 * 32 * 20 = 5120"
    ]
    assert adapt(CARTPOLE, {"total_timesteps": 7_679})[0].total_timesteps == 5_120
    assert adapt(CARTPOLE, {"total_timesteps": 7_680})[0].total_timesteps == 10_240  # tie: up


def test_adapt_rounds_up_to_one_log_point_without_capping_learning_starts():
    config, notes = adapt(CARTPOLE, {"total_timesteps": 512})
    assert config == CARTPOLE.replace(total_timesteps=5_120)
    assert len(notes) == 1 and config.learning_starts == 1_000


def test_adapt_picks_the_divisor_of_num_log_points_nearest_to_eval_every():
    config, notes = adapt(CARTPOLE, {"num_log_points": 5})
    assert config == CARTPOLE.replace(num_log_points=5, eval_every=1)
    assert notes == ["eval_every 2 -> 1: must divide num_log_points = 5 (nearest divisor)"]
    lander = get_preset("LunarLander-v3")  # eval_every 5; 4 and 6 divide 24: the smaller
    config, notes = adapt(lander, {"num_log_points": 24})
    assert config.eval_every == 4 and config.total_timesteps == 499_968 and len(notes) == 2


def test_adapt_caps_learning_starts_to_a_tenth_of_the_run():
    config, notes = adapt(CARTPOLE, {"total_timesteps": 768, "num_log_points": 1})
    assert (config.total_timesteps, config.learning_starts, config.eval_every) == (768, 0, 1)
    assert notes[-1] == (
        "learning_starts 1000 -> 0: must be < total_timesteps = 768; 10% of the run, in whole "
        "iterations"
    )
    config, _ = adapt(get_preset("PongNoFrameskip-v4"), {"total_timesteps": 80_000})
    assert config.learning_starts == 8_000


def test_adapt_fits_buffer_batch_and_target_interval_to_the_given_loop():
    config, notes = adapt(CARTPOLE, {"num_envs": 7})
    assert (config.buffer_size, config.total_timesteps) == (100_002, 103_040)
    assert [note.split()[0] for note in notes] == ["buffer_size", "total_timesteps"]
    config, notes = adapt(CARTPOLE, {"num_envs": 16})
    assert config == CARTPOLE.replace(num_envs=16, target_update_interval=512)
    assert notes == [
        "target_update_interval 256 -> 512: must be >= one iteration, num_envs * train_freq = "
        "16 * 32 = 512"
    ]
    config, notes = adapt(CARTPOLE, {"buffer_size": 64, "train_freq": 8})
    assert config == CARTPOLE.replace(buffer_size=64, train_freq=8, batch_size=64)
    assert notes == ["batch_size 256 -> 64: must be <= buffer_size = 64"]
    config, _ = adapt(CARTPOLE, {"buffer_size": 999, "num_envs": 3})
    assert (config.buffer_size, config.total_timesteps) == (999, 101_760)  # 53 * 3 * 32 * 20


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_adapt_changes_nothing_without_a_conflict(name):
    preset = PRESETS[name]
    assert adapt(preset, {}) == (preset, [])
    assert adapt(preset, {"learning_rate": 1e-3}) == (preset.replace(learning_rate=1e-3), [])


@pytest.mark.parametrize(
    "given, pattern",
    [
        (dict(zip(LOOP, (10_000, 8, 32, 20), strict=True)), r"^total_timesteps=10000 .*5120"),
        ({"num_log_points": 5, "eval_every": 3}, r"^eval_every=3 .*divide num_log_points=5"),
        ({"eval_every": 3}, r"^eval_every=3 .*divide num_log_points=20"),
        ({"total_timesteps": 5_120, "learning_starts": 6_000}, r"^learning_starts=6000 "),
        ({"buffer_size": 1_001, "num_envs": 4}, r"^buffer_size=1001 .*multiple of num_envs=4"),
        ({"buffer_size": 200}, r"^buffer_size=200 .*at least one iteration"),
        ({"target_update_interval": 100}, r"^target_update_interval=100 "),
        ({"batch_size": 512, "buffer_size": 256}, r"^batch_size=512 .*<= buffer_size=256"),
        ({"num_envs": "8"}, r"^num_envs='8' is not allowed"),
        ({"total_timesteps": 1e4}, r"^total_timesteps=10000.0 is not allowed"),
        ({"lr": 1e-3}, r"^unknown DQNConfig fields \['lr'\]"),
    ],
)
def test_adapt_keeps_what_the_user_gave_strict(given, pattern):
    with pytest.raises(ValueError, match=pattern):
        adapt(CARTPOLE, given)


def test_python_api_stays_strict():
    with pytest.raises(ValueError, match=r"^total_timesteps=10000 is not allowed"):
        CARTPOLE.replace(total_timesteps=10_000)
    with pytest.raises(ValueError, match=r"^eval_every=2 is not allowed"):
        CARTPOLE.replace(num_log_points=5)


def test_adapted_configs_always_validate():
    rng = random.Random(0)
    for _ in range(400):
        base = PRESETS[rng.choice(sorted(PRESETS))]
        limits = {"total_timesteps": 10**6, "num_envs": 64, "train_freq": 16, "num_log_points": 50}
        names = rng.sample(LOOP, rng.randint(1, 3))
        given = {name: rng.randint(1, limits[name]) for name in names}
        config, notes = adapt(base, given)
        validate(config)
        expected = {
            **{f.name: getattr(base, f.name) for f in dataclasses.fields(DQNConfig)},
            **given,
        }
        changed = {name for name, value in expected.items() if getattr(config, name) != value}
        assert sorted(note.split()[0] for note in notes) == sorted(changed)
        assert not changed & (set(given) - {"total_timesteps"})


BRIDGED = [
    "gymnasium:CartPole-v1",
    "envpool:CartPole-v1",
    "envpool:LunarLander-v3",
    "gymnasium:LunarLander-v3",
    "gymnasium:Acrobot-v1",
]


@pytest.mark.parametrize("env_id", BRIDGED)
def test_bridged_ids_start_from_the_preset_of_their_task(env_id):
    task = env_id.split(":", 1)[1]
    assert config_for(env_id) == PRESETS[task].replace(env_id=env_id)
    assert describe_start(env_id) == f"preset {task}"


def test_starting_points_of_other_ids():
    assert config_for("CartPole-v1") is PRESETS["CartPole-v1"]
    assert describe_start("CartPole-v1") == "preset CartPole-v1"
    for env_id in ("gymnasium:Taxi-v3", "gymnasium:PongNoFrameskip-v4", "MyEnv-v0"):
        assert config_for(env_id) == DQNConfig(env_id=env_id)
        assert describe_start(env_id) == (
            f"no preset for {env_id}: DQNConfig defaults (the classic CartPole DQN settings)"
        )
    for env_id in ("ALE/Breakout-v5", "BreakoutNoFrameskip-v4", "envpool:Pong-v5"):
        pong = PRESETS["PongNoFrameskip-v4"]
        assert config_for(env_id) == pong.replace(env_id=env_id, solved_threshold=None)
        assert describe_start(env_id).startswith("preset PongNoFrameskip-v4 (")


# --- Rainbow ------------------------------------------------------------------------------


def test_rainbow_presets_are_rainbow_and_cover_the_envs_the_issue_names():
    for env_id in [
        "CartPole-v1",
        "Acrobot-v1",
        "LunarLander-v3",
        "PongNoFrameskip-v4",
        *(f"{game}-MinAtar" for game in MINATAR_GAMES),
    ]:
        config = RAINBOW_PRESETS[env_id]
        assert config.env_id == env_id
        for name, value in RAINBOW_COMPONENTS.items():
            if name not in ("v_min", "v_max"):  # the support fits each env's returns
                assert getattr(config, name) == value, (env_id, name)
        # everything else starts from the env's DQN preset
        assert config.buffer_size == PRESETS[env_id].buffer_size
        assert config.total_timesteps == PRESETS[env_id].total_timesteps


def test_rainbow_for_finds_presets_like_config_for_and_falls_back_to_the_components():
    assert rainbow_for("Breakout-MinAtar") is RAINBOW_PRESETS["Breakout-MinAtar"]
    assert describe_start("Breakout-MinAtar", "rainbow") == "preset rainbow for Breakout-MinAtar"
    assert rainbow_for("gymnasium:CartPole-v1") == RAINBOW_PRESETS["CartPole-v1"].replace(
        env_id="gymnasium:CartPole-v1"
    )
    breakout = rainbow_for("BreakoutNoFrameskip-v4")  # Atari: Pong's Rainbow, no solved score
    pong = RAINBOW_PRESETS["PongNoFrameskip-v4"]
    assert breakout == pong.replace(env_id="BreakoutNoFrameskip-v4", solved_threshold=None)
    assert "shared by every Atari game" in describe_start("BreakoutNoFrameskip-v4", "rainbow")
    catch = rainbow_for("Catch-bsuite")
    assert catch == config_for("Catch-bsuite").replace(**RAINBOW_COMPONENTS)
    words = describe_start("Catch-bsuite", "rainbow")
    assert words.startswith("Rainbow's generic settings") and "no preset for Catch-bsuite" in words
    assert start_for("Acrobot-v1", "rainbow") is RAINBOW_PRESETS["Acrobot-v1"]
    assert start_for("Acrobot-v1") is PRESETS["Acrobot-v1"]
    assert start_for("Catch-bsuite", "CartPole-v1") is PRESETS["CartPole-v1"]
