"""read_keras on every file kind TF-Keras writes, against the live objects that wrote it.

Each case trains a small model for three steps in TF-Keras and saves it in
every format (in the test's tmp dir); the checkpoint read back must hold the
optimizer's weights list exactly as Keras lists it (order, values, names
without the optimizer's name scope), the step count, the config, and the
model's weights in ``model.weights`` order with the trainable ones in
``model.trainable_weights`` order.
"""

from __future__ import annotations

import json

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tf_keras

import kerasfiles as kf
from jaxopt_keras import io
from jaxopt_keras.core.state import find_state
from jaxopt_keras.io import KerasFileError, read_keras
from jaxopt_keras.transforms.loss_scale import LossScaleState

CASES = {
    "legacy_adam": (kf.small, lambda: kf.L.Adam(0.01, decay=0.01, clipnorm=1.0)),
    "legacy_ftrl": (kf.small, lambda: kf.L.Ftrl(0.1, l1_regularization_strength=0.01)),
    "legacy_nadam": (kf.small, lambda: kf.L.Nadam(0.01)),
    "legacy_rmsprop": (kf.small, lambda: kf.L.RMSprop(0.01, momentum=0.9, centered=True)),
    "legacy_big": (kf.big, lambda: kf.L.Adam(0.01, amsgrad=True)),
    "legacy_nested": (kf.nested, lambda: kf.L.SGD(0.1, momentum=0.9)),
    "current_adam_ema": (kf.small, lambda: kf.C.Adam(0.01, use_ema=True, ema_momentum=0.9)),
    "current_adafactor": (kf.small, lambda: kf.C.Adafactor(0.01)),
    "current_rmsprop": (kf.small, lambda: kf.C.RMSprop(0.01, momentum=0.9, centered=True)),
    "current_sgd_schedule": (kf.small, lambda: kf.C.SGD(kf.C.schedules.ExponentialDecay(0.1, 10, 0.9), momentum=0.9)),
    "current_big": (kf.big, lambda: kf.C.AdamW(0.01, amsgrad=True)),
    "current_nested": (kf.nested, lambda: kf.C.Nadam(0.01)),
    # Normalization's mean, variance and count have no slots (they used to be counted as trainable).
    "legacy_normalization": (kf.normalized, lambda: kf.L.Adam(0.01)),
    "current_normalization": (kf.normalized, lambda: kf.C.Adam(0.01)),
}


def strip(name):
    return name[:-2] if name.endswith(":0") else name


class Saved:
    """A trained model's files and what the live objects held when they were written."""

    def __init__(self, case, directory):
        make_model, make_opt = CASES[case]
        model = kf.trained(make_model, make_opt)
        opt = model.optimizer
        self.legacy = isinstance(opt, kf.L.Optimizer)
        self.family = "legacy" if self.legacy else "current"
        self.names, self.values = kf.optimizer_list(opt)
        self.iterations = int(opt.iterations.numpy())
        self.model_names = [strip(w.name) for w in model.weights]
        self.model_values = [w.numpy() for w in model.weights]
        self.trainable = [strip(w.name) for w in model.trainable_weights]
        self.config = kf.serialized(opt)
        self.learning_rate = float(opt.learning_rate.numpy()) if self.legacy else None
        self.model_json = json.loads(model.to_json())
        self.paths = kf.save_all(model, directory, kinds=("h5", "keras", "weights.h5", "w.h5", "ckpt", "tfw"))

    def check(self, ckpt):
        assert ckpt.family == self.family
        assert ckpt.iterations == self.iterations == 3
        assert len(ckpt.optimizer_weights) == len(self.values)
        for (key, ours), name, theirs in zip(ckpt.optimizer_weights.items(), self.names, self.values):
            assert name.endswith(key + ":0"), (key, name)
            np.testing.assert_array_equal(ours, theirs)
            assert ours.dtype == theirs.dtype
        # TF-Keras names Normalization's variables without their layer's scope (`mean:0`); a
        # .keras file keeps them in the layer's group, which names them `normalization/mean`.
        assert all(k == n or k.endswith("/" + n) for k, n in zip(ckpt.model_weights, self.model_names))
        assert len(ckpt.model_weights) == len(self.model_names)
        for ours, theirs in zip(ckpt.model_weights.values(), self.model_values):
            np.testing.assert_array_equal(ours, theirs)
        assert list(ckpt.trainable) == self.trainable
        assert ckpt.config["config"]["name"] == self.config["config"]["name"]
        assert ckpt.config["class_name"].split(">")[-1] == self.config["class_name"]


_SAVED: dict = {}


@pytest.fixture(params=sorted(CASES))
def saved(request, tmp_path_factory):
    if request.param not in _SAVED:
        _SAVED[request.param] = Saved(request.param, str(tmp_path_factory.mktemp(request.param)))
    return _SAVED[request.param]


def test_h5(saved):
    ckpt = read_keras(saved.paths["h5"])
    assert ckpt.kind == "h5" and ckpt.model_config is not None
    saved.check(ckpt)
    # The whole config: every hyperparameter, clipping included.
    assert ckpt.config["config"] == saved.config["config"]


def test_keras_archive(saved):
    if saved.legacy:
        with pytest.raises(KerasFileError, match="legacy optimizer's state"):
            read_keras(saved.paths["keras"])
        return
    ckpt = read_keras(saved.paths["keras"])
    assert ckpt.kind == "keras" and ckpt.keras_version.startswith("2.")
    saved.check(ckpt)


def test_weights_h5_with_the_configs(saved):
    config = {"model": saved.model_json, "optimizer": saved.config}
    if saved.legacy:
        with pytest.raises(KerasFileError, match="no optimizer state"):
            read_keras(saved.paths["weights.h5"], config=config)
        return
    saved.check(read_keras(saved.paths["weights.h5"], config=config))
    with pytest.raises(KerasFileError, match="config"):
        read_keras(saved.paths["weights.h5"])


def test_save_weights_h5_has_no_optimizer(saved):
    with pytest.raises(KerasFileError, match="model.save_weights"):
        read_keras(saved.paths["w.h5"])


@pytest.mark.parametrize("kind", ["ckpt", "tfw"])
def test_tf_checkpoint(saved, kind):
    ckpt = read_keras(saved.paths[kind], config=saved.config)
    assert ckpt.kind == "tf_checkpoint"
    saved.check(ckpt)
    if saved.legacy:
        # The checkpoint's hyperparameter variables are the values of record: they win over config='s.
        stale = dict(saved.config, config=dict(saved.config["config"], learning_rate=0.5))
        assert read_keras(saved.paths[kind], config=stale).config["config"]["learning_rate"] == saved.learning_rate
        with pytest.raises(KerasFileError, match="config="):
            read_keras(saved.paths[kind])
    else:
        with pytest.raises(KerasFileError, match="config"):
            read_keras(saved.paths[kind])


def test_chunked_attributes(saved, tmp_path):
    """Keras splits an attribute over 64 KB into name0, name1, ...: read as one list."""
    path = tmp_path / "chunked.h5"
    path.write_bytes(open(saved.paths["h5"], "rb").read())
    with h5py.File(path, "r+") as f:
        for group, attr in ((f["optimizer_weights"], "weight_names"), (f["model_weights"], "layer_names")):
            names = list(group.attrs[attr])
            del group.attrs[attr]
            half = len(names) // 2
            group.attrs[f"{attr}0"] = names[:half]
            group.attrs[f"{attr}1"] = names[half:]
    saved.check(read_keras(path))


def test_savedmodel_needs_no_config(tmp_path):
    for family, make_opt in (("legacy", lambda: kf.L.Adam(0.01, decay=0.01)), ("current", lambda: kf.C.Adam(0.01, use_ema=True))):
        model = kf.trained(kf.small, make_opt)
        names, values = kf.optimizer_list(model.optimizer)
        path = kf.save_all(model, str(tmp_path / family), kinds=("savedmodel",))["savedmodel"]
        ckpt = read_keras(path)
        assert ckpt.family == family
        # The config of the metadata, with the values of the hyperparameter variables (float32).
        expected = kf.serialized(model.optimizer)["config"]
        assert ckpt.config["config"].keys() == expected.keys()
        for k, v in expected.items():
            assert (np.float32(ckpt.config["config"][k]) == np.float32(v)) if isinstance(v, float) else ckpt.config["config"][k] == v
        assert [n.endswith(k + ":0") for k, n in zip(ckpt.optimizer_weights, names)] == [True] * len(names)
        for a, b in zip(ckpt.optimizer_weights.values(), values):
            np.testing.assert_array_equal(a, b)


def frozen_base():
    """A frozen Dense (a pretrained base) -> Dense(2): the frozen layer has no slots."""
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((4,))
    return tf_keras.Model(inputs, tf_keras.layers.Dense(2)(tf_keras.layers.Dense(3, trainable=False)(inputs)))


@pytest.mark.parametrize("kind", ["ckpt", "tfw"])
def test_a_current_tf_checkpoint_with_a_frozen_layer_reads_with_the_model_config(tmp_path, kind):
    """A current-family TF checkpoint does not say which variables are trainable; the model
    config's flags do (its reader ignored them, and refused the file)."""
    model = kf.trained(frozen_base, lambda: kf.C.Adam(0.01))
    paths = kf.save_all(model, str(tmp_path), kinds=(kind,))
    optimizer = kf.serialized(model.optimizer)
    with pytest.raises(KerasFileError, match="frozen with trainable=False .* pass config= with the model's config"):
        read_keras(paths[kind], config=optimizer)
    ckpt = read_keras(paths[kind], config={"model": json.loads(model.to_json()), "optimizer": optimizer})
    assert list(ckpt.trainable) == [strip(w.name) for w in model.trainable_weights]
    assert len(ckpt.trainable) == 2 < len(ckpt.model_weights)
    names, values = kf.optimizer_list(model.optimizer)
    assert len(ckpt.optimizer_weights) == len(values)
    for ours, theirs in zip(ckpt.optimizer_weights.values(), values):
        np.testing.assert_array_equal(ours, theirs)


def two_projections():
    """Two sub-models, each with a Dense named "proj" of the same shape (Keras allows it: a name is
    unique within its model); their variables are both named proj/kernel, proj/bias."""
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((4,))
    a, b = (tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(3, name="proj")], name=n) for n in "ab")
    return tf_keras.Model(inputs, tf_keras.layers.Dense(2)(tf_keras.layers.Concatenate()([a(inputs), b(inputs)])))


@pytest.mark.parametrize("family", ["legacy", "current"])
def test_a_tf_checkpoint_of_variables_of_the_same_name_is_refused(tmp_path, family):
    """TF-Keras names both projections' variables proj/kernel: the checkpoint's reader kept one
    layer's weights under the name (and, legacy, its slots for both), silently."""
    model = kf.trained(two_projections, lambda: (kf.L if family == "legacy" else kf.C).Adam(0.01))
    assert [w.name for w in model.trainable_weights][:4] == ["proj/kernel:0", "proj/bias:0"] * 2
    paths = kf.save_all(model, str(tmp_path), kinds=("ckpt",))
    config = {"model": json.loads(model.to_json()), "optimizer": kf.serialized(model.optimizer)}
    with pytest.raises(KerasFileError, match=r"named \['proj/bias', 'proj/kernel'\] \(layers of the same name"):
        read_keras(paths["ckpt"], config=config)


def test_legacy_slots_of_a_layer_unfrozen_after_the_first_steps(tmp_path):
    """Fine-tuning: the first layer frozen for two steps, then unfrozen and recompiled with the same
    legacy optimizer, which creates that layer's slots then, last in its weights list.  All kernels
    are 4x4: the .h5's list read in model.trainable_variables order put the slots on the wrong
    variables, silently.  The file names each slot's variable: refused.  The TF checkpoint hangs
    the slots on their variables and reads."""
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.Input((4,))] + [tf_keras.layers.Dense(4, activation="tanh") for _ in range(3)])
    model.layers[0].trainable = False
    optimizer = kf.L.Adam(0.01)
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    for trainable in (False, True):
        model.layers[0].trainable = trainable
        model.compile(optimizer=optimizer, loss="mse")
        model.fit(x, x, batch_size=4, verbose=0)
    assert [w.name for w in optimizer.weights][1] == "Adam/dense_1/kernel/m:0"
    paths = kf.save_all(model, str(tmp_path), kinds=("h5", "ckpt"))
    with pytest.raises(KerasFileError, match=r"weight 1 is named 'Adam/dense_1/kernel/m' where Keras's order has dense/kernel/m\. A legacy"):
        read_keras(paths["h5"])
    ckpt = read_keras(paths["ckpt"], config=kf.serialized(optimizer))
    for variable in model.trainable_variables:
        for slot in ("m", "v"):
            np.testing.assert_array_equal(ckpt.optimizer_weights[f"{strip(variable.name)}/{slot}"], optimizer.get_slot(variable, slot).numpy())


@pytest.mark.parametrize("family", ["legacy", "current"])
def test_a_tf_checkpoint_with_the_loss_scale_wrappers_config(tmp_path, family):
    """A mixed_float16 model's compile wraps the optimizer in a LossScaleOptimizer; with that
    wrapper's serialization as config=, the checkpoint's hyperparameter variables (the inner
    optimizer's) go into the inner config (they were merged into the wrapper's: a TypeError).
    The wrapper's dynamic scale and its count of good steps are read and go into the ported
    state (they were left at the config's initial scale and 0)."""
    make = kf.L.Adam if family == "legacy" else kf.C.Adam
    tf_keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        tf_keras.backend.clear_session()
        tf_keras.utils.set_random_seed(0)
        inputs = tf_keras.Input((4,))
        model = tf_keras.Model(inputs, tf_keras.layers.Dense(2, dtype="float32")(tf_keras.layers.Dense(3)(inputs)))
        model.compile(make(0.01), "mse")
        x, y = kf.data(model)
        model.fit(x, y, batch_size=8, verbose=0)
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")
    paths = kf.save_all(model, str(tmp_path), kinds=("ckpt",))
    ckpt = read_keras(paths["ckpt"], config=kf.serialized(model.optimizer))
    assert "inner_optimizer" in ckpt.config["config"]
    assert ckpt.config["config"]["inner_optimizer"]["config"]["learning_rate"] == pytest.approx(0.01)
    _, values = kf.optimizer_list(model.optimizer.inner_optimizer)
    assert len(ckpt.optimizer_weights) == len(values)
    for ours, theirs in zip(ckpt.optimizer_weights.values(), values):
        np.testing.assert_array_equal(ours, theirs)
    scale, counter = float(model.optimizer.loss_scale), int(model.optimizer.dynamic_counter)
    assert ckpt.loss_scale == {"step_counter": counter, "dynamic_scale": scale}
    assert (scale, counter) != (2.0**15, 0)  # what a state left at the config's start would hold
    params = {f"Dense_{i}": {"kernel": jnp.asarray(k), "bias": jnp.asarray(b)} for i, (k, b) in enumerate(zip(*[iter(model.get_weights())] * 2))}
    tx = io.transformation_from_keras(ckpt, params)
    wrapper = find_state(io.state_from_keras(tx, params, ckpt), LossScaleState)
    assert (float(wrapper.loss_scale), int(wrapper.counter)) == (scale, counter)
    # Without the wrapper's config, the checkpoint ports as the bare optimizer: no scale to read.
    bare = read_keras(paths["ckpt"], config=kf.serialized(model.optimizer.inner_optimizer))
    assert bare.loss_scale is None and "inner_optimizer" not in bare.config["config"]


def test_a_mixed_float16_keras_file_ports_with_its_loss_scale_wrapper(tmp_path):
    """Under mixed_float16, compile wraps the optimizer given to it in a LossScaleOptimizerV3;
    the .keras file's compile_config names the optimizer given (Adam) and its store holds the
    wrapper's inner_optimizer.  The port is the wrapped optimizer, as the run was, so a
    non-finite gradient skips the step and halves the scale, as TF-Keras's does."""
    tf_keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        tf_keras.backend.clear_session()
        tf_keras.utils.set_random_seed(0)
        inputs = tf_keras.Input((4,))
        model = tf_keras.Model(inputs, tf_keras.layers.Dense(2, dtype="float32")(tf_keras.layers.Dense(3, dtype="float32")(inputs)))
        model.compile(kf.C.Adam(0.01), "mse")
        x, y = kf.data(model)
        model.fit(x, y, batch_size=8, verbose=0)
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")
    assert type(model.optimizer).__name__ == "LossScaleOptimizerV3"
    paths = kf.save_all(model, str(tmp_path), kinds=("keras", "weights.h5"))
    config = {"model": json.loads(model.to_json()), "optimizer": kf.serialized(model.optimizer.inner_optimizer)}
    for kind in ("keras", "weights.h5"):
        ckpt = read_keras(paths[kind], config=config if kind == "weights.h5" else None)
        assert ckpt.config["class_name"] == "LossScaleOptimizerV3", kind
        assert ckpt.config["config"]["inner_optimizer"]["class_name"] == "Adam", kind
        assert ckpt.loss_scale is None  # TF-Keras stores no scale: its wrapper starts at 2**15 again
    params = {f"Dense_{i}": {"kernel": jnp.asarray(k), "bias": jnp.asarray(b)} for i, (k, b) in enumerate(zip(*[iter(model.get_weights())] * 2))}
    tx = io.transformation_from_keras(ckpt, params)
    state = io.state_from_keras(tx, params, ckpt)
    assert float(model.optimizer.loss_scale) == 2.0**15 == float(find_state(state, LossScaleState).loss_scale)
    for step in range(3):  # an infinite gradient first, then finite ones, on both sides
        fill = np.inf if step == 0 else 0.1 * (step + 1)
        grads = [np.full(v.shape, fill if i == 0 else 0.1, np.float32) for i, v in enumerate(model.trainable_variables)]
        model.optimizer.apply_gradients(zip([tf_keras.backend.constant(g) for g in grads], model.trainable_variables))
        tree = {"Dense_0": {"kernel": grads[0], "bias": grads[1]}, "Dense_1": {"kernel": grads[2], "bias": grads[3]}}
        updates, state = tx.update(jax.tree_util.tree_map(jnp.asarray, tree), state, params)
        params = jax.tree_util.tree_map(jnp.add, params, updates)
        assert float(find_state(state, LossScaleState).loss_scale) == float(model.optimizer.loss_scale), step
    ours = [np.asarray(params[f"Dense_{i}"][k]) for i in range(2) for k in ("kernel", "bias")]
    for got, want in zip(ours, model.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert all(np.isfinite(w).all() for w in ours)
