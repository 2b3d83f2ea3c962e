"""Every factory's signature agrees with its algorithm's Keras metadata.

A factory spells its arguments out (so that ``help()`` and editors show
Keras's arguments), while ``Numerics.defaults`` and the families' base
arguments describe the same defaults for the Keras layer and for configs.
These tests keep the copies from drifting apart.
"""

from __future__ import annotations

import inspect

import pytest

from jaxopt_keras.algorithms.base import CURRENT_BASE_ARGS, LEGACY_BASE_ARGS
from jaxopt_keras.optimizers._classes import _ALGORITHMS, _CURRENT_ONLY

FACTORIES = [(m.LEGACY, legacy) for m, legacy, _ in _ALGORITHMS] + [
    (m.CURRENT, current) for m, _, current in _ALGORITHMS
] + [(m.CURRENT, current) for m, current in _CURRENT_ONLY]


# Where a factory's Keras defaults are not the family's: legacy Nadam's
# `schedule_decay` (its own keyword), and current RMSprop's
# `ema_overwrite_frequency=100` (Keras's RMSprop default).
SPECIAL = {
    ("legacy", "Nadam"): {"schedule_decay": 0.004},
    ("current", "RMSprop"): {"ema_overwrite_frequency": 100},
}


def _named(factory) -> dict:
    params = inspect.signature(factory).parameters.values()
    return {p.name: p.default for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD}


@pytest.mark.parametrize("numerics,factory", FACTORIES, ids=[f"{n.family}-{n.class_name}" for n, _ in FACTORIES])
def test_signature_defaults_are_the_algorithms(numerics, factory):
    named = _named(factory)
    base = LEGACY_BASE_ARGS if numerics.family == "legacy" else CURRENT_BASE_ARGS
    special = SPECIAL.get((numerics.family, numerics.class_name), {})
    expected = {**base, **numerics.defaults, **special, "name": numerics.class_name}
    assert named.keys() == expected.keys(), sorted(named.keys() ^ expected.keys())
    for key, value in expected.items():
        assert named[key] == value and type(named[key]) is type(value), (key, named[key], value)
    params = inspect.signature(factory).parameters
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    # The family's shared arguments are keyword-only, after the algorithm's own.
    for key in base:
        if key not in numerics.defaults:
            assert params[key].kind is inspect.Parameter.KEYWORD_ONLY, key
