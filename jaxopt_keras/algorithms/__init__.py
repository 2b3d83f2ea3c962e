"""The eight Keras algorithms, each in its own module with both numerics families.

``LEGACY`` and ``CURRENT`` map Keras class names to their
:class:`~jaxopt_keras.algorithms.base.Numerics` descriptions.
"""

from jaxopt_keras.algorithms import (
    adadelta,
    adagrad,
    adam,
    adamax,
    ftrl,
    nadam,
    rmsprop,
    sgd,
)
from jaxopt_keras.algorithms.base import Numerics, OptimizerState

_MODULES = (sgd, adam, adamax, nadam, adagrad, adadelta, rmsprop, ftrl)

LEGACY: dict[str, Numerics] = {m.LEGACY.class_name: m.LEGACY for m in _MODULES}
CURRENT: dict[str, Numerics] = {m.CURRENT.class_name: m.CURRENT for m in _MODULES}

__all__ = ["LEGACY", "CURRENT", "Numerics", "OptimizerState"] + [m.__name__.rsplit(".", 1)[1] for m in _MODULES]
