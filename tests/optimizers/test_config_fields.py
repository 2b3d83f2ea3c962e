"""Every structural field of every config we read: a malformed one is a
ValueError naming the field (the issue's failure 4: ``module: ["x"]`` and a
list ``registered_name`` raised ``TypeError: unhashable type: 'list'``).

The configs are our own serializations of every kind we read (legacy,
current and Keras 3 optimizers, a schedule inside one, TF-Keras's
LossScaleOptimizer of both kinds, Keras 3's LossScaleOptimizer,
MultiOptimizer and OptimizerMap); each field that says what to build
(``module``, ``class_name``, ``config``, ``registered_name``, at every level,
and the wrappers' ``inner_optimizer``, ``optimizer_map``,
``default_optimizer``) is replaced in turn by values of the wrong type.
"""

from __future__ import annotations

import copy

import pytest

from jaxopt_keras import mixed_precision
from jaxopt_keras import optimizers as O
from jaxopt_keras.optimizers import keras3 as K3

STRUCTURAL = ("module", "class_name", "config", "registered_name", "inner_optimizer", "optimizer_map", "default_optimizer")
BAD = [["x"], {"a": ["x"]}, ("t",), 3, 2.5, b"x", {1, 2}]


def configs():
    schedule = O.schedules.ExponentialDecay(0.1, 10, 0.9)
    return {
        "legacy": (O.deserialize, O.serialize(O.legacy.Adam(0.1))),
        "current_with_schedule": (O.deserialize, O.serialize(O.Adam(learning_rate=schedule))),
        "keras3": (K3.deserialize, K3.serialize(K3.Adam(0.1))),
        "loss_scale_legacy": (O.deserialize, O.serialize(mixed_precision.LossScaleOptimizer(O.legacy.Adam()))),
        "loss_scale_v3": (O.deserialize, O.serialize(mixed_precision.LossScaleOptimizer(O.Adam()))),
        "loss_scale_keras3": (K3.deserialize, K3.serialize(K3.LossScaleOptimizer(K3.Adam()))),
        "multi": (K3.deserialize, K3.serialize(K3.MultiOptimizer(K3.OptimizerMap(K3.Adam(), {"b": K3.SGD()})))),
    }


def structural_paths(tree, prefix=()):
    if not isinstance(tree, dict):
        return
    for key, value in tree.items():
        path = prefix + (key,)
        if key in STRUCTURAL or (len(prefix) and prefix[-1] == "optimizer_map" and isinstance(value, dict)):
            yield path
        yield from structural_paths(value, path)


def replaced(config, path, value):
    out = copy.deepcopy(config)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


CASES = [(kind, path) for kind, (_, cfg) in configs().items() for path in structural_paths(cfg)]


@pytest.mark.parametrize("kind,path", CASES, ids=[f"{k}:{'.'.join(map(str, p))}" for k, p in CASES])
def test_a_malformed_field_is_a_value_error_naming_it(kind, path):
    deserialize, config = configs()[kind]
    deserialize(copy.deepcopy(config))  # the config itself reads back
    field = path[-1]
    for bad in BAD:
        if field == "config" and isinstance(bad, dict):
            continue  # a dict is a config's right type; its keys are the constructor's arguments
        with pytest.raises(ValueError) as info:
            deserialize(replaced(config, path, bad))
        message = str(info.value)
        assert repr(field) in message or field in message or repr(bad) in message, (path, bad, message)


def test_the_issue_examples():
    with pytest.raises(ValueError, match="Field 'module'"):
        O.deserialize({"module": ["x"], "class_name": "Adam", "config": {}})
    config = O.serialize(mixed_precision.LossScaleOptimizer(O.Adam()))
    config["registered_name"] = ["LossScaleOptimizerV3"]
    with pytest.raises(ValueError, match="Field 'registered_name'"):
        O.deserialize(config)


def test_a_loss_scale_config_without_its_inner_optimizer():
    for config in ({"class_name": "LossScaleOptimizer", "config": {"dynamic": True}}, {"class_name": "LossScaleOptimizerV3", "config": None}):
        with pytest.raises(ValueError, match="inner_optimizer"):
            O.deserialize(config)
