"""Bad input: a clear error naming the file and what is missing, and nothing half-loaded.

Corrupt and truncated files of every kind, files of the wrong kind, files
without an optimizer section, parameters that do not match, configs naming
classes we do not have, missing optional dependencies.  Reading never runs
anything from the file (a Lambda layer's code, a custom class).
"""

from __future__ import annotations

import importlib
import os
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest
import tf_keras

import kerasfiles as kf
from jaxopt_keras import io
from jaxopt_keras.io import KerasFileError, MissingDependencyError, read_keras


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    legacy = kf.trained(kf.small, lambda: kf.L.Adam(0.01))
    out = {"legacy": kf.save_all(legacy, str(d / "legacy"), kinds=("h5", "keras", "ckpt", "w.h5")), "legacy_config": kf.serialized(legacy.optimizer)}
    current = kf.trained(kf.small, lambda: kf.C.Adam(0.01))
    out["current"] = kf.save_all(current, str(d / "current"), kinds=("h5", "keras"))
    out["no_optimizer"] = str(d / "no_optimizer.h5")
    current.save(out["no_optimizer"], include_optimizer=False)
    uncompiled = kf.small()
    out["uncompiled"] = str(d / "uncompiled.h5")
    uncompiled.save(out["uncompiled"])
    return out


def params(dtype=jnp.float32):
    return {
        "Dense_0": {"kernel": jnp.zeros((4, 3), dtype), "bias": jnp.zeros(3, dtype)},
        "Dense_1": {"kernel": jnp.zeros((3, 2), dtype), "bias": jnp.zeros(2, dtype)},
    }


def truncated(path, tmp_path, size):
    data = open(path, "rb").read()
    out = tmp_path / ("cut_" + os.path.basename(path))
    out.write_bytes(data[: size if size >= 0 else len(data) + size])
    return out


@pytest.mark.parametrize("kind", ["h5", "keras"])
@pytest.mark.parametrize("size", [0, 7, 100, -1, "half"])
def test_truncated_files(files, tmp_path, kind, size):
    path = files["current"][kind]
    cut = truncated(path, tmp_path, os.path.getsize(path) // 2 if size == "half" else size)
    with pytest.raises(KerasFileError, match="truncated|not a Keras file") as e:
        read_keras(cut)
    assert str(cut) in str(e.value)


@pytest.mark.parametrize("attribute", ["training_config", "model_config"])
def test_an_h5_attribute_that_is_not_json(files, tmp_path, attribute):
    """It used to escape as a bare json.JSONDecodeError, naming neither the file nor the attribute."""
    import shutil

    import h5py

    path = tmp_path / "garbled.h5"
    shutil.copy(files["current"]["h5"], path)
    with h5py.File(path, "r+") as f:
        f.attrs[attribute] = "{not json"
    with pytest.raises(KerasFileError, match=f"'{attribute}' is not valid JSON") as e:
        read_keras(path)
    assert str(path) in str(e.value)


def test_corrupt_member_of_an_archive(files, tmp_path):
    path = tmp_path / "flipped.keras"
    data = bytearray(open(files["current"]["keras"], "rb").read())
    with zipfile.ZipFile(files["current"]["keras"]) as z:
        info = z.getinfo("model.weights.h5")
    at = info.header_offset + 30 + len(info.filename) + 200  # inside the member's bytes (stored, not deflated)
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(KerasFileError, match="corrupt"):
        read_keras(path)


def test_tf_checkpoint_truncated_or_missing_data(files, tmp_path):
    prefix = files["legacy"]["ckpt"]
    for suffix in (".index", ".data-00000-of-00001"):
        d = tmp_path / suffix.strip(".")
        d.mkdir()
        for s in (".index", ".data-00000-of-00001"):
            data = open(prefix + s, "rb").read()
            (d / ("ck" + s)).write_bytes(data[: len(data) // 2] if s == suffix else data)
        with pytest.raises(KerasFileError, match="truncated|corrupt") as e:
            read_keras(str(d / "ck"), config=files["legacy_config"])
        assert str(d / "ck") in str(e.value)
    d = tmp_path / "nodata"
    d.mkdir()
    (d / "ck.index").write_bytes(open(prefix + ".index", "rb").read())
    with pytest.raises(KerasFileError, match="missing data file|corrupt"):
        read_keras(str(d / "ck"), config=files["legacy_config"])


def test_wrong_kinds_of_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("model weights, honest")
    npz = tmp_path / "weights.npz"
    np.savez(npz, a=np.ones(3))
    for path in (text, npz):
        with pytest.raises(KerasFileError, match="not a Keras file|not a .keras archive"):
            read_keras(path)
    with pytest.raises(FileNotFoundError):
        read_keras(tmp_path / "nope.h5")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(KerasFileError, match="neither a SavedModel"):
        read_keras(tmp_path / "empty_dir")
    other = tmp_path / "other.h5"
    import h5py

    with h5py.File(other, "w") as f:
        f["x"] = np.ones(3)
    with pytest.raises(KerasFileError, match="not a Keras"):
        read_keras(other)


def test_missing_optimizer_sections(files):
    with pytest.raises(KerasFileError, match="save_weights"):
        read_keras(files["legacy"]["w.h5"])
    with pytest.raises(KerasFileError, match="include_optimizer=False"):
        read_keras(files["no_optimizer"])
    with pytest.raises(KerasFileError, match="without a compiled optimizer"):
        read_keras(files["uncompiled"])
    with pytest.raises(KerasFileError, match="legacy optimizer's state"):
        read_keras(files["legacy"]["keras"])
    with pytest.raises(KerasFileError, match="config="):
        read_keras(files["legacy"]["ckpt"])


def test_parameters_that_do_not_match(files):
    ckpt = read_keras(files["legacy"]["h5"])
    tx = io.optimizer_from_keras(ckpt).transformation
    wrong_shape = params()
    wrong_shape["Dense_1"]["kernel"] = jnp.zeros((3, 5))
    with pytest.raises(KerasFileError, match=r"Dense_1/kernel \(3, 5\) vs dense_1/kernel \(3, 2\)"):
        io.state_from_keras(tx, wrong_shape, ckpt)
    extra = params()
    extra["Dense_2"] = {"kernel": jnp.zeros((2, 2)), "bias": jnp.zeros(2)}
    with pytest.raises(KerasFileError, match=r"parameters without a Keras variable: \['Dense_2/bias"):
        io.state_from_keras(tx, extra, ckpt)
    fewer = params()
    del fewer["Dense_1"]
    with pytest.raises(KerasFileError, match=r"Keras variables without a parameter: \['dense_1/kernel \(3, 2\)"):
        io.state_from_keras(tx, fewer, ckpt)
    with pytest.raises(KerasFileError, match="float32 in the file, but float64"):
        import jax

        with jax.enable_x64(True):
            io.params_from_keras(params(jnp.float64), ckpt)
    with pytest.raises(KerasFileError, match="not in the parameter tree"):
        io.state_from_keras(tx, params(), ckpt, names={"Dense_9/kernel": "dense/kernel"})
    with pytest.raises(KerasFileError, match="not among the Keras variables"):
        io.state_from_keras(tx, params(), ckpt, names={"Dense_0/kernel": "dense/kernal"})


def test_a_config_of_another_optimizer_or_an_unknown_class(files):
    with pytest.raises(ValueError, match="config= names optimizer 'SGD', the file 'Adam'"):
        read_keras(files["legacy"]["h5"], config={"class_name": "SGD", "config": {}})
    unknown = {"class_name": "my_package>EvilOptimizer", "module": "my_package", "config": {"name": "Evil"}}
    with pytest.raises(KerasFileError, match="cannot be read"):
        read_keras(files["legacy"]["ckpt"], config=unknown)


def test_nothing_from_the_file_runs(tmp_path):
    """A Lambda layer's code is in the file; reading takes the weights and never deserializes layers."""
    tf_keras.backend.clear_session()
    inputs = tf_keras.Input((4,))
    x = tf_keras.layers.Lambda(lambda t: t * 2.0)(tf_keras.layers.Dense(3)(inputs))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(2)(x))
    model.compile(optimizer=kf.L.SGD(0.1, momentum=0.5), loss="mse")
    model.fit(np.ones((8, 4), "float32"), np.ones((8, 2), "float32"), verbose=0)
    model.save(tmp_path / "lambda.h5")
    model.save(tmp_path / "lambda.keras")
    ckpt = read_keras(tmp_path / "lambda.h5")
    assert list(ckpt.model_weights) == ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]
    assert ckpt.iterations == 1


def test_missing_dependencies(files, monkeypatch):
    from jaxopt_keras.io import hdf5, tfcheckpoint

    monkeypatch.setattr(hdf5, "h5py", None)
    with pytest.raises(MissingDependencyError, match=r"jaxopt_keras\[io\]"):
        read_keras(files["legacy"]["h5"])
    monkeypatch.undo()
    monkeypatch.setattr(tfcheckpoint, "_MODULES", {})

    def no_tensorflow(name, *a, **k):
        if name.startswith("tensorflow"):
            raise ImportError(f"No module named {name!r}")
        return importlib.import_module(name, *a, **k)

    monkeypatch.setattr(tfcheckpoint.importlib, "import_module", no_tensorflow)
    with pytest.raises(MissingDependencyError, match=r"jaxopt_keras\[tf\]"):
        read_keras(files["legacy"]["ckpt"], config=files["legacy_config"])


def test_an_optimizer_compiled_but_never_built(tmp_path):
    """TF-Keras >= 2.11 saves a compiled, untrained model's optimizer as its step count alone:
    the error says so (it used to count optimizer weights against slots that never existed)."""
    model = kf.small()
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="mse")
    paths = kf.save_all(model, str(tmp_path), kinds=("h5", "keras", "ckpt"))
    for kind, path in paths.items():
        config = kf.serialized(model.optimizer) if kind == "ckpt" else None
        with pytest.raises(KerasFileError, match="compiled but never built: the file holds only its own 1 variables") as e:
            read_keras(path, config=config)
        assert str(path) in str(e.value)
