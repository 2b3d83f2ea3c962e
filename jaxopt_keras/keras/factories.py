"""The functional factories (``jaxopt_keras.adam``, ``jaxopt_keras.legacy.adam``, ...), made from the registry.

Each factory takes its Keras class's constructor arguments and returns the
transformation :func:`~jaxopt_keras.keras.pipeline.build_transformation`
builds from them.  Its signature is generated from the spec (the algorithm's
arguments in Keras's order, then the family's shared arguments, keyword-only,
then ``**kwargs``), so ``help()``, ``inspect.signature`` and the stubs that
editors read (``jaxopt_keras/__init__.pyi``) show Keras's arguments without
an argument list written out per optimizer.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import jax
import numpy as np

from jaxopt_keras.algorithms.spec import FUNCTIONAL_ONLY, STATE_ONLY_HYPERPARAMS, Spec
from jaxopt_keras.core.hyperparams import with_hyperparams
from jaxopt_keras.core.transform import GradientTransformation, picklable
from jaxopt_keras.keras.arguments import check_arguments, refuse_zero_arg_callables
from jaxopt_keras.keras.base_args import BASE_ARGS, POSITIONAL_BASE_ARGS
from jaxopt_keras.keras.pipeline import build_transformation
from jaxopt_keras.registry import Entry, entries, find

# Where each family's factories are published.
MODULES = {"legacy": "jaxopt_keras.legacy", "current": "jaxopt_keras", "keras3": "jaxopt_keras.keras3"}
KERAS_MODULES = {"legacy": "tf.keras.optimizers.legacy", "current": "tf.keras.optimizers", "keras3": "keras.optimizers"}
FAMILY_NAMES = {"legacy": "TF-Keras, legacy", "current": "TF-Keras >= 2.11", "keras3": "Keras 3"}

_P = inspect.Parameter


def signature(spec: Spec, class_name: str, functional: bool = True) -> inspect.Signature:
    """The constructor signature of ``class_name`` in ``spec``'s family.

    Keras's positional arguments in Keras's order: the algorithm's, then
    (TF-Keras >= 2.11, Keras 3) the family's shared ones
    (:data:`~jaxopt_keras.keras.arguments.POSITIONAL_BASE_ARGS`), with
    ``name`` where Keras puts it; then the other shared arguments and the
    class's own extras (keyword-only), then ``**kwargs``.  The class
    (``functional=False``) leaves out the factories' own arguments (a routed
    spec's ``paths``).
    """
    shared = {**BASE_ARGS[spec.family], **spec.base_defaults, **spec.extra_args}
    if not functional:
        shared = {k: v for k, v in shared.items() if k not in FUNCTIONAL_ONLY}
    own = list(spec.defaults.items())
    own += [(k, shared[k]) for k in POSITIONAL_BASE_ARGS[spec.family] if k in shared and k not in spec.defaults]
    at = len(own) if spec.name_index is None else spec.name_index
    own.insert(at, ("name", None if spec.family == "keras3" else class_name))  # Keras 3 names itself
    params = [_P(k, _P.POSITIONAL_OR_KEYWORD, default=v, annotation=_annotation(k, v)) for k, v in own]
    taken = {k for k, _ in own}
    params += [_P(k, _P.KEYWORD_ONLY, default=v, annotation=_annotation(k, v)) for k, v in shared.items() if k not in taken]
    params.append(_P("kwargs", _P.VAR_KEYWORD, annotation=Any))
    return inspect.Signature(params, return_annotation=GradientTransformation)


_ANNOTATIONS = {
    "learning_rate": Any,
    "slot_dtype": Any,
    "name": "str | None",
    "ema_overwrite_frequency": "int | None",
    "gradient_accumulation_steps": "int | None",
    "paths": Any,
    "weight_decay": "float | None",
    "adam_weight_decay": "float | None",
    "exclude_layers": "list[str] | None",
    "rms_rate": "float | None",
    "adam_lr_ratio": float,
    "ns_steps": int,
    "warmup_steps": int,
}


def _annotation(name: str, default: Any) -> Any:
    if name in _ANNOTATIONS:
        return _ANNOTATIONS[name]
    if isinstance(default, bool):
        return bool
    if isinstance(default, int) and not isinstance(default, bool):
        return "int | None"
    if isinstance(default, float):
        return float
    return "float | None"


def bind(sig: inspect.Signature, args: tuple, kwargs: dict) -> tuple[dict, dict]:
    """``(named arguments, **kwargs)`` of a call, defaults filled in.

    ``kwargs={}``, an empty ``**kwargs`` passed by name, is what
    ``optax.inject_hyperparams`` passes after binding our signature: it is
    taken as no extra arguments.

    Raises:
      TypeError: too many positional arguments, or one given twice.
    """
    if isinstance(kwargs.get("kwargs"), dict) and not kwargs["kwargs"]:
        kwargs = {k: v for k, v in kwargs.items() if k != "kwargs"}
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    named = dict(bound.arguments)
    return named, dict(named.pop("kwargs", {}))


# Numeric arguments read only by ``init`` (a slot's starting value): a traced
# value at update time does not matter.
INIT_ONLY = ("initial_accumulator_value",)


def split_injected(spec: Spec, named: dict) -> tuple[dict, dict]:
    """``(arguments to build from, hyperparameters injected into the state)``.

    A numeric argument given as a JAX array, as ``optax.inject_hyperparams``
    passes them, is a value for the state's hyperparameter of that name at
    every step (:func:`~jaxopt_keras.core.hyperparams.with_hyperparams`); the
    transformation is built from its value, or under a trace from the
    default.  A traced value of an argument the step does not read from the
    state (``clipnorm``, the legacy ``decay``, ...) would be lost, so it is
    an error.

    Raises:
      TypeError: a traced value for an argument the step does not read from
        the state, or for one whose value decides which slots exist (SGD's and
        RMSprop's ``momentum``: a slot when above 0), which a trace cannot
        decide: built from the default, the slot would be dropped or never made.
    """
    # The state's hyperparameters the step reads (not the legacy `decay`, nor
    # Nadam's `schedule_decay`: the step reads the constructor's value).
    held = {n for n in spec.hyperparam_names() if n not in STATE_ONLY_HYPERPARAMS} | {"weight_decay", "ema_momentum"}
    defaults = {**BASE_ARGS[spec.family], **spec.defaults, **spec.extra_args}
    deciding = {getattr(s.when, "decided_by", None) for s in spec.slots}  # arguments a slot's existence reads
    build, injected = dict(named), {}
    for k, v in named.items():
        if not isinstance(v, jax.Array):
            continue
        traced = isinstance(v, jax.core.Tracer)
        if traced and k in deciding:
            raise TypeError(
                f"`{k}` received a traced value, but its value decides which slots the optimizer keeps (a `{k}` slot "
                f"when it is above 0), which a trace cannot decide; with optax.inject_hyperparams, name it in "
                f"`static_args` (static_args=({k!r},)): it injects every numeric argument of the signature, the "
                "defaults you did not pass included."
            )
        if k in held:
            injected[k] = v
        elif traced and k not in INIT_ONLY:
            raise TypeError(
                f"`{k}` received a traced value, but it is not a hyperparameter the optimizer's step reads from its state; "
                f"with optax.inject_hyperparams, name it in `static_args` (static_args=({k!r},)): it injects every "
                "numeric argument of the signature, the defaults you did not pass included."
            )
        if traced:
            build[k] = 0.0 if defaults.get(k) is None else defaults[k]
        else:
            build[k] = np.asarray(v).item()
    return build, injected


def _doc(entry: Entry, spec: Spec) -> str:
    math = inspect.getdoc(spec.update) or ""
    return (
        f"{entry.class_name} as ``{KERAS_MODULES[spec.family]}.{entry.class_name}`` "
        f"({FAMILY_NAMES[spec.family]}) computes it.\n\n"
        f"Takes that class's constructor arguments and returns its transformation "
        f"``(init, update)``: clipping, weight decay and the rest of Keras's pipeline "
        f"in Keras's order around this step::\n\n"
        + "\n".join("    " + line for line in math.splitlines())
        + "\n"
    )


_CACHE: dict[tuple[str, str], Callable[..., GradientTransformation]] = {}


def make_factory(entry: Entry, family: str) -> Callable[..., GradientTransformation]:
    """The factory of ``entry`` in ``family`` (one object per pair, so it pickles by name)."""
    key = (entry.class_name, family)
    if key in _CACHE and _CACHE[key].entry is entry:
        return _CACHE[key]
    spec = entry.specs[family]
    sig = signature(spec, entry.class_name)

    def factory(*args: Any, **kwargs: Any) -> GradientTransformation:
        named, extra = bind(sig, args, kwargs)
        named, injected = split_injected(spec, named)
        checked = check_arguments(spec, entry.class_name, named, extra)
        refuse_zero_arg_callables(spec, entry.class_name, checked)
        tx = build_transformation(spec, checked, named["name"] or entry.class_name)
        return with_hyperparams(tx, injected) if injected else tx

    factory.__name__ = factory.__qualname__ = entry.function
    factory.__module__ = MODULES[family]
    factory = picklable(factory)  # its result pickles as this call (the factory pickles by name)
    factory.entry = entry
    factory.__signature__ = sig
    factory.__name__ = factory.__qualname__ = entry.function
    factory.__module__ = MODULES[family]
    factory.__doc__ = _doc(entry, spec)
    _CACHE[key] = factory
    return factory


def names(family: str) -> list[str]:
    """The function names published for ``family``, in registry order."""
    return [e.function for e in entries(family)]


def lookup(family: str, name: str) -> Callable[..., GradientTransformation]:
    """The factory called ``name`` in ``family`` (a module ``__getattr__``'s body).

    Raises:
      AttributeError: no such optimizer in that family.
    """
    entry = find(name, family)
    if entry is None or entry.function != name:
        raise AttributeError(f"module {MODULES[family]!r} has no attribute {name!r}")
    return make_factory(entry, family)
