"""Each family's constructor rules: the shared arguments, their defaults, and Keras's errors.

:func:`check_arguments` turns a constructor call (the named arguments and
the ``**kwargs``) into the complete, checked argument dict the pipeline
builds from.  The factories (:mod:`jaxopt_keras.keras.factories`) and the
Keras classes (:mod:`jaxopt_keras.optimizers`) both call it, so a bad
argument gets the same error from either.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import jax
import numpy as np

from jaxopt_keras.algorithms.spec import Spec
from jaxopt_keras.core.hyperparams import VariableReader, check_range, is_variable, python_scalar
from jaxopt_keras.schedules.base import is_schedule, takes_no_arguments, takes_the_step
from jaxopt_keras.transforms.accumulation import check_accumulation_steps, check_loss_scale_factor
from jaxopt_keras.transforms.ema import check_ema_arguments

# The arguments every class of a family takes beyond its algorithm's, with
# their defaults, in signature order (keyword-only in our factories).
BASE_ARGS: dict[str, dict[str, Any]] = {
    "legacy": {"clipnorm": None, "clipvalue": None, "global_clipnorm": None, "decay": 0.0, "slot_dtype": None},
    "current": {
        "weight_decay": None,
        "clipnorm": None,
        "clipvalue": None,
        "global_clipnorm": None,
        "use_ema": False,
        "ema_momentum": 0.99,
        "ema_overwrite_frequency": None,
        "jit_compile": True,
        "loss_scale_factor": None,
        "gradient_accumulation_steps": None,
        "slot_dtype": None,
    },
    "keras3": {
        "weight_decay": None,
        "clipnorm": None,
        "clipvalue": None,
        "global_clipnorm": None,
        "use_ema": False,
        "ema_momentum": 0.99,
        "ema_overwrite_frequency": None,
        "loss_scale_factor": None,
        "gradient_accumulation_steps": None,
        "slot_dtype": None,
    },
}

# The shared arguments Keras's constructors take by position, in BASE_ARGS's
# order, after the algorithm's own and before `name` (TF-Keras >= 2.11 and
# Keras 3).  The rest are keyword-only: OptimizerV2 reads its shared arguments
# from **kwargs, and the current family's `loss_scale_factor` and
# `gradient_accumulation_steps` (Keras 3's) and every family's `slot_dtype`
# are ours.
POSITIONAL_BASE_ARGS: dict[str, tuple[str, ...]] = {
    "legacy": (),
    "current": tuple(k for k in BASE_ARGS["current"] if k not in ("loss_scale_factor", "gradient_accumulation_steps", "slot_dtype")),
    "keras3": tuple(k for k in BASE_ARGS["keras3"] if k != "slot_dtype"),
}
# OptimizerV2's accepted **kwargs.
LEGACY_KWARGS = ("clipnorm", "clipvalue", "lr", "decay", "global_clipnorm")
# Arguments of the legacy family that the current family refuses by name.
LEGACY_ONLY = ("decay", "gradient_aggregator", "gradient_transformers")
CLIP_ARGS = ("clipnorm", "clipvalue", "global_clipnorm")
EMA_ARGS = ("ema_momentum", "ema_overwrite_frequency")


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


def _is_number(value: Any) -> bool:
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
        if not _is_number(value):
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
        if value is None or isinstance(value, jax.core.Tracer) or not _is_number(value):
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


def refuse_zero_arg_callables(spec: Spec, class_name: str, args: Mapping[str, Any]) -> None:
    """The functional factories' rule: no hyperparameter is a zero-argument callable.

    OptimizerV2 calls such a hyperparameter before every step.  A functional
    transformation's ``update`` is traced once under ``jit``: the callable
    would be called once, at trace time, and its value frozen into the
    compiled step, which is never what it means.  The Keras classes call it on
    the host before each jitted step; the functional way is to set the value
    between steps with ``set_hyperparams`` (no recompilation).  A learning
    rate that is a function of the step count (``lambda step: ...``) is a
    schedule, and fine.

    Raises:
      TypeError: a zero-argument callable hyperparameter, or a variable (read at each step by OptimizerV2).
    """
    for name in spec.callable_hyperparams():
        if isinstance(args.get(name), VariableReader):
            raise TypeError(
                f"`{name}` is a variable. OptimizerV2 reads it at every step, but a functional transformation "
                f"is traced once, so its value would be frozen. Pass its value and set it between steps with "
                f"jaxopt_keras.set_hyperparams(state, {name}=float(variable)), or use the class "
                f"jaxopt_keras.optimizers.legacy.{class_name}, which reads it before each step."
            )
        if spec.is_host_callable(name, args.get(name)):
            raise TypeError(
                f"`{name}` is a zero-argument callable. OptimizerV2 calls it before every step, but a "
                "functional transformation is traced once, so it would be called once and its value frozen. "
                f"Set the value between steps with jaxopt_keras.set_hyperparams(state, {name}=fn()) (no "
                f"recompilation), or use the class jaxopt_keras.optimizers.legacy.{class_name}, which calls it "
                "before each step."
                + (" A learning rate may also be a function of the step: `lambda step: ...`." if name == "learning_rate" else "")
            )


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


def check_clipping(args: Mapping[str, Any], family: str) -> None:
    """The clipping arguments' rules: non-negative, and not both norms.

    Raises:
      ValueError: a negative threshold, or both ``clipnorm`` and
        ``global_clipnorm`` (in each family's words).
    """
    for k in CLIP_ARGS:
        check_nonnegative(k, args.get(k))
    cn, gcn = args.get("clipnorm"), args.get("global_clipnorm")
    if family == "keras3":
        if sum(args.get(k) is not None for k in CLIP_ARGS) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                f"clipnorm={cn}, clipvalue={args.get('clipvalue')}, global_clipnorm={gcn}"
            )
        return
    if cn is not None and gcn is not None:
        if family == "legacy":
            raise ValueError(
                "Cannot accept both `clipnorm` and `global_clipnorm`. Received: "
                f"`clipnorm`={cn}, `global_clipnorm`={gcn}."
            )
        raise ValueError(
            f"At most one of `clipnorm` and `global_clipnorm` can be set. Received: clipnorm={cn}, global_clipnorm={gcn}."
        )


def _lr_not_a_number(lr: Any) -> TypeError:
    return TypeError(f"Expected lr >= 0, received: {lr!r}. The `lr` alias takes a number; use `learning_rate`.")


def _legacy(spec: Spec, given: dict, kwargs: Mapping[str, Any]) -> dict:
    """OptimizerV2's rules: only ``LEGACY_KWARGS`` in ``**kwargs``; ``lr`` is an alias."""
    for k in kwargs:
        if k not in LEGACY_KWARGS:
            raise TypeError(
                f"Unexpected keyword argument passed to optimizer: {k}. Allowed kwargs are {set(LEGACY_KWARGS)}."
            )
    # OptimizerV2 compares each keyword argument with 0 (`kwargs[k] < 0`): a
    # TypeError for an `lr` that is not a number (a string, a list; a schedule or
    # a callable below, after the class's own checks: legacy Nadam refuses a
    # schedule before its base class's constructor runs).
    lr = kwargs.get("lr")
    if lr is not None and not _is_number(lr) and not is_schedule(lr):
        raise _lr_not_a_number(lr)
    args = {**spec.defaults, **BASE_ARGS["legacy"], **spec.extra_args, **given, **kwargs}
    for name in spec.callable_hyperparams():  # `_set_hyper` keeps a variable: read at each step
        if is_variable(args.get(name)):
            args[name] = VariableReader(args[name])
    check_number_types(spec, args)
    for k in ("lr", "decay"):
        if k in args and k not in spec.ignored:
            check_nonnegative(k, args[k])
    check_clipping(args, "legacy")
    if "lr" in args:
        warnings.warn("The `lr` argument is deprecated, use `learning_rate` instead.", DeprecationWarning, stacklevel=5)
    given_args = dict(args)
    args = spec.check_args(args)
    if is_schedule(lr):
        raise _lr_not_a_number(lr)
    if "lr" in args:  # OptimizerV2 subclasses: `kwargs.get("lr", learning_rate)`
        args["learning_rate"] = args.pop("lr")
    check_number_values(spec, {**given_args, "learning_rate": args["learning_rate"]})
    return args


def _current(spec: Spec, class_name: str, given: dict, kwargs: Mapping[str, Any]) -> dict:
    """The TF-Keras >= 2.11 Optimizer's rules."""
    kwargs = dict(kwargs)
    kwargs.pop("is_legacy_optimizer", None)
    if kwargs.pop("lr", None):
        warnings.warn(
            "`lr` is deprecated in the current Keras optimizers and is ignored, as "
            "TF-Keras ignores it: use `learning_rate`, or the legacy family.",
            DeprecationWarning,
            stacklevel=5,
        )
    for k in kwargs:
        if k in LEGACY_ONLY:
            raise ValueError(
                f"{k} is deprecated in the new TF-Keras optimizer, please check the docstring "
                "for valid arguments, or use the legacy optimizer, e.g., "
                f"jaxopt_keras.legacy.{class_name.lower()}."
            )
        raise TypeError(f"{k} is not a valid argument, kwargs should be empty  for `optimizer_experimental.Optimizer`.")
    args = {**BASE_ARGS["current"], **spec.base_defaults, **spec.defaults, **spec.extra_args, **given}
    lr = args["learning_rate"]
    if takes_no_arguments(lr) and not takes_the_step(lr):
        # `tf.Variable(learning_rate)` calls a zero-argument callable once, for its initial value.
        args["learning_rate"] = python_scalar(lr())
    elif is_variable(lr):  # ... and copies a variable's value
        args["learning_rate"] = VariableReader(lr)()
    check_number_types(spec, args, skip=() if args["use_ema"] else EMA_ARGS)
    check_clipping(args, "current")
    check_nonnegative("weight_decay", args["weight_decay"])
    args["gradient_accumulation_steps"] = check_accumulation_steps(args["gradient_accumulation_steps"])
    check_loss_scale_factor(args["loss_scale_factor"])
    if args["use_ema"]:
        check_ema_arguments(args["ema_momentum"], args["ema_overwrite_frequency"])
    checked = spec.check_args(dict(args))
    check_number_values(spec, args if args["use_ema"] else {k: v for k, v in args.items() if k not in EMA_ARGS})
    return checked


def check_learning_rate_keras3(lr: Any) -> None:
    """Keras 3: a float, a schedule, or a callable (an ``int`` is refused).

    Raises:
      ValueError: anything else, in Keras 3's words.
    """
    if not (isinstance(lr, float) or is_schedule(lr)):
        raise ValueError(
            "Argument `learning_rate` should be float, or an instance of LearningRateSchedule, or a "
            "callable (that takes in the current iteration value and returns the corresponding "
            f"learning rate value). Received instead: learning_rate={lr}"
        )


def _keras3(spec: Spec, given: dict, kwargs: Mapping[str, Any]) -> dict:
    """Keras 3's ``BaseOptimizer`` rules."""
    kwargs = dict(kwargs)
    if kwargs.pop("decay", None) is not None:
        warnings.warn("Argument `decay` is no longer supported and will be ignored.", UserWarning, stacklevel=5)
    if kwargs:
        raise ValueError(f"Argument(s) not recognized: {kwargs}")
    args = {**BASE_ARGS["keras3"], **spec.base_defaults, **spec.defaults, **spec.extra_args, **given}
    check_learning_rate_keras3(args["learning_rate"])
    check_number_types(spec, args, skip=() if args["use_ema"] else EMA_ARGS)
    # A falsy value (0) means no accumulation and is kept as given, for the config, as Keras 3 keeps it; 2.0 is 2.
    args["gradient_accumulation_steps"] = check_accumulation_steps(args["gradient_accumulation_steps"] or None) or args["gradient_accumulation_steps"]
    check_loss_scale_factor(args["loss_scale_factor"])
    if args["use_ema"]:
        check_ema_arguments(args["ema_momentum"], args["ema_overwrite_frequency"], "keras3")
    check_clipping(args, "keras3")
    check_nonnegative("weight_decay", args["weight_decay"])
    checked = spec.check_args(dict(args))
    check_number_values(spec, args if args["use_ema"] else {k: v for k, v in args.items() if k not in EMA_ARGS})
    return checked


def check_name(family: str, name: Any) -> None:
    """The optimizer's ``name``: a string, or ``None`` (the class's name, or Keras 3's automatic one).

    TF-Keras (both families) takes any value and fails in its first step
    (``tf.name_scope``); Keras 3 refuses it at construction.  We refuse it at
    construction in every family, with Keras 3's words there.

    Raises:
      ValueError: a name that is not a string (or, in Keras 3, contains ``/``).
    """
    if name is None or (isinstance(name, str) and not (family == "keras3" and "/" in name)):
        return
    if family == "keras3":
        raise ValueError(f"Argument `name` must be a string and cannot contain character `/`. Received: name={name}")
    raise ValueError(f"Argument `name` must be a string (TF-Keras: name for name_scope must be a string). Received: name={name!r}.")


def check_slot_dtype(value: Any) -> None:
    """``slot_dtype`` (ours; Keras has none): ``None`` or a floating-point dtype.

    Raises:
      TypeError: anything else (a value NumPy cannot read as a dtype, or an
        integer or bool dtype).
    """
    if value is None:
        return
    try:
        ok = jax.numpy.issubdtype(np.dtype(value), jax.numpy.floating)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise TypeError(f"Argument `slot_dtype` must be a floating-point dtype, or None. Received: slot_dtype={value!r}.")


def check_arguments(spec: Spec, class_name: str, given: Mapping[str, Any], kwargs: Mapping[str, Any]) -> dict:
    """Keras's constructor rules for the spec's family; the complete, checked arguments.

    Args:
      spec: the algorithm in one family.
      class_name: the Keras class name, for messages.
      given: the named constructor arguments (``name`` is ignored).
      kwargs: the ``**kwargs``.

    Returns:
      Every argument of the class, defaults filled in.

    Raises:
      TypeError: an unknown keyword argument.
      ValueError: a bad value, in Keras's words.
    """
    check_name(spec.family, given.get("name"))
    check_slot_dtype(given.get("slot_dtype"))
    given = {k: v for k, v in given.items() if k != "name"}
    if spec.family == "legacy":
        return _legacy(spec, given, kwargs)
    if spec.family == "keras3":
        return _keras3(spec, given, kwargs)
    return _current(spec, class_name, given, kwargs)
