"""Learning-rate schedules with Keras's arguments, configs and arithmetic.

Each schedule is a callable of the step count, jittable, returning a scalar
array, and computes Keras's values bit for bit in one of three numerics
(``NUMERICS``), each what one way of running Keras computes:

* ``"tf_function"``: TF-Keras inside ``tf.function`` (``model.fit``), after
  TensorFlow's grappler has rewritten the schedule's arithmetic
  (``_grappler.py``); the default of the legacy and current families;
* ``"tf_eager"``: TF-Keras run eagerly (``run_eagerly=True``, an eager
  training loop): the schedule's code operation by operation;
* ``"keras3"``: Keras 3 on the JAX backend under ``jit``; the default of the
  Keras 3 family.

``numerics=`` on a schedule picks one (it is not part of the config);
``None``, the default, lets the optimizer decide
(``jaxopt_keras.algorithms.driver.DEFAULT_NUMERICS``), and a schedule called
directly uses ``"tf_function"``.  Each schedule's module has its three
formulas side by side.

In the TF numerics the arithmetic runs, as in TF-Keras, in the dtype of
``initial_learning_rate``: float32 for a Python float, float64 for a
NumPy/JAX float64 value (when x64 is on).  Python numbers become tensors as
in TF (``tf.cast`` rounds a Python float to float32 first, a number meeting
a tensor in arithmetic is converted straight to its dtype).  The same
numbers come out eagerly, under ``jit`` and under ``vmap``: the helpers of
``_arith.py`` keep XLA from rewriting divisions and from fusing multiplies
and adds into FMAs.  The ``"keras3"`` numerics is Keras 3's ``jnp`` code as
it is, so it is what Keras 3 computes under ``jit`` (and, run eagerly, what
Keras 3 computes eagerly).  An integer ``initial_learning_rate`` is refused
with a ``TypeError``.

Reachable as ``jaxopt_keras.schedules`` and ``jaxopt_keras.optimizers.schedules``.
"""

from jaxopt_keras.schedules.base import NUMERICS, LearningRateSchedule
from jaxopt_keras.schedules.cosine import CosineDecay
from jaxopt_keras.schedules.cosine_restarts import CosineDecayRestarts
from jaxopt_keras.schedules.exponential import ExponentialDecay
from jaxopt_keras.schedules.inverse_time import InverseTimeDecay
from jaxopt_keras.schedules.piecewise import PiecewiseConstantDecay
from jaxopt_keras.schedules.polynomial import PolynomialDecay
from jaxopt_keras.schedules.serialization import deserialize, serialize

__all__ = [
    "NUMERICS",
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
