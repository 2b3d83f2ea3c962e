"""The Keras 3 numerics family: ``keras.optimizers`` of Keras 3.

Besides one factory per optimizer of the registry, Keras 3's wrappers as
transformations: :func:`multi_optimizer` (``MultiOptimizer``'s routing by
path) and :func:`loss_scale_optimizer` (its ``LossScaleOptimizer``'s rule).

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
from jaxopt_keras.transforms.loss_scale import loss_scale_optimizer_keras3 as loss_scale_optimizer
from jaxopt_keras.transforms.routing import multi_optimizer

__all__ = _factories.names("keras3") + ["multi_optimizer", "loss_scale_optimizer"]


def __getattr__(name: str):
    return _factories.lookup("keras3", name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_factories.names("keras3")))
