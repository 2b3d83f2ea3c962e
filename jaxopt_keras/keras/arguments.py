"""Each family's constructor rules: its shared arguments checked, in Keras's words.

:func:`check_arguments` turns a constructor call (the named arguments and
the ``**kwargs``) into the complete, checked argument dict the pipeline
builds from.  The factories (:mod:`jaxopt_keras.keras.factories`) and the
Keras classes (:mod:`jaxopt_keras.optimizers`) both call it, so a bad
argument gets the same error from either.  The shared arguments and their
defaults are :mod:`jaxopt_keras.keras.base_args`'s; the numbers' checks,
:mod:`jaxopt_keras.keras.numbers`'.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import jax
import numpy as np

from jaxopt_keras.algorithms.spec import Spec
from jaxopt_keras.core.hyperparams import VariableReader, is_variable, python_scalar
from jaxopt_keras.keras.base_args import BASE_ARGS, CLIP_ARGS, EMA_ARGS, LEGACY_KWARGS, LEGACY_ONLY
from jaxopt_keras.keras.numbers import check_nonnegative, check_number_types, check_number_values, is_number
from jaxopt_keras.schedules.base import is_schedule, takes_no_arguments, takes_the_step
from jaxopt_keras.transforms.accumulation import check_accumulation_steps, check_loss_scale_factor
from jaxopt_keras.transforms.ema import check_ema_arguments


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
    if lr is not None and not is_number(lr) and not is_schedule(lr):
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
