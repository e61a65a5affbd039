"""Policies out of a run folder: parameters saved and loaded, evaluated, rendered, and the
`eval` / `render` commands.

One real tiny training (TINY, 3 seeds, the session's compiled train function) makes the run
folder most tests read; rendering uses that run (CartPole) or a Breakout-MinAtar folder of
freshly initialised networks.
"""

import argparse
import json
import re
import sys

import jax
import numpy as np
import pytest
from conftest import TINY, TINY_RAINBOW

from purejaxdqn import DQNConfig
from purejaxdqn.cli.eval import add_eval_command
from purejaxdqn.cli.render import add_render_command
from purejaxdqn.core.evaluate import make_evaluate
from purejaxdqn.outputs import policy
from purejaxdqn.outputs.policy import (
    PARAMS_FILE,
    Policy,
    evaluate_policy,
    load_policy,
    render_policy,
    rollout_policy,
    save_params,
)
from purejaxdqn.outputs.stats import iqm

SEEDS = 3  # as test_train and test_sweep, so the session compiles TINY's program once


def write_run_folder(folder, config, params, num_seeds, seed=0):
    """A run folder as `write_run` writes config.json, plus params.msgpack."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {**config.to_dict(), "num_seeds": num_seeds, "seed": seed}
    (folder / "config.json").write_text(json.dumps(data))
    save_params(folder, params)
    return folder


@pytest.fixture(scope="module")
def trained(tiny_vmapped, tmp_path_factory):
    """(run folder, TrainResult) of TINY trained on SEEDS seeds from base seed 0."""
    keys = jax.random.split(jax.random.key(0), SEEDS)
    result = tiny_vmapped(keys, TINY.hparams())
    folder = tmp_path_factory.mktemp("run") / "cartpole"
    write_run_folder(folder, TINY, result.runner_state.params, num_seeds=SEEDS)
    return folder, result


@pytest.fixture(scope="module")
def breakout_run(tmp_path_factory):
    """A Breakout-MinAtar run folder of two freshly initialised Q-networks."""
    config = DQNConfig(env_id="Breakout-MinAtar", hidden_sizes=(8,))
    shell = Policy(config, None, 2, 0)
    obs = np.zeros((1, *shell.spec.obs_shape), shell.spec.obs_dtype)
    nets = [shell.network.init(jax.random.key(seed), obs) for seed in (3, 4)]
    params = jax.tree.map(lambda *leaves: np.stack(leaves), *nets)
    return write_run_folder(tmp_path_factory.mktemp("run") / "breakout", config, params, 2)


@pytest.fixture(scope="module")
def tiny_policy(trained):
    return load_policy(trained[0])


@pytest.fixture(scope="module")
def tiny_returns(tiny_policy):
    """evaluate_policy of the trained run: 3 episodes per seed, seed 7."""
    return evaluate_policy(tiny_policy, episodes=3, seed=7)


def commands():
    parser = argparse.ArgumentParser(prog="purejaxdqn")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_eval_command(subparsers)
    add_render_command(subparsers)
    return parser


def run_command(argv):
    args = commands().parse_args([str(a) for a in argv])
    return args.handler(args)


# --- saving and loading -------------------------------------------------------------------


def test_load_policy_round_trips_every_leaf_bitwise(trained):
    folder, result = trained
    loaded = load_policy(folder)
    assert loaded.config == TINY
    assert (loaded.num_seeds, loaded.seed) == (SEEDS, 0)
    saved = result.runner_state.params
    assert jax.tree.structure(loaded.params) == jax.tree.structure(saved)
    for got, want in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(saved), strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(np.asarray(got).view(np.uint8), np.asarray(want).view(np.uint8))
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", PARAMS_FILE]  # no temp


def test_seed_params_q_values_and_act(trained):
    loaded = load_policy(trained[0])
    second = loaded.seed_params(1)
    for got, stacked in zip(jax.tree.leaves(second), jax.tree.leaves(loaded.params), strict=True):
        assert np.array_equal(got, stacked[1])
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    every = loaded.q_values(obs)
    assert every.shape == (SEEDS, 5, 2)
    np.testing.assert_allclose(every[1], loaded.q_values(obs, 1), rtol=1e-6)
    assert np.array_equal(loaded.act(obs, 0), np.argmax(loaded.q_values(obs, 0), -1))
    for bad in (SEEDS, -1, True, 1.0):
        with pytest.raises(ValueError, match=r"seed=.* is not allowed.*\[0, 2\]"):
            loaded.seed_params(bad)


def test_load_policy_errors_say_what_to_do(trained, tmp_path):
    old_run = tmp_path / "old"
    old_run.mkdir()
    (old_run / "config.json").write_text((trained[0] / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="no params.msgpack.*before.*still running"):
        load_policy(old_run)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_policy(tmp_path / "missing")
    sweep = tmp_path / "sweep"
    for name in ("lr_0.001", "lr_0.0001"):
        (sweep / name).mkdir(parents=True)
        (sweep / name / "config.json").write_text("{}")
    (sweep / "sweep_summary.json").write_text("{}")
    with pytest.raises(ValueError, match="sweep folder.*one of its setting.*lr_0.0001, lr_0.001"):
        load_policy(sweep)
    wrong = write_run_folder(tmp_path / "wrong", TINY, load_policy(trained[0]).params, 4)
    with pytest.raises(ValueError, match="num_seeds=4"):
        load_policy(wrong)


# --- evaluation ---------------------------------------------------------------------------


def test_evaluate_policy_is_the_training_evaluation_per_seed(tiny_policy, tiny_returns):
    loaded = tiny_policy
    assert tiny_returns.shape == (SEEDS, 3)
    assert np.isfinite(tiny_returns).all() and (tiny_returns >= 1).all()
    assert np.array_equal(evaluate_policy(loaded, episodes=3, seed=7), tiny_returns)
    evaluate = jax.jit(make_evaluate(loaded.spec, loaded.network, 3, TINY.eval_max_steps))
    keys = jax.random.split(jax.random.key(7), SEEDS)
    for k in range(SEEDS):  # seed k's own parameters and key
        direct = evaluate(loaded.seed_params(k), keys[k], 0.0)["returns"]
        assert np.array_equal(direct, tiny_returns[k])


def test_saved_params_reproduce_the_final_in_training_evaluation(trained, tiny_policy):
    result, loaded = trained[1], tiny_policy
    evaluate = make_evaluate(loaded.spec, loaded.network, TINY.eval_episodes, TINY.eval_max_steps)
    evaluate = jax.jit(evaluate)
    for k in range(SEEDS):
        key = jax.random.fold_in(result.runner_state.eval_key[k], TINY.num_evals - 1)
        returns = evaluate(loaded.seed_params(k), key, TINY.eval_epsilon)["returns"]
        assert np.array_equal(returns, result.evals["episode_returns"][k, -1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"episodes": 0}, "episodes=0 is not allowed: must be an integer >= 1"),
        ({"epsilon": 1.5}, r"epsilon=1.5 is not allowed: must be in \[0, 1\]"),
        ({"epsilon": float("nan")}, "epsilon=nan is not allowed"),
        ({"max_steps": 0}, "max_steps=0 is not allowed"),
    ],
)
def test_evaluate_policy_checks_arguments_before_compiling(trained, monkeypatch, kwargs, message):
    monkeypatch.setattr(policy, "make_evaluate", None)  # compiling would fail differently
    with pytest.raises(ValueError, match=message):
        evaluate_policy(load_policy(trained[0]), **kwargs)


# --- rendering ----------------------------------------------------------------------------


def gif_frames(path):
    from PIL import Image

    with Image.open(path) as image:
        return image.n_frames


def test_render_cartpole_gif_has_one_frame_per_step(trained, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("pygame")  # gymnasium's classic-control drawing
    loaded = load_policy(trained[0])
    episode = rollout_policy(loaded, 1, max_steps=40, seed=2)
    assert 1 <= episode.length <= 40 and episode.episode_return == episode.length
    out = render_policy(loaded, 1, tmp_path / "cartpole.gif", max_steps=40, seed=2)
    assert out.stat().st_size > 0
    assert gif_frames(out) == episode.length


def test_rollout_policy_is_the_first_greedy_episode(trained):
    loaded = load_policy(trained[0])
    episode = rollout_policy(loaded, 1, max_steps=200, seed=2)
    # the same episode stepped in a Python loop: stops at the first done, or after max_steps
    spec, params = loaded.spec, loaded.seed_params(1)
    step, q_values = jax.jit(spec.env.step), jax.jit(loaded.network.apply)
    reset_key, loop_key = jax.random.split(jax.random.key(2))
    obs, state = spec.env.reset(reset_key, spec.params)
    states, rewards = [], []
    for step_key in jax.random.split(loop_key, 200):
        states.append(state)
        action = np.argmax(q_values(params, obs[None])[0])
        obs, state, reward, terminated, truncated, _ = step(step_key, state, action, spec.params)
        rewards.append(float(reward))
        if terminated or truncated:
            break
    assert episode.length == len(rewards) and episode.finished == bool(terminated or truncated)
    assert episode.rewards.tolist() == rewards and episode.episode_return == sum(rewards)
    got, want = ([float(s.x) for s in seq] for seq in (episode.states, states))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)  # two programs, same steps
    capped = rollout_policy(loaded, 1, max_steps=3, seed=2)
    assert (capped.length, capped.finished) == (3, False)
    assert capped.rewards.tolist() == rewards[:3]


def test_render_breakout_gif_has_one_frame_per_step(breakout_run, tmp_path):
    pytest.importorskip("matplotlib")
    loaded = load_policy(breakout_run)
    episode = rollout_policy(loaded, 0, max_steps=30, seed=4)
    assert 1 <= episode.length <= 30
    out = render_policy(loaded, 0, tmp_path / "sub" / "breakout.gif", max_steps=30, seed=4)
    assert out.stat().st_size > 0
    assert gif_frames(out) == episode.length


def test_render_rejects_what_it_cannot_draw(trained, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="cannot be rendered.*CartPole-v1.*Breakout-MinAtar"):
        render_policy(Policy(DQNConfig(env_id="DeepSea-bsuite"), None, 1, 0), 0, "x.gif")
    loaded = load_policy(trained[0])
    with pytest.raises(ValueError, match=r"fps=0 is not allowed.*\[1, 100\]"):
        render_policy(loaded, 0, tmp_path / "x.gif", fps=0)
    with pytest.raises(ValueError, match=r"seed=3 is not allowed.*\[0, 2\]"):
        render_policy(loaded, 3, tmp_path / "x.gif")
    monkeypatch.setitem(sys.modules, "pygame", None)  # as if the plot extra were missing
    with pytest.raises(ImportError, match=r"pip install 'purejaxdqn\[plot\]'"):
        render_policy(loaded, 0, tmp_path / "x.gif")
    assert not (tmp_path / "x.gif").exists()


# --- the eval and render commands ---------------------------------------------------------


def test_eval_command_prints_per_seed_and_across_seed_returns(trained, tiny_returns, capsys):
    data = json.loads((trained[0] / "config.json").read_text())
    means = tiny_returns.mean(axis=1)
    data["solved_threshold"] = threshold = float(means.max())  # one seed, or more if tied
    folder = trained[0].parent / "with_threshold"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(data))
    (folder / PARAMS_FILE).write_bytes((trained[0] / PARAMS_FILE).read_bytes())
    assert run_command(["eval", folder, "--episodes", "3", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "CartPole-v1: 3 episode(s) per seed" in out
    for k, row in enumerate(tiny_returns):
        assert f"{k:>4}  {row.mean():>10.2f}  {row.min():>10.2f}  {row.max():>10.2f}" in out
    assert f"over {SEEDS} seed(s): IQM {iqm(means):.2f}, mean {means.mean():.2f}" in out
    solved = int((means >= threshold).sum())
    assert f"solved threshold {threshold:g}: {solved}/{SEEDS} seeds reach it" in out


def test_eval_command_user_errors_exit_2_before_compiling(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(policy, "make_evaluate", None)
    with pytest.raises(SystemExit) as exit_info:
        run_command(["eval", trained[0], "--epsilon", "2"])
    assert exit_info.value.code == 2
    assert "epsilon=2.0 is not allowed: must be in [0, 1]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        run_command(["eval", tmp_path])
    assert exit_info.value.code == 2
    assert "has no config.json" in capsys.readouterr().err


def test_render_command_writes_the_gif(breakout_run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "x.gif"
    argv = ["render", breakout_run, "--seed", "1", "--out", out, "--max-steps", "20"]
    assert run_command(argv) == 0
    printed = capsys.readouterr().out.strip()
    match = re.fullmatch(rf"wrote {re.escape(str(out))} \((\d+) frames, return (\S+)\)", printed)
    assert match and 1 <= int(match[1]) <= 20 and float(match[2]) >= 0
    assert gif_frames(out) == int(match[1])
    with pytest.raises(SystemExit) as exit_info:
        run_command(["render", breakout_run, "--seed", "2"])
    assert exit_info.value.code == 2
    assert "seed=2 is not allowed" in capsys.readouterr().err


# --- runs of the DQN family: the policy acts on the distribution's noise-free mean --------


def test_a_rainbow_run_loads_evaluates_and_acts_on_its_mean_q_values(tmp_path, capsys):
    from purejaxdqn import make_train_program
    from purejaxdqn.core.loop import q_network_for

    config = TINY_RAINBOW.replace(v_max=50.0, total_timesteps=800, num_log_points=2)
    keys = jax.random.split(jax.random.key(0), 2)
    # the runner state's parameters as a run starts (noisy layers' sigmas nonzero): training
    # changes their values, not their tree, and compiling init alone is far cheaper
    init = jax.jit(jax.vmap(make_train_program(config).init, in_axes=(0, None)))
    runner_state = init(keys, config.hparams())
    folder = write_run_folder(tmp_path / "rainbow", config, runner_state.params, 2)
    loaded = load_policy(folder)
    assert loaded.config == config
    obs = jax.numpy.ones((3, 4))
    network = q_network_for(config, (4,), 2)
    params = jax.tree.map(lambda leaf: leaf[1], runner_state.params)
    q = network.q_values(params, obs)  # no noise key: the mean weights
    np.testing.assert_array_equal(np.asarray(loaded.q_values(obs, 1)), np.asarray(q))
    logits = network.outputs(params, obs).distribution
    mean = (jax.nn.softmax(logits, axis=-1) * np.linspace(0.0, 50.0, 11)).sum(-1)
    np.testing.assert_allclose(np.asarray(q), np.asarray(mean), rtol=1e-5, atol=1e-5)
    assert run_command(["eval", folder, "--episodes", "2"]) == 0
    assert "over 2 seed(s)" in capsys.readouterr().out
