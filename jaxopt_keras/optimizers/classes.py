"""The Keras classes of every family, made from the registry.

A class is a subclass of its family's base (:mod:`~jaxopt_keras.optimizers.families`)
that names its registry entry and nothing else.  Each (optimizer, family)
pair has exactly one class object, published in the family's module
(``jaxopt_keras.optimizers``, ``.legacy``, ``.experimental``, ``.keras3``), so classes
pickle by name and ``isinstance`` checks agree across namespaces.
"""

from __future__ import annotations

from jaxopt_keras.keras.factories import KERAS_MODULES, signature
from jaxopt_keras.optimizers.families import Optimizer, OptimizerV2
from jaxopt_keras.optimizers.keras3_family import Keras3Optimizer
from jaxopt_keras.optimizers.optimizer import KerasOptimizer
from jaxopt_keras.registry import Entry, entries, find

BASES: dict[str, type] = {"legacy": OptimizerV2, "current": Optimizer, "keras3": Keras3Optimizer}
MODULES = {
    "legacy": "jaxopt_keras.optimizers.legacy",
    "current": "jaxopt_keras.optimizers",
    "keras3": "jaxopt_keras.optimizers.keras3",
}

_CACHE: dict[tuple[str, str], type] = {}


def make_class(entry: Entry, family: str) -> type:
    """The Keras class of ``entry`` in ``family`` (one object per pair)."""
    key = (entry.class_name, family)
    if key in _CACHE and _CACHE[key]._entry is entry:
        return _CACHE[key]
    spec = entry.specs[family]
    sig = signature(spec, entry.class_name, functional=False)
    doc = (
        f"{entry.class_name}, as ``{KERAS_MODULES[family]}.{entry.class_name}``.\n\n"
        f"Takes Keras's arguments; the step it computes is "
        f":func:`{entry.module.__name__}.{spec.update.__name__}`.\n"
    )
    cls = type(
        entry.class_name,
        (BASES[family],),
        {
            "_entry": entry,
            "_spec": spec,
            "_signature": sig,
            "__doc__": doc,
            "__module__": MODULES[family],
            "__qualname__": entry.class_name,
            "__signature__": sig.replace(return_annotation=None),
        },
    )
    _CACHE[key] = cls
    return cls


def classes(family: str) -> dict[str, type]:
    """Class name -> class, for every optimizer of ``family``."""
    return {e.class_name: make_class(e, family) for e in entries(family)}


def lookup(family: str, name: str) -> type:
    """The class called ``name`` in ``family`` (a module ``__getattr__``'s body).

    Raises:
      AttributeError: no such class in that family.
    """
    entry = find(name, family)
    if entry is None or name not in (entry.class_name, *entry.aliases):
        raise AttributeError(f"module {MODULES[family]!r} has no attribute {name!r}")
    return make_class(entry, family)


def is_registry_class(cls: type) -> bool:
    """Whether ``cls`` is one of the classes made here (not a user's subclass)."""
    return cls in _CACHE.values() and issubclass(cls, KerasOptimizer)
