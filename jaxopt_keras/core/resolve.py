"""Safe resolution of Keras-style ``{"class_name": ..., "config": ...}`` dicts.

Deserialization here only ever builds classes from an explicit table (ours,
plus whatever the caller passes in ``custom_objects``).  Nothing named in a
config is imported, looked up with ``getattr`` on a module, or evaluated: a
``module`` field is only compared against the Keras module names we know.
"""

from __future__ import annotations

import types
from typing import Any, Mapping

import numpy as np

# How Keras serializes a NumPy array in a config (`serialize_keras_object`),
# TF-Keras and Keras 3 alike.
NUMPY_CLASS = "__numpy__"


def plain(value: Any) -> Any:
    """Config values as Keras serializes them: NumPy scalars become Python numbers, a
    NumPy array ``{"class_name": "__numpy__", "config": {"value": a.tolist(), "dtype": name}}``."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return {"class_name": NUMPY_CLASS, "config": {"value": value.tolist(), "dtype": value.dtype.name}}
    return value


def from_plain(value: Any, what: str) -> Any:
    """A config value as :func:`plain` wrote it: a ``"__numpy__"`` dict becomes its array again.

    Only numbers and booleans are built (``np.asarray(value, dtype)`` of a
    numeric dtype name): nothing else is imported or evaluated.

    Raises:
      ValueError: a ``"__numpy__"`` dict without a ``value``, or whose ``dtype``
        is not a numeric NumPy dtype name; the message names ``what``.
    """
    if not (isinstance(value, Mapping) and value.get("class_name") == NUMPY_CLASS):
        return value
    inner = value.get("config")
    dtype = inner.get("dtype") if isinstance(inner, Mapping) else None
    try:
        kind = np.dtype(dtype).kind if isinstance(dtype, str) else None
    except TypeError:
        kind = None
    if kind is None or kind not in "biuf" or "value" not in inner:
        raise ValueError(
            f"{what} is a serialized NumPy array ({NUMPY_CLASS!r}) without a `value` and a numeric "
            f"`dtype`; received {value!r}."
        )
    try:
        return np.asarray(inner["value"], dtype=dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} is a serialized NumPy array whose `value` is not {dtype} numbers: {e}") from None


def _lookup(name: str, table: Mapping[str, Any]) -> Any | None:
    if name in table:
        return table[name]
    lowered = {k.lower(): v for k, v in table.items()}
    return lowered.get(name.lower())


def check_serialized(config: Any, what: str) -> dict:
    """The fields of a serialized ``{"class_name", "config", "module", "registered_name"}``
    dict, checked before anything reads them: ``config`` (a dict, ``None`` read as
    ``{}``), ``class_name`` (a string), ``module`` and ``registered_name`` (a
    string or ``None``).

    Every reader of a config calls this first, so a malformed field is a
    ``ValueError`` naming it, never a ``TypeError`` from a lookup
    (``unhashable type: 'list'``).

    Returns:
      The inner config, as a dict.

    Raises:
      ValueError: ``config`` is not a dict, or a field has the wrong type or is
        missing; the message names the field and ``what`` was being read.
    """
    if not isinstance(config, Mapping):
        raise ValueError(
            f"Could not interpret serialized {what}: expected a dict, received "
            f"{type(config).__name__}: {config!r}"
        )
    if "class_name" not in config:
        raise ValueError(f"Serialized {what} has no 'class_name' field: {dict(config)!r}")
    class_name = config["class_name"]
    if not isinstance(class_name, str):
        raise ValueError(f"Field 'class_name' of a serialized {what} must be a string, received {class_name!r}.")
    inner = config.get("config", {})
    if inner is None:
        inner = {}
    if not isinstance(inner, Mapping):
        raise ValueError(f"Field 'config' of a serialized {what} must be a dict, received {inner!r}.")
    for field in ("module", "registered_name"):
        value = config.get(field)
        if value is not None and not isinstance(value, str):
            raise ValueError(
                f"Field {field!r} of a serialized {what} must be a string or None, "
                f"received {value!r}."
            )
    return dict(inner)


def resolve_class(
    config: Any,
    *,
    known: Mapping[str, type],
    custom_objects: Mapping[str, Any] | None,
    allowed_modules: frozenset[str],
    what: str,
) -> tuple[type, dict]:
    """Finds the class a serialized config names, without importing anything.

    Accepts the Keras 2 legacy form ``{"class_name", "config"}`` and the
    Keras 2.13+/Keras 3 form that adds ``module`` and ``registered_name``.

    Args:
      config: the serialized dict.
      known: class name -> class, for the classes this library builds.
      custom_objects: caller-supplied name -> class; these take precedence and
        may live in any module.
      allowed_modules: the values of ``module`` accepted for ``known`` classes.
      what: a noun for error messages ("optimizer", "learning rate schedule").

    Returns:
      ``(cls, inner_config)``.

    Raises:
      ValueError: malformed config, a ``module`` we do not recognise, or a
        class name that is neither ours nor in ``custom_objects``.  The message
        names the offending field.
    """
    inner = check_serialized(config, what)
    class_name = config["class_name"]
    registered = config.get("registered_name")
    module = config.get("module")

    custom = dict(custom_objects or {})
    for name in (registered, class_name):
        if isinstance(name, str) and name in custom:
            return custom[name], dict(inner)

    if module is not None and module not in allowed_modules:
        raise ValueError(
            f"Field 'module' of the serialized {what} is {module!r}, which is not a "
            f"Keras {what} module; refusing to build {class_name!r} from it. "
            "Pass custom classes in `custom_objects`."
        )
    cls = _lookup(class_name, known)
    if registered is not None and registered != class_name:
        # Keras writes None for its own classes; anything else must at least
        # name the same class as `class_name`.
        other = _lookup(registered, known)
        if other is None:
            raise ValueError(
                f"Field 'registered_name' of the serialized {what} is {registered!r}, "
                "which names no known class; pass it in `custom_objects`."
            )
        if other is not cls:
            raise ValueError(
                f"Field 'registered_name' of the serialized {what} is {registered!r}, "
                f"which is not the class named by 'class_name' ({class_name!r})."
            )
    if cls is None:
        raise ValueError(
            f"Field 'class_name' of the serialized {what} is {class_name!r}, which is "
            f"not a known {what}. Known: {sorted(known)}. Pass custom classes in "
            "`custom_objects`."
        )
    return cls, dict(inner)


def function_config(fn: Any) -> Any:
    """Keras 3's serialization of a plain named function (a learning rate):
    ``{"module": "builtins", "class_name": "function", "config": fn.__name__,
    "registered_name": "function"}``.  Anything else (a lambda, a callable
    object) is returned as it is: Keras 3 writes a lambda's bytecode, which no
    loader here reads (see :func:`resolve_function`)."""
    if not isinstance(fn, types.FunctionType) or fn.__name__ == "<lambda>":
        return fn
    return {"module": "builtins", "class_name": "function", "config": fn.__name__, "registered_name": "function"}


def is_function_config(config: Any) -> bool:
    """A serialized function (:func:`function_config`) or Keras 3's serialized lambda."""
    return isinstance(config, Mapping) and config.get("class_name") in ("function", "__lambda__")


def resolve_function(config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None) -> Any:
    """The function a :func:`function_config` names, from ``custom_objects``
    only, as Keras 3 finds it: ``custom_objects[name]``, else the one entry
    whose key ends in ``">name"`` (a registered ``"package>name"``).  Nothing
    is imported, and a lambda's bytecode is never loaded.

    Raises:
      ValueError: a serialized lambda (Keras 3's words for its safe mode).
      TypeError: ``config`` is not a name, or no such function was passed.
    """
    if config.get("class_name") == "__lambda__":
        raise ValueError(
            "Requested the deserialization of a Python lambda. This carries a potential risk of arbitrary code "
            "execution and thus it is disallowed. jaxopt_keras never loads a lambda's bytecode: pass the function "
            "itself as the `learning_rate` instead."
        )
    name = config.get("config")
    if not isinstance(name, str):  # Keras 3's words (and spacing); it reads a null config as {}
        raise TypeError(
            "Expected 'config' to be a non-null str fora function classname,\n"
            f"instead got {type({} if name is None else name)}\nFull config: {dict(config)}"
        )
    custom = dict(custom_objects or {})
    if name in custom:
        return custom[name]
    suffixed = [fn for key, fn in custom.items() if isinstance(key, str) and key.endswith(f">{name}")]
    if ">" not in name and suffixed:
        return suffixed[0]
    raise TypeError(
        f"Could not locate function '{name}'. Make sure custom classes and functions are decorated with "
        "`@keras.saving.register_keras_serializable()`. If they are already decorated, make sure they are all "
        f"imported so that the decorator is run before trying to load them. Full object config: {dict(config)}"
    )
