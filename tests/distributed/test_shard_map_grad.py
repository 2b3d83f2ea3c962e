"""``jax.grad`` inside ``jax.shard_map`` with replicated parameters, then
``aggregate_gradients`` (the recipe of docs/distributed.md): the step is the
one a single device takes on the whole batch.  SGD, whose step is
proportional to the gradient, so a gradient scaled by the device count shows.
``tests/conftest.py`` gives the session 8 CPU devices."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxopt_keras as jk

MESH = Mesh(np.array(jax.devices()), ("data",))
X = jnp.linspace(-1.0, 1.0, 64 * 3, dtype=jnp.float32).reshape(64, 3)
PARAMS = {"w": jnp.ones((3, 2), jnp.float32)}
SGD = {"legacy": jk.legacy.sgd, "current": jk.sgd, "keras3": jk.keras3.sgd}


def _loss(p, x, denominator):
    return jnp.sum((x @ p["w"]) ** 2) / denominator


def _expected(reduction):
    """One device, the whole batch: the per-device mean loss averages to the
    global mean ("mean"); the per-device loss over the global batch sums to it ("sum")."""
    grads = jax.grad(_loss)(PARAMS, X, 64.0)
    return PARAMS["w"] - 0.1 * grads["w"]


def _step(tx, denominator, check_vma):
    def local_step(params, state, x):
        grads = jax.grad(_loss)(params, x, denominator)
        updates, state = tx.update(grads, state, params)
        return jk.apply_updates(params, updates), state

    mapped = jax.shard_map(local_step, mesh=MESH, in_specs=(P(), P(), P("data")), out_specs=(P(), P()), check_vma=check_vma)
    return jax.jit(mapped)


@pytest.mark.parametrize("family", sorted(SGD))
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_the_recipe_steps_as_one_device_on_the_whole_batch(family, reduction):
    tx = jk.chain(jk.aggregate_gradients("data", reduction), SGD[family](0.1))
    denominator = 8.0 if reduction == "mean" else 64.0  # this device's 8 rows, or the global batch
    params = jax.device_put(PARAMS, NamedSharding(MESH, P()))
    new, _ = _step(tx, denominator, check_vma=False)(params, jax.jit(tx.init)(params), X)
    # float32 sums over the rows in another order (8 blocks, then the all-reduce): a few ulp.
    np.testing.assert_allclose(np.asarray(new["w"]), np.asarray(_expected(reduction)), rtol=1e-6)


@pytest.mark.parametrize("family", sorted(SGD))
def test_gradients_jax_already_summed_are_refused(family):
    """With ``check_vma=True`` (shard_map's default) ``jax.grad`` has summed
    the devices' gradients of the replicated parameters: all-reducing them
    again stepped 8 times too far.  Without ``aggregate_gradients``, a loss
    over the global batch is the step itself."""
    tx = jk.chain(jk.aggregate_gradients("data", "mean"), SGD[family](0.1))
    params = jax.device_put(PARAMS, NamedSharding(MESH, P()))
    with pytest.raises(ValueError, match="check_vma=False"):
        _step(tx, 8.0, check_vma=True)(params, jax.jit(tx.init)(params), X)
    plain = SGD[family](0.1)
    new, _ = _step(plain, 64.0, check_vma=True)(params, jax.jit(plain.init)(params), X)
    np.testing.assert_allclose(np.asarray(new["w"]), np.asarray(_expected("sum")), rtol=1e-6)
