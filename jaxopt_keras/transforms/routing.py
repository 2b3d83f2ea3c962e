"""Routing parameters to optimizers by path (Keras 3's ``MultiOptimizer``).

A parameter's path is its keys in the params pytree joined by ``/``
(``{"encoder": {"embedding": {"embeddings": x}}}`` gives
``encoder/embedding/embeddings``), the part ``variable.path`` plays in Keras 3;
a ``paths=`` pytree of strings overrides it.  An optimizer map routes a path
by an exact key first, then by the keys read as regular expressions that
``re.fullmatch`` it; exactly one match, or the default.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax

from jaxopt_keras.core import transform as base
from jaxopt_keras.core.paths import paths_of
from jaxopt_keras.transforms.accumulation import scale_by_loss_scale_factor


def route(path: str, patterns: Mapping[str, Any], default: Any) -> Any:
    """The value whose key is ``path``, else the one key that ``re.fullmatch``-es it,
    else ``default``.

    Raises:
      ValueError: two or more keys match ``path`` as patterns (naming it).
    """
    if path in patterns:
        return patterns[path]
    found = [v for k, v in patterns.items() if re.fullmatch(k, path)]
    if len(found) > 1:
        raise ValueError(f"Multiple optimizers assigned to variable {path}.")
    return found[0] if found else default


@base.picklable
def multi_optimizer(
    optimizer_map: Mapping[str, base.GradientTransformation],
    default: base.GradientTransformation,
    paths: Any = None,
    loss_scale_factor: float | None = None,
) -> base.GradientTransformation:
    """Each parameter stepped by the optimizer its path routes it to (Keras 3's ``MultiOptimizer``).

    Every optimizer sees only its own parameters: the others are ``None``
    leaves of the tree it receives, so its state holds slots for its own
    parameters alone, and the tree's paths are unchanged for path-aware
    optimizers (Muon).

    Args:
      optimizer_map: path or pattern -> optimizer; see :func:`route`.
      default: the optimizer of every parameter no key routes.
      paths: a pytree of strings shaped like the params, overriding their paths.
      loss_scale_factor: divides every gradient first, as Keras 3's
        ``MultiOptimizer(loss_scale_factor=...)`` makes each optimizer do.

    Returns:
      ``(init, update)`` with state a tuple of the optimizers' states.

    Raises:
      ValueError: a parameter whose path two patterns match (on ``init``).
    """
    optimizers = list({id(t): t for t in [*optimizer_map.values(), default]}.values())

    index = {id(t): i for i, t in enumerate(optimizers)}

    def routes(tree) -> list[int]:
        return [index[id(route(n, optimizer_map, default))] for n in paths_of(tree, paths)]

    def masked(tree, routed, k):
        leaves, treedef = jax.tree_util.tree_flatten(tree, is_leaf=base.is_none)
        return treedef.unflatten([x if r == k else None for x, r in zip(leaves, routed)])

    def init(params):
        routed = routes(params)
        return tuple(t.init(masked(params, routed, k)) for k, t in enumerate(optimizers))

    inner_updates = [base.extra_args_update(t.update) for t in optimizers]

    def update(updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError("multi_optimizer routes by the params' paths: call update(grads, state, params).")
        routed = routes(params)
        if loss_scale_factor is not None:
            updates, _ = scale_by_loss_scale_factor(loss_scale_factor).update(updates, base.EmptyState())
        flat_u, treedef = base.flatten_updates(updates)
        out = [None] * len(flat_u)
        new_state = []
        for k, (inner_update, s) in enumerate(zip(inner_updates, state)):
            u_k, s = inner_update(masked(updates, routed, k), s, masked(params, routed, k), **extra_args)
            new_state.append(s)
            for i, x in enumerate(base.flatten_updates(u_k)[0]):
                if routed[i] == k:
                    out[i] = x
        return treedef.unflatten(out), tuple(new_state)

    return base.GradientTransformation(init, update)
