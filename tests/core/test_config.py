"""Every bad input raises a clear ValueError naming the field, the value and what is allowed,
before anything is compiled."""

import dataclasses
import json
import math
import pickle
import re

import jax.numpy as jnp
import numpy as np
import pytest

from purejaxdqn import DQNConfig, get_preset, hparams_in_axes, make_train, program
from purejaxdqn.checks import check_int
from purejaxdqn.core.config import HParams, Interval, _option, check_hparams, traced_intervals

BASE = dict(num_envs=4, total_timesteps=4000, buffer_size=1000, learning_starts=100)


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"num_envs": 0}, r"num_envs=0 .*integer >= 1"),
        ({"num_envs": 2.5}, r"num_envs=2.5 .*integer"),
        ({"batch_size": 2000}, r"batch_size=2000 .*<= buffer_size=1000"),
        ({"buffer_size": 3}, r"buffer_size=3 .*num_envs \* train_freq = 4"),
        ({"learning_starts": 4000}, r"learning_starts=4000 .*< total_timesteps=4000"),
        ({"total_timesteps": 2}, r"total_timesteps=2 .*at least one iteration"),
        ({"total_timesteps": 4100}, r"total_timesteps=4100 .*multiple of .*400.*4000 or 4400"),
        (
            {"target_update_interval": 3},
            r"target_update_interval=3 .*>= num_envs \* train_freq = 4",
        ),
        ({"target_update_interval": 0}, r"target_update_interval=0 .*integer >= 1"),
        ({"target_update_interval": 12.5}, r"target_update_interval=12.5 .*integer"),
        ({"exploration_fraction": 0.0}, r"exploration_fraction=0.0 .*\(0, inf\)"),
        ({"exploration_fraction": -1.0}, r"exploration_fraction=-1.0 "),
        ({"learning_rate": float("nan")}, r"learning_rate=nan .*finite value in \(0, inf\)"),
        ({"learning_rate": float("inf")}, r"learning_rate=inf .*finite"),
        ({"learning_rate": 0.0}, r"learning_rate=0.0 .*\(0, inf\)"),
        ({"learning_rate": -1e-3}, r"learning_rate=-0.001 "),
        ({"gamma": 1.5}, r"gamma=1.5 .*\[0, 1\]"),
        ({"gamma": -0.1}, r"gamma=-0.1 .*\[0, 1\]"),
        ({"tau": 0.0}, r"tau=0.0 .*\(0, 1\]"),
        ({"tau": 1.5}, r"tau=1.5 .*\(0, 1\]"),
        ({"exploration_final_eps": 1.2}, r"exploration_final_eps=1.2 .*\[0, 1\]"),
        ({"loss": "l1"}, r"loss='l1' .*\['mse', 'huber'\]"),
        ({"exploration_schedule": "cosine"}, r"exploration_schedule='cosine' .*linear"),
        ({"num_log_points": 3}, r"total_timesteps=4000 .*num_log_points"),
        ({"eval_every": 3}, r"eval_every=3 .*divide num_log_points=100"),
        ({"hidden_sizes": (64, 0)}, r"hidden_sizes=\(64, 0\) .*positive integers"),
        ({"max_grad_norm": -1.0}, r"max_grad_norm=-1.0 "),
        ({"network": "resnet"}, r"network='resnet' .*'minatar_cnn', 'nature_cnn'\]"),
    ],
)
def test_bad_config_values(changes, pattern):
    with pytest.raises(ValueError, match=pattern):
        DQNConfig(**{**BASE, **changes})


def test_defaults_are_valid_and_round_trip():
    config = DQNConfig()
    assert DQNConfig.from_dict(config.to_dict()) == config
    assert config.steps_per_iteration == 10 and config.num_iterations == 50_000
    with pytest.raises(ValueError, match=r"unknown DQNConfig fields \['lr'\]"):
        DQNConfig.from_dict({"lr": 1.0})


def test_every_field_is_documented():
    for field in dataclasses.fields(DQNConfig):
        assert len(field.metadata.get("doc", "")) > 10, field.name


def test_unknown_env_id_lists_close_matches():
    with pytest.raises(ValueError, match=r"env_id='CartPol-v1' .*did you mean \['CartPole-v1'"):
        make_train(DQNConfig(env_id="CartPol-v1"))


def test_continuous_action_space_is_rejected():
    with pytest.raises(ValueError, match=r"env_id='Pendulum-v1' has action space Box.*Discrete"):
        make_train(DQNConfig(env_id="Pendulum-v1"))


def test_unknown_preset():
    with pytest.raises(ValueError, match=r"preset='CartPole' is not known .*CartPole-v1"):
        get_preset("CartPole")


def test_cnn_on_vector_observations_is_rejected():
    with pytest.raises(ValueError, match=r"network='minatar_cnn' .*\(4,\)"):
        make_train(DQNConfig(network="minatar_cnn"))


def test_hparams_overrides_are_checked_elementwise():
    config = DQNConfig()
    hp = config.hparams(learning_rate=np.array([1e-3, 3e-4]), gamma=0.9)
    assert isinstance(hp, HParams) and hp.learning_rate.shape == (2,)
    assert float(hp.gamma) == pytest.approx(0.9)
    with pytest.raises(ValueError, match=r"learning_rate=-1.0 .*\(0, inf\)"):
        config.hparams(learning_rate=np.array([1e-3, -1.0]))
    with pytest.raises(ValueError, match=r"tau=0.0 "):
        config.hparams(tau=[0.5, 0.0])
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['lr'\]"):
        config.hparams(lr=1.0)
    with pytest.raises(ValueError, match="max_grad_norm override"):
        DQNConfig(max_grad_norm=None).hparams(max_grad_norm=1.0)
    assert math.isinf(float(DQNConfig(max_grad_norm=None).hparams().max_grad_norm))


GOOD = DQNConfig(**BASE)
_NOT_A_NUMBER = ["abc", "0.5", True, float("nan"), float("-inf"), [0.5], 1j, 10**400, np.array(0.5)]
_NOT_AN_INT = ["8", 2.5, 8.0, True, float("nan"), float("inf"), [8], np.float64(8.0), -1]
# Wrongly typed or out-of-range values per annotation of a DQNConfig field.
BAD_VALUES = {
    "str": [1, None, b"CartPole-v1", ["CartPole-v1"], ""],
    "int": [None, *_NOT_AN_INT],
    "int | None": _NOT_AN_INT,
    "float": [None, *_NOT_A_NUMBER],
    "float | None": _NOT_A_NUMBER,
    "bool": [1, 0, "True", None, np.int64(1), 1.0],
    "tuple[int, ...]": [[64], 64, "64", None, (64.0,), (True,), ((64,),), (0,), (np.float32(8),)],
}


def _bad_field_values():
    return [
        (field.name, value)
        for field in dataclasses.fields(DQNConfig)
        for value in BAD_VALUES[field.type]
    ]


@pytest.mark.parametrize(
    "name, value", _bad_field_values(), ids=[f"{n}={v!r:.24}" for n, v in _bad_field_values()]
)
def test_every_field_rejects_wrongly_typed_values(name, value):
    prefix = f"{name}={value!r} is not allowed: must be "
    # numpy scalars are shown as Python ones: np.float64(8.0) as 8.0
    pattern = "^" + (re.escape(prefix) if "np." not in repr(value) else f"{name}=")
    with pytest.raises(ValueError, match=pattern):
        DQNConfig(**{**BASE, name: value})
    with pytest.raises(ValueError, match=pattern):
        GOOD.replace(**{name: value})
    if isinstance(value, list) and name == "hidden_sizes":
        return  # config.json holds hidden_sizes as a list
    with pytest.raises(ValueError, match=f"^{name}="):
        DQNConfig.from_dict({**GOOD.to_dict(), name: value})


def test_every_field_has_bad_values():
    assert {field.type for field in dataclasses.fields(DQNConfig)} <= set(BAD_VALUES)
    assert {name for name, _ in _bad_field_values()} == {
        f.name for f in dataclasses.fields(DQNConfig)
    }


def test_numpy_scalars_are_accepted_as_python_values():
    config = DQNConfig(
        env_id=np.str_("CartPole-v1"),
        num_envs=np.int64(4),
        total_timesteps=np.int32(4000),
        buffer_size=np.uint16(1000),
        learning_starts=np.int64(100),
        learning_rate=np.float32(1e-3),
        gamma=np.float64(0.9),
        adam_eps=np.float32(1e-6),
        max_grad_norm=np.int64(5),
        solved_threshold=np.float16(100),
        double_q=np.bool_(True),
        loss=np.str_("huber"),
        hidden_sizes=(np.int64(32), np.int32(16)),
        eval_max_steps=np.int64(50),
    )
    for field in dataclasses.fields(config):
        assert not isinstance(getattr(config, field.name), np.generic), field.name
    assert config.hidden_sizes == (32, 16) and type(config.hidden_sizes[0]) is int
    assert config.num_envs == 4 and config.double_q is True and config.gamma == 0.9
    assert DQNConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_from_dict_rejects_what_is_not_a_dict_of_fields():
    with pytest.raises(ValueError, match=r"DQNConfig data of type list is not allowed"):
        DQNConfig.from_dict([1, 2])
    with pytest.raises(ValueError, match=r"unknown DQNConfig fields \[1, 'lr'\]"):
        DQNConfig.from_dict({1: 2, "lr": 1.0})


def test_hparams_overrides_must_be_numbers():
    with pytest.raises(ValueError, match=r"^learning_rate='abc' is not allowed: must be a number"):
        DQNConfig().hparams(learning_rate="abc")
    with pytest.raises(ValueError, match=r"^gamma=\[0.9, \[0.5\]\] is not allowed"):
        DQNConfig().hparams(gamma=[0.9, [0.5]])


def test_check_hparams_returns_valid_hparams_unchanged():
    hp = DQNConfig().hparams()
    assert check_hparams(hp) is hp
    # lr, gamma, tau, eps start/end/fraction, huber, clip, per alpha/beta, munchausen
    # alpha/tau/clip, eval epsilon
    by_hand = HParams(1e-3, 0.99, 1.0, 1.0, 0.05, 0.5, 1.0, np.inf, 0.6, 0.4, 0.9, 0.03, -1, 0)
    assert check_hparams(by_hand) is by_hand
    swept = hp._replace(learning_rate=jnp.array([1e-3, 3e-4, 1e-4]))
    assert check_hparams(swept, num_runs=3) is swept
    assert check_hparams(swept) is swept


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"learning_rate": float("nan")}, r"^learning_rate=nan .*finite value in \(0, inf\)"),
        ({"learning_rate": -1e-3}, r"^learning_rate=-0.001 is not allowed"),
        ({"gamma": np.float32(1.5)}, r"^gamma=1.5 .*\[0, 1\]"),
        ({"tau": np.array([0.5, 0.0])}, r"^tau=0.0 .*\(0, 1\]"),
        ({"eval_epsilon": jnp.array([0.1, jnp.nan])}, r"^eval_epsilon=nan "),
        ({"max_grad_norm": -np.inf}, r"^max_grad_norm=-inf .*a value in \(0, inf\]"),
        (
            {"learning_rate": "abc"},
            r"^hparams.learning_rate='abc' is not allowed: must be a number",
        ),
        ({"gamma": None}, r"^hparams.gamma=None is not allowed"),
        ({"gamma": True}, r"^hparams.gamma=True is not allowed"),
        ({"gamma": jnp.array([True])}, r"^hparams.gamma=.* is not allowed"),
        ({"gamma": 1j}, r"^hparams.gamma=1j is not allowed"),
        ({"gamma": [0.9, [0.5]]}, r"^hparams.gamma=\[0.9, \[0.5\]\] is not allowed"),
    ],
)
def test_check_hparams_rejects_bad_values(changes, pattern):
    with pytest.raises(ValueError, match=pattern):
        check_hparams(DQNConfig().hparams()._replace(**changes))


def test_check_hparams_checks_type_and_shapes():
    with pytest.raises(ValueError, match=r"^hparams of type dict is not allowed"):
        check_hparams({"learning_rate": 1e-3})
    hp = DQNConfig().hparams(learning_rate=np.array([1e-3, 3e-4, 1e-4]))
    with pytest.raises(ValueError, match=r"^hparams.learning_rate with shape \(3,\) .*\(2,\)"):
        check_hparams(hp, num_runs=2)
    with pytest.raises(ValueError, match=r"^hparams.gamma with shape \(2, 1\) is not allowed"):
        check_hparams(hp._replace(gamma=np.full((2, 1), 0.9)), num_runs=3)


# --- checks declared per field; traced hyperparameters from the fields --------------------


def test_hparams_are_the_traced_fields_in_field_order():
    traced = [f.name for f in dataclasses.fields(DQNConfig) if f.metadata["traced"]]
    assert HParams._fields == tuple(traced) == DQNConfig().hparam_names()
    assert HParams._fields == (
        "learning_rate",
        "gamma",
        "tau",
        "exploration_initial_eps",
        "exploration_final_eps",
        "exploration_fraction",
        "huber_delta",
        "max_grad_norm",
        "per_alpha",
        "per_beta",
        "munchausen_alpha",
        "munchausen_tau",
        "munchausen_clip",
        "eval_epsilon",
    )  # the order positional HParams(...) and saved sweeps rely on
    assert traced_intervals(DQNConfig)["tau"] == Interval(0.0, 1.0, False, True)


def test_hparams_is_a_named_tuple_that_pickles():
    by_hand = HParams(*range(14))
    assert isinstance(by_hand, tuple) and by_hand.gamma == 1 and repr(by_hand)[:8] == "HParams("
    changed = by_hand._replace(tau=0.5)
    assert type(changed) is HParams and changed.tau == 0.5
    assert HParams._make(range(14)) == by_hand
    hp = DQNConfig().hparams()
    again = pickle.loads(pickle.dumps(hp))
    assert type(again) is HParams and np.asarray(again.gamma) == np.float32(0.99)
    axes = hparams_in_axes(hp._replace(gamma=jnp.array([0.9, 0.99])))
    assert type(axes) is HParams and axes.gamma == 0 and axes.learning_rate is None
    assert hparams_in_axes is program.hparams_in_axes


@dataclasses.dataclass(frozen=True)
class _WithMomentum(DQNConfig):
    # the one edit that adds a traced hyperparameter
    momentum: float = _option(
        0.9, "Adam first moment decay (traced).", traced=True, interval="[0, 1)"
    )


def test_a_new_traced_hyperparameter_is_one_field():
    config = _WithMomentum(**BASE)
    assert config.hparam_names() == (*HParams._fields, "momentum")
    hp = config.hparams()
    assert hp._fields == config.hparam_names() and float(hp.momentum) == pytest.approx(0.9)
    assert float(config.hparams(momentum=0.5).momentum) == 0.5
    assert config.check_hparams(hp, num_runs=3) is hp
    allowed = r"must be a finite value in \[0, 1\)"
    with pytest.raises(ValueError, match=rf"^momentum=1.0 is not allowed: {allowed}$"):
        config.hparams(momentum=np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match=rf"^momentum=-0.5 is not allowed: {allowed}$"):
        _WithMomentum(**BASE, momentum=-0.5)
    with pytest.raises(ValueError, match=r"^momentum='x' is not allowed: must be a number"):
        _WithMomentum(**BASE, momentum="x")
    with pytest.raises(ValueError, match=rf"^momentum=nan is not allowed: {allowed}$"):
        config.check_hparams(hp._replace(momentum=jnp.nan))
    with pytest.raises(ValueError, match=r"^hparams of type HParams .*an _WithMomentumHParams"):
        config.check_hparams(DQNConfig().hparams())  # lacks the new field
    assert DQNConfig().hparams()._fields == HParams._fields  # DQNConfig's own are unchanged


def test_every_field_declares_its_allowed_values():
    for field in dataclasses.fields(DQNConfig):
        kind = str(field.type).split(" |")[0]
        declared = field.metadata
        if kind == "float":
            assert isinstance(declared["interval"], Interval), field.name
        elif kind in ("int", "tuple[int, ...]"):
            assert isinstance(declared["minimum"], int), field.name
        elif kind == "str" and field.name != "env_id":
            assert field.default in declared["choices"], field.name


def test_inconsistent_declarations_raise_when_the_class_is_first_used():
    @dataclasses.dataclass(frozen=True)
    class NoInterval(DQNConfig):
        momentum: float = _option(0.9, "Momentum.")

    with pytest.raises(TypeError, match=r"NoInterval.momentum: a float field needs interval="):
        NoInterval()

    @dataclasses.dataclass(frozen=True)
    class TracedInt(DQNConfig):
        steps: int = _option(1, "Steps.", traced=True, minimum=1)

    with pytest.raises(TypeError, match=r"TracedInt.steps: a traced field is a float"):
        TracedInt()

    @dataclasses.dataclass(frozen=True)
    class Unknown(DQNConfig):
        table: dict = _option(None, "A table.")

    with pytest.raises(TypeError, match=r"Unknown.table: annotation .*dict"):
        Unknown()


def test_a_field_without_declarations_is_checked_by_its_annotation():
    @dataclasses.dataclass(frozen=True)
    class Plain(DQNConfig):
        flag: bool = False
        steps: int | None = dataclasses.field(default=None)

    assert Plain(flag=True, steps=-3).steps == -3  # no minimum declared
    assert Plain().hparams()._fields == HParams._fields
    with pytest.raises(ValueError, match=r"^flag=1 is not allowed: must be a bool$"):
        Plain(flag=1)
    with pytest.raises(
        ValueError, match=r"^steps=1.5 is not allowed: must be an integer, or None$"
    ):
        Plain(steps=1.5)


@pytest.mark.parametrize(
    "text, words",
    [
        ("[0, 1]", "a finite value in [0, 1]"),
        ("(0, inf)", "a finite value in (0, inf)"),
        ("(0, inf]", "a value in (0, inf]"),
        ("( -inf , 1e-3 ]", "a finite value in (-inf, 0.001]"),
    ],
)
def test_interval_parse_and_words(text, words):
    assert Interval.parse(text).words() == words


def test_interval_outside_and_bad_text():
    unit = Interval.parse("(0, 1]")
    values = [0.0, 0.5, 1.0, 1.5, np.nan, np.inf, -np.inf]
    assert unit.outside(values).tolist() == [True, False, False, True, True, True, True]
    assert Interval.parse("(0, inf]").outside([np.inf, np.nan]).tolist() == [False, True]
    for bad in ("0, 1", "[0 1]", "[0, 1", "{0, 1}", "[a, 1]"):
        with pytest.raises(ValueError):
            Interval.parse(bad)


@pytest.mark.parametrize(
    "args, kwargs, result",
    [
        (("n", 3, 1), {}, 3),
        (("n", np.int64(3), 1, 3), {}, 3),
        (("n", np.uint64(2**64 - 1), 0, 2**64 - 1), {}, 2**64 - 1),
        (("n", None, 1), {"or_none": True}, None),
        (("n", -7), {}, -7),
    ],
)
def test_check_int_returns_python_ints(args, kwargs, result):
    value = check_int(*args, **kwargs)
    assert value == result and type(value) is type(result)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("n", 0, 1), {}, "n=0 is not allowed: must be an integer >= 1"),
        (("n", None, 1), {}, "n=None is not allowed: must be an integer >= 1"),
        (
            ("n", 2.0, 1),
            {"or_none": True},
            "n=2.0 is not allowed: must be an integer >= 1, or None",
        ),
        (("n", True, 0), {}, "n=True is not allowed: must be an integer >= 0"),
        (("n", np.bool_(True), 0), {}, "n=np.True_ is not allowed: must be an integer >= 0"),
        (
            ("k", 4, 0, 3),
            {"note": " (the run has 4)"},
            "k=4 is not allowed: must be an integer in [0, 3] (the run has 4)",
        ),
        (("n", 5), {"maximum": 4}, "n=5 is not allowed: must be an integer <= 4"),
        (("n", "5"), {}, "n='5' is not allowed: must be an integer"),
        (("n", -1, 0), {"allowed": "a count"}, "n=-1 is not allowed: must be a count"),
    ],
)
def test_check_int_messages(args, kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_int(*args, **kwargs)
