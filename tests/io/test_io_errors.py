"""Bad input: a clear error naming the file and what is missing, and nothing half-loaded.

Corrupt and truncated files of every kind, files of the wrong kind, files
without an optimizer section, parameters that do not match, configs naming
classes we do not have, missing optional dependencies.  Reading never runs
anything from the file (a Lambda layer's code, a custom class).
"""

from __future__ import annotations

import importlib
import json
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


# ----------------------------------------------------------------------------
# Valid containers holding what Keras never writes: each a KerasFileError
# naming the file and the field (they used to escape as bare AttributeError,
# TypeError, zlib.error, or were silently rounded or ported)
# ----------------------------------------------------------------------------


def h5_edited(src, tmp_path, edit, name="edited.h5"):
    import shutil

    import h5py

    out = tmp_path / name
    shutil.copy(src, out)
    with h5py.File(out, "r+") as f:
        edit(f)
    return out


def first_optimizer_weight(f):
    names = f["optimizer_weights"].attrs["weight_names"]
    return "optimizer_weights/" + (names[0].decode() if isinstance(names[0], bytes) else names[0])


@pytest.mark.parametrize("value", [np.float32(2.5), np.float32(np.nan), np.array([2, 2], np.int64), np.int64(-1)],
                         ids=["fractional", "nan", "not a scalar", "negative"])
def test_a_step_count_that_is_not_a_whole_number(files, tmp_path, value):
    """int() of the file's count rounded 2.5 down to 2 (set_weights refuses it) and raised a bare
    ValueError or TypeError on NaN and on arrays."""
    path = h5_edited(files["legacy"]["h5"], tmp_path, kf.replaced(first_optimizer_weight, value))
    with pytest.raises(KerasFileError, match=r"step count \(its first weight\): `iterations` must be a (non-negative whole number|scalar)") as e:
        read_keras(path)
    assert str(path) in str(e.value)


def _json_edit(name, change):
    def edit(members):
        value = json.loads(members[name])
        value = change(value)
        return {**members, name: json.dumps(value).encode()}

    return edit


def _at(*keys_and_value):
    *keys, value = keys_and_value

    def change(config):
        node = config
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
        return config

    return change


ARCHIVE_DAMAGE = {
    "config.json is a list": ("config.json", lambda c: [], "config.json holds a list, not a JSON object"),
    "metadata.json is null": ("metadata.json", lambda c: None, "metadata.json holds null"),
    "keras_version is a number": ("metadata.json", lambda c: {**c, "keras_version": 3}, "'keras_version' is a number"),
    "compile_config is a list": ("config.json", _at("compile_config", [1]), "'compile_config' is a list"),
    "the optimizer is a number": ("config.json", _at("compile_config", "optimizer", 5), r"compile_config\['optimizer'\] is a number"),
    "the optimizer's config is a list": ("config.json", _at("compile_config", "optimizer", "config", [1]), r"\['optimizer'\]\['config'\] is a list"),
    "a layer is a string": ("config.json", _at("config", "layers", 1, "dense"), r"layer layers\[1\] is a string"),
}


@pytest.mark.parametrize("damage", list(ARCHIVE_DAMAGE))
def test_an_archive_json_of_the_wrong_kind(files, tmp_path, damage):
    name, change, message = ARCHIVE_DAMAGE[damage]
    with zipfile.ZipFile(files["current"]["keras"]) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members = _json_edit(name, change)(members)
    path = tmp_path / "damaged.keras"
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    with pytest.raises(KerasFileError, match=message) as e:
        read_keras(path)
    assert str(path) in str(e.value)


H5_DAMAGE = {
    "training_config is a list": (lambda t: [1], "'training_config' holds a list"),
    "the optimizer is a name": (lambda t: {**t, "optimizer_config": "adam"}, r"\['optimizer_config'\] is a string"),
    "the optimizer's config is a list": (lambda t: {**t, "optimizer_config": {**t["optimizer_config"], "config": [1]}}, r"\['optimizer_config'\]\['config'\] is a list"),
}


@pytest.mark.parametrize("damage", list(H5_DAMAGE) + ["a layer is a number"])
def test_an_h5_attribute_of_the_wrong_kind(files, tmp_path, damage):
    def edit(f):
        if damage == "a layer is a number":
            f.attrs["model_config"] = json.dumps({"class_name": "Functional", "config": {"layers": [1]}})
        else:
            f.attrs["training_config"] = json.dumps(H5_DAMAGE[damage][0](json.loads(f.attrs["training_config"])))

    path = h5_edited(files["legacy"]["h5"], tmp_path, edit)
    message = r"'model_config': layer layers\[0\] is a number" if damage == "a layer is a number" else H5_DAMAGE[damage][1]
    with pytest.raises(KerasFileError, match=message) as e:
        read_keras(path)
    assert str(path) in str(e.value)


def test_a_malformed_config_argument_is_a_value_error_naming_it(files):
    """A list where the optimizer's arguments belong was taken for a TF1-era Sequential model's layers."""
    with pytest.raises(ValueError, match=r"config's optimizer\['config'\] is a list"):
        read_keras(files["legacy"]["ckpt"], config={"class_name": "Adam", "config": [1]})


def _deflated_copy(src, path):
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in members.items():
            z.writestr(n, data)


@pytest.mark.parametrize("damage", ["a flipped byte in a deflated member", "an unknown compression method", "encrypted"])
def test_archive_members_zipfile_cannot_read(files, tmp_path, damage):
    """zlib.error, NotImplementedError and RuntimeError escaped: only BadZipFile was caught."""
    import struct

    path = tmp_path / "deflated.keras"
    _deflated_copy(files["current"]["keras"], path)
    assert read_keras(path).iterations == read_keras(files["current"]["keras"]).iterations  # intact, it reads
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("model.weights.h5")
    if damage.startswith("a flipped"):
        name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
        data[info.header_offset + 30 + name_length + extra_length + 1] ^= 0xFF  # the deflate stream's header: zlib.error
    else:
        at = data.find(b"PK\x01\x02")
        while at != -1:  # each member's central directory entry (and, for the method, its local header)
            if damage == "encrypted":
                data[at + 8 : at + 10] = struct.pack("<H", struct.unpack("<H", data[at + 8 : at + 10])[0] | 1)
            elif data[at + 46 : at + 46 + len(info.filename)] == info.filename.encode():
                data[at + 10 : at + 12] = struct.pack("<H", 99)
                data[info.header_offset + 8 : info.header_offset + 10] = struct.pack("<H", 99)
            at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    with pytest.raises(KerasFileError, match="corrupt|cannot be read") as e:
        read_keras(path)
    assert str(path) in str(e.value)


def test_a_model_weight_that_holds_no_numbers(files, tmp_path):
    """It reached jax.eval_shape, whose TypeError named neither the file nor the weight."""
    path = h5_edited(files["legacy"]["h5"], tmp_path, kf.replaced("model_weights/dense/dense/kernel:0", np.full((4, 3), b"a")))
    with pytest.raises(KerasFileError, match=r"model weight 'dense/kernel' holds values of dtype \|S1, not numbers") as e:
        read_keras(path)
    assert str(path) in str(e.value)


def test_nan_model_weights_are_read_but_not_ported(files, tmp_path):
    kernel = np.full((4, 3), 0.5, np.float32)
    kernel[1, 2] = np.nan
    path = h5_edited(files["legacy"]["h5"], tmp_path, kf.replaced("model_weights/dense/dense/kernel:0", kernel))
    ckpt = read_keras(path)  # for inspection
    assert np.isnan(ckpt.model_weights["dense/kernel"]).sum() == 1
    with pytest.raises(KerasFileError, match=r"model weights hold NaN: \['dense/kernel \(1 of 12\)'\]") as e:
        io.params_from_keras(params(), ckpt)
    assert str(path) in str(e.value)


def test_a_model_weight_of_another_shape_is_named(files, tmp_path):
    path = h5_edited(files["legacy"]["h5"], tmp_path, kf.replaced("model_weights/dense/dense/kernel:0", np.zeros((5, 3), np.float32)))
    with pytest.raises(KerasFileError, match=r"has shape \(4, 3\); the optimizer's over the model weight 'dense/kernel' of shape \(5, 3\)"):
        read_keras(path)


def test_writing_the_state_of_another_optimizer(files, tmp_path):
    """An SGD state written into an Adam file failed with AttributeError: 'SGDSlots' object has no attribute 'v'."""
    import jaxopt_keras as jk

    ckpt = read_keras(files["current"]["h5"])
    p = io.params_from_keras(params(), ckpt)
    sgd = jk.sgd(0.1, momentum=0.9)
    out = tmp_path / "out.h5"
    with pytest.raises(KerasFileError, match=r"the state is not Adam's, the file's optimizer: it has no \['v'\]"):
        io.write_keras(out, sgd, p, sgd.init(p), like=ckpt)
    assert not out.exists()


def test_a_tf_checkpoint_without_its_index(files, tmp_path):
    """The prefix was reported as 'No such Keras file', though its data shard is there."""
    import shutil

    shutil.copy(files["legacy"]["ckpt"] + ".data-00000-of-00001", tmp_path / "ck.data-00000-of-00001")
    with pytest.raises(KerasFileError, match=r"data without its index: ck.index is missing"):
        read_keras(str(tmp_path / "ck"), config=files["legacy_config"])


def test_a_custom_prefixed_config_is_tf_kerass_current_class():
    """``"Custom>Adam"`` is TF-Keras's registered current Adam, as ``deserialize`` reads it; the file
    readers stripped the prefix and, without ``is_legacy_optimizer``, took the config for a legacy one."""
    from jaxopt_keras.io.checkpoint import family_of

    config = {"class_name": "Custom>Adam", "config": {"learning_rate": 0.1, "beta_1": 0.8}}
    assert family_of(config, False) == "current"
    assert family_of({"class_name": "Adam", "config": {"learning_rate": 0.1, "beta_1": 0.8}}, False) == "legacy"
