"""Composable gradient transformations."""

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
