"""AdamW: Adam with decoupled weight decay (current family only).

``tf.keras.optimizers.AdamW`` is the current family's Adam step with a
required ``weight_decay`` (default 0.004), applied by the base class before
the step as ``p -= p * weight_decay * lr``.  The math is
:func:`jaxopt_keras.algorithms.adam.current_update`.
"""

from __future__ import annotations

import dataclasses


from jaxopt_keras.algorithms.adam import CURRENT as ADAM
from jaxopt_keras.algorithms.adam import AdamSlots, _amsgrad, current_sparse_update, current_update
from jaxopt_keras.algorithms.parts import Slot, Static
from jaxopt_keras.algorithms.spec import Spec, one_minus
from jaxopt_keras.core.hyperparams import Derived


def _check(args: dict) -> dict:
    if args["weight_decay"] is None:
        raise ValueError("Missing value of `weight_decay` which is required and must be a float value.")
    return args


CURRENT = Spec(
    family="current",
    singular={"beta_1": 1.0},
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
    prepare=ADAM.prepare,
    sparse_update=current_sparse_update,
    check_args=_check,
    statics=(Static("adaptive_epsilon", lambda args: False),),  # not an AdamW argument
)


def _check_keras3(args: dict) -> dict:
    if args["weight_decay"] is None:
        raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
    return args


KERAS3 = dataclasses.replace(
    CURRENT,
    family="keras3",
    check_args=_check_keras3,
    slot_names={"m": "momentum", "v": "velocity", "vhat": "velocity_hat"},
    sparse_update=None,
)
