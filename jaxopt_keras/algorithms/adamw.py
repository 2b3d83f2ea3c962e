"""AdamW: Adam with decoupled weight decay (current family only).

``tf.keras.optimizers.AdamW`` is the current family's Adam step with a
required ``weight_decay`` (default 0.004), applied by the base class before
the step as ``p -= p * weight_decay * lr``.  The math is
:func:`jaxopt_keras.algorithms.adam.current_update`.
"""

from __future__ import annotations

from typing import Any

from jaxopt_keras.algorithms.adam import AdamSlots, _amsgrad, current_sparse_update, current_update
from jaxopt_keras.algorithms.base import Numerics, Slot, build_optimizer, named_arguments, one_minus
from jaxopt_keras.core.transform import GradientTransformation
from jaxopt_keras.core.hyperparams import Derived


def _check(args: dict) -> dict:
    if args["weight_decay"] is None:
        raise ValueError("Missing value of `weight_decay` which is required and must be a float value.")
    return args


CURRENT = Numerics(
    family="current",
    class_name="AdamW",
    defaults={
        "learning_rate": 0.001,
        "weight_decay": 0.004,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "amsgrad": False,
    },
    float32_hyperparams=("beta_1", "beta_2"),
    exact_hyperparams=("epsilon",),
    derived=(Derived("one_minus_beta_1", "beta_1", one_minus), Derived("one_minus_beta_2", "beta_2", one_minus)),
    slots_type=AdamSlots,
    slots=(Slot("m"), Slot("v"), Slot("vhat", when=_amsgrad)),
    slot_order=(("m", "v"), ("vhat",)),
    update=current_update,
    sparse_update=current_sparse_update,
    check_args=_check,
)


def adamw(
    learning_rate: Any = 0.001,
    weight_decay: float = 0.004,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    amsgrad: bool = False,
    name: str = "AdamW",
    *,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    slot_dtype: Any = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
    jit_compile: bool = True,
    loss_scale_factor: float | None = None,
    gradient_accumulation_steps: int | None = None,
    **kwargs: Any,
) -> GradientTransformation:
    """AdamW as ``tf.keras.optimizers.AdamW`` computes it::

        p = p - p * weight_decay * lr
        (then the Adam step of jaxopt_keras.algorithms.adam.current_update)

    Raises:
      ValueError: ``weight_decay`` is ``None``.
    """
    return build_optimizer(CURRENT, named_arguments(locals()), kwargs)
