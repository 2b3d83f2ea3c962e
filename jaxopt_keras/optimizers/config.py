"""Configs of the optimizers (not the loss-scale wrapper): Keras's module names, and our classes from a config.

Only our classes, or classes passed in ``custom_objects``, are ever built.
Nothing named in a config is imported or evaluated: ``module`` is only
compared with the Keras module names below.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from jaxopt_keras.core.resolve import check_serialized, plain, resolve_class
from jaxopt_keras.optimizers.classes import classes, is_registry_class
from jaxopt_keras.optimizers.families import OptimizerV2
from jaxopt_keras.registry import entries, find

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

LOSS_SCALE_NAMES = ("lossscaleoptimizer", "lossscaleoptimizerv3", "lossscaleoptimizerv1")


def serialized_names(optimizer: Any) -> tuple[str, str | None, str | None]:
    """``(class_name, module, registered_name)`` as TF-Keras writes them."""
    cls = type(optimizer)
    if is_registry_class(cls):
        module = "keras.optimizers.legacy" if isinstance(optimizer, OptimizerV2) else "keras.optimizers"
        return cls.__name__, module, None
    # A class of the user's own (a subclass of ours included): TF-Keras writes
    # its module ("__main__" as None) and its registered name, by default the
    # class name; it deserializes only through `custom_objects`.
    module = None if cls.__module__ == "__main__" else cls.__module__
    return cls.__name__, module, cls.__name__


def config_family(config: Mapping[str, Any], inner: Mapping[str, Any], default: str) -> str:
    """The family a config was written by.

    Legacy: a legacy ``module``, ``is_legacy_optimizer: True`` or a legacy-only
    key.  TF-Keras >= 2.11: ``is_legacy_optimizer: False`` or ``jit_compile``.
    Keras 3: ``loss_scale_factor`` or ``gradient_accumulation_steps`` without
    those.  A config that says none of this is read as ``default``.
    """
    if isinstance(config.get("module"), str) and config["module"] in LEGACY_MODULES:  # a malformed one is named later
        return "legacy"
    if "is_legacy_optimizer" in inner:
        return "legacy" if inner["is_legacy_optimizer"] else "current"
    if any(k in inner for k in LEGACY_ONLY_KEYS):
        return "legacy"
    if "jit_compile" in inner:
        return "current"
    if "loss_scale_factor" in inner or "gradient_accumulation_steps" in inner:
        return "keras3"
    return default


def tf_keras_family(config: Mapping[str, Any], use_legacy_optimizer: bool | None = None) -> str:
    """The family ``tf.keras.optimizers.deserialize(config, use_legacy_optimizer=...)`` builds.

    TF-Keras (since 2.11, when it began writing ``is_legacy_optimizer``) reads
    a non-empty config's own ``is_legacy_optimizer``, and a config without it
    as one written before 2.11: legacy, whatever ``use_legacy_optimizer``
    says.  Only an empty config (``{"class_name": "adam", "config": {}}``,
    what ``get("adam")`` builds) follows the flag, current by default; an
    ``Experimental...`` class name is always the current class, and so is
    a ``Custom>...`` one (:func:`tf_keras_registered`).  Read
    the same way here, and where TF-Keras would refuse the config, by its keys
    (:func:`config_family`: ``jit_compile`` is current, Keras 3's
    ``loss_scale_factor``/``gradient_accumulation_steps`` keras3).
    """
    class_name = config.get("class_name") if isinstance(config, Mapping) else None
    if isinstance(class_name, str) and class_name.lower().startswith("experimental"):
        return "current"  # tf.keras.optimizers.experimental.X: both of TF-Keras's tables map it to its current class
    if tf_keras_registered(class_name) is not None:
        return "current"  # "Custom>Adam": TF-Keras's registered current class, whatever the config says
    inner = config.get("config") if isinstance(config, Mapping) else None
    if not inner or not isinstance(inner, Mapping):
        return "legacy" if use_legacy_optimizer else "current"
    if "is_legacy_optimizer" in inner:  # read first, whatever a legacy `module` says
        return "legacy" if inner["is_legacy_optimizer"] else "current"
    return config_family(config, inner, default="legacy")


def known_classes(family: str) -> dict[str, type]:
    """Every name a config may use for our classes of ``family`` (aliases included)."""
    table = classes(family)
    known = dict(table)
    for e in entries(family):
        for alias in e.aliases:
            known[alias] = table[e.class_name]
    return known


def serialize_optimizer(optimizer: Any, use_legacy_format: bool = False) -> dict:
    """The Keras serialization of an optimizer (not a loss-scale wrapper)."""
    class_name, module, registered = serialized_names(optimizer)
    config = plain(optimizer.get_config())
    if use_legacy_format:
        if module == "keras.optimizers":
            # TF-Keras registers the current classes as serializables of the
            # default package, and names them so in the legacy format.
            class_name = f"Custom>{class_name}"
        return {"class_name": class_name, "config": config}
    return {"module": module, "class_name": class_name, "config": config, "registered_name": registered}


def without_custom_prefix(config: Mapping[str, Any], custom: Mapping[str, Any]) -> Mapping[str, Any]:
    """``{"class_name": "Custom>Adam"}`` (TF-Keras's legacy-format name for its
    registered current classes) read as ``"Adam"``, unless ``custom`` claims it."""
    class_name = config.get("class_name")
    if isinstance(class_name, str) and class_name.startswith("Custom>") and class_name not in custom:
        stripped = class_name[len("Custom>") :]
        if find(stripped) is not None or stripped.lower() in LOSS_SCALE_NAMES:
            return dict(config, class_name=stripped)
    return config


def tf_keras_registered(class_name: Any) -> str | None:
    """Our class name for a class TF-Keras registered: ``"Custom>Adam"`` is its
    current Adam (``register_keras_serializable``'s default package), which its
    global registry resolves before ``custom_objects`` and before the family's
    table; ``None`` for any other name."""
    if not (isinstance(class_name, str) and class_name.startswith("Custom>")):
        return None
    entry = find(class_name[len("Custom>") :], "current")
    return None if entry is None else entry.class_name


def custom_class(config: Mapping[str, Any], custom: Mapping[str, Any], known: Mapping[str, type]) -> type | None:
    """The class ``custom_objects`` gives a config, by the rule of both Kerases'
    ``optimizers.deserialize``; ``None``: a class of ours.

    Keras lowercases a built-in class name before it looks at
    ``custom_objects``: ``{"Adam": MyAdam}`` leaves ``"Adam"`` the built-in
    Adam, ``{"adam": MyAdam}`` replaces it.  ``custom_objects`` is consulted
    when it has the (lowercased) name or the ``registered_name``, and then
    gives ``custom_objects[registered_name]`` (the name when the config has no
    ``registered_name`` field).  A class of yours is also found by its name
    when its ``registered_name`` (``"package>Name"``) is not in ``custom_objects``.

    Raises:
      ValueError: ``custom_objects`` has a built-in name that the config's
        ``registered_name`` does not name (Keras: "Could not locate class").
    """
    name = config["class_name"]
    builtin = name.lower() in {k.lower() for k in known}
    key = name.lower() if builtin else name
    registered = config.get("registered_name", key)
    if key not in custom and config.get("registered_name") not in custom:
        return None
    if registered in custom:
        return custom[registered]
    if not builtin and key in custom:
        return custom[key]
    raise ValueError(
        f"Field 'registered_name' of the serialized optimizer is {registered!r}, which is not in "
        f"`custom_objects`, though {key!r} is: Keras builds {name!r} from `custom_objects[registered_name]` "
        "and cannot locate it either."
    )


def deserialize_optimizer(config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None, family: str) -> Any:
    """An optimizer (not a loss-scale wrapper) of ``family`` from its config: a
    class of ``custom_objects`` by :func:`custom_class`'s rule, else ours."""
    check_serialized(config, "optimizer")
    custom = dict(custom_objects or {})
    known = known_classes(family)
    registered = tf_keras_registered(config["class_name"]) if family == "current" else None
    if registered is not None:  # TF-Keras's registry comes first: custom_objects cannot claim it
        original = config["class_name"]
        config = dict(config, class_name=registered)
        if config.get("registered_name") == original:
            config["registered_name"] = None
        cls = None
    else:
        config = without_custom_prefix(config, custom)
        cls = custom_class(config, custom, known)
    if cls is not None:
        inner = check_serialized(config, "optimizer")
    elif "module" in config and config["module"] is None:
        raise ValueError(
            f"Field 'module' of the serialized optimizer {config['class_name']!r} is None: a class of your own "
            "(Keras writes None for one defined in `__main__`), not a Keras optimizer. Pass it in `custom_objects`."
        )
    else:
        cls, inner = resolve_class(
            config, known=known, custom_objects=None, allowed_modules=LEGACY_MODULES | CURRENT_MODULES, what="optimizer"
        )
    if hasattr(cls, "from_config"):
        try:
            return cls.from_config(inner, custom_objects=custom_objects)
        except TypeError as e:
            if "custom_objects" not in str(e):
                raise
            return cls.from_config(inner)
    return cls(**inner)
