"""Composable gradient transformations."""

from jaxopt_keras.transforms.aggregation import aggregate_gradients
from jaxopt_keras.transforms.clipping import clip_by_global_norm, clip_by_norm, clip_by_value, global_norm

__all__ = ["aggregate_gradients", "clip_by_global_norm", "clip_by_norm", "clip_by_value", "global_norm"]
