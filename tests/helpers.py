"""Shared helpers for the unit tests (no TF): the tests' parametrisation, from the registry."""

from __future__ import annotations

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
