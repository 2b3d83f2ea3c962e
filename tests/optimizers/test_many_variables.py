"""The Keras layer on a model of many variables: one compiled program per step.

Structural, not timed: on a model of hundreds of variables of distinct
shapes, building the optimizer compiles nothing per variable (its slots are
transferred, not computed), and each ``apply_gradients`` after the first is
one call of the one compiled step, with no compilation.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from layer_helpers import FAMILIES

N_VARIABLES = 60
FRESH = itertools.count(500, 100)  # first dimensions no other model here used (programs are cached by shape)
EVENTS: list[str] = []


def _listener(event: str, duration: float, **kwargs) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        EVENTS.append(event)


jax.monitoring.register_event_duration_secs_listener(_listener)


class CountingStep:
    """Wraps the optimizer's jitted step, counting its calls."""

    def __init__(self, step):
        self.step, self.calls = step, 0

    def __call__(self, *args):
        self.calls += 1
        return self.step(*args)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_many_variables_one_program_per_step(family):
    rng, offset = np.random.default_rng(0), next(FRESH)
    variables = [
        jk.Variable(jnp.asarray(rng.normal(size=(offset + i, 3)), jnp.float32), name=f"v{i}") for i in range(N_VARIABLES)
    ]
    grads = [jnp.full(v.value.shape, 0.01, jnp.float32) for v in variables]
    opt = FAMILIES[family].Adam(learning_rate=0.01)
    EVENTS.clear()
    opt.build(variables)
    assert len(EVENTS) <= 2, f"building the state compiled {len(EVENTS)} programs"  # scalars only
    opt.apply_gradients(zip(grads, variables))  # compiles the step, once
    name = "_packed_step" if opt._packed else "_step"  # packed in the pack-all variant
    counting = CountingStep(getattr(opt, name))
    object.__setattr__(opt, name, counting)
    EVENTS.clear()
    before = [np.asarray(v.value) for v in variables[:3]]
    for _ in range(3):
        opt.apply_gradients(zip(grads, variables))
    assert counting.calls == 3 and counting.step._cache_size() == 1
    assert EVENTS == [], f"{len(EVENTS)} compilations in the steady state"
    assert int(opt.iterations) == 4
    for v, b in zip(variables[:3], before):
        assert not np.array_equal(np.asarray(v.value), b)  # the variables moved
