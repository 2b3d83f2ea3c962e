"""The arguments each family's classes share beyond their algorithm's own.

One table per fact: the shared arguments and their defaults
(:data:`BASE_ARGS`), those Keras takes by position, OptimizerV2's
``**kwargs``, and the groups other modules name (clipping, EMA).
"""

from __future__ import annotations

from typing import Any

# The arguments every class of a family takes beyond its algorithm's, with
# their defaults, in signature order (keyword-only in our factories).
BASE_ARGS: dict[str, dict[str, Any]] = {
    "legacy": {"clipnorm": None, "clipvalue": None, "global_clipnorm": None, "decay": 0.0, "slot_dtype": None},
    "current": {
        "weight_decay": None,
        "clipnorm": None,
        "clipvalue": None,
        "global_clipnorm": None,
        "use_ema": False,
        "ema_momentum": 0.99,
        "ema_overwrite_frequency": None,
        "jit_compile": True,
        "loss_scale_factor": None,
        "gradient_accumulation_steps": None,
        "slot_dtype": None,
    },
    "keras3": {
        "weight_decay": None,
        "clipnorm": None,
        "clipvalue": None,
        "global_clipnorm": None,
        "use_ema": False,
        "ema_momentum": 0.99,
        "ema_overwrite_frequency": None,
        "loss_scale_factor": None,
        "gradient_accumulation_steps": None,
        "slot_dtype": None,
    },
}

# The shared arguments Keras's constructors take by position, in BASE_ARGS's
# order, after the algorithm's own and before `name` (TF-Keras >= 2.11 and
# Keras 3).  The rest are keyword-only: OptimizerV2 reads its shared arguments
# from **kwargs, and the current family's `loss_scale_factor` and
# `gradient_accumulation_steps` (Keras 3's) and every family's `slot_dtype`
# are ours.
POSITIONAL_BASE_ARGS: dict[str, tuple[str, ...]] = {
    "legacy": (),
    "current": tuple(k for k in BASE_ARGS["current"] if k not in ("loss_scale_factor", "gradient_accumulation_steps", "slot_dtype")),
    "keras3": tuple(k for k in BASE_ARGS["keras3"] if k != "slot_dtype"),
}
# OptimizerV2's accepted **kwargs.
LEGACY_KWARGS = ("clipnorm", "clipvalue", "lr", "decay", "global_clipnorm")
# Arguments of the legacy family that the current family refuses by name.
LEGACY_ONLY = ("decay", "gradient_aggregator", "gradient_transformers")
CLIP_ARGS = ("clipnorm", "clipvalue", "global_clipnorm")
EMA_ARGS = ("ema_momentum", "ema_overwrite_frequency")
