"""Weights Keras keeps in a layer's sub-objects, read from and written to every TF-Keras file kind.

MultiHeadAttention's projections, a Bidirectional's two copies of its layer,
TimeDistributed's layer, an LSTM's cell and an RNN's stacked cells keep their
variables in attributes; ``.keras``/``.weights.h5`` files store them under the
attribute's name, in alphabetical order, and TF checkpoints as children of the
layer's object.  The reader puts them in ``model.trainable_variables`` order,
named as Keras names them; the truth is the live TF-Keras model and optimizer
that saved the files.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tf_keras

import kerasfiles as kf
from jaxopt_keras import io
from jaxopt_keras.io import KerasFileError, read_keras
from jaxopt_keras.io.layers import strip_variable_name as strip


def make(family):
    return kf.L.Adam if family == "legacy" else kf.C.Adam


def kinds(family):
    # TF-Keras writes no legacy optimizer state to .keras / .weights.h5 files.
    return ("h5", "ckpt", "tfw") + (("keras", "weights.h5") if family == "current" else ())


@pytest.fixture(scope="module", params=["legacy", "current"])
def saved(request, tmp_path_factory):
    family = request.param
    model = kf.trained(kf.sub_objects, lambda: make(family)(0.01))
    paths = kf.save_all(model, str(tmp_path_factory.mktemp(family)), kinds=kinds(family))
    config = {"model": json.loads(model.to_json()), "optimizer": kf.serialized(model.optimizer)}
    return family, model, paths, config


def assert_as_keras(ckpt, model, kind):
    """The checkpoint holds what the live model and optimizer hold: the trainable variables in
    ``trainable_variables`` order, every weight's value by name, the optimizer's weights list."""
    weights = {strip(w.name): w.numpy() for w in model.weights}
    _, values = kf.optimizer_list(model.optimizer)
    assert list(ckpt.trainable) == [strip(w.name) for w in model.trainable_weights], kind
    assert sorted(ckpt.model_weights) == sorted(weights), kind
    for key, value in ckpt.model_weights.items():
        np.testing.assert_array_equal(value, weights[key], err_msg=f"{kind} {key}")
    assert len(ckpt.optimizer_weights) == len(values), kind
    for ours, theirs in zip(ckpt.optimizer_weights.values(), values):
        np.testing.assert_array_equal(ours, theirs, err_msg=kind)


def slot(opt_names, opt_values, var, which):
    """TF-Keras's slot ``which`` of variable ``var``, found by its name in either family."""
    hits = [v for n, v in zip(opt_names, opt_values) if n.removeprefix("Adam/") in (f"{var}/{which}:0", f"{which}/{var}:0")]
    assert len(hits) == 1, (var, which, opt_names)
    return hits[0]


def test_every_file_kind_reads_in_keras_order(saved):
    family, model, paths, config = saved
    trainable = [strip(w.name) for w in model.trainable_weights]
    assert any("/stacked_rnn_cells/" in k for k in trainable) and any("/query/" in k for k in trainable)
    for kind in kinds(family):
        ckpt = read_keras(paths[kind], config=config)
        assert_as_keras(ckpt, model, kind)


def test_a_step_in_jax_written_back_loads_in_keras_by_name(saved, tmp_path):
    """Port, take one Adam step in JAX with known gradients, write the file back, load it in
    TF-Keras: every variable and its first moment are where Keras's names say, with the value
    Adam's formula gives from Keras's own slot (m = 0.9 m + 0.1 g).  Tolerance: float32 round-off
    of operands up to 0.1 g = 0.02 (2e-9 each) where the sum cancels."""
    family, model, paths, config = saved
    names, values = kf.optimizer_list(model.optimizer)
    trainable = [strip(w.name) for w in model.trainable_weights]
    own = {strip(w.name): w.numpy() for w in model.trainable_weights}
    for kind in ("h5",) + (("keras",) if family == "current" else ()):
        ckpt = read_keras(paths[kind], config=config)
        params = {k: jnp.asarray(own[k]) for k in trainable}
        by_name = {k: k for k in trainable}
        tx = io.transformation_from_keras(ckpt, params, names=by_name)
        state = io.state_from_keras(tx, params, ckpt, names=by_name)
        grads = {k: jnp.full(np.shape(v), 0.01 * (i + 1), v.dtype) for i, (k, v) in enumerate(params.items())}
        updates, state = tx.update(grads, state, params)
        params = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
        path = io.write_keras(tmp_path / f"back.{kind}", tx, params, state, like=ckpt, names=by_name)
        loaded = tf_keras.models.load_model(path)
        loaded.optimizer.build(loaded.trainable_variables) if family == "current" else None
        assert [strip(w.name) for w in loaded.trainable_weights] == trainable
        for w in loaded.trainable_weights:
            np.testing.assert_array_equal(w.numpy(), np.asarray(params[strip(w.name)]), err_msg=f"{kind} {w.name}")
        got_names, got_values = kf.optimizer_list(loaded.optimizer)
        for k in trainable:
            expected = 0.9 * slot(names, values, k, "m") + 0.1 * np.asarray(grads[k])
            np.testing.assert_allclose(slot(got_names, got_values, k, "m"), expected, rtol=1e-6, atol=1e-8, err_msg=f"{kind} {k}")


def test_a_custom_layers_own_sub_object_is_refused_by_name(tmp_path):
    """Variables in an attribute no Keras layer has (a custom layer's ``proj``): their order in
    ``trainable_variables`` is in no file but the ``.h5``; refused, naming them, where the
    legacy TF checkpoint read silently without them."""
    for family in ("legacy", "current"):
        model = kf.trained(kf.custom_sub_object, lambda: make(family)(0.01))
        paths = kf.save_all(model, str(tmp_path / family), kinds=kinds(family))
        config = {"model": json.loads(model.to_json()), "optimizer": kf.serialized(model.optimizer)}
        assert list(read_keras(paths["h5"], config=config).trainable) == [strip(w.name) for w in model.trainable_weights]
        for kind in kinds(family)[1:]:
            with pytest.raises(KerasFileError, match=r"2 variables live in sub-objects .*proj") as e:
                read_keras(paths[kind], config=config)
            assert "custom layer" in str(e.value)


@pytest.mark.parametrize("family", ["legacy", "current"])
def test_a_subclassed_models_tf_checkpoint_reads_in_keras_order(tmp_path, family):
    """A subclassed model's TF checkpoint (``tf.train.Checkpoint``, ``save_weights``) has no
    ``layer_with_weights-<k>`` objects; its object graph lists attributes in the order they were
    set, and TF-Keras lists a Model's layers' variables before its own, a Layer's own before its
    layers'.  Read in ``trainable_variables`` order, named by the checkpoint (it used to say the
    checkpoint holds no Keras model)."""
    model = kf.trained(kf.subclassed, lambda: make(family)(0.01))
    paths = kf.save_all(model, str(tmp_path), kinds=("ckpt", "tfw"))
    trainable = [strip(w.name) for w in model.trainable_weights]
    assert trainable[-1] == "scale" and trainable[0] == "subclassed/block/gain"  # the orders the rule is about
    for kind in ("ckpt", "tfw"):
        ckpt = read_keras(paths[kind], config=kf.serialized(model.optimizer))
        assert_as_keras(ckpt, model, kind)
