"""The optimizer classes of both families, generated from the algorithm descriptions."""

from __future__ import annotations

from jaxopt_keras.algorithms import (
    adadelta,
    adafactor,
    adagrad,
    adam,
    adamax,
    adamw,
    ftrl,
    lion,
    nadam,
    rmsprop,
    sgd,
)
from jaxopt_keras.optimizers.base import make_class

_ALGORITHMS = (
    (sgd, sgd.legacy_sgd, sgd.sgd),
    (adam, adam.legacy_adam, adam.adam),
    (adamax, adamax.legacy_adamax, adamax.adamax),
    (nadam, nadam.legacy_nadam, nadam.nadam),
    (adagrad, adagrad.legacy_adagrad, adagrad.adagrad),
    (adadelta, adadelta.legacy_adadelta, adadelta.adadelta),
    (rmsprop, rmsprop.legacy_rmsprop, rmsprop.rmsprop),
    (ftrl, ftrl.legacy_ftrl, ftrl.ftrl),
)

LEGACY_CLASSES: dict[str, type] = {
    m.LEGACY.class_name: make_class(m.LEGACY, legacy, "jaxopt_keras.optimizers.legacy") for m, legacy, _ in _ALGORITHMS
}
_CURRENT_ONLY = ((adamw, adamw.adamw), (lion, lion.lion), (adafactor, adafactor.adafactor))

CURRENT_CLASSES: dict[str, type] = {
    m.CURRENT.class_name: make_class(m.CURRENT, current, "jaxopt_keras.optimizers")
    for m, current in [(m, current) for m, _, current in _ALGORITHMS] + list(_CURRENT_ONLY)
}
