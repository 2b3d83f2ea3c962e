"""``serialize``/``deserialize``/``get``: Keras optimizer configs in, our classes out.

Accepted: TF-Keras 2.x configs of both families (with or without ``module``),
TF1-style configs (``lr``, ``decay``), and Keras 3 configs.  The family is
read from the config: a legacy ``module``, ``is_legacy_optimizer: True`` or a
legacy-only key (``decay``, ``lr``, ``gradient_aggregator``,
``gradient_transformers``, ``schedule_decay``) means legacy, anything else the
current family; ``use_legacy_optimizer=`` overrides.

Only our classes, or classes passed in ``custom_objects``, are ever built.
Nothing named in a config is imported or evaluated: ``module`` is only
compared with the Keras module names below.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from jaxopt_keras.core.resolve import resolve_class
from jaxopt_keras.optimizers._classes import CURRENT_CLASSES, LEGACY_CLASSES
from jaxopt_keras.optimizers.base import KerasOptimizer, OptimizerV2

LEGACY_MODULES = frozenset(
    {
        "keras.optimizers.legacy",
        "tf_keras.optimizers.legacy",
        "keras.src.optimizers.legacy",
        "tf_keras.src.optimizers.legacy",
        "keras.optimizers.optimizer_v2",
        "keras.src.optimizers.optimizer_v2",
        "jaxopt_keras.optimizers.legacy",
    }
)
CURRENT_MODULES = frozenset(
    {
        "keras.optimizers",
        "keras.optimizers.experimental",
        "keras.src.optimizers",
        "tf_keras.optimizers",
        "tf_keras.optimizers.experimental",
        "tf_keras.src.optimizers",
        "keras.dtensor.experimental.optimizers",
        "jaxopt_keras.optimizers",
    }
)
LOSS_SCALE_MODULES = frozenset(
    {
        "keras.mixed_precision",
        "tf_keras.mixed_precision",
        "keras.src.mixed_precision.loss_scale_optimizer",
        "tf_keras.src.mixed_precision.loss_scale_optimizer",
        "keras.src.optimizers.loss_scale_optimizer",
        "keras.optimizers",
        "jaxopt_keras.mixed_precision",
    }
)
LEGACY_ONLY_KEYS = ("decay", "lr", "gradient_aggregator", "gradient_transformers", "schedule_decay")

# Keras class names (lower-cased, as TF-Keras's table) -> our canonical name.
_NAMES = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamax": "Adamax",
    "nadam": "Nadam",
    "adagrad": "Adagrad",
    "adadelta": "Adadelta",
    "rmsprop": "RMSprop",
    "ftrl": "Ftrl",
    "adamw": "AdamW",
    "lion": "Lion",
    "adafactor": "Adafactor",
    "experimentaladamw": "AdamW",
    "experimentalsgd": "SGD",
    "experimentaladam": "Adam",
    "experimentaladagrad": "Adagrad",
    "experimentaladadelta": "Adadelta",
}
_LOSS_SCALE = ("lossscaleoptimizer", "lossscaleoptimizerv3", "lossscaleoptimizerv1")


def _plain(value: Any) -> Any:
    """Config values as Keras serializes them: NumPy scalars become Python numbers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _class_and_module(optimizer: Any) -> tuple[str, str, str | None]:
    from jaxopt_keras.mixed_precision import LossScaleOptimizer

    if isinstance(optimizer, LossScaleOptimizer):
        name = "LossScaleOptimizer" if isinstance(optimizer.inner_optimizer, OptimizerV2) else "LossScaleOptimizerV3"
        return name, "tf_keras.src.mixed_precision.loss_scale_optimizer", name
    cls = type(optimizer)
    if cls in LEGACY_CLASSES.values() or cls in CURRENT_CLASSES.values():
        module = "keras.optimizers.legacy" if isinstance(optimizer, OptimizerV2) else "keras.optimizers"
        return cls.__name__, module, None
    # A class of the user's own (a subclass of ours included): TF-Keras writes
    # its module ("__main__" as None) and its registered name, by default the
    # class name; it deserializes only through `custom_objects`.
    module = None if cls.__module__ == "__main__" else cls.__module__
    return cls.__name__, module, cls.__name__


def serialize(optimizer: Any, use_legacy_format: bool = False) -> dict | None:
    """The Keras serialization of an optimizer (as ``tf.keras.optimizers.serialize``).

    Args:
      optimizer: one of our optimizer (or ``LossScaleOptimizer``) instances.
      use_legacy_format: emit ``{"class_name", "config"}`` only.

    Returns:
      ``{"module", "class_name", "config", "registered_name"}``.
    """
    if optimizer is None:
        return None
    if not hasattr(optimizer, "get_config"):
        raise ValueError(f"Cannot serialize {optimizer!r}: it has no `get_config()`.")
    class_name, module, registered = _class_and_module(optimizer)
    config = _plain(optimizer.get_config())
    if use_legacy_format:
        if module == "keras.optimizers":
            # TF-Keras registers the current classes as serializables of the
            # default package, and names them so in the legacy format.
            class_name = f"Custom>{class_name}"
        return {"class_name": class_name, "config": config}
    return {"module": module, "class_name": class_name, "config": config, "registered_name": registered}


def _is_legacy(config: Mapping[str, Any], inner: Mapping[str, Any]) -> bool:
    module = config.get("module")
    if module in LEGACY_MODULES:
        return True
    if "is_legacy_optimizer" in inner:
        return bool(inner["is_legacy_optimizer"])
    return any(k in inner for k in LEGACY_ONLY_KEYS)


def deserialize(
    config: Mapping[str, Any],
    custom_objects: Mapping[str, Any] | None = None,
    use_legacy_format: bool = False,
    **kwargs: Any,
) -> Any:
    """Builds an optimizer from a Keras config, never importing anything it names.

    Args:
      config: a dict from Keras's ``serialize`` (TF-Keras 2.x, Keras 3, or a
        TF1-style ``{"class_name", "config"}``).
      custom_objects: name -> class for user-defined optimizers and schedules.
      use_legacy_format: accepted for signature compatibility.
      **kwargs: only ``use_legacy_optimizer`` (``True``/``False`` forces the
        family).

    Returns:
      An optimizer instance.

    Raises:
      ValueError: an unknown class, a ``module`` that is not a Keras optimizer
        module, or a malformed config; the message names the field.
      TypeError: other keyword arguments.
    """
    del use_legacy_format
    use_legacy_optimizer = kwargs.pop("use_legacy_optimizer", None)
    if kwargs:
        raise TypeError(f"Invalid keyword arguments: {kwargs}")
    if not isinstance(config, Mapping):
        raise ValueError(f"Could not interpret serialized optimizer: expected a dict, received {config!r}")
    class_name = config.get("class_name")
    custom = dict(custom_objects or {})
    if isinstance(class_name, str) and class_name.startswith("Custom>") and class_name not in custom:
        # TF-Keras's legacy-format name for its registered current classes.
        stripped = class_name[len("Custom>") :]
        if stripped.lower() in _NAMES or stripped.lower() in _LOSS_SCALE:
            config = dict(config, class_name=stripped)
            class_name = stripped
    key = class_name.lower() if isinstance(class_name, str) else None

    if key in _LOSS_SCALE and class_name not in custom and config.get("registered_name") not in custom:
        from jaxopt_keras.mixed_precision import LossScaleOptimizer

        _, inner = resolve_class(
            config,
            known={class_name: LossScaleOptimizer},
            custom_objects=None,
            allowed_modules=LOSS_SCALE_MODULES,
            what="optimizer",
        )
        if use_legacy_optimizer is None and key == "lossscaleoptimizerv1":
            use_legacy_optimizer = True
        return LossScaleOptimizer.from_config(inner, custom_objects=custom_objects, use_legacy_optimizer=use_legacy_optimizer)

    inner_config = config.get("config") if isinstance(config.get("config"), Mapping) else {}
    legacy = _is_legacy(config, inner_config) if use_legacy_optimizer is None else bool(use_legacy_optimizer)
    table = LEGACY_CLASSES if legacy else CURRENT_CLASSES
    known = {name: table[canonical] for name, canonical in _NAMES.items() if canonical in table}
    known.update(table)
    if legacy:
        known["RMSProp"] = table["RMSprop"]
    cls, inner = resolve_class(
        config,
        known=known,
        custom_objects=custom,
        allowed_modules=LEGACY_MODULES | CURRENT_MODULES,
        what="optimizer",
    )
    if hasattr(cls, "from_config"):
        try:
            return cls.from_config(inner, custom_objects=custom_objects)
        except TypeError as e:
            if "custom_objects" not in str(e):
                raise
            return cls.from_config(inner)
    return cls(**inner)


def get(identifier: Any, **kwargs: Any) -> Any:
    """An optimizer from a name, a config dict, or an instance (returned unchanged).

    Raises:
      ValueError: the identifier is none of those.
    """
    use_legacy_optimizer = kwargs.pop("use_legacy_optimizer", None)
    if kwargs:
        raise TypeError(f"Invalid keyword arguments: {kwargs}")
    from jaxopt_keras.mixed_precision import LossScaleOptimizer

    if isinstance(identifier, (KerasOptimizer, LossScaleOptimizer)):
        return identifier
    if isinstance(identifier, Mapping):
        return deserialize(identifier, use_legacy_optimizer=use_legacy_optimizer)
    if isinstance(identifier, str):
        return deserialize({"class_name": identifier, "config": {}}, use_legacy_optimizer=use_legacy_optimizer)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier}")
