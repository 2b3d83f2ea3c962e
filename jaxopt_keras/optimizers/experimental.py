"""``jaxopt_keras.optimizers.experimental``: the current family under the name of
``tf.keras.optimizers.experimental`` (TF 2.9-2.10), where it was introduced."""

from jaxopt_keras.optimizers import classes as _classes
from jaxopt_keras.optimizers.families import Optimizer

__all__ = ["Optimizer"] + list(_classes.classes("current"))


def __getattr__(name: str):
    return _classes.lookup("current", name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_classes.classes("current")))
