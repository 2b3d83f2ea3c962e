"""The registry: every optimizer, once.

One row per optimizer names its Keras class, its function name, its
algorithm module and the :class:`~jaxopt_keras.algorithms.spec.Spec` of each
numerics family it exists in (each spec carries the constructor arguments
and defaults, the config keys, the slot names and their order).  Everything
else is a view of this table: the functional namespaces
(``jaxopt_keras.x``, ``jaxopt_keras.legacy.x``), the Keras classes
(``jaxopt_keras.optimizers.X``, ``.legacy.X``, ``.experimental.X``),
deserialization's class lookup, and the tests' parametrisation.

Adding an optimizer: write its algorithm module (slots, math, one spec per
family), add one row below, then its tests and docs (``docs/architecture.md``
walks through it).
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Iterator, Mapping

from jaxopt_keras.algorithms import adadelta, adafactor, adagrad, adam, adamax, adamw, ftrl, lamb, lion, muon, nadam, rmsprop, sgd
from jaxopt_keras.algorithms import schedule_free_adamw
from jaxopt_keras.algorithms.spec import Spec


@dataclasses.dataclass(frozen=True)
class Entry:
    """One optimizer.

    Attributes:
      class_name: the Keras class name (``"Adam"``).
      function: the name of its functional factory (``"adam"``).
      module: the algorithm module holding its math.
      specs: family -> spec, for each family Keras has it in.
      aliases: other class names configs use for it (compared
        case-insensitively).
    """

    class_name: str
    function: str
    module: ModuleType
    specs: Mapping[str, Spec]
    aliases: tuple[str, ...] = ()

    def __post_init__(self):
        for family, spec in self.specs.items():
            if spec.family != family:
                raise TypeError(f"{self.class_name}: the {family} spec says family {spec.family!r}")


def _specs(**specs: Spec) -> dict[str, Spec]:
    return specs


# fmt: off
_ENTRIES: list[Entry] = [
    Entry("SGD", "sgd", sgd, _specs(legacy=sgd.LEGACY, current=sgd.CURRENT, keras3=sgd.KERAS3), aliases=("experimentalSGD",)),
    Entry("Adam", "adam", adam, _specs(legacy=adam.LEGACY, current=adam.CURRENT, keras3=adam.KERAS3), aliases=("experimentalAdam",)),
    Entry("Adamax", "adamax", adamax, _specs(legacy=adamax.LEGACY, current=adamax.CURRENT, keras3=adamax.KERAS3)),
    Entry("Nadam", "nadam", nadam, _specs(legacy=nadam.LEGACY, current=nadam.CURRENT, keras3=nadam.KERAS3)),
    Entry("Adagrad", "adagrad", adagrad, _specs(legacy=adagrad.LEGACY, current=adagrad.CURRENT, keras3=adagrad.KERAS3), aliases=("experimentalAdagrad",)),
    Entry("Adadelta", "adadelta", adadelta, _specs(legacy=adadelta.LEGACY, current=adadelta.CURRENT, keras3=adadelta.KERAS3), aliases=("experimentalAdadelta",)),
    Entry("RMSprop", "rmsprop", rmsprop, _specs(legacy=rmsprop.LEGACY, current=rmsprop.CURRENT, keras3=rmsprop.KERAS3), aliases=("RMSProp",)),
    Entry("Ftrl", "ftrl", ftrl, _specs(legacy=ftrl.LEGACY, current=ftrl.CURRENT, keras3=ftrl.KERAS3)),
    Entry("AdamW", "adamw", adamw, _specs(current=adamw.CURRENT, keras3=adamw.KERAS3), aliases=("experimentalAdamW",)),
    Entry("Lion", "lion", lion, _specs(current=lion.CURRENT, keras3=lion.KERAS3)),
    Entry("Adafactor", "adafactor", adafactor, _specs(current=adafactor.CURRENT, keras3=adafactor.KERAS3)),
    Entry("Lamb", "lamb", lamb, _specs(keras3=lamb.KERAS3)),
    Entry("Muon", "muon", muon, _specs(keras3=muon.KERAS3)),
    Entry("ScheduleFreeAdamW", "schedule_free_adamw", schedule_free_adamw, _specs(keras3=schedule_free_adamw.KERAS3)),
]
# fmt: on


def register(entry: Entry) -> None:
    """Adds a row (an optimizer of your own, or a test's toy one).

    Every view of the table sees it from then on: ``jaxopt_keras.<function>``,
    ``jaxopt_keras.optimizers.<ClassName>`` and deserialization.

    Raises:
      ValueError: its class or function name is taken.
    """
    for e in _ENTRIES:
        if e.class_name.lower() == entry.class_name.lower() or e.function == entry.function:
            raise ValueError(f"An optimizer named {entry.class_name!r} / {entry.function!r} is already registered.")
    _ENTRIES.append(entry)


def unregister(class_name: str) -> None:
    """Removes the row of ``class_name`` (for tests that register their own)."""
    _ENTRIES[:] = [e for e in _ENTRIES if e.class_name != class_name]


def entries(family: str | None = None) -> Iterator[Entry]:
    """The rows, in table order; only those with a spec for ``family`` if given."""
    return (e for e in list(_ENTRIES) if family is None or family in e.specs)


def find(name: str, family: str | None = None) -> Entry | None:
    """The row whose class name, function name or alias is ``name`` (any case)."""
    key = name.lower()
    for e in entries(family):
        if key in (e.class_name.lower(), e.function, *(a.lower() for a in e.aliases)):
            return e
    return None
