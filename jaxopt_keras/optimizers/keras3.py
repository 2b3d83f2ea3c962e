"""``jaxopt_keras.optimizers.keras3``: the Keras 3 family, as ``keras.optimizers`` of Keras 3.

One class per optimizer of the registry (see :mod:`jaxopt_keras.optimizers.classes`),
with Keras 3's object API (:mod:`jaxopt_keras.optimizers.keras3_family`), and
Keras 3's ``serialize``/``deserialize``/``get``: a config that does not say
which Keras wrote it is read as a Keras 3 config, and ``get(None)`` is
``None``.
"""

from typing import Any, Mapping

from jaxopt_keras import schedules
from jaxopt_keras.core.resolve import check_serialized
from jaxopt_keras.optimizers import classes as _classes
from jaxopt_keras.optimizers.config import config_family, deserialize_optimizer, serialize_optimizer
from jaxopt_keras.optimizers.keras3_family import Keras3Optimizer as Optimizer
from jaxopt_keras.optimizers.loss_scale_keras3 import LossScaleOptimizer, split_config
from jaxopt_keras.optimizers.multi import MultiOptimizer, OptimizerMap
from jaxopt_keras.optimizers.optimizer import KerasOptimizer
from jaxopt_keras import registry as _registry

__all__ = ["Optimizer"] + list(_classes.classes("keras3")) + [
    "LossScaleOptimizer",
    "MultiOptimizer",
    "OptimizerMap",
    "serialize",
    "deserialize",
    "get",
    "schedules",
]
WRAPPERS = ("lossscaleoptimizer", "multioptimizer", "optimizermap")


def serialize(optimizer: Any) -> dict | None:
    """``{"module": "keras.optimizers", "class_name", "config", "registered_name": None}``."""
    if optimizer is None:
        return None
    if isinstance(optimizer, (LossScaleOptimizer, MultiOptimizer)):
        return {"module": "keras.optimizers", "class_name": type(optimizer).__name__, "config": optimizer.get_config(), "registered_name": None}
    return serialize_optimizer(optimizer)


def deserialize(config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None) -> Any:
    """An optimizer from a Keras config; Keras 3's family unless the config says otherwise.

    ``LossScaleOptimizer`` (either Keras 3 format), ``MultiOptimizer`` and
    ``OptimizerMap`` configs are read with their members.

    Raises:
      ValueError: an unknown class (Keras 3 returns the class name instead),
        a foreign ``module``, or a malformed config; nothing is built then.
    """
    fields = check_serialized(config, "optimizer")
    name = config.get("class_name")
    key = name.lower() if isinstance(name, str) else None
    if key not in WRAPPERS or (custom_objects and name in custom_objects):
        return deserialize_optimizer(config, custom_objects, config_family(config, fields, default="keras3"))
    if config.get("module") not in (None, "keras.optimizers", "keras.src.optimizers", "jaxopt_keras.optimizers.keras3"):
        raise ValueError(f"Field 'module' of the serialized {name} is {config.get('module')!r}, not a Keras optimizer module.")
    inner = config.get("config")
    if not isinstance(inner, Mapping):
        raise ValueError(f"Field 'config' of a serialized {name} must be a dict, received {inner!r}.")
    if key == "lossscaleoptimizer":
        wrapped, rest = split_config(inner)
        return LossScaleOptimizer(deserialize(wrapped, custom_objects), **rest)
    if key == "optimizermap":
        members = inner.get("optimizer_map") or {}
        if not isinstance(members, Mapping):
            raise ValueError(f"Field 'optimizer_map' of a serialized OptimizerMap must be a dict, received {members!r}.")
        for key, member in [("default_optimizer", inner.get("default_optimizer")), *members.items()]:
            if not isinstance(key, str) or not isinstance(member, Mapping):
                where = "Field 'default_optimizer'" if key == "default_optimizer" else f"Entry {key!r} of field 'optimizer_map'"
                raise ValueError(f"{where} of a serialized OptimizerMap must be an optimizer config (a dict) under a string key, received {member!r}.")
        default = deserialize(inner.get("default_optimizer"), custom_objects)
        return OptimizerMap(default, {k: deserialize(v, custom_objects) for k, v in members.items()})
    rest = {k: v for k, v in inner.items() if k != "optimizer_map"}
    if not isinstance(inner.get("optimizer_map"), Mapping):
        raise ValueError(f"Field 'optimizer_map' of a serialized MultiOptimizer must be an OptimizerMap config (a dict), received {inner.get('optimizer_map')!r}.")
    return MultiOptimizer(deserialize(inner.get("optimizer_map"), custom_objects), **rest)


def get(identifier: Any) -> Any:
    """``None``, an optimizer instance (returned as is), a name or a config.

    Raises:
      ValueError: anything else, as ``keras.optimizers.get``.
    """
    if identifier is None or isinstance(identifier, (KerasOptimizer, LossScaleOptimizer, MultiOptimizer)):
        return identifier
    if isinstance(identifier, str):
        if _registry.find(identifier, "keras3") is None:
            raise ValueError(f"Could not interpret optimizer identifier: {identifier}")
        identifier = {"class_name": identifier, "config": {}}
    if isinstance(identifier, Mapping):
        return deserialize(identifier)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier}")


def __getattr__(name: str):
    return _classes.lookup("keras3", name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_classes.classes("keras3")))
