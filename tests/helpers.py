"""Shared helpers for the unit tests (no TF)."""

from __future__ import annotations

import jaxopt_keras as jk

ALGORITHMS = ("sgd", "adam", "adamax", "nadam", "adagrad", "adadelta", "rmsprop", "ftrl")


def all_factories():
    """(id, factory) for the 16 optimizers: 8 algorithms x 2 families."""
    out = []
    for name in ALGORITHMS:
        out.append((f"legacy.{name}", getattr(jk.legacy, name)))
        out.append((f"current.{name}", getattr(jk, name)))
    return out


# A few option sets that change the state's structure.
OPTION_SETS = {
    "sgd": [dict(momentum=0.9), dict(momentum=0.9, nesterov=True)],
    "adam": [dict(amsgrad=True)],
    "rmsprop": [dict(momentum=0.5, centered=True)],
}
