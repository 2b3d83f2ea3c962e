"""The Keras 3 family against Keras 3 itself, on its JAX backend.

Keras 3 runs in its own process (``keras3_step_runner.py``, ``KERAS_BACKEND=jax``,
kept for the session by ``keras3_process.py``):
one ``jax.jit(optimizer.stateless_apply)`` call per step, as ``model.fit``
runs it, for 300 steps on parameters from a scalar to 3-D, a matrix and an
embedding table.  Our side runs one jitted step per call too: the same XLA
compiles the same operations, so the results are compared bit for bit.

Exact (0 ulp): every optimizer whose new parameter is ``p - x`` (or
``p + x``), with clipping, EMA without overwrite, gradient accumulation and
the loss-scale factor; the Keras 3-only Lamb and Muon (both paths, both
Newton-Schulz orientations).  The optax protocol
returns an update ``u`` that is added to ``p``; where Keras 3 computes the
new parameter otherwise, ``p + (new - p)`` can miss ``new`` by an ulp when
the subtraction is inexact (a parameter crossing zero): weight decay (``p -
p*wd*lr`` then the step), Ftrl (a new value, not an increment), the EMA
overwrite (a blend), and ScheduleFreeAdamW's ``y_new``: whether a run
meets such a step depends on its last bits, which can differ between
machines (XLA compiles for the CPU it runs on).
Under gradient accumulation, Keras 3 computes Lamb's, Muon's, Adagrad's and Adafactor's ``p - x*y``
before its conditional, fused into one multiply-add, where our increment
crosses the conditional; and on a CPU with FMA, XLA may contract a
multiply-add in one program's fusion and not in the other's (RMSprop, a
clipped and averaged Muon: ``FMA_CONTRACTION``).  Both are bit-identical
without FMA (``test_bounded_cases_exact_without_fma``).  Those cases are bounded by the
float32 oracle tolerance (300 float32 eps of the distance moved,
``harness.TOLERANCE``) and their figures are reported; their optimizer
variables stay bit-identical except the moving averages (and Ftrl's, which
read the parameter).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import registry
from harness import STEPS, TOLERANCE, agreement, make_problem
from jaxopt_keras.optimizers import keras3 as K3
from keras3_problem import SCHEDULES, SHAPES, variable_names
from keras3_process import ask_keras3

RUNNER = os.path.join(os.path.dirname(__file__), "keras3_step_runner.py")

EXACT = [
    ("SGD", dict(learning_rate=0.05)),
    ("SGD", dict(learning_rate=0.05, momentum=0.9)),
    ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
    ("Adam", dict(learning_rate=0.01)),
    ("Adam", dict(learning_rate=0.01, amsgrad=True, clipnorm=0.5)),
    ("Adamax", dict(learning_rate=0.01, global_clipnorm=1.0)),
    ("Nadam", dict(learning_rate=0.01)),
    ("Adagrad", dict(learning_rate=0.1, clipvalue=0.5)),
    ("Adadelta", dict(learning_rate=1.0)),
    ("Lion", dict(learning_rate=0.001)),
    ("Adafactor", dict(learning_rate=0.01)),
    ("Adafactor", dict(learning_rate=0.01, relative_step=False, clip_threshold=0.5)),
    ("Adam", dict(learning_rate=0.01, use_ema=True, ema_momentum=0.9)),
    ("Adam", dict(learning_rate=0.01, gradient_accumulation_steps=3)),
    ("SGD", dict(learning_rate=0.05, momentum=0.9, gradient_accumulation_steps=2, use_ema=True)),
    ("Nadam", dict(learning_rate=0.01, loss_scale_factor=128.0)),
    # Keras 3 only.  Muon without weight decay: the (4, 5) kernel takes the
    # Muon path, the (6, 4) "embedding_table" the AdamW path unless
    # exclude_embeddings=False (then Muon, transposed: it is taller than wide).
    ("Lamb", dict(learning_rate=0.01)),
    ("Lamb", dict(learning_rate=0.01, use_ema=True, ema_momentum=0.9)),
    ("Muon", dict(learning_rate=0.01, weight_decay=None, adam_weight_decay=None)),
    ("Muon", dict(learning_rate=0.01, weight_decay=None, adam_weight_decay=None, exclude_embeddings=False,
                  exclude_layers=["kernel_2"])),
    ("Muon", dict(learning_rate=0.01, weight_decay=None, adam_weight_decay=None, exclude_embeddings=False,
                  ns_steps=3, nesterov=False, adam_lr_ratio=0.5, rms_rate=None)),
]
# Bit-identical without FMA contraction (test_bounded_cases_exact_without_fma):
# under gradient accumulation Keras 3 computes the new parameter `p - x * y`
# before its conditional, where XLA fuses it into one multiply-add; our
# increment `-(x * y)` crosses the conditional and is added after it.
FMA_ACROSS_CONDITIONAL = [
    ("Lamb", dict(learning_rate=0.01, use_ema=True, ema_momentum=0.9, gradient_accumulation_steps=2)),
    ("Muon", dict(learning_rate=0.01, weight_decay=None, adam_weight_decay=None, gradient_accumulation_steps=3)),
    ("Adagrad", dict(learning_rate=0.1, gradient_accumulation_steps=3, loss_scale_factor=64.0, clipnorm=0.5)),
    ("Adafactor", dict(learning_rate=0.01, gradient_accumulation_steps=2)),
]
# Bit-identical without FMA contraction too (test_bounded_cases_exact_without_fma):
# on a CPU with FMA, XLA contracts a multiply-add into one rounding in one program
# and not in the other, as their fusions differ.  Exact on the machine of an
# earlier run; on an AMD EPYC (AVX2, FMA) 1 ulp (RMSprop) and 10 ulp (Muon's
# clipped, averaged run).
FMA_CONTRACTION = [
    ("RMSprop", dict(learning_rate=0.01)),
    ("RMSprop", dict(learning_rate=0.01, momentum=0.5, centered=True)),
    ("Muon", dict(learning_rate=0.01, weight_decay=None, adam_weight_decay=None, use_ema=True, clipnorm=1.0)),
]
BOUNDED = [
    ("AdamW", dict(learning_rate=0.01)),
    ("SGD", dict(learning_rate=0.05, momentum=0.9, weight_decay=0.01)),
    ("Ftrl", dict(learning_rate=0.1)),
    ("Ftrl", dict(learning_rate=0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.01,
                  l2_shrinkage_regularization_strength=0.01, beta=0.1, learning_rate_power=-0.7)),
    ("Adam", dict(learning_rate=0.01, use_ema=True, ema_overwrite_frequency=7)),
    # Weight decay (Muon's two rates by default), and a step large enough for
    # Schedule-Free AdamW's y_new - p to be inexact.
    ("Lamb", dict(learning_rate=0.01, weight_decay=0.01)),
    ("Muon", dict(learning_rate=0.01)),
    ("Muon", dict(learning_rate=0.01, weight_decay=0.01, adam_weight_decay=None, exclude_embeddings=False)),
    # Its new parameter is a value, y_new, returned as y_new - p.  Whether a step makes
    # that subtraction inexact depends on the trajectory, whose last bits follow the
    # machine (XLA compiles for the CPU it runs on): with learning_rate=0.01 none did on
    # the machine of an earlier run, while another is 9-11 ulp off (rel ~1e-7).
    ("ScheduleFreeAdamW", dict(learning_rate=0.1)),
    ("ScheduleFreeAdamW", dict(learning_rate=0.01)),
    ("ScheduleFreeAdamW", dict(learning_rate=0.01, warmup_steps=50)),
    ("ScheduleFreeAdamW", dict(learning_rate=0.01, warmup_steps=50, weight_decay=0.01)),
    ("ScheduleFreeAdamW", dict(learning_rate=0.01, use_ema=True, gradient_accumulation_steps=2)),
    *FMA_ACROSS_CONDITIONAL,
    *FMA_CONTRACTION,
]
CASES = EXACT + BOUNDED
# Optimizers whose slots read the parameter (Ftrl's `linear`): in a bounded
# case they are bounded too.  Every other slot depends on the gradients alone
# and stays exact; the moving averages follow the parameters.
SLOTS_READ_PARAMS = ("Ftrl",)
# The stateful step's slots against Keras 3's (test_apply_matches_keras3): a few
# float32 roundings (8 eps relative), from XLA contracting a multiply-add in one
# program and not in the other.
SLOT_RTOL = 8 * float(np.finfo(np.float32).eps)


def _label(name, kwargs):
    return f"keras3 {name} {kwargs}"


def run_keras3(cases: list[dict], xla_flags: str = "") -> dict:
    """Keras 3's results for ``cases`` (see ``keras3_step_runner.py``), from its process for
    ``xla_flags`` (x64 on when a case is float64, as it was for every case in that process)."""
    x64 = any(c.get("dtype") == "float64" for c in cases)
    return ask_keras3(RUNNER, cases, xla_flags=xla_flags, x64=x64)


@pytest.fixture(scope="module")
def keras3_results():
    cases = [dict(label=_label(n, k), name=n, kwargs=k, steps=STEPS, shapes=SHAPES) for n, k in CASES]
    return run_keras3(cases)


def run_ours(transform, params, grads):
    """One jitted step per call, as Keras 3 runs: same program, same XLA fusion."""

    @jax.jit
    def step(p, s, g):
        u, s = transform.update(g, s, p)
        return jk.apply_updates(p, u), s

    p = [jnp.asarray(x) for x in params]
    s = transform.init(p)
    for g in grads:
        p, s = step(p, s, [jnp.asarray(x) for x in g])
    return [np.asarray(x) for x in p], s


def _compare(report, label, ours, theirs, params, exact):
    a = agreement(ours, theirs, params)
    report(f"{label:80s} float32: {a.max_ulps:.0f} ulp, rel {a.relative:.1e}")
    assert a.moved > 0.01, f"the parameters hardly moved ({a.moved})"
    if exact:
        assert a.max_ulps == 0, f"{label}: {a.max_ulps} ulp from Keras 3 after {STEPS} steps"
    else:
        assert a.relative <= TOLERANCE[np.float32], f"{label}: rel {a.relative:.2e}"


def functional(name, kwargs):
    """Our ``jk.keras3`` factory for Keras 3's class ``name``; a routed spec (Muon)
    routes by the names the Keras 3 side gives its variables."""
    entry = registry.find(name, "keras3")
    if entry.specs["keras3"].route is not None:
        kwargs = dict(kwargs, paths=variable_names(SHAPES))
    return getattr(jk.keras3, entry.function)(**kwargs)


@pytest.mark.parametrize("name,kwargs", CASES, ids=[_label(*c) for c in CASES])
def test_functional_family_matches_keras3(keras3_results, report, name, kwargs):
    params, grads = make_problem(np.float32, shapes=SHAPES)
    ours, _ = run_ours(functional(name, kwargs), params, grads)
    theirs = [np.asarray(x, np.float32) for x in keras3_results[_label(name, kwargs)]["params"]]
    _compare(report, _label(name, kwargs), ours, theirs, params, (name, kwargs) in EXACT)


# float64 (x64 on both sides): Keras 3 casts each Python hyperparameter once
# to the variable's dtype (`ops.cast(self.beta_1, dtype)`, `ops.cast(0.96,
# dtype)`, `initializers.Constant`), where TF rounds it through float32 first.
# Agreement to round-off (harness.TOLERANCE[float64]).  Keras 3's JAX backend
# computes some ops of a float64 input in float32 (`dtypes.result_type` maps
# float64 to float32 there): `ops.mean` (Adafactor), `ops.norm` and the `sqrt`
# of an integer (Muon's Newton-Schulz path), `ops.cos`/`ops.floor` (CosineDecay,
# CosineDecayRestarts); ours does the same (`schedules/_keras3.compute_dtype`).
# A "schedule" entry, (kind, config), is the learning rate on both sides.
FLOAT64 = [
    ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(learning_rate=0.05, momentum=0.9, weight_decay=0.01)),
    ("Adam", dict(learning_rate=0.01, amsgrad=True, clipnorm=0.5)),
    ("Adam", dict(learning_rate=0.01, use_ema=True, ema_momentum=0.9, gradient_accumulation_steps=3)),
    ("Adamax", dict(learning_rate=0.01)),
    ("Nadam", dict(learning_rate=0.01, loss_scale_factor=128.0)),
    ("AdamW", dict(learning_rate=0.01)),
    ("Lion", dict(learning_rate=0.001)),
    ("Lamb", dict(learning_rate=0.01, weight_decay=0.01)),
    ("Ftrl", dict(learning_rate=0.1, initial_accumulator_value=0.3)),
    ("RMSprop", dict(learning_rate=0.01, momentum=0.5, centered=True)),
    ("Muon", dict(learning_rate=0.01, exclude_layers=["kernel"])),  # every variable on the AdamW path
    ("ScheduleFreeAdamW", dict(learning_rate=0.01, warmup_steps=50, weight_decay=0.01)),
    ("Adafactor", dict(learning_rate=0.01)),
    ("Adafactor", dict(learning_rate=0.01, relative_step=False, clip_threshold=0.5)),
    ("Muon", dict(learning_rate=0.01)),  # the kernels on the Newton-Schulz path
    ("SGD", dict(momentum=0.9, schedule=("cosine", dict(initial_learning_rate=0.0, decay_steps=200, warmup_target=0.05, warmup_steps=20, alpha=0.1)))),
    ("SGD", dict(momentum=0.9, schedule=("cosine", dict(initial_learning_rate=0.05, decay_steps=250)))),
]


def _with_schedule(kwargs: dict, case: dict | None = None):
    """``kwargs`` without its "schedule" entry, and the case (Keras 3's side) or our schedule."""
    kwargs = dict(kwargs)
    schedule = kwargs.pop("schedule", None)
    if case is not None:
        return dict(case, kwargs=kwargs, **({"schedule": schedule} if schedule else {}))
    if schedule:
        kind, config = schedule
        kwargs["learning_rate"] = getattr(jk.schedules, SCHEDULES[kind])(**config)
    return kwargs


@pytest.fixture(scope="module")
def keras3_float64_results():
    cases = [_with_schedule(k, dict(label=_label(n, k), name=n, steps=STEPS, shapes=SHAPES, dtype="float64")) for n, k in FLOAT64]
    cases += [
        dict(label=f"{who} {n}", name=n, kwargs=k, callable_lr=0.01, steps=STEPS, shapes=SHAPES, dtype="float64", ours=who == "ours")
        for n, k in CALLABLE_LR
        for who in ("keras3", "ours")
    ]
    return run_keras3(cases)


@pytest.mark.parametrize("name,kwargs", FLOAT64, ids=[_label(*c) for c in FLOAT64])
def test_float64_matches_keras3(keras3_float64_results, report, name, kwargs):
    with jax.enable_x64(True):
        params, grads = make_problem(np.float64, shapes=SHAPES)
        ours, _ = run_ours(functional(name, _with_schedule(kwargs)), params, grads)
    theirs = [np.asarray(x, np.float64) for x in keras3_float64_results[_label(name, kwargs)]["params"]]
    a = agreement(ours, theirs, params)
    report(f"{_label(name, kwargs):80s} float64: rel {a.relative:.1e}")
    assert a.moved > 0.01, f"the parameters hardly moved ({a.moved})"
    assert a.relative <= TOLERANCE[np.float64], f"{_label(name, kwargs)}: rel {a.relative:.2e} in float64"


# A zero-argument callable learning rate (our classes; the functional form takes none):
# Keras 3 casts its Python value straight to the variable's dtype.
CALLABLE_LR = [("SGD", dict(momentum=0.9)), ("Adam", {}), ("Adafactor", {})]


@pytest.mark.parametrize("name,kwargs", CALLABLE_LR, ids=[n for n, _ in CALLABLE_LR])
def test_float64_callable_learning_rate_matches_keras3(keras3_float64_results, report, name, kwargs):
    """Both classes stepped by their jitted ``stateless_apply`` in one x64 process."""
    theirs, ours = (keras3_float64_results[f"{who} {name}"]["params"] for who in ("keras3", "ours"))
    params, _ = make_problem(np.float64, shapes=SHAPES)
    a = agreement([np.asarray(x, np.float64) for x in ours], [np.asarray(x, np.float64) for x in theirs], params)
    report(f"keras3 {name} callable learning rate float64: rel {a.relative:.1e}")
    assert a.moved > 0.01 and a.relative <= TOLERANCE[np.float64], f"rel {a.relative:.2e}"


WITHOUT_FMA = FMA_ACROSS_CONDITIONAL + FMA_CONTRACTION


@pytest.mark.parametrize("name,kwargs", WITHOUT_FMA, ids=[_label(*c) for c in WITHOUT_FMA])
def test_bounded_cases_exact_without_fma(report, name, kwargs):
    """The bounded accumulation and contraction cases are bit-identical once XLA may not
    contract multiply-adds (``--xla_cpu_max_isa=AVX``): the gap is that one rounding."""
    base = dict(name=name, kwargs=dict(kwargs, name="opt"), steps=STEPS, shapes=SHAPES)
    res = run_keras3([dict(base, label="keras3"), dict(base, label="ours", ours=True)], "--xla_cpu_max_isa=AVX")
    params, _ = make_problem(np.float32, shapes=SHAPES)
    theirs, ours = ([np.asarray(x, np.float32) for x in res[k]["params"]] for k in ("keras3", "ours"))
    a = agreement(ours, theirs, params)
    report(f"no-FMA {_label(name, kwargs):73s} float32: {a.max_ulps:.0f} ulp")
    assert a.moved > 0.01 and a.max_ulps == 0
    assert res["ours"]["variables"] == res["keras3"]["variables"]


def _layer_run(cls, kwargs, params, grads, initial=None):
    """Our Keras 3 class, stepped by its own jitted ``stateless_apply``."""
    variables = [jk.Variable(p, name=n) for p, n in zip(params, variable_names(SHAPES))]
    opt = cls(**kwargs)
    opt.build(variables)
    opt_values = [v.value for v in opt.variables] if initial is None else [jnp.asarray(x) for x in initial]
    values = [v.value for v in variables]
    step = jax.jit(opt.stateless_apply)
    for g in grads:
        values, opt_values = step(opt_values, [jnp.asarray(x) for x in g], values)
    return opt, [np.asarray(v) for v in values], [np.asarray(v) for v in opt_values]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[_label(*c) for c in CASES])
def test_layer_variables_match_keras3(keras3_results, report, name, kwargs):
    """``optimizer.variables``: the same names, in the same order, with the same values."""
    params, grads = make_problem(np.float32, shapes=SHAPES)
    theirs = keras3_results[_label(name, kwargs)]
    opt, values, opt_values = _layer_run(getattr(K3, name), dict(kwargs, name="opt"), params, grads)
    assert [v.path for v in opt.variables] == _expected_paths(theirs["variable_names"])
    exact = (name, kwargs) in EXACT
    _compare(report, "layer " + _label(name, kwargs), values, [np.asarray(x, np.float32) for x in theirs["params"]], params, exact)
    _compare_slots(name, theirs, opt_values, exact)


def _compare_slots(name, theirs, ours, exact, slot_rtol=0.0, slots_bounded=False) -> float:
    """Our optimizer variables against Keras 3's, in order: within ``slot_rtol``
    elementwise (0: bit for bit) in an exact case, and in a bounded one for a
    slot that depends on the gradients alone, unless ``slots_bounded``, which
    bounds those as the parameters are, relative to the slot's largest entry;
    the moving averages and Ftrl's slots (they follow the parameters) within
    1e-4.  Returns the worst relative difference of the slots checked, elementwise
    or against the largest entry."""
    worst = 0.0
    for path, ours_v, theirs_v in zip(theirs["variable_names"], ours, theirs["variables"]):
        ours_v = np.asarray(ours_v)
        theirs_v = np.asarray(theirs_v, ours_v.dtype)
        follows_params = path.endswith("_average") or name in SLOTS_READ_PARAMS
        if exact or not (follows_params or slots_bounded):
            scale = np.maximum(np.abs(theirs_v.astype(np.float64)), np.finfo(np.float32).tiny)
            worst = max(worst, float(np.max(np.abs(ours_v.astype(np.float64) - theirs_v) / scale, initial=0.0)))
            np.testing.assert_allclose(ours_v, theirs_v, rtol=slot_rtol, atol=0, err_msg=path)
        elif follows_params:
            np.testing.assert_allclose(ours_v, theirs_v, rtol=1e-4, atol=1e-6, err_msg=path)
        else:
            diff = float(np.max(np.abs(ours_v.astype(np.float64) - theirs_v), initial=0.0))
            size = float(np.max(np.abs(theirs_v.astype(np.float64)), initial=0.0))
            worst = max(worst, diff / size if size else diff)
            assert diff <= TOLERANCE[np.float32] * size, f"{path}: {diff:.2e} of {size:.2e}"
    return worst


@pytest.mark.parametrize("name,kwargs", CASES, ids=[_label(*c) for c in CASES])
def test_apply_matches_keras3(packing_mode, keras3_results, report, name, kwargs):
    """The stateful path, ``optimizer.apply(grads, variables)`` at every step, as a
    training loop without ``model.fit`` calls it: our object's own jitted,
    donated step (packed in its ``pack-all`` variant for an elementwise
    optimizer: ``jaxopt_keras.optimizers.packed``), where the test above
    steps ``stateless_apply``.

    The parameters agree as the functional family's do: bit for bit in the
    exact cases.  The slots are bounded, not exact: this step is another XLA
    program than Keras 3's jitted ``stateless_apply`` (the variables' plumbing
    around the same update differs), and XLA:CPU contracts a slot's
    multiply-add into one rounding in one program's fusion and not in the
    other's; the parameter's fusion recomputes the slot it reads, which is why
    the parameters stay exact (seen: Adadelta's and RMSprop's accumulators of
    the 4x5 kernel, up to 5.4e-7 relative after 300 steps; our own
    ``stateless_apply`` is exact with Keras 3's).  ``SLOT_RTOL`` bounds them,
    elementwise, the moving averages included; in a bounded case, each slot is
    bounded as the parameters are, relative to its largest entry."""
    params, grads = make_problem(np.float32, shapes=SHAPES)
    theirs = keras3_results[_label(name, kwargs)]
    variables = [jk.Variable(p, name=n) for p, n in zip(params, variable_names(SHAPES))]
    opt = getattr(K3, name)(**dict(kwargs, name="opt"))
    for g in grads:
        opt.apply([jnp.asarray(x) for x in g], variables)
    if packing_mode == "pack-all":  # every step packed where the math allows it
        assert opt._packed == opt._packs_math()
    # Keras 3's `iterations` counts updates: calls // gradient_accumulation_steps.
    assert int(np.asarray(opt.iterations)) == STEPS // (kwargs.get("gradient_accumulation_steps") or 1)
    values = [np.asarray(v.value) for v in variables]
    exact = (name, kwargs) in EXACT
    label = ("apply packed " if packing_mode == "pack-all" else "apply ") + _label(name, kwargs)
    _compare(report, label, values, [np.asarray(x, np.float32) for x in theirs["params"]],
             params, exact)
    worst = _compare_slots(name, theirs, [v.value for v in opt.variables], exact, SLOT_RTOL, slots_bounded=True)
    report(f"{label:80s} slots: rel {worst:.1e}")


def _expected_paths(keras_paths):
    """Keras 3's variable paths as ours spell them: every variable under the
    optimizer's scope (Keras 3 leaves Adafactor's rank < 2 placeholders outside
    it when built directly), and Nadam's ``u_product`` named (Keras 3 auto-names
    it ``variable_N``)."""
    out = []
    for path in keras_paths:
        last = path.split("/")[-1]
        out.append("opt/u_product" if last.startswith("variable") else f"opt/{last}")
    return out


CONTINUE = [
    ("Adam", dict(learning_rate=0.01, use_ema=True)),
    ("Nadam", dict(learning_rate=0.01)),
    ("RMSprop", dict(learning_rate=0.01, momentum=0.5, centered=True, gradient_accumulation_steps=2)),
    ("Adafactor", dict(learning_rate=0.01)),
    ("Muon", dict(learning_rate=0.01, weight_decay=None, adam_weight_decay=None, exclude_layers=["bias"])),
]


@pytest.mark.parametrize("name,kwargs", CONTINUE, ids=[_label(*c) for c in CONTINUE])
def test_weights_move_both_ways(report, name, kwargs):
    """Keras 3's ``variables`` after N steps continue in ours, and ours in Keras 3, bit for bit."""
    n, m = 100, 50
    params, grads = make_problem(np.float32, steps=n + m, shapes=SHAPES)
    base = dict(name=name, kwargs=dict(kwargs, name="opt"), shapes=SHAPES)
    first = run_keras3([dict(base, label="first", steps=n)])["first"]
    # Ours continues Keras 3's run from its variables list...
    mid = [np.asarray(x, np.float32) for x in first["params"]]
    _, ours, _ = _layer_run(getattr(K3, name), dict(kwargs, name="opt"), mid, grads[n:], initial=first["variables"])
    # ... and Keras 3 continues ours.
    _, ours_mid, ours_vars = _layer_run(getattr(K3, name), dict(kwargs, name="opt"), params, grads[:n])
    whole = dict(base, label="whole", steps=n + m)
    resumed = dict(
        base, label="resumed", steps=n + m, grads_from=n,
        params=[x.tolist() for x in ours_mid], initial_variables=[x.tolist() for x in ours_vars],
    )
    res = run_keras3([whole, resumed])
    theirs = [np.asarray(x, np.float32) for x in res["whole"]["params"]]
    a = agreement(ours, theirs, params)
    b = agreement([np.asarray(x, np.float32) for x in res["resumed"]["params"]], theirs, params)
    report(f"continue {_label(name, kwargs):71s} keras3->ours {a.max_ulps:.0f} ulp, ours->keras3 {b.max_ulps:.0f} ulp")
    assert a.max_ulps == 0 and b.max_ulps == 0


def _serialized(class_name, **config):
    return {"module": "keras.optimizers", "class_name": class_name, "config": config, "registered_name": None}


# Configs as Keras 3 writes them, built by both sides' ``deserialize``.
WRAPPED = {
    "loss scaling (non-finite steps skipped)": (
        _serialized("LossScaleOptimizer", name="lso", initial_scale=4.0, dynamic_growth_steps=10,
                    inner_optimizer=_serialized("Adam", name="inner", learning_rate=0.01)),
        [20, 21, 150],
    ),
    "MultiOptimizer routing two sub-optimizers": (
        _serialized("MultiOptimizer", name="multi", loss_scale_factor=2.0, optimizer_map=_serialized(
            "OptimizerMap",
            default_optimizer=_serialized("SGD", name="sgd_default", learning_rate=0.05, momentum=0.9),
            optimizer_map={
                "kernel_.*": _serialized("Adam", name="adam_kernels", learning_rate=0.01),
                "embedding_table": _serialized("RMSprop", name="rms_embedding", learning_rate=0.01),
            },
        )),
        [],
    ),
}


@pytest.mark.parametrize("label", list(WRAPPED))
def test_wrappers_match_keras3(report, label):
    """Keras 3's LossScaleOptimizer and MultiOptimizer: params and every variable, bit for bit."""
    config, inf_steps = WRAPPED[label]
    theirs = run_keras3([dict(label=label, name="", kwargs={}, config=config, inf_steps=inf_steps, steps=STEPS, shapes=SHAPES)])[label]
    params, grads = make_problem(np.float32, shapes=SHAPES)
    for t in inf_steps:
        grads[t][0] = np.full_like(grads[t][0], np.inf)
    opt = K3.deserialize(config)
    variables = [jk.Variable(p, name=n) for p, n in zip(params, variable_names(SHAPES))]
    opt.build(variables)
    assert [v.path for v in opt.variables] == theirs["variable_names"]
    opt_values, values = [v.value for v in opt.variables], [v.value for v in variables]
    step = jax.jit(opt.stateless_apply)
    for g in grads:
        values, opt_values = step(opt_values, [jnp.asarray(x) for x in g], values)
    a = agreement([np.asarray(v) for v in values], [np.asarray(x, np.float32) for x in theirs["params"]], params)
    report(f"keras3 {label:73s} float32: {a.max_ulps:.0f} ulp")
    assert a.moved > 0.01 and a.max_ulps == 0
    for ours_v, theirs_v in zip(opt_values, theirs["variables"]):
        np.testing.assert_array_equal(np.asarray(ours_v), np.asarray(theirs_v, np.asarray(ours_v).dtype))


# Keras 3's default `name` of each schedule (its source); TF-Keras's is None.
KERAS3_SCHEDULE_NAMES = {
    "ExponentialDecay": ("ExponentialDecay", dict(initial_learning_rate=0.05, decay_steps=5, decay_rate=0.8)),
    "PiecewiseConstantDecay": ("PiecewiseConstant", dict(boundaries=[5, 10], values=[0.05, 0.02, 0.01])),
    "PolynomialDecay": ("PolynomialDecay", dict(initial_learning_rate=0.05, decay_steps=15, power=2.0)),
    "InverseTimeDecay": ("InverseTimeDecay", dict(initial_learning_rate=0.05, decay_steps=5, decay_rate=0.5)),
    "CosineDecay": ("CosineDecay", dict(initial_learning_rate=0.05, decay_steps=15, warmup_target=0.1, warmup_steps=3)),
    "CosineDecayRestarts": ("SGDRDecay", dict(initial_learning_rate=0.05, first_decay_steps=4)),
}


def test_our_config_with_a_schedule_trains_on_in_keras3(report):
    """Our Keras 3 optimizer's config names an unnamed schedule as Keras 3 does
    (``CosineDecayRestarts``: ``"SGDRDecay"``): Keras 3 loads a schedule named
    None and fails at its first call.  Keras 3 then runs our config bit for bit
    as ours does (both in the runner's process)."""
    cases = []
    for cls, (keras_name, config) in KERAS3_SCHEDULE_NAMES.items():
        serialized = K3.serialize(K3.SGD(learning_rate=getattr(jk.schedules, cls)(**config), momentum=0.9))
        assert serialized["config"]["learning_rate"]["config"]["name"] == keras_name
        named = getattr(jk.schedules, cls)(**config, name="mine")
        assert K3.serialize(K3.SGD(learning_rate=named))["config"]["learning_rate"]["config"]["name"] == "mine"
        base = dict(config=serialized, steps=20, shapes=SHAPES, name=None, kwargs={})
        cases += [dict(base, label=f"keras3 {cls}"), dict(base, label=f"ours {cls}", ours=True)]
    res = run_keras3(cases)
    for cls in KERAS3_SCHEDULE_NAMES:
        theirs, ours = res[f"keras3 {cls}"], res[f"ours {cls}"]
        report(f"keras3 config with {cls}: trained in Keras 3, {len(theirs['params'])} parameters equal")
        assert ours["params"] == theirs["params"] and ours["variables"] == theirs["variables"]
