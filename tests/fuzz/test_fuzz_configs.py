"""Random bad and hostile configs for ``optimizers.deserialize``.

A canary module sits on ``sys.path``: importing it, or calling what it
defines, writes a file.  Configs name it (and ``os``, ``subprocess``,
``builtins``...) in every field a reader looks at: ``module``,
``class_name``, ``registered_name``, a schedule's fields, a
``LossScaleOptimizer``'s ``inner_optimizer``; they also carry bad values of
the optimizer's own arguments.  Each config either deserializes to a working
optimizer or raises a ValueError/TypeError; the canary never fires and is
never imported.
"""

from __future__ import annotations

import math
import pathlib
import sys
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz_settings
from jaxopt_keras import optimizers as O
from jaxopt_keras import registry

CANARY = "jaxopt_keras_fuzz_canary"


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    """The canary module's directory on ``sys.path``, and the file it writes when imported or called."""
    where = tmp_path_factory.mktemp("canary")
    flag = where / "fired"
    (where / f"{CANARY}.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(flag)!r}).write_text('imported')\n"
        "class Boom:\n"
        "    def __init__(self, *a, **k):\n"
        f"        pathlib.Path({str(flag)!r}).write_text('called')\n"
        "    @classmethod\n"
        "    def from_config(cls, config):\n"
        "        return cls()\n"
        "def boom(*a, **k):\n"
        "    Boom()\n"
    )
    sys.path.insert(0, str(where))
    yield flag
    sys.path.remove(str(where))


NAMES = [e.class_name for e in registry.entries()] + ["LossScaleOptimizer", "ExponentialDecay"]
HOSTILE = st.sampled_from(
    [CANARY, f"{CANARY}.Boom", f"{CANARY}>Boom", f"Custom>{CANARY}.boom", "os", "os.system", "subprocess.Popen",
     "builtins.eval", "__import__", "keras.optimizers", "keras.src.optimizers.adam", "../../etc", ""]
)
ODD = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
    st.just(math.nan), st.lists(st.integers(), max_size=2), st.just({}),
)


def _schedule(draw):
    return {
        "class_name": draw(st.one_of(HOSTILE, st.just("ExponentialDecay"))),
        "module": draw(st.one_of(st.none(), HOSTILE)),
        "config": {"initial_learning_rate": draw(ODD), "decay_steps": 10, "decay_rate": 0.5},
    }


@st.composite
def configs(draw):
    name = draw(st.one_of(st.sampled_from(NAMES), HOSTILE))
    inner = {}
    for key in draw(st.lists(st.sampled_from(["learning_rate", "beta_1", "momentum", "epsilon", "rho", "clipnorm",
                                              "weight_decay", "decay", "use_ema", "ema_momentum", "name", "foo"]),
                             max_size=4, unique=True)):
        inner[key] = draw(ODD)
    if draw(st.booleans()):
        inner["learning_rate"] = _schedule(draw)
    if name == "LossScaleOptimizer" or draw(st.integers(0, 4)) == 0:
        inner["inner_optimizer"] = {"class_name": draw(st.one_of(st.sampled_from(NAMES), HOSTILE)),
                                    "module": draw(st.one_of(st.none(), HOSTILE)), "config": {}}
    config = {"class_name": name, "config": inner}
    for field in ("module", "registered_name"):
        if draw(st.booleans()):
            config[field] = draw(HOSTILE)
    return config


@fuzz_settings(150)
@given(configs())
def test_bad_and_hostile_configs_raise_cleanly_and_run_nothing(canary, config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            opt = O.deserialize(config)
        except (TypeError, ValueError):
            pass
        else:
            assert hasattr(opt, "apply_gradients")
    assert not canary.exists(), f"the canary fired: {canary.read_text()} ({config})"
    assert CANARY not in sys.modules


def test_the_canary_fires_when_imported(canary):
    """The canary is live: importing it writes the file (so its absence above means something)."""
    import importlib

    importlib.import_module(CANARY)
    assert canary.read_text() == "imported"
    canary.unlink()
    del sys.modules[CANARY]
