"""Composable gradient transformations."""

from jaxopt_keras.transforms.accumulation import AccumulationState, accumulate_gradients, scale_by_loss_scale_factor
from jaxopt_keras.transforms.aggregation import aggregate_gradients
from jaxopt_keras.transforms.clipping import (
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    global_norm,
)
from jaxopt_keras.transforms.ema import EmaState, ema, ema_params
from jaxopt_keras.transforms.weight_decay import (
    WeightDecayState,
    decoupled_weight_decay,
)

__all__ = [
    "accumulate_gradients",
    "AccumulationState",
    "scale_by_loss_scale_factor",
    "aggregate_gradients",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "global_norm",
    "ema",
    "ema_params",
    "EmaState",
    "decoupled_weight_decay",
    "WeightDecayState",
]
