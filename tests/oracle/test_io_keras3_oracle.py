"""Keras 3 files, both ways: a run ported into JAX continues Keras 3's run, and a file we write continues in Keras 3.

Keras 3 runs in its own process (``keras3_io_runner.py``, ``KERAS_BACKEND=jax``):
``Dense(6, tanh) -> Dense(2)`` trained with ``train_on_batch`` for ``BEFORE``
steps, saved with ``model.save("m.keras")`` and ``save_weights("m.weights.h5")``,
and trained on for ``AFTER`` steps on fixed batches.  Our side reads the file,
ports the weights and the optimizer state onto a flax-style parameter dict
and continues on the same batches, one jitted step (gradient and update) per
batch as Keras 3's compiled train step, computing Keras 3's forward pass and
loss: they agree bit for bit, as the Keras 3 oracle does for these
optimizers (``test_keras3_oracle.py``), in float32 and for a bfloat16 model.

Back: ported, continued ``HALF`` steps in JAX, written with ``write_keras``
into a ``.keras`` (and a ``.weights.h5``) like Keras 3's, loaded with
``keras.saving.load_model`` (``load_weights`` into the compiled model, its
optimizer built), which must find exactly the optimizer variables we wrote,
and trained to the end in Keras 3: it ends exactly where the uninterrupted Keras 3 run and
our own continuation end.  The bfloat16 model's file holds bfloat16 datasets
as Keras 3 stores them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import jaxopt_keras as jk
from harness import TOLERANCE, agreement
from jaxopt_keras import io, mixed_precision
from jaxopt_keras.core.state import find_state
from jaxopt_keras.transforms.loss_scale import LossScaleState
from keras3_io_problem import AFTER, BEFORE, CASES, DTYPES, HALF, as_list, batches, flax_params

RUNNER = os.path.join(os.path.dirname(__file__), "keras3_io_runner.py")
XS, YS = batches()


def run_keras3(*args: str) -> object:
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_USE_LEGACY_KERAS", None)
    env.pop("XLA_FLAGS", None)  # one CPU device, as Keras 3's own run
    proc = subprocess.run([sys.executable, RUNNER, *args], capture_output=True, text=True, env=env, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return run_keras3("train", str(tmp_path_factory.mktemp("keras3_io")), json.dumps(list(CASES)))


def dtype_of(label):
    return jnp.dtype(DTYPES.get(label, "float32"))


def as_array(value, dtype):
    return np.asarray(value, np.float64).astype(dtype)


def loss(params, x, y):
    """Keras 3's forward pass and ``"mse"`` (in float32, the losses' dtype: mean over the last
    axis, summed over the batch, divided by its size)."""
    h = jnp.tanh(x @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"])
    pred = (h @ params["Dense_1"]["kernel"] + params["Dense_1"]["bias"]).astype(jnp.float32)
    return jnp.sum(jnp.mean(jnp.square(y - pred), axis=-1)) / x.shape[0]


def port(r, label, kind):
    config = {"model": r["config"], "optimizer": r["optimizer"]} if kind == "weights.h5" else None
    ckpt = io.read_keras(r["files"][kind], config=config)
    assert ckpt.family == "keras3" and ckpt.kind == kind
    params = io.params_from_keras(flax_params(dtype_of(label)), ckpt)
    tx = io.transformation_from_keras(ckpt, params)  # optimizer_from_keras(ckpt).transformation, a MultiOptimizer routed
    return ckpt, tx, params, io.state_from_keras(tx, params, ckpt)


def continue_in_jax(tx, params, state, start, stop):
    """One jitted step per batch: the gradient of the loss (scaled, with a loss-scale
    optimizer, as Keras 3's train step scales it) and the update."""

    @jax.jit
    def step(params, state, x, y):
        scaled = lambda p: mixed_precision.scale_loss(loss(p, x, y), state) if scaling else loss(p, x, y)  # noqa: E731
        updates, state = tx.update(jax.grad(scaled)(params), state, params)
        return jk.apply_updates(params, updates), state

    scaling = find_state(state, LossScaleState, required=False) is not None
    for i in range(start, stop):
        x = XS[i].astype(jax.tree_util.tree_leaves(params)[0].dtype)
        params, state = step(params, state, x, YS[i])
    return params, state


def check(report, label, what, ours, theirs, saved):
    dtype = dtype_of(label)
    theirs = [as_array(t, dtype) for t in theirs]
    a = agreement([np.asarray(o, np.float32) for o in ours], [t.astype(np.float32) for t in theirs], [as_array(s, np.float32) for s in saved])
    ulps = f"{a.max_ulps:.0f} ulp, " if dtype == jnp.float32 else ""  # (of float32: none for bfloat16)
    report(f"io keras3 {what:44s} {label:18s} {dtype.name}: {ulps}rel {a.relative:.1e}")
    assert a.moved > 0.01, f"the parameters hardly moved ({a.moved})"
    if label in INCREMENT_OF_A_VALUE + WRAPPED_REDUCTIONS:
        assert a.relative <= TOLERANCE[np.float32], f"{label} {what}: rel {a.relative:.1e} of the distance moved"
    else:
        assert a.max_abs_diff == 0, f"{label} {what}: {a.max_ulps} ulp of float32 (rel {a.relative:.1e})"


# Keras 3 decays the weight first (`p - p*wd*lr`), then steps: a new value, which the
# optax protocol returns as the increment `new - p`.  When a parameter crosses zero
# that subtraction is inexact and `p + (new - p)` can miss `new` by an ulp, as the
# Keras 3 oracle's bounded cases do (test_keras3_oracle.py).  Whether some step of
# this run does depends on the trajectory, whose last bits follow the machine's XLA
# code (its `tanh` and `pow` with or without FMA): exact on one machine, 83 ulp of
# one weight (rel 3e-7) on another.  Bounded by the float32 oracle tolerance.
INCREMENT_OF_A_VALUE = ("AdamW",)
# Adafactor's step inside a LossScaleOptimizer's finite-check cond does not round as the bare step does: from
# the same ported state, on the same batches, our wrapped Adafactor and our bare one (on the unscaled loss, whose
# gradients the scale's power of two divides exactly: LossScale_Adam is exact) end up to 2.4e-7 apart on the
# kernels after 60 steps: XLA:CPU compiles the step's reductions differently there.  Keras 3's wrapped run and
# ours end 10-14 ulp apart (rel 1.3e-6).  Bounded by the float32 oracle tolerance.
WRAPPED_REDUCTIONS = ("LossScale_Adafactor",)


PORT_CASES = [(label, kind) for label in CASES for kind in ("keras", "weights.h5")]


@pytest.mark.parametrize("label,kind", PORT_CASES, ids=[f"{l}-{k}" for l, k in PORT_CASES])
def test_port_continues_the_keras3_run(report, trained, label, kind):
    r = trained[label]
    ckpt, tx, params, state = port(r, label, kind)
    assert ckpt.iterations == BEFORE  # with gradient accumulation too: Keras 3 stores the calls
    ours, _ = continue_in_jax(tx, params, state, BEFORE, BEFORE + AFTER)
    check(report, label, f"{kind} Keras 3->file->JAX", as_list(ours), r["end"], r["saved"])


@pytest.fixture(scope="module")
def written_back(trained, tmp_path_factory):
    """Every case ported from its .keras (and .weights.h5), continued HALF steps in JAX, written back,
    finished in Keras 3."""
    directory = tmp_path_factory.mktemp("keras3_back")
    jobs, ours = [], {}
    for (label, r), kind in ((c, k) for c in trained.items() for k in KINDS):
        ckpt, tx, params, state = port(r, label, kind)
        params, state = continue_in_jax(tx, params, state, BEFORE, BEFORE + HALF)
        path = io.write_keras(str(directory / f"{label}.{kind}"), tx, params, state, like=ckpt)
        config = {"model": r["config"], "optimizer": r["optimizer"]} if kind == "weights.h5" else None
        assert io.read_keras(path, config=config).iterations == BEFORE + HALF
        finish, _ = continue_in_jax(tx, params, state, BEFORE + HALF, BEFORE + AFTER)
        entries = [value for _, value in io.keras_weights(tx, params, state, ckpt)]
        if ckpt.loss_scale is not None:  # the wrapper's own variables lead: iteration, learning rate, counter, scale
            ls = find_state(state, LossScaleState)
            entries = [np.int32(0), np.float32(0.0), np.asarray(ls.counter), np.asarray(ls.loss_scale)] + entries
        ours[label, kind] = {"finish": as_list(finish), "entries": entries}
        jobs.append({"path": path, "label": label, "start": BEFORE + HALF, "stop": BEFORE + AFTER})
    results = run_keras3("continue", json.dumps(jobs))
    return {key: dict(ours[key], keras=res) for key, res in zip(ours, results)}


KINDS = ("keras", "weights.h5")
BACK_CASES = [(label, kind) for label in CASES for kind in KINDS]


@pytest.mark.parametrize("label,kind", BACK_CASES, ids=[f"{l}-{k}" for l, k in BACK_CASES])
def test_written_file_continues_in_keras3(report, trained, written_back, label, kind):
    r, back = trained[label], written_back[label, kind]
    loaded = back["keras"]["variables_at_load"]
    assert len(loaded) == len(back["entries"]), "Keras 3 skipped the optimizer's variables (a count mismatch)"
    for i, (theirs, ours) in enumerate(zip(loaded, back["entries"])):
        ours = np.asarray(ours)
        if ours.dtype == ml_dtypes.bfloat16:
            ours = ours.astype(np.float64)
        np.testing.assert_array_equal(np.asarray(theirs, np.float64), np.asarray(ours, np.float64), err_msg=f"variable {i}")
    check(report, label, f"JAX->{kind}->Keras 3 vs Keras 3", back["keras"]["end"], r["end"], r["saved"])
    check(report, label, f"JAX->{kind}->Keras 3 vs JAX", back["keras"]["end"], back["finish"], r["saved"])
