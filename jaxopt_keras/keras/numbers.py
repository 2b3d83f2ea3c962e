"""The numeric constructor arguments: which they are, Keras's error for a non-number, and the values refused.

:func:`check_number_types` runs before a family's own checks and gives a
non-number the error Keras raises for it (at construction or in its first
step); :func:`check_number_values` runs after them and refuses the values
Keras accepts and then computes NaN or nonsense with.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import numpy as np

from jaxopt_keras.algorithms.spec import Spec
from jaxopt_keras.core.hyperparams import check_range
from jaxopt_keras.keras.base_args import BASE_ARGS, CLIP_ARGS
from jaxopt_keras.schedules.base import is_schedule

# Numeric arguments that may be None (off), per family, beyond a spec's `nullable`.
NULLABLE = {
    "legacy": CLIP_ARGS + ("epsilon",),  # OptimizerV2: `epsilon or backend_config.epsilon()`
    "current": CLIP_ARGS + ("weight_decay", "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps"),
}
NULLABLE["keras3"] = NULLABLE["current"]
# Shared arguments each family's constructor compares with a number (a
# non-number is a TypeError there).  The current family has no
# `loss_scale_factor` or `gradient_accumulation_steps` (ours follow Keras 3):
# TF-Keras refuses any value of them with a TypeError.
COMPARED = {
    "legacy": ("decay",) + CLIP_ARGS,
    "current": ("ema_momentum", "loss_scale_factor", "gradient_accumulation_steps"),
    "keras3": ("ema_momentum", "gradient_accumulation_steps"),
}
# Arguments whose own check, in Keras's words, refuses every non-number.
OWN_CHECK = {"legacy": (), "current": ("ema_overwrite_frequency",), "keras3": ("learning_rate", "ema_overwrite_frequency")}
# Where Keras only fails inside the first step's ops, the error each family's
# ops raise for a non-number: legacy `_set_hyper` values go through
# `tf.convert_to_tensor` (ValueError for a string or a list, TypeError for
# None); other legacy values, and the current family's and Keras 3's strings
# and lists, fail in arithmetic (TypeError); `tf.cast(None)` and Keras 3's
# `convert_to_tensor(None)` raise ValueError.
STEP_ERRORS: dict[str, dict[str, type]] = {
    "legacy": {"none": TypeError, "string": TypeError, "other": TypeError},
    "current": {"none": ValueError, "string": TypeError, "other": TypeError},
    "keras3": {"none": ValueError, "string": TypeError, "other": TypeError},
}


def numeric_arguments(spec: Spec) -> tuple[str, ...]:
    """The spec's numeric constructor arguments (its own, then the family's shared ones)."""
    everything = {**spec.defaults, **spec.extra_args, **BASE_ARGS[spec.family], **spec.base_defaults}
    nullable = set(NULLABLE[spec.family]) | set(spec.nullable)
    return tuple(
        k
        for k, v in everything.items()
        if k not in spec.ignored
        and (k in nullable or (isinstance(v, (int, float)) and not isinstance(v, bool)))
    )


def is_number(value: Any) -> bool:
    """A real scalar: a Python or NumPy number, or a 0-d numeric array (bools included)."""
    if isinstance(value, (int, float, np.number, np.bool_)):
        return True
    return isinstance(value, (np.ndarray, jax.Array)) and value.ndim == 0 and value.dtype.kind in "biuf"


def _numeric_string(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _not_a_number(spec: Spec, name: str, value: Any) -> Exception:
    """The error Keras raises (at construction, or else in its first step) for a non-number."""
    family = spec.family
    error = spec.non_number_errors.get(name, TypeError if name in COMPARED[family] else None)
    if error is None:
        kind = "none" if value is None else "string" if isinstance(value, str) else "other"
        if family == "legacy" and kind != "none" and name in ("learning_rate",) + spec.float32_hyperparams:
            error = ValueError  # `_set_hyper`: tf.convert_to_tensor
        elif family == "keras3" and kind == "string" and name in spec.float32_hyperparams + spec.decay_rates:
            error = ValueError if not _numeric_string(value) else TypeError  # ops.cast of a string
        else:
            error = STEP_ERRORS[family][kind]
    return error(f"Argument `{name}` must be a number. Received: {name}={value!r} (of type {type(value).__name__}).")


def check_number_types(spec: Spec, args: Mapping[str, Any], skip: tuple[str, ...] = ()) -> None:
    """Every numeric argument is a number (or ``None`` where that means "off").

    A learning rate may also be a schedule or a callable.  Runs before the
    family's and the algorithm's own checks (which compare values).

    Raises:
      TypeError, ValueError: a non-number: ``None``, a string (``"0.1"``
        included), a list or an array of more than one value; the type is the
        one Keras raises for it, at construction or in its first step (see
        ``STEP_ERRORS``).
    """
    nullable = set(NULLABLE[spec.family]) | set(spec.nullable)
    for name in numeric_arguments(spec):
        if name not in args or name in skip or name in OWN_CHECK[spec.family]:
            continue
        value = args[name]
        if isinstance(value, jax.core.Tracer) or (value is None and name in nullable):
            continue
        if name == "learning_rate" and (is_schedule(value) or callable(value)):
            continue
        if spec.is_host_callable(name, value):
            continue  # OptimizerV2's `_get_hyper` calls it at every step
        if not is_number(value):
            raise _not_a_number(spec, name, value)


def check_number_values(spec: Spec, args: Mapping[str, Any]) -> None:
    """Every numeric argument's value is usable: finite, not a bool, in its range.

    Runs after Keras's own checks (so Keras's words come first); what it
    refuses, Keras accepts and then computes NaN or nonsense with.

    Raises:
      ValueError: ``True``/``False`` for a number, NaN or an infinity, a fraction outside [0, 1] or a negative
        amount (:func:`~jaxopt_keras.core.hyperparams.check_range`), a value whose first step is NaN (``spec.singular``).
    """
    for name in numeric_arguments(spec):
        value = args.get(name)
        if value is None or isinstance(value, jax.core.Tracer) or not is_number(value):
            continue
        if isinstance(value, (bool, np.bool_)) or getattr(value, "dtype", None) == np.bool_:
            raise ValueError(f"Argument `{name}` must be a number, not a bool. Received: {name}={value}.")
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"Argument `{name}` must be finite. Received: {name}={number}.")
        check_range(name, number)
        if name in spec.singular and number == spec.singular[name]:  # Keras accepts it
            raise ValueError(f"Argument `{name}` cannot be {spec.singular[name]}: the first step would make the parameters "
                             f"NaN. Received: {name}={value}.")


def check_hyperparameter(spec: Spec, name: str, value: Any) -> None:
    """The constructor's rules for one numeric hyperparameter set on its own
    (``opt.beta_1 = 0.5`` on the Keras layer), with the constructor's errors.

    Raises:
      TypeError, ValueError: as :func:`check_number_types` and
        :func:`check_number_values`.
    """
    if name in numeric_arguments(spec):
        check_number_types(spec, {name: value})
        check_number_values(spec, {name: value})


def check_nonnegative(name: str, value: Any) -> None:
    """``ValueError`` for a negative number (schedules and ``None`` pass)."""
    if value is not None and not is_schedule(value) and value < 0:
        raise ValueError(f"Expected {name} >= 0, received: {value}")
