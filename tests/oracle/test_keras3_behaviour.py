"""Keras 3's object API: every probe of ``keras3_probes.py`` has the same outcome
with ``jaxopt_keras.optimizers.keras3`` as with ``keras.optimizers`` itself
(Keras 3 on JAX, in its own process): the same values, the same exception
types and messages, the same warnings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import jaxopt_keras as jk
from jaxopt_keras.optimizers import keras3 as K3
from jaxopt_keras.optimizers import names
from keras3_probes import PROBES
from probe_outcome import run_probes


@pytest.fixture(scope="module")
def theirs():
    env = dict(os.environ, KERAS_BACKEND="jax")
    env.pop("TF_USE_LEGACY_KERAS", None)
    proc = subprocess.run(
        [sys.executable, os.path.join(os.path.dirname(__file__), "keras3_probe_runner.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.fixture(scope="module")
def ours():
    def var(value, name):
        return jk.Variable(value, name=name, dtype="float32")

    return run_probes(PROBES, K3, var, names.KERAS3_COUNTS.clear)


@pytest.mark.parametrize("probe", list(PROBES))
def test_same_outcome_as_keras3(ours, theirs, probe):
    assert ours[probe] == theirs[probe]


def _our_configs():
    """A serialized instance of every Keras 3 class, non-default arguments included."""
    from jaxopt_keras import registry

    out = []
    for e in registry.entries("keras3"):
        out.append(K3.serialize(getattr(K3, e.class_name)(name=f"ours_{e.function}", clipnorm=0.5, use_ema=True)))
    out.append(K3.serialize(K3.Adam(learning_rate=K3.schedules.ExponentialDecay(0.1, 10, 0.5), gradient_accumulation_steps=3)))
    out.append(K3.serialize(K3.LossScaleOptimizer(K3.SGD(learning_rate=0.5, momentum=0.9), initial_scale=8.0, dynamic_growth_steps=3, name="lso")))
    routes = K3.OptimizerMap(K3.SGD(name="default_sgd"), {"enc/.*": K3.Adam(name="enc_adam")})
    out.append(K3.serialize(K3.MultiOptimizer(routes, loss_scale_factor=2.0, name="multi")))
    return out


def test_keras3_reads_our_configs_back():
    """``keras.optimizers.deserialize(our_config)`` builds the same optimizer: same class, same config."""
    ours = _our_configs()
    env = dict(os.environ, KERAS_BACKEND="jax")
    env.pop("TF_USE_LEGACY_KERAS", None)
    proc = subprocess.run(
        [sys.executable, os.path.join(os.path.dirname(__file__), "keras3_config_runner.py"), json.dumps(ours)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    for config, theirs in zip(ours, json.loads(lines[-1][len("RESULT ") :])):
        assert theirs.get("class") == config["class_name"], theirs
        assert theirs["config"] == json.loads(json.dumps(config["config"])), config["class_name"]
