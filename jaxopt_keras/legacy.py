"""The legacy numerics family: ``tf.keras.optimizers.legacy`` (OptimizerV2).

Each factory takes the Keras class's arguments and returns a pure
:class:`~jaxopt_keras.GradientTransformation` that walks the same
trajectory as the Keras optimizer::

    opt = jaxopt_keras.legacy.adam(learning_rate=1e-3, decay=1e-4, clipnorm=1.0)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = jaxopt_keras.apply_updates(params, updates)
"""

from jaxopt_keras.algorithms.adadelta import legacy_adadelta as adadelta
from jaxopt_keras.algorithms.adagrad import legacy_adagrad as adagrad
from jaxopt_keras.algorithms.adam import legacy_adam as adam
from jaxopt_keras.algorithms.adamax import legacy_adamax as adamax
from jaxopt_keras.algorithms.ftrl import legacy_ftrl as ftrl
from jaxopt_keras.algorithms.nadam import legacy_nadam as nadam
from jaxopt_keras.algorithms.rmsprop import legacy_rmsprop as rmsprop
from jaxopt_keras.algorithms.sgd import legacy_sgd as sgd

__all__ = ["sgd", "adam", "adamax", "nadam", "adagrad", "adadelta", "rmsprop", "ftrl"]
