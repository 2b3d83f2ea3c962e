"""``serialize``/``deserialize``/``get`` (``optimizers/serialization.py``,
``optimizers/config.py``): names and dicts, which family a config means,
TF1 and Keras 3 configs, user classes through ``custom_objects``; hostile
and malformed configs are rejected, naming the field, with nothing imported
or run."""

from __future__ import annotations

import builtins
import importlib
import os
import subprocess
import sys
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O
from config_families import FAMILY_RULES
from jaxopt_keras.mixed_precision import LossScaleOptimizer


# ----------------------------------------------------------------------------
# deserialize / get
# ----------------------------------------------------------------------------


def test_get_accepts_names_in_any_case_dicts_and_instances():
    for name in ("adam", "ADAM", "Adam", "aDaM"):
        assert type(O.get(name)) is O.Adam
    assert type(O.get("rmsprop")) is O.RMSprop and type(O.get("RMSprop")) is O.RMSprop
    assert type(O.get("RMSProp", use_legacy_optimizer=True)) is O.legacy.RMSprop
    assert type(O.get("sgd", use_legacy_optimizer=True)) is O.legacy.SGD
    for instance in (O.SGD(), O.legacy.Ftrl(), LossScaleOptimizer(O.Adam())):
        assert O.get(instance) is instance
    opt = O.get({"class_name": "nadam", "config": {"learning_rate": 0.5, "is_legacy_optimizer": False}})
    assert type(opt) is O.Nadam and float(opt.learning_rate.numpy()) == 0.5
    assert type(O.get({"class_name": "nadam", "config": {"learning_rate": 0.5}})) is O.legacy.Nadam  # TF-Keras's rule
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier"):
        O.get(3)
    with pytest.raises(ValueError, match="class_name"):
        O.get("adamx")




@pytest.mark.parametrize("config,use_legacy,expected", FAMILY_RULES)
def test_the_config_chooses_the_family(config, use_legacy, expected):
    opt = O.deserialize(config, use_legacy_optimizer=use_legacy) if use_legacy is not None else O.deserialize(config)
    assert type(opt) is expected


def test_tf1_and_keras3_configs():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        opt = O.deserialize({"class_name": "Adadelta", "config": {"lr": 0.5, "rho": 0.9, "decay": 0.01}})
    assert type(opt) is O.legacy.Adadelta
    assert opt.get_config()["learning_rate"] == 0.5 and opt.get_config()["decay"] == 0.01
    keras3 = {
        "module": "keras.optimizers",
        "class_name": "Adam",
        "config": {
            "name": "adam",
            "learning_rate": 0.02,
            "weight_decay": None,
            "clipnorm": None,
            "global_clipnorm": None,
            "clipvalue": None,
            "use_ema": False,
            "ema_momentum": 0.99,
            "ema_overwrite_frequency": None,
            "loss_scale_factor": None,
            "gradient_accumulation_steps": None,
            "beta_1": 0.8,
            "beta_2": 0.999,
            "epsilon": 1e-07,
            "amsgrad": False,
        },
        "registered_name": None,
    }
    opt = O.deserialize(keras3)
    assert type(opt) is O.keras3.Adam and opt.name == "adam" and opt.beta_1 == 0.8
    assert float(opt.learning_rate.numpy()) == np.float32(0.02)


class ScaledSGD(O.SGD):
    """A user subclass with an argument of its own."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def get_config(self):
        return dict(super().get_config(), factor=self.factor)


def test_custom_objects_for_a_user_subclass():
    opt = ScaledSGD(factor=3.0, learning_rate=0.2, momentum=0.5)
    blob = O.serialize(opt)
    # As TF-Keras writes an unregistered class: its own module and name.
    assert blob["class_name"] == "ScaledSGD" and blob["registered_name"] == "ScaledSGD"
    assert blob["module"] == ScaledSGD.__module__
    with pytest.raises(ValueError, match="'module'"):
        O.deserialize(blob)  # not ours, not in custom_objects: refused
    back = O.deserialize(blob, custom_objects={"ScaledSGD": ScaledSGD})
    assert type(back) is ScaledSGD and back.factor == 3.0 and back.get_config() == opt.get_config()
    legacy_blob = O.serialize(opt, use_legacy_format=True)
    assert legacy_blob["class_name"] == "ScaledSGD"
    assert type(O.deserialize(legacy_blob, custom_objects={"ScaledSGD": ScaledSGD})) is ScaledSGD
    # A custom schedule class, nested in a config, resolves through custom_objects too.

    class Halving(jk.schedules.LearningRateSchedule):
        def __init__(self, start):
            self.start = start

        def __call__(self, step):
            return self.start * 0.5 ** jnp.asarray(step, jnp.float32)

        def get_config(self):
            return {"start": self.start}

    blob = O.serialize(O.SGD(learning_rate=Halving(0.4)))
    assert blob["config"]["learning_rate"]["class_name"] == "Halving"
    with pytest.raises(ValueError):
        O.deserialize(blob)
    opt = O.deserialize(blob, custom_objects={"Halving": Halving})
    v = jk.Variable(np.ones(1, np.float32))
    opt.apply_gradients([(np.ones(1, np.float32), v)])
    opt.apply_gradients([(np.ones(1, np.float32), v)])
    np.testing.assert_allclose(v.numpy(), 1.0 - 0.4 - 0.2, rtol=1e-6)


def test_deserialize_rejects_other_keywords():
    with pytest.raises(TypeError):
        O.deserialize({"class_name": "Adam", "config": {}}, bogus=True)


# ----------------------------------------------------------------------------
# Hostile configs: rejected, naming the field, with nothing imported or run
# ----------------------------------------------------------------------------


HOSTILE_MODULES = {"os", "subprocess", "builtins", "importlib", "posix", "shutil", "pickle", "marshal", "ctypes", "evil"}


@pytest.fixture
def tripwire(monkeypatch, tmp_path):
    """Records (and neuters) every way a config could run or import something."""
    O.deserialize({"class_name": "Adam", "config": {"learning_rate": {"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.5}}}})
    calls: list = []
    loaded = set(sys.modules)
    real_import, real_import_module = builtins.__import__, importlib.import_module

    def spy_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and (name.split(".")[0] in HOSTILE_MODULES or name not in loaded):
            calls.append(("__import__", name))
        return real_import(name, globals, locals, fromlist, level)

    def spy_import_module(name, package=None):
        calls.append(("import_module", name))
        return real_import_module(name, package)

    def record(what):
        def f(*args, **kwargs):
            calls.append((what, args))
            return 0

        return f

    monkeypatch.setattr(builtins, "__import__", spy_import)
    monkeypatch.setattr(importlib, "import_module", spy_import_module)
    monkeypatch.setattr(os, "system", record("os.system"))
    monkeypatch.setattr(os, "popen", record("os.popen"))
    monkeypatch.setattr(subprocess, "Popen", record("subprocess.Popen"))
    monkeypatch.setattr(subprocess, "run", record("subprocess.run"))
    monkeypatch.setattr(builtins, "eval", record("eval"))
    monkeypatch.setattr(builtins, "exec", record("exec"))
    canary = tmp_path / "pwned"
    yield calls, canary
    assert not canary.exists()


def _hostile(canary):
    cmd = f"touch {canary}"
    lr_ok = {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay"}
    return [
        ({"class_name": "os.system", "config": {"command": cmd}}, "'class_name'"),
        ({"class_name": "subprocess.Popen", "config": {"args": cmd, "shell": True}}, "'class_name'"),
        ({"module": "subprocess", "class_name": "Popen", "config": {"args": cmd}}, "'module'"),
        ({"module": "os", "class_name": "system", "config": {"command": cmd}}, "'module'"),
        ({"module": "os", "class_name": "Adam", "config": {}}, "'module'"),
        ({"module": "builtins", "class_name": "exec", "config": {"source": f"import os; os.system({cmd!r})"}}, "'module'"),
        ({"module": "keras.optimizers", "class_name": "Adam", "config": {}, "registered_name": "os.system"}, "'registered_name'"),
        ({"module": "keras.optimizers", "class_name": "Adam", "config": {}, "registered_name": "SGD"}, "'registered_name'"),
        ({"class_name": "Custom>os.system", "config": {"command": cmd}}, "'class_name'"),
        ({"class_name": "__import__", "config": {"name": "os"}}, "'class_name'"),
        (
            {"class_name": "Adam", "config": {"learning_rate": {"module": "os", "class_name": "system", "config": {"command": cmd}}}},
            "'module'",
        ),
        (
            {"class_name": "SGD", "config": {"decay": 0.0, "learning_rate": {"class_name": "subprocess.Popen", "config": {"args": cmd}}}},
            "'class_name'",
        ),
        (
            {"class_name": "Adam", "config": {"learning_rate": dict(lr_ok, registered_name="os.system", config={})}},
            "'registered_name'",
        ),
        (
            {"class_name": "LossScaleOptimizer", "config": {"inner_optimizer": {"module": "subprocess", "class_name": "Popen", "config": {"args": cmd}}, "dynamic": True}},
            "'module'",
        ),
        (
            {"class_name": "LossScaleOptimizerV3", "config": {"inner_optimizer": {"class_name": "os.system", "config": {"command": cmd}}}},
            "'class_name'",
        ),
        (
            {
                "module": "keras.optimizers",
                "class_name": "LossScaleOptimizer",
                "config": {
                    "inner_optimizer": {
                        "class_name": "SGD",
                        "config": {"learning_rate": {"module": "builtins", "class_name": "eval", "config": {"source": cmd}}},
                    }
                },
            },
            "'module'",
        ),
        ({"module": "subprocess", "class_name": "LossScaleOptimizer", "config": {"inner_optimizer": {"class_name": "SGD", "config": {}}}}, "'module'"),
    ]


def test_hostile_configs_are_rejected_and_nothing_runs(tripwire, tmp_path):
    calls, canary = tripwire
    # The tripwire is armed: each of these would be recorded.
    os.system(f"touch {canary}")
    subprocess.Popen(["touch", str(canary)])
    importlib.import_module("json")
    __import__("subprocess")
    assert [c[0] for c in calls] == ["os.system", "subprocess.Popen", "import_module", "__import__"]
    calls.clear()
    cases = _hostile(canary)
    for config, field in cases:
        with pytest.raises(ValueError) as e:
            O.deserialize(config)
        assert field in str(e.value), (config, str(e.value))
        with pytest.raises(ValueError):
            O.get(config)
        with pytest.raises(ValueError):
            O.deserialize(config, custom_objects={"Harmless": O.SGD})
    # A schedule's key that is not an argument: Keras's TypeError (its `cls(**config)`), before anything is built.
    schedule = {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
                "config": {"initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.5, "__class__": f"touch {canary}"}}
    with pytest.raises(TypeError, match="ExponentialDecay.__init__.. got an unexpected keyword argument '__class__'"):
        O.deserialize({"class_name": "Adam", "config": {"learning_rate": schedule}})
    with pytest.raises(ValueError, match="'class_name'"):
        O.get("os.system")
    with pytest.raises(ValueError, match="'module'"):
        LossScaleOptimizer.from_config({"inner_optimizer": {"module": "os", "class_name": "system", "config": {}}})
    assert calls == []


def test_malformed_configs_name_the_field():
    for config, field in [
        ({"config": {}}, "'class_name'"),
        ({"class_name": 3, "config": {}}, "'class_name'"),
        ({"class_name": "Adam", "config": "learning_rate=1"}, "'config'"),
        ({"class_name": "Adam", "config": {}, "module": 7}, "'module'"),
    ]:
        with pytest.raises(ValueError, match=field):
            O.deserialize(config)
    with pytest.raises(ValueError, match="expected a dict"):
        O.deserialize("adam")


def _rate():
    return 0.25


def test_keras3_function_learning_rate_pickles_and_a_lambda_is_never_loaded(tripwire):
    """A Keras 3 function learning rate is written by name (``keras3_probes``
    checks the form against Keras 3), so a pickle carries the function to find
    it by; Keras 3's serialized lambda (its bytecode, marshalled) is refused
    before anything in it is decoded or run."""
    import pickle

    from jaxopt_keras.optimizers import keras3 as O3

    back = pickle.loads(pickle.dumps(O3.Adam(_rate)))
    assert back.get_config()["learning_rate"]["config"] == "_rate"
    assert float(np.asarray(back.learning_rate)) == 0.25
    calls, _ = tripwire
    calls.clear()  # the imports and the unpickling above
    code = "4wAAAAAAAAAAAAAAAAEAAAADAAAA8wYAAACXAGQBUwApAk7nexSuR+F6lD+pAHIDAAAA8"  # Keras 3's, for `lambda: 0.02`
    config = {"learning_rate": {"class_name": "__lambda__", "config": {"value": [code, None, None]}}}
    for custom in (None, {"__lambda__": _rate}):
        with pytest.raises(ValueError, match="lambda"):
            O3.Adam.from_config(config, custom_objects=custom)
    assert calls == []
