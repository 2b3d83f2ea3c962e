"""Keras-style optimizer classes, mirroring ``tf.keras.optimizers``.

* ``jaxopt_keras.optimizers.<Class>``: the current family (``tf.keras.optimizers``
  since 2.11), one class per optimizer of the registry; also under
  ``jaxopt_keras.optimizers.experimental``.
* ``jaxopt_keras.optimizers.legacy.<Class>``: the OptimizerV2 family.
* ``jaxopt_keras.optimizers.keras3.<Class>``: the Keras 3 family.
* ``serialize``, ``deserialize``, ``get``; ``schedules``.

The layer's files: :mod:`~jaxopt_keras.optimizers.optimizer` (the object),
:mod:`~jaxopt_keras.optimizers.packed` (its packed step),
:mod:`~jaxopt_keras.optimizers.attributes` (hyperparameters as attributes),
:mod:`~jaxopt_keras.optimizers.variable` (``Variable``),
:mod:`~jaxopt_keras.optimizers.weights` (the weights list),
:mod:`~jaxopt_keras.optimizers.entries` (its entries' readers and writers),
:mod:`~jaxopt_keras.optimizers.families` (what differs per TF-Keras family),
:mod:`~jaxopt_keras.optimizers.family_mixins` (what the families share),
:mod:`~jaxopt_keras.optimizers.keras3_family` (the Keras 3 family),
:mod:`~jaxopt_keras.optimizers.names` (default names),
:mod:`~jaxopt_keras.optimizers.classes` (the classes from the registry),
:mod:`~jaxopt_keras.optimizers.config` and
:mod:`~jaxopt_keras.optimizers.serialization` (configs),
:mod:`~jaxopt_keras.optimizers.loss_scale`,
:mod:`~jaxopt_keras.optimizers.loss_scale_keras3` and
:mod:`~jaxopt_keras.optimizers.multi` (the wrappers).
"""

from jaxopt_keras.optimizers import classes as _classes
from jaxopt_keras.optimizers import experimental, keras3, legacy, schedules
from jaxopt_keras.optimizers.families import Optimizer
from jaxopt_keras.optimizers.serialization import deserialize, get, serialize

__all__ = ["Optimizer"] + list(_classes.classes("current")) + [
    "serialize",
    "deserialize",
    "get",
    "schedules",
    "legacy",
    "experimental",
    "keras3",
]


def __getattr__(name: str):
    return _classes.lookup("current", name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_classes.classes("current")))
