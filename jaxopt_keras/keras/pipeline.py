"""Keras's order of operations, assembled from transforms.

A Keras optimizer's ``apply_gradients`` does, in order: divide by the
loss-scale factor (Keras 3), accumulate gradients (Keras 3), clip, decay the
weights and take the step, then update the moving average.
:func:`build_transformation` chains the transforms that a checked argument
dict asks for in that order; parts that are not configured are left out.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from jaxopt_keras.algorithms.driver import scale_by_keras
from jaxopt_keras.algorithms.spec import Spec
from jaxopt_keras.core import transform as base
from jaxopt_keras.core.gradients import with_checked_gradients
from jaxopt_keras.schedules.base import LearningRateSchedule
from jaxopt_keras.transforms import clipping
from jaxopt_keras.transforms.accumulation import accumulate_gradients, scale_by_loss_scale_factor
from jaxopt_keras.transforms.ema import ema, ema_keras3


def keras_clipping(family: str, args: Mapping[str, Any], global_norm_order: Sequence[int] | None = None) -> base.GradientTransformation:
    """Gradient clipping as the family's Keras base class applies it (stateless).

    Legacy (``OptimizerV2._transform_gradients``): ``clipvalue``, then
    ``clipnorm``, then ``global_clipnorm``, each when set.  Current and Keras 3
    (``_clip_gradients``): only the first of ``clipnorm``, ``global_clipnorm``,
    ``clipvalue`` that is set and positive; Keras 3 computes the global norm
    its own way (:func:`~jaxopt_keras.transforms.clipping.clip_by_global_norm_keras3`).
    ``global_norm_order``: the global norm's summation order (Keras's variable
    order, see :func:`~jaxopt_keras.transforms.clipping.global_norm`).
    """
    cv, cn, gcn = args.get("clipvalue"), args.get("clipnorm"), args.get("global_clipnorm")
    if family == "legacy":
        parts = []
        if cv is not None:
            parts.append(clipping.clip_by_value(cv))
        if cn is not None:
            parts.append(clipping.clip_by_norm(cn))
        if gcn is not None:
            parts.append(clipping.clip_by_global_norm(gcn, global_norm_order))
    elif cn and cn > 0:
        parts = [clipping.clip_by_norm(cn)]
    elif gcn and gcn > 0:
        by_global_norm = clipping.clip_by_global_norm_keras3 if family == "keras3" else clipping.clip_by_global_norm
        parts = [by_global_norm(gcn, global_norm_order)]
    elif cv and cv > 0:
        parts = [clipping.clip_by_value(cv)]
    else:
        parts = []

    def update(updates, state, params=None, **extra_args):
        del extra_args  # optax's extra arguments (value=loss): none is read here
        for t in parts:
            updates, _ = t.update(updates, base.EmptyState(), params)
        return updates, state

    return base.GradientTransformation(lambda params: base.EmptyState(), update)


class MicroStepSchedule(LearningRateSchedule):
    """A schedule seen through Keras 3's gradient accumulation.

    Keras 3 evaluates the schedule at the raw call count; the optimizer step
    inside the accumulation wrapper counts updates ``k``, and update ``k + 1``
    happens on call ``(k + 1) * steps - 1``.
    """

    def __init__(self, schedule: LearningRateSchedule, steps: int):
        self.schedule, self.steps = schedule, steps

    def __call__(self, step):
        return self.schedule(self._call_count(step))

    def evaluate(self, step, numerics=None):
        return self.schedule.evaluate(self._call_count(step), numerics)

    def _call_count(self, step):
        return step * self.steps + (self.steps - 1)

    def get_config(self) -> dict:
        return {"schedule": self.schedule.get_config(), "steps": self.steps}


def build_transformation(
    spec: Spec, args: Mapping[str, Any], name: str = "optimizer", global_norm_order: Sequence[int] | None = None
) -> base.GradientTransformation:
    """The optimizer that checked ``args`` describe, in Keras's order.

    ``chain(loss_scale_factor, accumulate(chain(clipping, step)), ema)``:
    the step includes weight decay; parts that are not configured are left
    out, and a lone step is returned unchained.

    Args:
      spec: the algorithm in one family.
      args: the output of :func:`jaxopt_keras.keras.arguments.check_arguments`.
      name: the optimizer's name, for error messages.
      global_norm_order: the order ``global_clipnorm``'s norm sums the
        gradients in, where Keras's variable order is not the tree's (a
        ported flax tree); ``None``: the tree's.
    """
    steps = args.get("gradient_accumulation_steps")
    step_args = dict(args)
    if steps and isinstance(args["learning_rate"], LearningRateSchedule):
        step_args["learning_rate"] = MicroStepSchedule(args["learning_rate"], steps)
    inner = []
    if any(args.get(k) is not None for k in ("clipvalue", "clipnorm", "global_clipnorm")):
        inner.append(keras_clipping(spec.family, args, global_norm_order))
    inner.append(scale_by_keras(spec, step_args, name))
    parts = []
    if args.get("loss_scale_factor") is not None:
        parts.append(scale_by_loss_scale_factor(args["loss_scale_factor"]))
    if steps:
        step = base.chain(*inner) if len(inner) > 1 else inner[0]
        accumulate = accumulate_gradients(step, steps, compute_every_call=spec.family == "keras3")
        parts.append(with_checked_gradients(accumulate, spec.family))  # checked before they are summed
    else:
        parts.extend(inner)
    if args.get("use_ema"):
        moving_average = ema_keras3 if spec.family == "keras3" else ema
        parts.append(moving_average(args["ema_momentum"], args["ema_overwrite_frequency"], steps or 1))
    return base.chain(*parts) if len(parts) > 1 else parts[0]
