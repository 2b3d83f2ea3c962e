"""Keras files in, JAX optimizer states out, and back: porting needs nothing but the file.

::

    ckpt = jaxopt_keras.io.read_keras("model.h5")       # config, family, iterations, weights
    opt = jaxopt_keras.io.optimizer_from_keras(ckpt)    # the Keras class, in the file's family
    params = jaxopt_keras.io.params_from_keras(params, ckpt)           # your flax tree, filled
    state = jaxopt_keras.io.state_from_keras(opt.transformation, params, ckpt)
    ...                                                   # train on in JAX
    jaxopt_keras.io.write_keras("continued.h5", opt.transformation, params, state, like="model.h5")

* :func:`read_keras` (:mod:`~jaxopt_keras.io.reading`): TF-Keras ``.h5``,
  ``.keras`` (TF-Keras and Keras 3), ``.weights.h5``, TF checkpoints.
* :class:`KerasCheckpoint` (:mod:`~jaxopt_keras.io.checkpoint`): what was read.
* :func:`optimizer_from_keras`, :func:`transformation_from_keras` (a Keras 3
  ``MultiOptimizer`` routed over your tree), :func:`params_from_keras`
  (:mod:`~jaxopt_keras.io.porting`); :func:`state_from_keras`,
  :func:`keras_weights` (:mod:`~jaxopt_keras.io.optimizer_state`); with the
  parameter pairing of :mod:`~jaxopt_keras.io.matching`.
* :func:`write_keras` (:mod:`~jaxopt_keras.io.writing`).
* :func:`state_from_tree`: a state from what ``orbax`` restores without a target.

Dependencies: h5py (the ``io`` extra) for ``.h5`` and ``.keras``; TensorFlow
(the ``tf`` extra) for TF checkpoints only.  ``docs/porting.md`` describes
each format; ``docs/flax.md`` the flax, nnx, optax and orbax interop.
"""

from jaxopt_keras.io.checkpoint import KerasCheckpoint
from jaxopt_keras.io.errors import KerasFileError, MissingDependencyError
from jaxopt_keras.io.optimizer_state import keras_weights, state_from_keras
from jaxopt_keras.io.porting import optimizer_from_keras, params_from_keras, transformation_from_keras
from jaxopt_keras.io.reading import read_keras
from jaxopt_keras.io.restore import state_from_tree
from jaxopt_keras.io.writing import write_keras

__all__ = [
    "read_keras",
    "KerasCheckpoint",
    "optimizer_from_keras",
    "transformation_from_keras",
    "params_from_keras",
    "state_from_keras",
    "keras_weights",
    "write_keras",
    "state_from_tree",
    "KerasFileError",
    "MissingDependencyError",
]
