"""What the compiler sees: structural facts about init and the step, not timings.

* Eager ``init`` builds no XLA program per parameter shape: its slots are
  host arrays transferred with ``jax.device_put`` (a tree of thousands of
  distinct shapes would otherwise compile thousands of small programs).
* The step's program grows per added parameter by no more than its math
  needs: whatever is the same for every leaf of a dtype (bias-correction
  powers, the step counter, ``1 - beta``) is computed once per step and dtype
  (the spec's ``prepare``), not once per leaf.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from helpers import all_factories

COMPILES: list[str] = []
FRESH = itertools.count(1000, 100)  # first dimensions no earlier tree used (programs are cached by shape)


def _listener(event: str, duration: float, **kwargs) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        COMPILES.append(event)


jax.monitoring.register_event_duration_secs_listener(_listener)


def distinct_shapes(n: int) -> dict:
    """``n`` parameters of shapes no other tree in this process used (committed to a device)."""
    offset = next(FRESH)
    return {f"p{i}": jax.device_put(np.ones((offset + i, 3), np.float32)) for i in range(n)}


def compiles_during(fn, *args) -> int:
    COMPILES.clear()
    jax.block_until_ready(fn(*args))
    return len(COMPILES)


@pytest.mark.parametrize("name,factory", all_factories(), ids=[n for n, _ in all_factories()])
def test_eager_init_compiles_nothing_per_shape(name, factory):
    opt = factory()
    # The first init may compile its few scalars' programs (the step counter,
    # the hyperparameters: one per dtype, cached); a second tree of 20 new
    # shapes compiles nothing, where a per-shape program would compile 20.
    compiles_during(opt.init, distinct_shapes(3))
    assert compiles_during(opt.init, distinct_shapes(20)) == 0


def test_eager_init_slots_are_the_parameters_dtype_and_placement():
    device = jax.devices()[-1]
    params = {"w": jax.device_put(np.ones((7, 3), np.float32), device), "b": jnp.zeros(5, jnp.bfloat16)}
    state = jk.adam().init(params)
    for slot in (state.slots.m, state.slots.v):
        assert slot["w"].devices() == {device} and slot["w"].dtype == jnp.float32
        assert slot["b"].dtype == jnp.bfloat16 and slot["b"].shape == (5,)
        np.testing.assert_array_equal(slot["w"], np.zeros((7, 3), np.float32))
