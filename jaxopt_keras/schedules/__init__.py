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

from jaxopt_keras.schedules.base import LearningRateSchedule
from jaxopt_keras.schedules.decay import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    PiecewiseConstantDecay,
    PolynomialDecay,
)
from jaxopt_keras.schedules.serialization import deserialize, serialize

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
