"""Learning-rate schedules with TF-Keras's arguments, configs and arithmetic.

Each schedule is a callable of the step count, jittable, returning a scalar
array.  As in TF-Keras, the arithmetic runs in the dtype of
``initial_learning_rate``: float32 for a Python float (``tf.convert_to_tensor``
of a Python float), float64 for a NumPy/JAX float64 value (when x64 is on);
an integer ``initial_learning_rate`` is refused with a ``TypeError`` (TF-Keras
fails on it too, deep in its arithmetic).  Python numbers become tensors as in TF (``tf.cast`` rounds a Python float to
float32 first, a number meeting a tensor in arithmetic is converted straight
to its dtype), and the order of operations follows
``tf_keras.optimizers.schedules``, so the algebraic schedules (piecewise
constant, inverse time, polynomial with ``power=1``) agree with TF-Keras bit
for bit.  Those using ``pow``/``cos``/``log`` depend on XLA's and Eigen's
implementations of those functions; on x86-64 with jax 0.10 and TF 2.21 they
too agree bit for bit with TF-Keras evaluated one step at a time (TF itself
differs in the last bits when handed a vector of steps).

The same numbers come out eagerly, under ``jit`` and under ``vmap``: the
helpers below keep XLA from rewriting divisions and from fusing multiplies
and adds into FMAs, which it otherwise does when the schedule is traced.

Reachable as ``jaxopt_keras.schedules`` and ``jaxopt_keras.optimizers.schedules``.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras._serialization import resolve_class

__all__ = [
    "LearningRateSchedule",
    "ExponentialDecay",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "InverseTimeDecay",
    "CosineDecay",
    "CosineDecayRestarts",
    "serialize",
    "deserialize",
]


def _tf_dtype(value: Any) -> np.dtype:
    """The dtype ``tf.convert_to_tensor(value)`` gives (before JAX canonicalization).

    Arrays and NumPy scalars keep their dtype.  They are looked at first
    because ``np.float64`` is a subclass of Python ``float`` yet converts to
    float64, not float32.  A Python ``int`` is int32 if it fits, else int64.
    """
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        if isinstance(value, bool):
            dtype = np.bool_
        elif isinstance(value, int):
            info = np.iinfo(np.int32)
            dtype = np.int32 if info.min <= value <= info.max else np.int64
        elif isinstance(value, float):
            dtype = np.float32
        else:
            dtype = np.asarray(value).dtype
    return np.dtype(dtype)


def _tensor_dtype(value: Any) -> np.dtype:
    """:func:`_tf_dtype`, canonicalized (float64 -> float32 unless x64 is on)."""
    return np.dtype(jax.dtypes.canonicalize_dtype(_tf_dtype(value)))


def _float_dtype(value: Any, schedule: str) -> np.dtype:
    """The dtype of ``initial_learning_rate``, which must be a floating one.

    TF-Keras fails on an integer learning rate (e.g. ``0`` instead of ``0.0``)
    inside its arithmetic; here that is a clear error rather than numbers
    computed with ``decay_rate`` & co. truncated to integers.
    """
    dtype = _tensor_dtype(value)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{schedule}: `initial_learning_rate` must be a float (Python float, or a "
            f"float32/float64 scalar), received {value!r} of dtype {dtype}; the schedule "
            "computes in its dtype, as TF-Keras does. Write e.g. 0.0 rather than 0."
        )
    return dtype


def _boundary(b: Any, x_dtype: np.dtype) -> jax.Array:
    """``tf.cast(tf.convert_to_tensor(b), step.dtype)`` without integer overflow.

    TF makes a Python int beyond int32 an int64 tensor and compares it with
    its int64 step.  An integer step here may be int32 (x64 off), so a
    boundary outside the step dtype's range is clamped to it, which gives the
    same comparisons for every representable step; a float boundary is
    truncated toward zero first, as ``tf.cast`` does.
    """
    if isinstance(b, jax.Array):
        return b.astype(x_dtype)
    value = b if isinstance(b, int) else np.asarray(b, _tensor_dtype(b))
    if jnp.issubdtype(x_dtype, jnp.integer):
        info = jnp.iinfo(x_dtype)
        if not isinstance(value, int):
            value = int(np.clip(np.trunc(value), -(2.0**64), 2.0**64))  # no inf for int()
        value = min(max(value, int(info.min)), int(info.max))
    return jnp.asarray(np.asarray(value, x_dtype))


def _convert(value: Any, dtype: Any) -> jax.Array:
    """``tf.convert_to_tensor(value, dtype)``: one rounding, straight to ``dtype``.

    What TF does to a Python number that meets a tensor in an arithmetic
    operation, and to ``tf.constant(math.pi, dtype=dtype)``.
    """
    if isinstance(value, jax.Array):
        return value.astype(dtype)
    return jnp.asarray(np.asarray(value, dtype))


def _cast(value: Any, dtype: Any) -> jax.Array:
    """``tf.cast(value, dtype)``: ``value`` becomes a tensor of its own dtype first.

    So a Python float is rounded to float32 before it is cast: in a float64
    schedule ``tf.cast(0.96, tf.float64)`` is ``float64(float32(0.96))``, not
    ``0.96``.
    """
    if isinstance(value, jax.Array):
        return value.astype(dtype)
    return jnp.asarray(_cast_np(value, dtype))


def _cast_np(value: Any, dtype: Any) -> np.ndarray:
    """:func:`_cast` computed with NumPy, for a decision taken at trace time."""
    if isinstance(value, jax.Array):  # concrete only
        return np.asarray(value).astype(dtype)
    return np.asarray(np.asarray(value, _tf_dtype(value)), dtype)


def _step(step: Any, dtype: Any) -> jax.Array:
    return jnp.asarray(step).astype(dtype)


# XLA would otherwise compute some schedules differently from TF-Keras (and
# from themselves run eagerly) when jitted, which is how optimizers call them.
# Three rewrites matter; each helper below defeats one of them.
#
# 1. ``x / c`` for a compile-time constant ``c`` becomes ``x * (1 / c)``, and
#    ``log(c)``, ``c1 - c2`` ... are folded at compile time.  The reciprocal is
#    not exact: ``300 * float32(1 / 300) != 1``, so ``(1 - step / decay_steps)
#    ** 0.5`` at ``step == decay_steps`` was ``NaN`` under jit.  -> `_opaque`.
# 2. ``x / pow(a, b)`` becomes ``x * pow(a, -b)`` and ``x / broadcast(y)``
#    (a scalar divisor of a batch of steps, e.g. under ``vmap``) becomes
#    ``x * broadcast(1 / y)``.  -> `_opaque` on the power, `_div`.
# 3. XLA:CPU lets LLVM contract a multiply feeding an add into one FMA (one
#    rounding where TF rounds twice).  -> `_mul_add`.


def _opaque(*values: jax.Array) -> tuple[jax.Array, ...]:
    """The values, hidden from XLA's algebraic simplifier (an optimization barrier).

    Constants passed through it are runtime values to the simplifier, so it
    neither folds them nor rewrites divisions by them.
    """
    return jax.lax.optimization_barrier(values)


def _runtime_zero(s: jax.Array) -> jax.Array:
    """A zero XLA and LLVM cannot prove is zero: ``s * 0`` (``0`` where ``s`` is not finite).

    Its sign follows ``s`` and is unknown at compile time, so ``x + zero``
    cannot be folded to ``x`` (``-0.0 + 0.0`` is ``+0.0``).  ``s - s`` would not
    do: for a step converted from an integer, LLVM knows it is ``+0.0``.
    """
    return jnp.where(jnp.isfinite(s), s * 0, jnp.zeros_like(s))


def _mul_add(a: jax.Array, b: jax.Array, c: jax.Array, zero: jax.Array) -> jax.Array:
    """``a * b + c`` with the product rounded on its own, as TF computes it.

    Adding ``zero`` (from :func:`_runtime_zero`) between the multiply and the
    add leaves LLVM nothing to contract but ``fma(a, b, zero)``, which is the
    product correctly rounded.  Equal to TF's result except that a product of
    ``-0.0`` may count as ``+0.0``, which only shows when ``c`` is ``-0.0``.
    """
    return (a * b + zero) + c


def _div(a: jax.Array, b: jax.Array, zero: jax.Array) -> jax.Array:
    """``a / b`` with a divisor XLA cannot see as a constant or a broadcast.

    ``b + zero`` is ``b`` (up to the sign of a zero ``b``) but has the step's
    shape, so ``x / broadcast(b)`` is not turned into ``x * (1 / b)``.
    """
    return a / (b + zero)


class LearningRateSchedule:
    """Base class: a serializable function of the step count.

    Subclasses implement ``__call__(step)`` and ``get_config()``; the config
    holds exactly the constructor's arguments, so
    ``cls.from_config(s.get_config())`` rebuilds ``s``.
    """

    def __call__(self, step: Any) -> jax.Array:  # pragma: no cover - abstract
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `__call__(self, step)`."
        )

    def get_config(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()` "
            "in order to be serializable."
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "LearningRateSchedule":
        """Rebuilds a schedule from :meth:`get_config` output."""
        return cls(**config)

    def __eq__(self, other: Any) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """``lr(step) = initial_learning_rate * decay_rate ** (step / decay_steps)``.

    With ``staircase=True`` the exponent is ``floor(step / decay_steps)``.

    Args:
      initial_learning_rate: the rate at step 0.
      decay_steps: steps per factor of ``decay_rate``.
      decay_rate: the decay factor.
      staircase: decay in discrete intervals.
      name: kept for the config.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step: Any) -> jax.Array:
        dtype = _float_dtype(self.initial_learning_rate, "ExponentialDecay")
        initial, decay_steps, decay_rate, s = _opaque(
            _convert(self.initial_learning_rate, dtype),
            _cast(self.decay_steps, dtype),
            _cast(self.decay_rate, dtype),
            _step(step, dtype),
        )
        p = _div(s, decay_steps, _runtime_zero(s))
        if self.staircase:
            p = jnp.floor(p)
        return initial * jnp.power(decay_rate, p)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[i]`` for ``boundaries[i-1] < step <= boundaries[i]``.

    ``values[0]`` up to and including ``boundaries[0]``, ``values[-1]`` after
    ``boundaries[-1]``.  As in TF-Keras, boundaries are cast to the step's
    dtype before comparing.

    Args:
      boundaries: increasing step boundaries.
      values: one more value than boundaries.
      name: kept for the config.

    Raises:
      ValueError: ``len(boundaries) != len(values) - 1``.
    """

    def __init__(self, boundaries: Sequence, values: Sequence, name=None):
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                f"values={values} of length {len(values)}."
            )
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step: Any) -> jax.Array:
        x = jnp.asarray(step)
        values = [_convert(v, _tensor_dtype(v)) for v in self.values]
        out_dtype = values[0].dtype
        bounds = [_boundary(b, x.dtype) for b in self.boundaries]
        result = values[0]
        # Walk from the top: the first matching interval wins, as in tf.case.
        result = jnp.where(x > bounds[-1], values[-1].astype(out_dtype), result)
        for low, high, v in zip(bounds[:-1], bounds[1:], values[1:-1]):
            result = jnp.where((x > low) & (x <= high), v.astype(out_dtype), result)
        return jnp.where(x <= bounds[0], values[0], result)

    def get_config(self) -> dict:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """``(lr0 - end) * (1 - step / decay_steps) ** power + end``.

    ``step`` is clipped to ``decay_steps``; with ``cycle=True`` the horizon
    grows instead to ``decay_steps * ceil(step / decay_steps)``.

    Args:
      initial_learning_rate: ``lr0``.
      decay_steps: the horizon.
      end_learning_rate: the final rate.
      power: the polynomial's power.
      cycle: restart beyond ``decay_steps``.
      name: kept for the config.
    """

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        end_learning_rate=0.0001,
        power=1.0,
        cycle=False,
        name=None,
    ):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def __call__(self, step: Any) -> jax.Array:
        dtype = _float_dtype(self.initial_learning_rate, "PolynomialDecay")
        initial, end, power, s, decay_steps = _opaque(
            _convert(self.initial_learning_rate, dtype),
            _cast(self.end_learning_rate, dtype),
            _cast(self.power, dtype),
            _step(step, dtype),
            _cast(self.decay_steps, dtype),
        )
        zero = _runtime_zero(s)
        if self.cycle:
            # The first multiple of decay_steps above step.  TF divides by the
            # Python `self.decay_steps` here (converted, not cast).
            (raw_decay_steps,) = _opaque(_convert(self.decay_steps, dtype))
            multiplier = jnp.where(s == 0, jnp.asarray(1.0, dtype), jnp.ceil(_div(s, raw_decay_steps, zero)))
            decay_steps = decay_steps * multiplier
        else:
            s = jnp.minimum(s, decay_steps)
        p = _div(s, decay_steps, zero)
        return _mul_add(initial - end, jnp.power(1 - p, power), end, zero)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class InverseTimeDecay(LearningRateSchedule):
    """``lr0 / (1 + decay_rate * step / decay_steps)``.

    With ``staircase=True``, ``step / decay_steps`` is floored.

    Args:
      initial_learning_rate: ``lr0``.
      decay_steps: steps per unit of decay.
      decay_rate: the decay rate.
      staircase: decay in discrete intervals.
      name: kept for the config.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step: Any) -> jax.Array:
        dtype = _float_dtype(self.initial_learning_rate, "InverseTimeDecay")
        initial, decay_steps, decay_rate, s = _opaque(
            _convert(self.initial_learning_rate, dtype),
            _cast(self.decay_steps, dtype),
            _cast(self.decay_rate, dtype),
            _step(step, dtype),
        )
        zero = _runtime_zero(s)
        p = _div(s, decay_steps, zero)
        if self.staircase:
            p = jnp.floor(p)
        denom = _mul_add(decay_rate, p, jnp.asarray(1, dtype), zero)
        return _div(initial, denom, zero)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class CosineDecay(LearningRateSchedule):
    """Cosine decay, optionally after a linear warmup.

    Without warmup (``warmup_target=None``)::

        s = min(step, decay_steps)
        lr = lr0 * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)

    With warmup, the rate rises linearly from ``lr0`` to ``warmup_target`` over
    ``warmup_steps``, then decays from ``warmup_target`` as above.

    Args:
      initial_learning_rate: ``lr0``.
      decay_steps: length of the decay.
      alpha: the floor, as a fraction of the peak rate.
      name: kept for the config.
      warmup_target: the rate reached after warmup, or ``None`` for no warmup.
      warmup_steps: length of the warmup.
    """

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        alpha=0.0,
        name=None,
        warmup_target=None,
        warmup_steps=0,
    ):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target

    @staticmethod
    def _decay(s, decay_steps, peak, one_minus_alpha, alpha, pi, zero):
        fraction = _div(s, decay_steps, zero)
        cosine = 0.5 * (1.0 + jnp.cos(pi * fraction))
        decayed = _mul_add(one_minus_alpha, cosine, alpha, zero)
        return peak * decayed

    def __call__(self, step: Any) -> jax.Array:
        dtype = _float_dtype(self.initial_learning_rate, "CosineDecay")
        # TF-Keras computes `(1 - self.alpha) * cosine + self.alpha` with Python
        # numbers, converted straight to `dtype` (no float32 detour).
        initial, decay_steps, one_minus_alpha, alpha, pi, s = _opaque(
            _convert(self.initial_learning_rate, dtype),
            _cast(self.decay_steps, dtype),
            _convert(1 - self.alpha, dtype),
            _convert(self.alpha, dtype),
            _convert(math.pi, dtype),
            _step(step, dtype),
        )
        zero = _runtime_zero(s)
        if self.warmup_target is None:
            s = jnp.minimum(s, decay_steps)
            return self._decay(s, decay_steps, initial, one_minus_alpha, alpha, pi, zero)
        target, warmup_steps = _opaque(
            _cast(self.warmup_target, dtype), _cast(self.warmup_steps, dtype)
        )
        s = jnp.minimum(s, decay_steps + warmup_steps)
        # TF's tf.cond picks one branch; both are computed here, the other discarded.
        warm = _mul_add(target - initial, _div(s, warmup_steps, zero), initial, zero)
        cool = self._decay(s - warmup_steps, decay_steps, target, one_minus_alpha, alpha, pi, zero)
        return jnp.where(s < warmup_steps, warm, cool)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR).

    Period ``i`` lasts ``first_decay_steps * t_mul**i`` steps and peaks at
    ``lr0 * m_mul**i``; within a period at fraction ``f``::

        lr = lr0 * ((1 - alpha) * 0.5 * m_mul**i * (1 + cos(pi * f)) + alpha)

    Args:
      initial_learning_rate: ``lr0``.
      first_decay_steps: length of the first period.
      t_mul: growth of the period length.
      m_mul: growth of the peak rate.
      alpha: the floor, as a fraction of ``lr0``.
      name: kept for the config.
    """

    def __init__(
        self,
        initial_learning_rate,
        first_decay_steps,
        t_mul=2.0,
        m_mul=1.0,
        alpha=0.0,
        name=None,
    ):
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = name

    def __call__(self, step: Any) -> jax.Array:
        dtype = _float_dtype(self.initial_learning_rate, "CosineDecayRestarts")
        # TF's tf.cond(t_mul == 1.0, ...) on the cast value, decided here when
        # tracing (so `t_mul` cannot be a traced value).
        geometric = not bool(_cast_np(self._t_mul, dtype) == 1.0)
        initial, first, alpha, t_mul, m_mul, pi, s = _opaque(
            _convert(self.initial_learning_rate, dtype),
            _cast(self.first_decay_steps, dtype),
            _cast(self.alpha, dtype),
            _cast(self._t_mul, dtype),
            _cast(self._m_mul, dtype),
            _convert(math.pi, dtype),
            _step(step, dtype),
        )
        zero = _runtime_zero(s)
        fraction = _div(s, first, zero)
        if not geometric:
            i_restart = jnp.floor(fraction)
            fraction = fraction - i_restart
        else:
            # 1 - fraction * (1 - t_mul), without an FMA.
            log_arg = _mul_add(-fraction, 1.0 - t_mul, jnp.asarray(1.0, dtype), zero)
            i_restart = jnp.floor(_div(jnp.log(log_arg), jnp.log(t_mul), zero))
            # Hidden, or XLA rewrites `x / t_mul**i` as `x * t_mul**-i`.
            (t_pow,) = _opaque(t_mul**i_restart)
            sum_r = _div(1.0 - t_pow, 1.0 - t_mul, zero)
            fraction = _div(fraction - sum_r, t_pow, zero)
        m_fac = m_mul**i_restart
        cosine = 0.5 * m_fac * (1.0 + jnp.cos(pi * fraction))
        decayed = _mul_add(1 - alpha, cosine, alpha, zero)
        return initial * decayed

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self._t_mul,
            "m_mul": self._m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }


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
      for the same schedule: for a subclass of your own, ``module`` is its
      module and ``registered_name`` its name, as TF-Keras writes for an
      unregistered class.
    """
    if not isinstance(schedule, LearningRateSchedule):
        raise ValueError(f"Expected a LearningRateSchedule, received {schedule!r}.")
    cls = type(schedule)
    name = cls.__name__
    if use_legacy_format:
        return {"class_name": name, "config": schedule.get_config()}
    builtin = _SCHEDULES.get(name) is cls
    return {
        "module": "keras.optimizers.schedules" if builtin else cls.__module__,
        "class_name": name,
        "config": schedule.get_config(),
        "registered_name": None if builtin else name,
    }


def deserialize(
    config: Mapping[str, Any],
    custom_objects: Mapping[str, Any] | None = None,
    use_legacy_format: bool = False,
) -> LearningRateSchedule:
    """Builds a schedule from a Keras serialization.

    Accepts TF-Keras 2.x (legacy and new) and Keras 3 forms.  Only the classes
    above, or those in ``custom_objects``, are ever built; nothing named in the
    config is imported.

    Args:
      config: a dict as produced by :func:`serialize` or by Keras.
      custom_objects: name -> class for user-defined schedules.
      use_legacy_format: accepted for signature compatibility; both forms are
        always understood.

    Returns:
      The schedule.

    Raises:
      ValueError: unknown class, foreign ``module``, a ``registered_name``
        naming another class, a malformed config, or (for the classes above)
        a config key that is not a constructor argument.  The message names
        the offending field.
    """
    del use_legacy_format
    cls, inner = resolve_class(
        config,
        known=_SCHEDULES,
        custom_objects=custom_objects,
        allowed_modules=_SCHEDULE_MODULES,
        what="learning rate schedule",
    )
    if _SCHEDULES.get(cls.__name__) is cls:
        params = inspect.signature(cls.__init__).parameters
        for key in inner:
            if not isinstance(key, str) or key == "self" or key not in params:
                raise ValueError(
                    f"Field 'config' of the serialized {cls.__name__} has the key {key!r}, "
                    f"which is not an argument of {cls.__name__}: {sorted(set(params) - {'self'})}."
                )
    if hasattr(cls, "from_config"):
        return cls.from_config(inner)
    return cls(**inner)
