"""Shared helpers for the unit tests (no TF): the tests' parametrisation, from the
registry, and reference rules used by tests in more than one folder."""

from __future__ import annotations

import numpy as np

from jaxopt_keras import registry
from jaxopt_keras.keras.factories import make_factory


def both_family_entries():
    """The registry rows that exist in the legacy and the current family."""
    return [e for e in registry.entries() if {"legacy", "current"} <= set(e.specs)]


def all_factories():
    """(id, factory) for every optimizer of both TF-Keras families, in each family."""
    out = []
    for e in both_family_entries():
        out.append((f"legacy.{e.function}", make_factory(e, "legacy")))
        out.append((f"current.{e.function}", make_factory(e, "current")))
    return out


# A few option sets that change the state's structure.
OPTION_SETS = {
    "sgd": [dict(momentum=0.9), dict(momentum=0.9, nesterov=True)],
    "adam": [dict(amsgrad=True)],
    "rmsprop": [dict(momentum=0.5, centered=True)],
}


def keras_loss_scale_rule(scale, counter, finite, growth_steps):
    """tf.keras.mixed_precision's dynamic rule, written out from its documentation."""
    if not finite:
        return max(scale / 2, 1.0), 0
    if counter + 1 >= growth_steps:
        doubled = np.float32(scale) * np.float32(2)
        return (float(doubled) if np.isfinite(doubled) else scale), 0
    return scale, counter + 1
