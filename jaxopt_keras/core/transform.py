"""The gradient-transformation protocol, shared with optax.

A :class:`GradientTransformation` is a pair of pure functions::

    state = init(params)
    updates, state = update(grads, state, params)

``updates`` are *added* to the parameters (:func:`apply_updates`), so an
optimizer returns ``-learning_rate * direction``.  The pair is a NamedTuple
with optax's field names and signatures, so our transforms run inside
``optax.chain`` and optax's transforms run inside :func:`chain`.

Every ``update`` here also takes keyword arguments after ``params``
(``update(grads, state, params, value=loss)``), as optax's
``GradientTransformationExtraArgs`` does: a transform that needs one (optax's
``reduce_on_plateau`` reads ``value``) gets it through :func:`chain` and the
wrappers; the others ignore it.

Gradient trees may hold ``None`` where a parameter received no gradient (as
Keras filters empty gradients): every transform here passes ``None`` through
untouched and leaves that parameter's state alone, and :func:`apply_updates`
keeps the parameter as it was.
"""

from __future__ import annotations

import functools
import inspect
import pickle
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_keras.core.sparse import IndexedSlices, scatter_add
from jaxopt_keras.core.xla import inlined_jnp

PyTree = Any
Params = PyTree
Updates = PyTree
OptState = Any


class GradientTransformation(NamedTuple):
    """A pure ``(init, update)`` pair, call-compatible with optax.

    Attributes:
      init: ``init(params) -> state``.
      update: ``update(updates, state, params=None, **extra_args) -> (updates, state)``;
        the ``extra_args`` (optax's convention, e.g. ``value=loss``) reach
        the inner transforms that take them.
    """

    init: Callable[[Params], OptState]
    update: Callable[..., tuple[Updates, OptState]]


class Recipe(GradientTransformation):
    """A :class:`GradientTransformation` that remembers the call that made it, and
    pickles as that call.

    Its ``init``/``update`` are closures, which pickle cannot store; the
    public constructors (:func:`picklable`) record ``(constructor, args,
    kwargs)`` instead, and unpickling calls the constructor again, giving an
    equal transformation.  The arguments must pickle themselves (numbers,
    schedules, other recipes; not a lambda).  It is a ``GradientTransformation``
    (a NamedTuple of the two functions) in every other respect.
    """

    recipe: tuple  # (constructor, args, kwargs); set by `picklable`

    def __reduce__(self):
        if "recipe" not in self.__dict__:  # rebuilt by tree_unflatten or _replace: the call is unknown
            raise pickle.PicklingError("This transformation does not record the call that made it; pickle the original.")
        constructor, args, kwargs = self.recipe
        return _remake, (constructor, args, kwargs)


def _remake(constructor: Callable[..., GradientTransformation], args: tuple, kwargs: dict) -> GradientTransformation:
    return constructor(*args, **kwargs)


def picklable(constructor: Callable[..., GradientTransformation]) -> Callable[..., GradientTransformation]:
    """Decorates a public transformation constructor so that its result is a
    :class:`Recipe` (pickles as the call).  The decorated function must be
    reachable by its module and name (pickle looks it up there)."""

    @functools.wraps(constructor)
    def make(*args: Any, **kwargs: Any) -> GradientTransformation:
        tx = constructor(*args, **kwargs)
        out = Recipe(*tx)
        out.recipe = (make, args, kwargs)
        return out

    return make


class EmptyState(NamedTuple):
    """State of a stateless transform."""


def is_none(x: Any) -> bool:
    """Leaf predicate for gradient trees: ``None`` entries and row-sparse
    :class:`~jaxopt_keras.IndexedSlices` are leaves, like dense arrays."""
    return x is None or isinstance(x, IndexedSlices)


def flatten_updates(updates: Updates) -> tuple[list[Any], Any]:
    """Flattens a gradient tree, keeping ``None`` and ``IndexedSlices`` entries as leaves."""
    return jax.tree_util.tree_flatten(updates, is_leaf=is_none)


def leaves_like(treedef: Any, tree: PyTree, mismatch: Callable[[str], str]) -> list[Any]:
    """``treedef.flatten_up_to(tree)``: the leaves of ``tree`` matched to those of
    a gradient tree (parameters, a slot).

    Raises:
      ValueError: ``mismatch(reason)``, when ``tree`` has another structure;
        ``reason`` is JAX's, cut at 300 characters (it may print every array).
    """
    try:
        return treedef.flatten_up_to(tree)
    except (ValueError, TypeError) as e:
        reason = str(e) if len(str(e)) <= 300 else str(e)[:300] + " ..."
        raise ValueError(mismatch(reason)) from None


def map_updates(fn: Callable[..., Any], updates: Updates, *rest: PyTree) -> Updates:
    """``tree_map(fn, updates, *rest)`` that passes ``None`` gradients through.

    ``fn`` is called only for present gradient leaves (arrays, or
    ``IndexedSlices``); a ``None`` leaf of ``updates`` stays ``None`` whatever
    ``rest`` holds there.
    """

    def leaf(u, *xs):
        return None if u is None else fn(u, *xs)

    return jax.tree_util.tree_map(leaf, updates, *rest, is_leaf=is_none)


def map_values(fn: Callable[[jax.Array], jax.Array], updates: Updates) -> Updates:
    """Applies an elementwise ``fn`` to every gradient's values (dense or row-sparse)."""

    def leaf(u):
        return u.with_values(fn(u.values)) if isinstance(u, IndexedSlices) else fn(u)

    return map_updates(leaf, updates)


def values_of(u: Any) -> jax.Array:
    """A gradient leaf's numbers (an ``IndexedSlices``'s values, padding rows zeroed)."""
    return u.valid_values() if isinstance(u, IndexedSlices) else u


def add_update(p: Any, u: Any) -> jax.Array:
    """``p + u`` in ``p``'s dtype; a row-sparse ``u`` is scattered into its rows."""
    p = jnp.asarray(p)
    if isinstance(u, IndexedSlices):
        return scatter_add(p, u.indices, u.values)
    return (p + u).astype(p.dtype)


def densify(u: Any) -> Any:
    """A dense array for a gradient leaf (``IndexedSlices`` scattered into zeros)."""
    return u.to_dense() if isinstance(u, IndexedSlices) else u


def extra_args_update(update_fn: Callable[..., Any]) -> Callable[..., Any]:
    """``update_fn`` taking optax's extra keyword arguments (``value=loss``).

    An inner transform's ``update`` that takes ``**kwargs`` (ours, optax's
    ``GradientTransformationExtraArgs``) gets them; one that does not (a plain
    optax ``GradientTransformation``) is called without them, as
    ``optax.with_extra_args_support`` does.
    """
    try:
        takes = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(update_fn).parameters.values())
    except (TypeError, ValueError):  # no signature to read: call it as optax's protocol says
        takes = False
    if takes:
        return update_fn

    def update(updates, state, params=None, **extra_args):
        del extra_args
        return update_fn(updates, state, params)

    return update


@picklable
def identity() -> GradientTransformation:
    """The transform that returns its updates unchanged."""

    def init(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        return updates, state

    return GradientTransformation(init, update)


@picklable
def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Applies ``transforms`` one after another.

    Any object with ``init`` and ``update`` (an optax transform, or an
    ``optax.MultiSteps`` object, as ``optax.chain`` takes it) or a pair
    ``(init, update)`` may be chained.  The state is the tuple of the inner
    states, in order.

    Args:
      *transforms: the transforms, first applied first.

    Returns:
      A :class:`GradientTransformation` computing
      ``update = t_n.update(... t_1.update(g) ...)``.
    """
    inits, updates_fns = [], []
    for t in transforms:
        # Attributes: a NamedTuple (ours, optax's) and an object such as
        # optax.MultiSteps, which is no tuple; else a plain (init, update) pair.
        init_fn, update_fn = (t.init, t.update) if hasattr(t, "init") and hasattr(t, "update") else t
        inits.append(init_fn)
        updates_fns.append(extra_args_update(update_fn))
    inits, updates_fns = tuple(inits), tuple(updates_fns)

    def init(params: Params) -> tuple:
        return tuple(fn(params) for fn in inits)

    def update(updates, state, params=None, **extra_args):
        if not hasattr(state, "__len__") or len(state) != len(updates_fns):
            got = type(state).__name__ + (f" of length {len(state)}" if hasattr(state, "__len__") else "")
            raise ValueError(
                f"chain expected a state of {len(updates_fns)} inner states (the tuple its init returns), "
                f"received {got}: initialize the state with the same transforms."
            )
        new_state = []
        for fn, s in zip(updates_fns, state):
            updates, s = fn(updates, s, params, **extra_args)
            new_state.append(s)
        return updates, tuple(new_state)

    return GradientTransformation(init, update)


def apply_updates(params: Params, updates: Updates) -> Params:
    """Adds ``updates`` to ``params``: ``p_new = p + u``.

    The sum keeps each parameter's dtype.  A ``None`` update leaves its
    parameter unchanged (the parameter had no gradient); a row-sparse
    ``IndexedSlices`` update adds to its rows only.

    Args:
      params: the parameter tree.
      updates: a tree of the same structure, or with ``None`` leaves.

    Returns:
      The updated parameter tree.
    """

    def add(u, p):
        return p if u is None else add_update(p, u)

    with inlined_jnp(updates):
        return jax.tree_util.tree_map(add, updates, params, is_leaf=is_none)
