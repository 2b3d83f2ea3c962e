"""read_keras on the .keras and .weights.h5 files Keras 3 writes (in a subprocess, JAX backend).

The reader gives family ``"keras3"``, the raw step counter, the optimizer's
variables in Keras 3's order (``optimizer.variables``: iteration, learning
rate unless it is a schedule, then the rest, sorted as numbers), and the
model's weights.  The optimizer's weights are keyed by Keras 3's names for
them (the variable's path with ``_``, and the slot), which end Keras 3's own
paths.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_keras import io
from jaxopt_keras.algorithms.driver import OptimizerState
from jaxopt_keras.core.state import find_state

CASES = ["adam", "sgd_schedule", "nadam", "adam_accumulation", "adamw_ema", "big", "nested", "bfloat16", "normalization", "sub_objects"]


def check(ckpt, truth):
    assert ckpt.family == "keras3"
    assert ckpt.keras_version is None or ckpt.keras_version.startswith("3")
    variables = truth["variables"]
    assert ckpt.iterations == int(variables[0][1])
    assert len(ckpt.optimizer_weights) == len(variables)
    keys = list(ckpt.optimizer_weights)
    assert keys[0] == "iteration"
    schedule = isinstance(truth["optimizer"]["config"]["learning_rate"], dict)
    assert (keys[1] == "learning_rate") == (not schedule)
    for key, (path, _) in zip(keys[2:], variables[2:]):
        last = path.split("/")[-1]
        assert last.endswith(key) or (key == "u_product" and last.startswith("variable")), (key, path)
    for value, (_, expected) in zip(ckpt.optimizer_weights.values(), variables):
        np.testing.assert_array_equal(np.asarray(value, np.float64), np.asarray(expected, np.float64))
    weights = truth["weights"]
    assert len(ckpt.model_weights) == len(weights)
    for (key, value), (path, expected) in zip(ckpt.model_weights.items(), weights):
        assert path.endswith(key), (key, path)
        np.testing.assert_array_equal(np.asarray(value, np.float64), np.asarray(expected, np.float64))
    assert len(ckpt.trainable) == len(truth["trainable"])
    assert all(p.endswith(k) for k, p in zip(ckpt.trainable, truth["trainable"]))


@pytest.mark.parametrize("case", CASES)
def test_keras_archive(written, case):
    truth = written[case]
    ckpt = io.read_keras(truth["paths"]["keras"])
    assert ckpt.kind == "keras"
    check(ckpt, truth)
    assert ckpt.config["class_name"] == truth["optimizer"]["class_name"]
    if case == "adam_accumulation":  # the stored counter counts calls; Keras's iterations property, updates
        assert ckpt.iterations == 3 and truth["iterations"] == 1
    if case == "bfloat16":
        assert all(str(v.dtype) == "bfloat16" for k, v in list(ckpt.optimizer_weights.items())[2:])


@pytest.mark.parametrize("case", CASES)
def test_weights_h5_with_config(written, case):
    truth = written[case]
    config = {"model": truth["config"], "optimizer": truth["optimizer"]}
    ckpt = io.read_keras(truth["paths"]["weights.h5"], config=config)
    assert ckpt.kind == "weights.h5"
    check(ckpt, truth)


def test_weights_h5_without_config(written):
    with pytest.raises(io.KerasFileError, match="config="):
        io.read_keras(written["adam"]["paths"]["weights.h5"])
    with pytest.raises(io.KerasFileError, match="order of its layers"):  # several layer classes: the order is in the config
        io.read_keras(written["big"]["paths"]["weights.h5"], config=written["big"]["optimizer"])


def test_a_keras3_file_ports_into_the_keras3_family(written):
    ckpt = io.read_keras(written["adam"]["paths"]["keras"])
    opt = io.optimizer_from_keras(ckpt)
    assert type(opt).__module__ == "jaxopt_keras.optimizers.keras3" and type(opt).__name__ == "Adam"
    params = {"Dense_0": {"kernel": jnp.zeros((4, 3)), "bias": jnp.zeros(3)}, "Dense_1": {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}}
    params = io.params_from_keras(params, ckpt)
    np.testing.assert_array_equal(params["Dense_1"]["bias"], ckpt.model_weights["dense_1/bias"])
    state = io.state_from_keras(opt.transformation, params, ckpt)
    slots = io.keras_weights(opt, params, state, ckpt)
    assert [n for n, _ in slots] == list(ckpt.optimizer_weights)
    for (_, ours), theirs in zip(slots, ckpt.optimizer_weights.values()):
        np.testing.assert_array_equal(ours, np.asarray(theirs).astype(ours.dtype))


def test_loss_scale_optimizer(written):
    """A Keras 3 LossScaleOptimizer: its inner optimizer's variables are the weights list, its scale and
    counter are read from its own (``optimizer/vars/2`` and ``3``), and both go into the wrapper's state."""
    truth = written["loss_scale"]
    ckpt = io.read_keras(truth["paths"]["keras"])
    opt = io.optimizer_from_keras(ckpt)
    assert type(opt).__name__ == "LossScaleOptimizer" and type(opt.inner_optimizer).__name__ == "Adam"
    inner = truth["inner_variables"]
    assert len(ckpt.optimizer_weights) == len(inner)
    for value, (_, expected) in zip(ckpt.optimizer_weights.values(), inner):
        np.testing.assert_array_equal(np.asarray(value, np.float64), np.asarray(expected, np.float64))
    counter, scale = truth["variables"][2][1], truth["variables"][3][1]
    assert ckpt.loss_scale == {"step_counter": counter, "dynamic_scale": scale}
    params = io.params_from_keras(
        {"Dense_0": {"kernel": jnp.zeros((4, 3)), "bias": jnp.zeros(3)}, "Dense_1": {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}}, ckpt
    )
    state = io.state_from_keras(opt.transformation, params, ckpt)
    assert float(state.loss_scale) == scale and int(state.counter) == counter
    assert int(state.inner.iterations) == ckpt.iterations == truth["iterations"]


def test_adafactor_keys_are_unique(written):
    """Keras 3 names Adafactor's r and c by their variable's name alone (``kernel``, ``bias``: not unique);
    the checkpoint keys them ``dense_kernel_r``, ``dense_kernel_c``; 1-D variables' r and c are int32 placeholders."""
    truth = written["adafactor"]
    ckpt = io.read_keras(truth["paths"]["keras"])
    assert len(ckpt.optimizer_weights) == len(truth["variables"]) == 2 + 4 * 3
    keys = list(ckpt.optimizer_weights)
    kernel, bias = (t.replace("/", "_") for t in ckpt.trainable[:2])  # dense_<n>_kernel: one process writes all cases
    assert keys[2:8] == [f"{kernel}_r", f"{kernel}_c", f"{kernel}_velocity", f"{bias}_r", f"{bias}_c", f"{bias}_velocity"]
    assert ckpt.optimizer_weights[f"{bias}_r"].dtype == np.int32
    for value, (_, expected) in zip(ckpt.optimizer_weights.values(), truth["variables"]):
        np.testing.assert_array_equal(np.asarray(value, np.float64), np.asarray(expected, np.float64))


@pytest.mark.parametrize("kind", ["keras", "weights.h5"])
def test_a_loss_scale_adafactor_file_has_no_placeholders_and_ports(written, kind):
    """Keras 3 builds a wrapped Adafactor untracked: the int32 placeholders Adafactor makes for the r and c of
    its rank < 2 variables are in neither variables list nor the file.  They hold no state: the file reads,
    with the inner optimizer's variables in Keras 3's order, and its state ports and comes back the same."""
    truth = written["loss_scale_adafactor"]
    config = {"model": truth["config"], "optimizer": truth["optimizer"]} if kind == "weights.h5" else None
    ckpt = io.read_keras(truth["paths"][kind], config=config)
    inner = truth["inner_variables"]
    assert len(ckpt.optimizer_weights) == len(inner) == 2 + 3 * 2 + 2  # per layer: kernel r, c, velocity; bias velocity
    kernel, bias = (t.replace("/", "_") for t in ckpt.trainable[:2])
    assert list(ckpt.optimizer_weights)[2:6] == [f"{kernel}_r", f"{kernel}_c", f"{kernel}_velocity", f"{bias}_velocity"]
    for value, (_, expected) in zip(ckpt.optimizer_weights.values(), inner):
        np.testing.assert_array_equal(np.asarray(value, np.float64), np.asarray(expected, np.float64))
    assert ckpt.loss_scale == {"step_counter": truth["variables"][2][1], "dynamic_scale": truth["variables"][3][1]}
    opt = io.optimizer_from_keras(ckpt)
    assert type(opt.inner_optimizer).__name__ == "Adafactor"
    params = io.params_from_keras(
        {"Dense_0": {"kernel": jnp.zeros((4, 3)), "bias": jnp.zeros(3)}, "Dense_1": {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}}, ckpt
    )
    state = io.state_from_keras(opt.transformation, params, ckpt)
    back = io.keras_weights(opt.transformation, params, state, ckpt)
    assert [n for n, _ in back] == list(ckpt.optimizer_weights)
    for (_, ours), theirs in zip(back, ckpt.optimizer_weights.values()):
        np.testing.assert_array_equal(ours, np.asarray(theirs).astype(ours.dtype))


def test_a_keras3_config_tells_the_family_where_the_file_does_not(written, tmp_path):
    """A weights file without Keras 3's name attributes (as TF-Keras writes them): Keras 3's config
    (``loss_scale_factor``, ``gradient_accumulation_steps``, no ``jit_compile``) still says keras3;
    TF-Keras's current config (``jit_compile``, ``is_legacy_optimizer``) says current."""
    import shutil

    import h5py

    path = shutil.copy(written["adam"]["paths"]["weights.h5"], tmp_path / "plain.weights.h5")
    with h5py.File(path, "r+") as f:
        groups = []
        f.visit(groups.append)
        for name in groups:
            f[name].attrs.pop("name", None)
    config = {"model": written["adam"]["config"], "optimizer": written["adam"]["optimizer"]}
    assert io.read_keras(path, config=config).family == "keras3"
    current = dict(written["adam"]["optimizer"], config=dict(written["adam"]["optimizer"]["config"], jit_compile=False, is_legacy_optimizer=False))
    for key in ("loss_scale_factor", "gradient_accumulation_steps"):
        current["config"].pop(key)
    with pytest.raises(io.KerasFileError, match="10 optimizer weights.*current family.*has 9"):  # no learning_rate variable there
        io.read_keras(path, config={"model": written["adam"]["config"], "optimizer": current})


def test_a_multi_optimizer_is_read_and_ported(written):
    """Keras 3 saves a MultiOptimizer's variables (its own iteration and learning rate, then each
    member's); they are read in order, positionally named, and ported member by member: each member's
    state over its own parameters, routed by their Keras paths (here Adam for the kernels, SGD for the biases)."""
    truth = written["multi"]
    ckpt = io.read_keras(truth["paths"]["keras"])
    assert ckpt.family == "keras3" and ckpt.config["class_name"] == "MultiOptimizer"
    assert len(ckpt.optimizer_weights) == len(truth["variables"])
    for value, (_, expected) in zip(ckpt.optimizer_weights.values(), truth["variables"]):
        np.testing.assert_array_equal(np.asarray(value, np.float64), np.asarray(expected, np.float64))
    assert type(io.optimizer_from_keras(ckpt)).__name__ == "MultiOptimizer"
    params = io.params_from_keras(
        {"Dense_0": {"kernel": jnp.zeros((4, 3)), "bias": jnp.zeros(3)}, "Dense_1": {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}}, ckpt
    )
    tx = io.transformation_from_keras(ckpt, params)
    state = io.state_from_keras(tx, params, ckpt)
    adam, sgd = (find_state(s, OptimizerState) for s in state)
    assert [x.shape for x in jax.tree_util.tree_leaves(adam.slots)] == [(4, 3), (3, 2)] * 2  # momentum, velocity
    assert [x.shape for x in jax.tree_util.tree_leaves(sgd.slots)] == [(3,), (2,)]  # momentum
    back = io.keras_weights(tx, params, state, ckpt)
    assert len(back) == len(truth["variables"])
    for (_, ours), (_, expected) in zip(back, truth["variables"]):
        np.testing.assert_array_equal(np.asarray(ours, np.float64), np.asarray(expected, np.float64))


def test_a_loss_scale_optimizer_written_back_holds_both_copies(written, tmp_path):
    """write_keras writes a Keras 3 LossScaleOptimizer as Keras 3 does: ``optimizer/vars`` = its own
    (iteration 0, learning rate 0, step counter, scale) then the inner optimizer's, and the inner
    optimizer's again in ``optimizer/inner_optimizer/vars``; the state's scale and counter, not the file's."""
    import io as _io
    import zipfile

    import h5py

    from jaxopt_keras.io.hdf5 import dataset

    ckpt = io.read_keras(written["loss_scale"]["paths"]["keras"])
    opt = io.optimizer_from_keras(ckpt)
    params = io.params_from_keras(
        {"Dense_0": {"kernel": jnp.zeros((4, 3)), "bias": jnp.zeros(3)}, "Dense_1": {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}}, ckpt
    )
    state = io.state_from_keras(opt.transformation, params, ckpt)
    state = state._replace(loss_scale=jnp.float32(4096.0), counter=jnp.int32(1))
    path = io.write_keras(tmp_path / "back.keras", opt, params, state, like=ckpt)
    back = io.read_keras(path)
    assert back.loss_scale == {"step_counter": 1, "dynamic_scale": 4096.0}
    with zipfile.ZipFile(path) as z, h5py.File(_io.BytesIO(z.read("model.weights.h5"))) as f:
        outer = [dataset(f["optimizer/vars"][str(i)]) for i in range(len(f["optimizer/vars"]))]
        inner = [dataset(f["optimizer/inner_optimizer/vars"][str(i)]) for i in range(len(f["optimizer/inner_optimizer/vars"]))]
        assert dict(f["optimizer/vars"].attrs) == {"name": "loss_scale_optimizer"}
    assert [o.dtype for o in outer[:4]] == [np.int32, np.float32, np.int32, np.float32]
    assert [o.item() for o in outer[:4]] == [0, 0.0, 1, 4096.0]
    assert len(outer) == len(inner) + 4 == len(ckpt.optimizer_weights) + 4
    for a, b, c in zip(outer[4:], inner, ckpt.optimizer_weights.values()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(b, c)


@pytest.mark.parametrize("kind", ["keras", "weights.h5"])
def test_weights_in_sub_objects_are_named_and_ordered_as_keras3_does(written, kind):
    """MultiHeadAttention's projections, a Bidirectional's GRUs, TimeDistributed's Dense, an
    LSTM's cell and stacked cells (stored alphabetically by attribute) read in
    ``trainable_variables`` order, each named by Keras 3's own path."""
    truth = written["sub_objects"]
    config = {"model": truth["config"], "optimizer": truth["optimizer"]} if kind == "weights.h5" else None
    ckpt = io.read_keras(truth["paths"][kind], config=config)
    assert list(ckpt.trainable) == truth["trainable"]
    assert list(ckpt.model_weights) == [path for path, _ in truth["weights"]]


def test_a_step_in_jax_written_back_loads_in_keras3_by_path(written, keras3_load, tmp_path):
    """Port the sub-objects model, take one Adam step in JAX with known gradients, write the
    .keras back and load it in Keras 3: every variable and its momentum are where Keras 3's
    paths say, with the value Adam's formula gives from Keras 3's own slot (m = 0.9 m + 0.1 g).
    Tolerance: float32 round-off of operands up to 0.1 g = 0.02 (2e-9 each) where the sum cancels."""
    truth = written["sub_objects"]
    ckpt = io.read_keras(truth["paths"]["keras"])
    own = dict((path, np.asarray(value, np.float32)) for path, value in truth["weights"])
    params = {k: jnp.asarray(own[k]) for k in truth["trainable"]}
    by_path = {k: k for k in params}
    tx = io.transformation_from_keras(ckpt, params, names=by_path)
    state = io.state_from_keras(tx, params, ckpt, names=by_path)
    grads = {k: jnp.full(v.shape, 0.01 * (i + 1), v.dtype) for i, (k, v) in enumerate(params.items())}
    updates, state = tx.update(grads, state, params)
    params = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
    loaded = keras3_load(io.write_keras(tmp_path / "back.keras", tx, params, state, like=ckpt, names=by_path))
    # A loaded Bidirectional's layers lose its name from their paths (forward_gru/gru_cell/kernel).
    assert len(loaded["trainable"]) == len(truth["trainable"])
    assert all(k.endswith(path) for (path, _), k in zip(loaded["trainable"], truth["trainable"]))
    before = {path.rsplit("/", 1)[-1]: np.asarray(v, np.float32) for path, v in truth["variables"]}
    after = {path.rsplit("/", 1)[-1]: np.asarray(v, np.float32) for path, v in loaded["variables"]}
    for (path, value), k in zip(loaded["trainable"], truth["trainable"]):
        np.testing.assert_array_equal(np.asarray(value, np.float32), np.asarray(params[k]), err_msg=path)
        # Keras 3 names a slot after its variable's path.
        expected = 0.9 * before[k.replace("/", "_") + "_momentum"] + 0.1 * np.asarray(grads[k])
        np.testing.assert_allclose(after[path.replace("/", "_") + "_momentum"], expected, rtol=1e-6, atol=1e-8, err_msg=k)


@pytest.mark.parametrize("kind", ["keras", "weights.h5"])
def test_weights_in_a_custom_sub_object_are_refused_by_name(written, kind):
    """A custom layer's Dense in its own attribute (``layers/projected/proj/vars``): its order in
    ``trainable_variables`` is in no file; refused, naming it (the message used to count
    optimizer weights over the Dense layer alone)."""
    truth = written["custom_sub_object"]
    config = {"model": truth["config"], "optimizer": truth["optimizer"]} if kind == "weights.h5" else None
    with pytest.raises(io.KerasFileError, match=r"2 variables live in sub-objects .*layers/projected/proj/vars/0") as e:
        io.read_keras(truth["paths"][kind], config=config)
    assert truth["paths"][kind] in str(e.value)
