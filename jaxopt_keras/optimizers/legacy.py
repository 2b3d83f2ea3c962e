"""``jaxopt_keras.optimizers.legacy``: the OptimizerV2 family, as ``tf.keras.optimizers.legacy``.

One class per optimizer of the registry (see :mod:`jaxopt_keras.optimizers.classes`).
"""

from jaxopt_keras.optimizers import classes as _classes
from jaxopt_keras.optimizers.families import OptimizerV2 as Optimizer

__all__ = ["Optimizer"] + list(_classes.classes("legacy"))


def __getattr__(name: str):
    return _classes.lookup("legacy", name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_classes.classes("legacy")))
