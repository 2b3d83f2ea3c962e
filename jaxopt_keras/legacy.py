"""The legacy numerics family: ``tf.keras.optimizers.legacy`` (OptimizerV2).

One factory per optimizer of the registry (:mod:`jaxopt_keras.registry`),
each taking the Keras class's arguments and returning a pure
:class:`~jaxopt_keras.GradientTransformation` that walks the same trajectory
as the Keras optimizer::

    opt = jaxopt_keras.legacy.adam(learning_rate=1e-3, decay=1e-4, clipnorm=1.0)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = jaxopt_keras.apply_updates(params, updates)
"""

from jaxopt_keras.keras import factories as _factories

__all__ = _factories.names("legacy")


def __getattr__(name: str):
    return _factories.lookup("legacy", name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_factories.names("legacy")))
