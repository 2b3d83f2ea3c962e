"""Each family's constructor rules: the shared arguments, their defaults, and Keras's errors.

:func:`check_arguments` turns a constructor call (the named arguments and
the ``**kwargs``) into the complete, checked argument dict the pipeline
builds from.  The factories (:mod:`jaxopt_keras.keras.factories`) and the
Keras classes (:mod:`jaxopt_keras.optimizers`) both call it, so a bad
argument gets the same error from either.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

from jaxopt_keras.algorithms.spec import Spec
from jaxopt_keras.schedules.base import is_schedule
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
# OptimizerV2's accepted **kwargs.
LEGACY_KWARGS = ("clipnorm", "clipvalue", "lr", "decay", "global_clipnorm")
# Arguments of the legacy family that the current family refuses by name.
LEGACY_ONLY = ("decay", "gradient_aggregator", "gradient_transformers")
CLIP_ARGS = ("clipnorm", "clipvalue", "global_clipnorm")


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


def _legacy(spec: Spec, given: dict, kwargs: Mapping[str, Any]) -> dict:
    """OptimizerV2's rules: only ``LEGACY_KWARGS`` in ``**kwargs``; ``lr`` is an alias."""
    for k in kwargs:
        if k not in LEGACY_KWARGS:
            raise TypeError(
                f"Unexpected keyword argument passed to optimizer: {k}. Allowed kwargs are {set(LEGACY_KWARGS)}."
            )
    args = {**spec.defaults, **BASE_ARGS["legacy"], **spec.extra_args, **given, **kwargs}
    for k in ("lr", "decay"):
        if k in args:
            check_nonnegative(k, args[k])
    check_clipping(args, "legacy")
    if args["decay"] is None:
        args["decay"] = 0.0
    if "lr" in args:
        warnings.warn("The `lr` argument is deprecated, use `learning_rate` instead.", DeprecationWarning, stacklevel=5)
    args = spec.check_args(args)
    if "lr" in args:  # OptimizerV2 subclasses: `kwargs.get("lr", learning_rate)`
        args["learning_rate"] = args.pop("lr")
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
    check_clipping(args, "current")
    check_nonnegative("weight_decay", args["weight_decay"])
    check_accumulation_steps(args["gradient_accumulation_steps"])
    check_loss_scale_factor(args["loss_scale_factor"])
    if args["use_ema"]:
        check_ema_arguments(args["ema_momentum"], args["ema_overwrite_frequency"])
    return spec.check_args(args)


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
    if not args["gradient_accumulation_steps"]:
        args["gradient_accumulation_steps"] = None
    check_accumulation_steps(args["gradient_accumulation_steps"])
    check_loss_scale_factor(args["loss_scale_factor"])
    if args["use_ema"]:
        check_ema_arguments(args["ema_momentum"], args["ema_overwrite_frequency"], "keras3")
    check_clipping(args, "keras3")
    check_nonnegative("weight_decay", args["weight_decay"])
    return spec.check_args(args)


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
    given = {k: v for k, v in given.items() if k != "name"}
    if spec.family == "legacy":
        return _legacy(spec, given, kwargs)
    if spec.family == "keras3":
        return _keras3(spec, given, kwargs)
    return _current(spec, class_name, given, kwargs)
