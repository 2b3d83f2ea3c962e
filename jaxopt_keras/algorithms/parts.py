"""The parts an algorithm's :class:`~jaxopt_keras.algorithms.spec.Spec` is declared with.

Per parameter, its slots (:class:`Slot`, with their defaults :func:`zeros`,
:func:`always`, :func:`listed_always`) and, for a routed spec, its
:class:`Route` (the math, slots and weight-decay rate of one parameter); per
optimizer, its scalar variables (:class:`Scalar`); per step, the arguments the
math branches on (:class:`Static`) and the scalars every parameter of a dtype
shares (:class:`Prepared`: :data:`STEP`, :func:`complement`).  The spec
(:mod:`jaxopt_keras.algorithms.spec`) gathers them; each algorithm module
declares its own with them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax

from jaxopt_keras.core.state import filled, local_step, slot_dtype


def zeros(param: jax.Array, args: Mapping[str, Any]) -> jax.Array:
    """Slot initializer: zeros in the slot's dtype (:func:`slot_dtype`)."""
    return filled(param, 0, slot_dtype(param, args))


def always(args: Mapping[str, Any]) -> bool:
    """A slot condition that always holds."""
    return True


def listed_always(shape: tuple[int, ...]) -> bool:
    """Every parameter's slot is listed in Keras's weights."""
    return True


@dataclasses.dataclass(frozen=True)
class Slot:
    """A per-parameter optimizer variable ("slot" in Keras).

    Attributes:
      name: Keras's slot name (``"m"``, ``"accumulator"``, ...).
      init: ``init(param, args) -> array`` with the parameter's shape, in
        :func:`slot_dtype` (the parameter's dtype unless ``slot_dtype`` is given).
      when: ``when(args) -> bool``; the slot exists only if true (Adam's
        ``vhat`` only with ``amsgrad``).
      listed: ``listed(param_shape) -> bool``; whether Keras lists this
        parameter's slot in its weights (Adafactor's factored ``r``/``c``
        exist only for parameters of rank >= 2).
      shape: ``shape(param_shape)``, the shape ``init`` gives (``None``: the
        parameter's); the step checks a given state against it.
      placeholder: ``placeholder(param_shape) -> bool``; a stateless slot Keras 3 makes outside ``add_variable`` (Adafactor's
        int32 ``r``/``c`` below rank 2), unlisted when a Keras 3 ``LossScaleOptimizer`` builds the optimizer untracked.
    """

    name: str
    init: Callable[[jax.Array, Mapping[str, Any]], jax.Array] = zeros
    when: Callable[[Mapping[str, Any]], bool] = always
    listed: Callable[[tuple[int, ...]], bool] = listed_always
    shape: Callable[[tuple[int, ...]], tuple[int, ...]] | None = None
    placeholder: Callable[[tuple[int, ...]], bool] | None = None


@dataclasses.dataclass(frozen=True)
class Scalar:
    """A per-optimizer scalar variable (legacy Nadam's ``momentum_cache``).

    Stored in the dtype of the first parameter, as Keras does.

    Attributes:
      name: Keras's weight name.
      initial: its starting value.
      in_weights: whether Keras lists it in ``optimizer.weights``.
    """

    name: str
    initial: float
    in_weights: bool = True


@dataclasses.dataclass(frozen=True)
class Static:
    """A non-numeric constructor argument the math branches on in Python.

    Attributes:
      name: the field of :class:`~jaxopt_keras.algorithms.spec.Coefficients` it fills.
      value: ``value(args)``, computed once from the checked constructor
        arguments; by default ``args[name]``.
    """

    name: str
    value: Callable[[Mapping[str, Any]], Any] | None = None

    def of(self, args: Mapping[str, Any]) -> Any:
        return args[self.name] if self.value is None else self.value(args)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A scalar of the step that is the same for every parameter of a dtype.

    The driver computes it once per step and parameter dtype, after the
    hyperparameters, the learning rate, ``iterations`` and the statics, and
    puts it in :class:`~jaxopt_keras.algorithms.spec.Coefficients` for the per-parameter math to read:
    Adam's bias-corrected step size, ``1 - beta_1``.  The math does the same
    operations on the same values as if each parameter computed them (so the
    numbers are identical), but the step's program holds them once: a smaller program, compiled faster.

    Attributes:
      name: the field of :class:`~jaxopt_keras.algorithms.spec.Coefficients` it fills.
      value: ``value(c) -> array``, from the coefficients of that dtype
        (``c.learning_rate.dtype``), the spec's earlier prepared values included.
    """

    name: str
    value: Callable[[Any], Any]


def next_step(c: Any) -> jax.Array:
    """Keras's ``local_step``: ``tf.cast(iterations + 1, dtype)`` in the coefficients' dtype."""
    return local_step(c.iterations, 1, c.learning_rate.dtype)


# The ``t`` most algorithms with bias corrections read.
STEP = Prepared("t", next_step)


def complement(name: str) -> Prepared:
    """``one_minus_<name> = 1 - <name>``, on the hyperparameter in the step's
    dtype (a float32 variable's ``1 - beta_1`` in TF-Keras's kernels; the
    current family's Python-float complements are host-side :class:`~jaxopt_keras.core.hyperparams.Derived`)."""
    return Prepared(f"one_minus_{name}", lambda c: 1 - getattr(c, name))


UpdateFn = Callable[[jax.Array, "jax.Array | None", Any, Any], tuple[Any, Any]]


@dataclasses.dataclass(frozen=True)
class Route:
    """How the driver steps one parameter: a routed spec picks one per parameter.

    Most algorithms step every parameter alike (their spec's ``update``);
    Keras 3's Muon steps 2-D matrices with Newton-Schulz and the others with
    AdamW, with their own slots and their own weight-decay rate.

    Attributes:
      update: the math for this parameter, as :attr:`~jaxopt_keras.algorithms.spec.Spec.update`.
      slots: the slots this parameter has (``None``: every active slot); the
        others hold ``None`` in the state for it and are not in the weights list.
      weight_decay: the argument holding this parameter's decoupled
        weight-decay rate (one of the spec's ``decay_rates``; no decay when
        that argument is ``None``).
      sparse_update: the row-sparse math, as :attr:`~jaxopt_keras.algorithms.spec.Spec.sparse_update`.
    """

    update: UpdateFn
    slots: tuple[str, ...] | None = None
    weight_decay: str = "weight_decay"
    sparse_update: UpdateFn | None = None


RouteFn = Callable[[str, tuple[int, ...], Mapping[str, Any]], Route]
