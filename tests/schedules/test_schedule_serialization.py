"""Schedule configs and serialization (``schedules/serialization.py``), without
TensorFlow: ``get_config``/``from_config``/``serialize`` round trips
(Hypothesis), custom schedules through ``custom_objects``, and hostile
configs rejected with nothing imported or run.

The schedules' values are ``test_decay.py``.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import json
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxopt_keras
from jaxopt_keras import schedules as S
from schedule_helpers import F32, assert_bitwise, jit_scalar


# ---------------------------------------------------------------------------
# get_config / from_config / serialize round trips (Hypothesis).
# ---------------------------------------------------------------------------

positive_float = st.floats(1e-6, 10.0, allow_nan=False, allow_infinity=False)
fraction = st.floats(0.0, 1.0, allow_nan=False)
steps_arg = st.one_of(st.integers(1, 10_000), st.floats(0.5, 10_000.0, allow_nan=False))
names = st.one_of(st.none(), st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12))


@st.composite
def piecewise_args(draw):
    n = draw(st.integers(1, 5))
    bounds = sorted(draw(st.lists(st.integers(0, 100_000), min_size=n, max_size=n, unique=True)))
    values = draw(st.lists(positive_float, min_size=n + 1, max_size=n + 1))
    return dict(boundaries=bounds, values=values, name=draw(names))


SCHEDULE_ARGS = {
    "ExponentialDecay": st.fixed_dictionaries(
        dict(initial_learning_rate=positive_float, decay_steps=steps_arg, decay_rate=st.floats(0.01, 2.0)),
        optional=dict(staircase=st.booleans(), name=names),
    ),
    "PiecewiseConstantDecay": piecewise_args(),
    "PolynomialDecay": st.fixed_dictionaries(
        dict(initial_learning_rate=positive_float, decay_steps=steps_arg),
        optional=dict(
            end_learning_rate=st.floats(0.0, 1e-3),
            power=st.floats(0.1, 4.0),
            cycle=st.booleans(),
            name=names,
        ),
    ),
    "InverseTimeDecay": st.fixed_dictionaries(
        dict(initial_learning_rate=positive_float, decay_steps=steps_arg, decay_rate=st.floats(0.0, 5.0)),
        optional=dict(staircase=st.booleans(), name=names),
    ),
    "CosineDecay": st.fixed_dictionaries(
        dict(initial_learning_rate=positive_float, decay_steps=steps_arg),
        optional=dict(
            alpha=fraction,
            name=names,
            warmup_target=st.one_of(st.none(), positive_float),
            warmup_steps=st.integers(0, 1000),
        ),
    ),
    "CosineDecayRestarts": st.fixed_dictionaries(
        dict(initial_learning_rate=positive_float, first_decay_steps=steps_arg),
        optional=dict(t_mul=st.floats(1.0, 3.0), m_mul=fraction, alpha=fraction, name=names),
    ),
}


@pytest.mark.parametrize("class_name", sorted(SCHEDULE_ARGS))
def test_config_round_trip(class_name):
    cls = getattr(S, class_name)
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(SCHEDULE_ARGS[class_name], st.integers(0, 20_000))
    def check(kwargs, step):
        s = cls(**kwargs)
        config = s.get_config()
        # The config holds exactly the constructor's arguments, with the given values.
        assert sorted(config) == sorted(params)
        for key, value in kwargs.items():
            assert config[key] == value, key
        rebuilt = cls.from_config(config)
        assert type(rebuilt) is cls and rebuilt.get_config() == config and rebuilt == s
        # Through serialize/deserialize, both forms, and through JSON.
        for legacy in (False, True):
            blob = S.serialize(s, use_legacy_format=legacy)
            assert blob["class_name"] == class_name and blob["config"] == config
            assert S.deserialize(blob) == s
            assert S.deserialize(json.loads(json.dumps(blob))) == s
        # Same arguments, same numbers.
        assert_bitwise(np.asarray(rebuilt(step)), np.asarray(s(step)), f"{class_name} rebuilt at {step}")

    check()


def test_serialize_builtin_form():
    s = S.CosineDecay(0.1, 1000, alpha=0.1, warmup_target=0.2, warmup_steps=10)
    assert S.serialize(s) == {
        "module": "keras.optimizers.schedules",
        "class_name": "CosineDecay",
        "config": {
            "initial_learning_rate": 0.1,
            "decay_steps": 1000,
            "alpha": 0.1,
            "name": None,
            "warmup_target": 0.2,
            "warmup_steps": 10,
        },
        "registered_name": None,
    }
    assert S.serialize(s, use_legacy_format=True) == {"class_name": "CosineDecay", "config": s.get_config()}
    with pytest.raises(ValueError, match="LearningRateSchedule"):
        S.serialize({"class_name": "CosineDecay"})


def test_same_module_under_optimizers():
    assert jaxopt_keras.optimizers.schedules.CosineDecay is S.CosineDecay
    assert jaxopt_keras.optimizers.schedules.deserialize is S.deserialize


# ---------------------------------------------------------------------------
# Custom schedules.
# ---------------------------------------------------------------------------


class Halving(S.LearningRateSchedule):
    """initial_learning_rate * 0.5 ** floor(step / period)."""

    def __init__(self, initial_learning_rate, period):
        self.initial_learning_rate = initial_learning_rate
        self.period = period

    def __call__(self, step):
        k = jnp.floor(jnp.asarray(step, jnp.float32) / self.period)
        return jnp.float32(self.initial_learning_rate) * jnp.exp2(-k)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "period": self.period}


def test_custom_schedule_serialization():
    h = Halving(0.4, 5)
    blob = S.serialize(h)
    # What TF-Keras writes for an unregistered class of the user's.
    assert blob == {
        "module": __name__,
        "class_name": "Halving",
        "config": {"initial_learning_rate": 0.4, "period": 5},
        "registered_name": "Halving",
    }
    for form in (blob, S.serialize(h, use_legacy_format=True), json.loads(json.dumps(blob))):
        back = S.deserialize(form, custom_objects={"Halving": Halving})
        assert type(back) is Halving and back == h
        assert_bitwise(jit_scalar(back, np.arange(12)), F32([0.4] * 5 + [0.2] * 5 + [0.1] * 2), "Halving")
    # Registered under a package name ("pkg>Halving"), found by that name.
    registered = dict(blob, registered_name="pkg>Halving")
    assert S.deserialize(registered, custom_objects={"pkg>Halving": Halving}) == h
    # Without custom_objects, the class is not guessed or imported.
    with pytest.raises(ValueError, match="'module'"):
        S.deserialize(blob)
    with pytest.raises(ValueError, match="'class_name'"):
        S.deserialize(S.serialize(h, use_legacy_format=True))


class MyExponentialDecay(S.ExponentialDecay):
    """A user subclass of a built-in schedule."""


def test_custom_objects_take_precedence():
    blob = S.serialize(S.ExponentialDecay(0.4, 5, 0.5))
    back = S.deserialize(blob, custom_objects={"ExponentialDecay": MyExponentialDecay})
    assert type(back) is MyExponentialDecay and back.get_config() == blob["config"]


def test_subclass_of_builtin_serializes_as_custom():
    mine = MyExponentialDecay(0.4, 5, 0.5)
    blob = S.serialize(mine)
    assert (blob["module"], blob["class_name"], blob["registered_name"]) == (
        __name__,
        "MyExponentialDecay",
        "MyExponentialDecay",
    )
    with pytest.raises(ValueError, match="'module'"):
        S.deserialize(blob)
    assert S.deserialize(blob, custom_objects={"MyExponentialDecay": MyExponentialDecay}) == mine


def test_deserialize_accepts_keras_module_spellings():
    config = {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5, "staircase": False, "name": None}
    for module in (
        None,
        "keras.optimizers.schedules",
        "keras.src.optimizers.schedules",
        "keras.src.optimizers.schedules.learning_rate_schedule",
        "tf_keras.src.optimizers.schedules.learning_rate_schedule",
    ):
        blob = {"module": module, "class_name": "ExponentialDecay", "config": config, "registered_name": None}
        assert S.deserialize(blob) == S.ExponentialDecay(**config)
    # registered_name equal to class_name is consistent too.
    blob = {"class_name": "ExponentialDecay", "config": config, "registered_name": "ExponentialDecay"}
    assert S.deserialize(blob) == S.ExponentialDecay(**config)


# ---------------------------------------------------------------------------
# Hostile configs: ValueError naming the field, nothing imported or run.
# ---------------------------------------------------------------------------

GOOD = {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5}

HOSTILE = [
    ("class_name os.system", {"class_name": "os.system", "config": {"command": "echo pwned"}}, "'class_name'"),
    ("class_name eval", {"class_name": "eval", "config": {"source": "1"}}, "'class_name'"),
    ("class_name dunder", {"class_name": "__import__", "config": {"name": "os"}}, "'class_name'"),
    ("class_name base class", {"class_name": "LearningRateSchedule", "config": {}}, "'class_name'"),
    ("class_name not str", {"class_name": ["ExponentialDecay"], "config": GOOD}, "'class_name'"),
    ("missing class_name", {"config": GOOD}, "'class_name'"),
    (
        "module subprocess",
        {"module": "subprocess", "class_name": "Popen", "config": {"args": ["echo", "pwned"]}, "registered_name": None},
        "'module'",
    ),
    ("module os", {"module": "os", "class_name": "system", "config": {"command": "echo pwned"}}, "'module'"),
    (
        "module os, known class",
        {"module": "os", "class_name": "ExponentialDecay", "config": GOOD, "registered_name": None},
        "'module'",
    ),
    ("module not str", {"module": ["os"], "class_name": "ExponentialDecay", "config": GOOD}, "'module'"),
    (
        "registered_name elsewhere",
        {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay", "config": GOOD,
         "registered_name": "os>system"},
        "'registered_name'",
    ),
    (
        "registered_name another class",
        {"class_name": "ExponentialDecay", "config": GOOD, "registered_name": "CosineDecay"},
        "'registered_name'",
    ),
    (
        "registered_name not str",
        {"class_name": "ExponentialDecay", "config": GOOD, "registered_name": {"module": "os"}},
        "'registered_name'",
    ),
    ("config not a dict", {"class_name": "ExponentialDecay", "config": "__import__('os')"}, "'config'"),
    ("config a list", {"class_name": "ExponentialDecay", "config": [0.1, 10, 0.5]}, "'config'"),
    ("config unknown key", {"class_name": "ExponentialDecay", "config": dict(GOOD, command="rm -rf /")}, "'config'"),
    ("config non-str key", {"class_name": "ExponentialDecay", "config": {**GOOD, 1: 2}}, "'config'"),
]


class Tripwire:
    """Records imports and fails os.system / subprocess / importlib while armed."""

    def __init__(self, monkeypatch):
        import os
        import subprocess

        self.calls = []
        self.armed = False
        real_import = builtins.__import__

        def recording_import(name, *args, **kwargs):
            if self.armed:
                self.calls.append(("import", name))
            return real_import(name, *args, **kwargs)

        def forbidden(what, real):
            def f(*args, **kwargs):
                if self.armed:
                    self.calls.append((what, args))
                    raise AssertionError(f"{what} called")
                return real(*args, **kwargs)

            return f

        monkeypatch.setattr(builtins, "__import__", recording_import)
        monkeypatch.setattr(importlib, "import_module", forbidden("importlib.import_module", importlib.import_module))
        monkeypatch.setattr(os, "system", forbidden("os.system", os.system))
        monkeypatch.setattr(subprocess, "Popen", forbidden("subprocess.Popen", subprocess.Popen))

    def deserialize(self, config):
        """``S.deserialize(config)``; returns the exception it raised."""
        modules_before = set(sys.modules)
        self.armed = True
        try:
            S.deserialize(config)
        except Exception as e:  # noqa: BLE001 - inspected by the caller
            return e
        finally:
            self.armed = False
            assert set(sys.modules) == modules_before
        raise AssertionError(f"accepted: {config!r}")


@pytest.fixture
def tripwire(monkeypatch):
    return Tripwire(monkeypatch)


@pytest.mark.parametrize("label,config,field", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_config_rejected(label, config, field, tripwire):
    error = tripwire.deserialize(config)
    assert type(error) is ValueError, f"{label}: {type(error).__name__}: {error}"
    assert field in str(error), f"{label}: message does not name {field}: {error}"
    assert tripwire.calls == [], f"{label}: {tripwire.calls}"


@pytest.mark.parametrize("config", [None, "ExponentialDecay", ["ExponentialDecay", GOOD], 42])
def test_non_dict_config_rejected(config, tripwire):
    error = tripwire.deserialize(config)
    assert type(error) is ValueError and "expected a dict" in str(error), error
    assert tripwire.calls == []


def test_tripwire_sees_imports(tripwire):
    # The tripwire itself works: an import while armed is recorded.
    tripwire.armed = True
    import json as _json  # noqa: F401

    tripwire.armed = False
    assert ("import", "json") in tripwire.calls
