"""Random bad weights lists for ``set_weights``: every family, with EMA and
gradient accumulation, on sharded variables or not.  Each must raise Keras's
``ValueError`` and leave the optimizer exactly as it was (all or nothing).

The mutations: a list one entry short or long, an entry of another shape
(the step count's included), a step count the counter cannot hold or that is
not a whole number.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxopt_keras as jk
from fuzz_settings import fuzz_settings
from jaxopt_keras import optimizers as O

FAMILIES = {"legacy": O.legacy, "current": O, "keras3": O.keras3}
ALGORITHMS = ("Adam", "SGD", "Nadam", "RMSprop", "Adagrad", "Ftrl")
OPTIONS = {
    "plain": {},
    "ema": {"use_ema": True},
    "accumulation": {"gradient_accumulation_steps": 2},
}


@functools.lru_cache(maxsize=None)
def optimizer(family: str, algorithm: str, option: str, sharded: bool):
    """A built optimizer holding distinct nonzero weights (set, not stepped: no compilation)."""
    kwargs = {} if family == "legacy" else dict(OPTIONS[option])
    if algorithm == "SGD":
        kwargs["momentum"] = 0.9
    opt = getattr(FAMILIES[family], algorithm)(**kwargs)
    values = [np.linspace(-1, 1, 16, dtype=np.float32).reshape(8, 2), np.linspace(0, 1, 8, dtype=np.float32)]
    if sharded:
        mesh = Mesh(np.array(jax.devices()[:8]), ("x",))
        values = [jax.device_put(v, NamedSharding(mesh, P("x"))) for v in values]
    var = [jk.Variable(v, name=n) for v, n in zip(values, ("dense/kernel", "dense/bias"))]
    opt.build(var)
    rng = np.random.default_rng(0)
    weights = opt.get_weights()
    opt.set_weights([np.int64(5)] + [np.abs(rng.normal(size=np.shape(w))).astype(np.asarray(w).dtype) + 0.1 for w in weights[1:]])
    return opt


CASES = st.tuples(
    st.sampled_from(sorted(FAMILIES)),
    st.sampled_from(ALGORITHMS),
    st.sampled_from(sorted(OPTIONS)),
    st.booleans(),
)


def mutated(weights: list, data, family: str) -> list:
    weights = list(weights)
    kind = data.draw(st.sampled_from(["short", "long", "shape", "count_range", "count_fraction", "count_shape"]))
    if kind == "short":
        # OptimizerV2 takes a list without its step count (it puts a 0 first): not a bad list.
        del weights[data.draw(st.integers(1 if family == "legacy" else 0, len(weights) - 1))]
    elif kind == "long":
        weights.insert(data.draw(st.integers(0, len(weights))), np.zeros(data.draw(st.sampled_from([(), (3,), (8, 2)])), np.float32))
    elif kind == "shape":
        i = data.draw(st.integers(0, len(weights) - 1))
        shape = np.shape(weights[i])
        other = data.draw(
            st.lists(st.integers(1, 9), min_size=0, max_size=3).map(tuple).filter(lambda s, shape=shape: s != shape)
        )
        weights[i] = np.zeros(other, np.asarray(weights[i]).dtype)
    elif kind == "count_range":
        weights[0] = np.int64(data.draw(st.one_of(st.integers(2**31, 2**62), st.integers(-(2**62), -(2**31) - 1))))
    elif kind == "count_fraction":
        weights[0] = data.draw(st.sampled_from([0.5, 2.25, float("nan"), float("inf")]))
    else:
        weights[0] = np.zeros(data.draw(st.sampled_from([(1,), (2,), (1, 1)])), np.int64)
    return weights


def snapshot(opt):
    return [np.array(w) for w in opt.get_weights()], jax.tree_util.tree_map(np.array, opt.state)


@fuzz_settings(150)
@given(case=CASES, data=st.data())
def test_a_bad_weights_list_raises_and_changes_nothing(case, data):
    opt = optimizer(*case)
    before = snapshot(opt)
    bad = mutated(opt.get_weights(), data, case[0])
    try:
        opt.set_weights(bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{case}: accepted {[np.shape(w) for w in bad]}")
    weights, state = snapshot(opt)
    assert len(weights) == len(before[0])
    for a, b in zip(before[0], weights):
        np.testing.assert_array_equal(a, b)
    jax.tree_util.tree_map(np.testing.assert_array_equal, before[1], state)
