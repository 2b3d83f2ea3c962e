"""The optimizers the suite runs, with the hyperparameters every system gets.

Each :class:`OptimizerSpec` holds Keras constructor arguments, which
jaxopt_keras's factories and layer classes, Keras 3 and TF-Keras all accept
unchanged; optax's nearest equivalents are built from the same values in
:mod:`benchmarks.systems`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

FAMILIES = ("current", "legacy")


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer, configured the same way for every system.

    Attributes:
      key: the factory's name (``jaxopt_keras.<key>``, ``jaxopt_keras.legacy.<key>``).
      class_name: the Keras class (``keras.optimizers.<class_name>``).
      kwargs: constructor arguments (Keras names), the same in both families.
      slots: how many parameter-sized slots the optimizer keeps (the ``k`` of
        the target "state is exactly k x params").
      label: for the report.
    """

    key: str
    class_name: str
    kwargs: Mapping[str, Any]
    slots: int
    label: str

    def summary(self) -> dict:
        return {"key": self.key, "class_name": self.class_name, "kwargs": dict(self.kwargs), "slots": self.slots}


OPTIMIZERS: dict[str, OptimizerSpec] = {
    spec.key: spec
    for spec in (
        OptimizerSpec("adam", "Adam", {"learning_rate": 1e-3}, 2, "Adam"),
        OptimizerSpec("sgd", "SGD", {"learning_rate": 1e-2, "momentum": 0.9}, 1, "SGD (momentum 0.9)"),
        OptimizerSpec("rmsprop", "RMSprop", {"learning_rate": 1e-3}, 1, "RMSprop"),
        OptimizerSpec("adagrad", "Adagrad", {"learning_rate": 1e-3}, 1, "Adagrad"),
        OptimizerSpec("ftrl", "Ftrl", {"learning_rate": 1e-3}, 2, "Ftrl"),
    )
}


def get(key: str) -> OptimizerSpec:
    try:
        return OPTIMIZERS[key]
    except KeyError:
        raise KeyError(f"unknown optimizer {key!r}: expected one of {sorted(OPTIMIZERS)}") from None
