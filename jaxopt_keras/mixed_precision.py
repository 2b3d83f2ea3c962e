"""Dynamic loss scaling, as ``tf.keras.mixed_precision.LossScaleOptimizer``.

Training in float16 multiplies the loss by a scale so small gradients do not
underflow, then divides the gradients by it.  With dynamic scaling, a step
whose gradients are not all finite is skipped and the scale halved (never
below 1); after ``dynamic_growth_steps`` finite steps in a row the scale
doubles.  As in Keras, a skipped step still counts as an iteration.

Two forms:

* functional: :func:`loss_scale_optimizer` wraps any transform; use
  :func:`scale_loss` on the loss and :func:`unscale_gradients` on its
  gradients, then ``update`` with the unscaled gradients
  (:mod:`jaxopt_keras.transforms.loss_scale`);
* Keras layer: :class:`LossScaleOptimizer` wraps an optimizer instance of
  either family, with ``get_scaled_loss``/``get_unscaled_gradients``
  (:mod:`jaxopt_keras.optimizers.loss_scale`).
"""

from jaxopt_keras.optimizers.loss_scale import LossScaleOptimizer
from jaxopt_keras.transforms.loss_scale import (
    LossScaleState,
    all_finite,
    loss_scale_optimizer,
    next_loss_scale,
    scale_loss,
    unscale_gradients,
)

__all__ = [
    "LossScaleOptimizer",
    "LossScaleState",
    "loss_scale_optimizer",
    "scale_loss",
    "unscale_gradients",
    "all_finite",
    "next_loss_scale",
]
