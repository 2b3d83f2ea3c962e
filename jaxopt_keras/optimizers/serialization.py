"""``serialize``/``deserialize``/``get``: Keras optimizer configs in, our classes out.

Accepted: TF-Keras 2.x configs of both families (with or without ``module``),
TF1-style configs (``lr``, ``decay``), and Keras 3 configs.  The family is
TF-Keras's choice (:func:`~jaxopt_keras.optimizers.config.tf_keras_family`):
a non-empty config's ``is_legacy_optimizer``, legacy when it has none (a
config written before TF-Keras 2.11), except that ``jit_compile`` means
current and Keras 3's ``loss_scale_factor``/``gradient_accumulation_steps``
mean Keras 3; an empty config follows ``use_legacy_optimizer=`` (current by
default); ``"Custom>Adam"`` is TF-Keras's registered current Adam.

Only our classes, or classes passed in ``custom_objects``, are ever built;
``custom_objects`` is read by Keras's rule
(:func:`~jaxopt_keras.optimizers.config.custom_class`: a built-in name is
lowercased first).
Nothing named in a config is imported or evaluated (see
:mod:`jaxopt_keras.optimizers.config`).
"""

from __future__ import annotations

from typing import Any, Mapping

from jaxopt_keras.core.resolve import check_serialized, plain, resolve_class
from jaxopt_keras.optimizers.config import (
    LOSS_SCALE_MODULES,
    LOSS_SCALE_NAMES,
    deserialize_optimizer,
    serialize_optimizer,
    tf_keras_family,
    tf_keras_registered,
    without_custom_prefix,
)
from jaxopt_keras.optimizers import keras3
from jaxopt_keras.optimizers.loss_scale import LossScaleOptimizer
from jaxopt_keras.optimizers.optimizer import KerasOptimizer


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
    if isinstance(optimizer, (keras3.LossScaleOptimizer, keras3.MultiOptimizer)):
        return keras3.serialize(optimizer)
    if not isinstance(optimizer, LossScaleOptimizer):
        return serialize_optimizer(optimizer, use_legacy_format)
    name = optimizer.serialized_name()
    config = plain(optimizer.get_config())
    if use_legacy_format:
        return {"class_name": name, "config": config}
    return {"module": "tf_keras.src.mixed_precision.loss_scale_optimizer", "class_name": name, "config": config, "registered_name": name}


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
      **kwargs: only ``use_legacy_optimizer``: the family of an empty config
        (``True``: legacy); a non-empty config's own keys decide, as in
        TF-Keras.

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
    check_serialized(config, "optimizer")
    custom = dict(custom_objects or {})
    if tf_keras_registered(config["class_name"]) is None:  # "Custom>Adam" is TF-Keras's current Adam, whatever custom_objects says
        config = without_custom_prefix(config, custom)
    class_name = config.get("class_name")
    key = class_name.lower() if isinstance(class_name, str) else None
    if is_keras3_wrapper(key, config) and class_name not in custom:
        return keras3.deserialize(config, custom_objects)
    if key in LOSS_SCALE_NAMES and class_name not in custom and config.get("registered_name") not in custom:
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
    return deserialize_optimizer(config, custom_objects, tf_keras_family(config, use_legacy_optimizer))


def is_keras3_wrapper(key: str | None, config: Mapping[str, Any]) -> bool:
    """A Keras 3 ``MultiOptimizer``/``OptimizerMap``, or a Keras 3 ``LossScaleOptimizer``
    (its config has a ``name`` and no ``dynamic``, which TF-Keras's always writes)."""
    if key in ("multioptimizer", "optimizermap"):
        return True
    inner = config.get("config")
    return key == "lossscaleoptimizer" and isinstance(inner, Mapping) and "dynamic" not in inner and "name" in inner


def get(identifier: Any, **kwargs: Any) -> Any:
    """An optimizer from a name, a config dict, or an instance (returned unchanged).

    Raises:
      ValueError: the identifier is none of those.
    """
    use_legacy_optimizer = kwargs.pop("use_legacy_optimizer", None)
    if kwargs:
        raise TypeError(f"Invalid keyword arguments: {kwargs}")
    if isinstance(identifier, (KerasOptimizer, LossScaleOptimizer, keras3.LossScaleOptimizer, keras3.MultiOptimizer)):
        return identifier
    if isinstance(identifier, Mapping):
        return deserialize(identifier, use_legacy_optimizer=use_legacy_optimizer)
    if isinstance(identifier, str):
        return deserialize({"class_name": identifier, "config": {}}, use_legacy_optimizer=use_legacy_optimizer)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier}")
