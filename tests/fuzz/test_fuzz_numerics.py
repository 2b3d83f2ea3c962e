"""Random optimizer x family x valid hyperparameters x parameter shapes, against
TF-Keras (legacy and current families) over 20 steps in float64, within the
oracle's float64 tolerance (``tests/oracle/harness.py``: 1e-10 of the distance
the parameters moved).  Derandomised (``fuzz_settings``); more examples with
``JAXOPT_KERAS_FUZZ_EXAMPLES``.
"""

from __future__ import annotations

import os
import pathlib
import sys
import warnings

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "oracle"))  # the oracle's harness
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from fuzz_settings import fuzz_settings  # noqa: E402
from harness import TOLERANCE, agreement, graph_for, jax_factory, make_problem, run_jax, run_tf, tf_class  # noqa: E402
from jaxopt_keras import registry  # noqa: E402

import jax  # noqa: E402

STEPS = 20
# Valid ranges of the algorithms' own arguments (anything else keeps its default).
RANGES = {
    "learning_rate": st.floats(1e-3, 0.3),
    "momentum": st.floats(0.0, 0.95),
    "beta_1": st.floats(0.5, 0.95),
    "beta_2": st.floats(0.9, 0.999),
    "rho": st.floats(0.5, 0.99),
    "epsilon": st.floats(1e-7, 1e-2),
    "initial_accumulator_value": st.floats(0.0, 1.0),
    "learning_rate_power": st.floats(-1.0, 0.0),
    "l1_regularization_strength": st.floats(0.0, 0.1),
    "l2_regularization_strength": st.floats(0.0, 0.1),
    "l2_shrinkage_regularization_strength": st.floats(0.0, 0.1),
    "beta": st.floats(0.0, 1.0),
    "schedule_decay": st.floats(0.0, 0.01),
    "weight_decay": st.floats(0.0, 0.1),
    "beta_2_decay": st.floats(-1.0, -0.5),
    "epsilon_1": st.floats(1e-30, 1e-10),
    "epsilon_2": st.floats(1e-4, 1e-2),
    "clip_threshold": st.floats(0.5, 2.0),
}
SHARED = {
    "legacy": {"clipnorm": st.floats(0.1, 10.0), "clipvalue": st.floats(0.1, 5.0), "decay": st.floats(0.0, 0.05)},
    "current": {"clipnorm": st.floats(0.1, 10.0), "clipvalue": st.floats(0.1, 5.0), "weight_decay": st.floats(0.0, 0.05)},
}
PAIRS = [(e.class_name, f) for e in registry.entries() for f in ("legacy", "current") if f in e.specs]


@st.composite
def configs(draw):
    name, family = draw(st.sampled_from(PAIRS))
    spec = registry.find(name, family).specs[family]
    kwargs = {}
    for arg, default in {**spec.defaults, **spec.extra_args}.items():
        if isinstance(default, bool):
            if draw(st.booleans()):
                kwargs[arg] = not default
        elif arg in RANGES and draw(st.booleans()):
            kwargs[arg] = draw(RANGES[arg])
    for arg, strategy in SHARED[family].items():
        if draw(st.integers(0, 3)) == 0:  # a quarter of the time each
            kwargs[arg] = draw(strategy)
    if name == "Lion":  # Lion's beta_1 is in ]0, 1]
        kwargs.setdefault("beta_1", 0.9)
    shapes = draw(st.lists(st.lists(st.integers(1, 4), max_size=3).map(tuple), min_size=1, max_size=3))
    seed = draw(st.integers(0, 2**16))
    return name, family, kwargs, shapes, seed


@fuzz_settings(25)
@given(configs())
def test_random_configurations_match_tf_keras_in_float64(config):
    name, family, kwargs, shapes, seed = config
    dtype = np.float64
    with warnings.catch_warnings(), jax.enable_x64(True):
        warnings.simplefilter("ignore")
        params, grads = make_problem(dtype, steps=STEPS, seed=seed, shapes=shapes)
        theirs, _ = run_tf(lambda: tf_class(family, name)(**kwargs), params, grads, graph=graph_for(family, name))
        ours, _ = run_jax(jax_factory(family, name)(**kwargs), params, grads)
    a = agreement(ours, theirs, params)
    assert a.relative <= TOLERANCE[dtype], (name, family, kwargs, shapes, a)
