"""``serialize``/``deserialize`` for schedules: only known classes, nothing imported."""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from jaxopt_keras.core.resolve import from_plain, plain, resolve_class
from jaxopt_keras.schedules.base import LearningRateSchedule
from jaxopt_keras.schedules.cosine import CosineDecay
from jaxopt_keras.schedules.cosine_restarts import CosineDecayRestarts
from jaxopt_keras.schedules.exponential import ExponentialDecay
from jaxopt_keras.schedules.inverse_time import InverseTimeDecay
from jaxopt_keras.schedules.piecewise import PiecewiseConstantDecay
from jaxopt_keras.schedules.polynomial import PolynomialDecay


_SCHEDULES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        ExponentialDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
        InverseTimeDecay,
        CosineDecay,
        CosineDecayRestarts,
    )
}
_SCHEDULE_MODULES = frozenset(
    {
        "keras.optimizers.schedules",
        "keras.optimizers.schedules.learning_rate_schedule",
        "keras.src.optimizers.schedules",
        "keras.src.optimizers.schedules.learning_rate_schedule",
        "tf_keras.optimizers.schedules",
        "tf_keras.src.optimizers.schedules.learning_rate_schedule",
        "keras.experimental",
        "jaxopt_keras.schedules",
    }
)


def serialize(schedule: LearningRateSchedule, use_legacy_format: bool = False) -> dict:
    """The Keras serialization of ``schedule``.

    Args:
      schedule: a schedule instance.
      use_legacy_format: emit the Keras 2 ``{"class_name", "config"}`` form
        instead of the form with ``module`` and ``registered_name``.

    Returns:
      A dict equal to what ``tf_keras.optimizers.schedules.serialize`` returns
      for the same schedule: NumPy scalars as Python numbers, a NumPy array as
      Keras's ``{"class_name": "__numpy__", ...}`` (:func:`deserialize` reads
      it back; the legacy form keeps them as they are, as TF-Keras's does),
      and for a subclass of your own, ``module`` is its module (``None``
      for a class defined in ``__main__``) and ``registered_name`` its name,
      as TF-Keras and Keras 3 write for an unregistered class.
    """
    if not isinstance(schedule, LearningRateSchedule):
        raise ValueError(f"Expected a LearningRateSchedule, received {schedule!r}.")
    cls = type(schedule)
    name = cls.__name__
    if use_legacy_format:
        return {"class_name": name, "config": schedule.get_config()}
    builtin = _SCHEDULES.get(name) is cls
    return {
        "module": "keras.optimizers.schedules" if builtin else (None if cls.__module__ == "__main__" else cls.__module__),
        "class_name": name,
        "config": plain(schedule.get_config()),
        "registered_name": None if builtin else name,
    }


# Keras 3's default `name` of each class (TF-Keras's is None).  Keras 3 loads a
# config whose name is None, and the schedule then fails at its first call.
KERAS3_DEFAULT_NAMES = {
    "ExponentialDecay": "ExponentialDecay",
    "PiecewiseConstantDecay": "PiecewiseConstant",
    "PolynomialDecay": "PolynomialDecay",
    "InverseTimeDecay": "InverseTimeDecay",
    "CosineDecay": "CosineDecay",
    "CosineDecayRestarts": "SGDRDecay",
}


def serialize_keras3(schedule: LearningRateSchedule) -> dict:
    """:func:`serialize` as Keras 3 writes a schedule: a built-in one left
    unnamed, or a subclass of one, carries Keras 3's default name of the
    built-in class (``CosineDecayRestarts``: ``"SGDRDecay"``)."""
    config = serialize(schedule)
    builtin = next((c.__name__ for c in type(schedule).__mro__ if _SCHEDULES.get(c.__name__) is c), None)
    inner = config["config"]
    if builtin is not None and isinstance(inner, dict) and "name" in inner and inner["name"] is None:
        config = dict(config, config=dict(inner, name=KERAS3_DEFAULT_NAMES[builtin]))
    return config


def deserialize(
    config: Mapping[str, Any],
    custom_objects: Mapping[str, Any] | None = None,
    use_legacy_format: bool = False,
) -> LearningRateSchedule:
    """Builds a schedule from a Keras serialization.

    Accepts TF-Keras 2.x (legacy and new) and Keras 3 forms.  Only the classes
    above, or those in ``custom_objects``, are ever built; nothing named in the
    config is imported.  An argument Keras wrote as a NumPy array
    (``{"class_name": "__numpy__", ...}``) is that array again (Keras's own
    ``deserialize`` passes the dict on to the constructor).

    Args:
      config: a dict as produced by :func:`serialize` or by Keras.
      custom_objects: name -> class for user-defined schedules.
      use_legacy_format: accepted for signature compatibility; both forms are
        always understood.

    Returns:
      The schedule.

    Raises:
      ValueError: unknown class, foreign ``module``, a ``registered_name``
        naming another class, a malformed config or ``"__numpy__"`` argument.
        The message names the offending field.
      TypeError: (for the classes above) a config key that is not a
        constructor argument (``numerics`` included: it is ours, never in a
        Keras config), or not a string; a missing argument.  Keras's type and
        words, as its ``cls(**config)`` raises them.
    """
    del use_legacy_format
    cls, inner = resolve_class(
        config,
        known=_SCHEDULES,
        custom_objects=custom_objects,
        allowed_modules=_SCHEDULE_MODULES,
        what="learning rate schedule",
    )
    inner = {k: from_plain(v, f"Argument {k!r} of the serialized {cls.__name__}") for k, v in inner.items()}
    if _SCHEDULES.get(cls.__name__) is cls:
        # Keras's arguments only: `numerics` is ours and never in a config.
        params = set(inspect.signature(cls.__init__).parameters) - {"self", "numerics"}
        # Checked before anything is built, in the words of Keras's `cls(**config)`.
        for key in inner:
            if not isinstance(key, str):
                raise TypeError("keywords must be strings")
            if key not in params:
                raise TypeError(f"{cls.__name__}.__init__() got an unexpected keyword argument {key!r}")
    if hasattr(cls, "from_config"):
        return cls.from_config(inner)
    return cls(**inner)
