"""The Keras 3 numerics family: ``keras.optimizers`` of Keras 3.

One factory per optimizer of the registry (:mod:`jaxopt_keras.registry`),
each taking the Keras class's arguments and returning a pure
:class:`~jaxopt_keras.GradientTransformation` that walks the same trajectory
as the Keras optimizer::

    opt = jaxopt_keras.keras3.adam(learning_rate=1e-3, use_ema=True)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = jaxopt_keras.apply_updates(params, updates)
"""

from jaxopt_keras.keras import factories as _factories

__all__ = _factories.names("keras3")


def __getattr__(name: str):
    return _factories.lookup("keras3", name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_factories.names("keras3")))
