"""``jaxopt_keras.optimizers.keras3``: the Keras 3 family, as ``keras.optimizers`` of Keras 3.

One class per optimizer of the registry (see :mod:`jaxopt_keras.optimizers.classes`),
with Keras 3's object API (:mod:`jaxopt_keras.optimizers.keras3_family`), and
Keras 3's ``serialize``/``deserialize``/``get``: a config that does not say
which Keras wrote it is read as a Keras 3 config, and ``get(None)`` is
``None``.
"""

from typing import Any, Mapping

from jaxopt_keras.optimizers import classes as _classes
from jaxopt_keras.optimizers.config import deserialize_optimizer, serialize_optimizer
from jaxopt_keras.optimizers.keras3_family import Keras3Optimizer as Optimizer
from jaxopt_keras.optimizers.optimizer import KerasOptimizer

__all__ = ["Optimizer"] + list(_classes.classes("keras3")) + ["serialize", "deserialize", "get"]


def serialize(optimizer: Any) -> dict | None:
    """``{"module": "keras.optimizers", "class_name", "config", "registered_name": None}``."""
    return None if optimizer is None else serialize_optimizer(optimizer)


def deserialize(config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None) -> Any:
    """An optimizer from a Keras config; Keras 3's family unless the config says otherwise.

    Raises:
      ValueError: an unknown class (Keras 3 returns the class name instead),
        a foreign ``module``, or a malformed config.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"Could not interpret serialized optimizer: expected a dict, received {config!r}")
    return deserialize_optimizer(config, custom_objects, None, default="keras3")


def get(identifier: Any) -> Any:
    """``None``, an optimizer instance (returned as is), a name or a config.

    Raises:
      ValueError: anything else, as ``keras.optimizers.get``.
    """
    if identifier is None or isinstance(identifier, KerasOptimizer):
        return identifier
    if isinstance(identifier, str):
        identifier = {"class_name": identifier, "config": {}}
    if isinstance(identifier, Mapping):
        return deserialize(identifier)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier}")


def __getattr__(name: str):
    return _classes.lookup("keras3", name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_classes.classes("keras3")))
