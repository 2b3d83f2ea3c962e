"""Bad Keras 3 files: a clear error naming the file and what is missing, and nothing half-loaded or half-written.

The files are Keras 3's own (``keras3_files.py``, in a subprocess), then cut,
corrupted, or stripped of a variable.
"""

from __future__ import annotations

import io as _io
import os
import shutil
import zipfile

import h5py
import jax.numpy as jnp
import numpy as np
import pytest

import kerasfiles as kf
from jaxopt_keras import io
from jaxopt_keras.io import KerasFileError, read_keras


def params(hidden=3):
    return {"Dense_0": {"kernel": jnp.zeros((4, hidden)), "bias": jnp.zeros(hidden)}, "Dense_1": {"kernel": jnp.zeros((hidden, 2)), "bias": jnp.zeros(2)}}


def copy(path, tmp_path, name=None):
    out = tmp_path / (name or os.path.basename(path))
    shutil.copy(path, out)
    return out


def edited_archive(path, tmp_path, edit):
    """A copy of a .keras archive whose model.weights.h5 went through ``edit(h5py.File)``."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    buffer = _io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "r+") as f:
        edit(f)
    members["model.weights.h5"] = buffer.getvalue()
    out = tmp_path / ("edited_" + os.path.basename(path))
    with zipfile.ZipFile(out, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    return out


@pytest.mark.parametrize("kind", ["keras", "weights.h5"])
@pytest.mark.parametrize("size", [0, 100, "half", -1])
def test_truncated_keras3_files(written, tmp_path, kind, size):
    path = written["adam"]["paths"][kind]
    data = open(path, "rb").read()
    cut = tmp_path / ("cut_" + os.path.basename(path))
    cut.write_bytes(data[: len(data) // 2 if size == "half" else size if size >= 0 else len(data) + size])
    with pytest.raises(KerasFileError, match="truncated|not a Keras file") as e:
        read_keras(cut, config={"model": written["adam"]["config"], "optimizer": written["adam"]["optimizer"]})
    assert str(cut) in str(e.value)


def test_an_archive_whose_weights_are_corrupt(written, tmp_path):
    path = written["adam"]["paths"]["keras"]
    data = bytearray(open(path, "rb").read())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("model.weights.h5")
    at = info.header_offset + 30 + len(info.filename) + info.file_size // 2  # inside the stored member
    data[at] ^= 0xFF
    bad = tmp_path / "corrupt.keras"
    bad.write_bytes(bytes(data))
    with pytest.raises(KerasFileError, match="corrupt") as e:
        read_keras(bad)
    assert str(bad) in str(e.value)


def _drop_last(f):
    v = f["optimizer/vars"]
    del v[str(len(v) - 1)]


def test_an_optimizer_variable_missing_at_the_end(written, tmp_path):
    """One variable short: the error gives both counts and the variables the optimizer has, by name."""
    bad = edited_archive(written["adam"]["paths"]["keras"], tmp_path, _drop_last)
    with pytest.raises(KerasFileError, match=r"holds 9 optimizer weights.*Adam \(keras3 family\).*has 10") as e:
        read_keras(bad)
    assert str(bad) in str(e.value) and "dense_1_bias_velocity" in str(e.value)


def test_an_optimizer_variable_missing_in_the_middle(written, tmp_path):
    """vars/0..9 without vars/4: named, rather than the rest read one place off."""
    bad = edited_archive(written["adam"]["paths"]["keras"], tmp_path, lambda f: f["optimizer/vars"].__delitem__("4"))
    with pytest.raises(KerasFileError, match=r"'optimizer/vars' has no variable 4") as e:
        read_keras(bad)
    assert str(bad) in str(e.value)


def test_a_loss_scale_optimizer_without_its_own_variables(written, tmp_path):
    def strip(f):
        v = f["optimizer/vars"]
        for k in list(v):
            del v[k]

    bad = edited_archive(written["loss_scale"]["paths"]["keras"], tmp_path, strip)
    with pytest.raises(KerasFileError, match="LossScaleOptimizer's 'optimizer/vars' holds 0 variables") as e:
        read_keras(bad)
    assert str(bad) in str(e.value)


def test_a_loss_scale_optimizers_nadam_file_lacks_u_product(written):
    """Keras 3 does not track a LossScaleOptimizer's inner Nadam's ``u_product`` (on the JAX
    backend each step starts it again from 1.0): neither variables list holds it and the file
    lacks it.  The error says so, where it would otherwise only count the weights."""
    truth = written["loss_scale_nadam"]
    assert not any("u_product" in path for path, _ in truth["variables"] + truth["inner_variables"])
    config = {"model": truth["config"], "optimizer": truth["optimizer"]}
    for kind in ("keras", "weights.h5"):
        path = truth["paths"][kind]
        with pytest.raises(KerasFileError, match=r"has 11: .*'u_product'\]\. Keras 3 does not track the wrapped optimizer's \['u_product'\]") as e:
            read_keras(path, config=config if kind == "weights.h5" else None)
        assert str(path) in str(e.value) and "continue as Nadam" in str(e.value)


def test_a_weights_file_of_another_optimizer(written):
    """The config says Nadam (one more variable: u_product); the file holds Adam's."""
    config = {"model": written["adam"]["config"], "optimizer": written["nadam"]["optimizer"]}
    with pytest.raises(KerasFileError, match="holds 10 optimizer weights.*Nadam.*has 11.*u_product"):
        read_keras(written["adam"]["paths"]["weights.h5"], config=config)


def test_parameters_that_do_not_match(written):
    ckpt = read_keras(written["adam"]["paths"]["keras"])
    with pytest.raises(KerasFileError, match="shape"):
        io.params_from_keras(params(hidden=5), ckpt)
    tx = io.optimizer_from_keras(ckpt).transformation
    with pytest.raises(KerasFileError, match="shape"):
        io.state_from_keras(tx, params(hidden=5), ckpt)


def test_nothing_is_written_on_an_error(written, tmp_path):
    ckpt = read_keras(written["adam"]["paths"]["keras"])
    tx = io.optimizer_from_keras(ckpt).transformation
    good = io.params_from_keras(params(), ckpt)
    state = io.state_from_keras(tx, good, ckpt)
    target = tmp_path / "out.keras"
    with pytest.raises(KerasFileError, match="shape"):
        io.write_keras(target, tx, params(hidden=5), state, like=ckpt)
    assert not target.exists() and os.listdir(tmp_path) == []


def test_a_keras3_h5_is_read_but_not_written(written, tmp_path):
    """Keras 3 restores no optimizer slots from an .h5: write_keras refuses it, naming the file."""
    path = written["adam"]["paths"]["h5"]
    ckpt = read_keras(path)
    assert ckpt.family == "keras3" and ckpt.kind == "h5"
    keras_archive = read_keras(written["adam"]["paths"]["keras"])
    for (k1, v1), (k2, v2) in zip(ckpt.optimizer_weights.items(), keras_archive.optimizer_weights.items()):
        assert k1 == k2
        np.testing.assert_array_equal(v1, v2)
    tx = io.optimizer_from_keras(ckpt).transformation
    p = io.params_from_keras(params(), ckpt)
    state = io.state_from_keras(tx, p, ckpt)
    with pytest.raises(KerasFileError, match=r"restores no optimizer slots from an \.h5") as e:
        io.write_keras(tmp_path / "back.h5", tx, p, state, like=ckpt)
    assert path in str(e.value)
    assert os.listdir(tmp_path) == []


def _as_a_dataset(where):
    def edit(f):
        del f[f"{where}/vars"]
        f[where].create_dataset("vars", data=np.zeros(3))

    return edit


@pytest.mark.parametrize(
    "case, edit, message",
    [
        ("adam", kf.replaced("optimizer/vars/0", np.int32(-3)), r"step count \(its first weight\): `iterations` must be a non-negative whole number"),
        ("adam", kf.replaced("optimizer/vars/1", b"0.1"), r"optimizer weight 1 holds values of dtype \|S3, not numbers"),
        ("nadam", kf.replaced("optimizer/vars/10", b"x"), r"optimizer weight 10 holds values of dtype \|S1, not numbers"),
        ("adam", _as_a_dataset("optimizer"), r"'optimizer/vars' is a dataset where Keras stores a group of variables"),
        ("adam", _as_a_dataset("layers/dense"), r"'layers/dense/vars' is a dataset where Keras stores a group"),
    ],
    ids=["negative step count", "learning_rate of bytes", "u_product of bytes", "optimizer vars", "layer vars"],
)
def test_a_damaged_weights_store(written, tmp_path, case, edit, message):
    """A bare ValueError, TypeError or AttributeError from inside the reader, or (the count) silently read."""
    bad = edited_archive(written[case]["paths"]["keras"], tmp_path, edit)
    with pytest.raises(KerasFileError, match=message) as e:
        read_keras(bad)
    assert str(bad) in str(e.value)


def test_an_infinite_learning_rate_variable_is_read_but_not_loaded(written, tmp_path):
    """hyperparams' ValueError ('must be finite') escaped without the file's name."""
    bad = edited_archive(written["adam"]["paths"]["keras"], tmp_path, kf.replaced("optimizer/vars/1", np.float32(np.inf)))
    ckpt = read_keras(bad)
    tx = io.optimizer_from_keras(ckpt).transformation
    with pytest.raises(KerasFileError, match=r"optimizer weights \['learning_rate'\]: .*must be finite") as e:
        io.state_from_keras(tx, io.params_from_keras(params(), ckpt), ckpt)
    assert str(bad) in str(e.value)
