"""Runs TF-Keras and jaxopt_keras side by side on the same parameters and gradients.

The TF side runs as ``model.fit`` runs it: each step in a ``tf.function``
that returns a value (``run_tf``).  It runs eagerly only where
``tf.function`` changes what TF-Keras computes (``EAGER_ONLY``, each with
its reason), and where a test compares against eager TF on purpose (the
schedules' ``"tf_eager"`` numerics).
The JAX side runs all steps in one jitted ``lax.scan``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_keras as jk

SHAPES = [(), (3,), (4, 5), (2, 3, 4)]
STEPS = 300

# Agreement demanded of the final params, relative to the distance they moved
# (the reasons are in test_optimizers.py's docstring).
TOLERANCE = {np.float64: 1e-10, np.float32: STEPS * float(np.finfo(np.float32).eps)}


def make_problem(dtype, steps: int = STEPS, seed: int = 0, shapes=SHAPES):
    """Initial params and a gradient sequence with spikes and zeros.

    * every 37th step is a spike (gradients x 1000);
    * about 10% of gradient entries are exactly zero;
    * every 50th step one leaf's gradient is entirely zero.
    """
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = []
    for t in range(steps):
        step = []
        for i, s in enumerate(shapes):
            g = rng.standard_normal(s) * (1000.0 if t % 37 == 5 else 1.0)
            g = np.where(rng.random(s) < 0.1, 0.0, g)
            if t % 50 == 25 and i == t // 50 % len(shapes):
                g = np.zeros(s)
            step.append(np.asarray(g, dtype))
        grads.append(step)
    return params, grads


# Where ``tf.function`` changes what a TF-Keras optimizer computes: the
# oracles run these eagerly, as our family reproduces them.
EAGER_ONLY = {
    # update_step compares its cached u_product with a Python counter, which
    # a traced step reads once (docs/numerics.md, the Nadam row): inside
    # tf.function the running product is not the formula's.
    ("current", "Nadam"): "u_product's Python counter",
}


def graph_for(family: str, name: str) -> bool:
    """Whether the oracles run ``family``'s ``name`` in a ``tf.function`` (not in ``EAGER_ONLY``)."""
    return (family, name) not in EAGER_ONLY


def tf_step(opt, variables, graph: bool = True) -> Callable[[Any], Any]:
    """``step(grads)``: one ``opt.apply_gradients`` call on ``variables``.

    ``graph=True`` runs it as ``model.fit`` does: in a ``tf.function`` that
    returns a value, so that grappler rewrites it as it rewrites a train step
    (a function without outputs is optimized less).  ``graph=False`` runs it
    eagerly, op by op.
    """
    import tensorflow as tf

    def step(g):
        opt.apply_gradients(zip(g, variables))
        return variables[0].read_value()

    if graph:
        step = tf.function(step)
    return lambda grads: step([tf.constant(x) for x in grads])


def run_tf(make_opt: Callable[[], Any], params, grads, graph: bool = True):
    """Final params after ``len(grads)`` ``apply_gradients`` calls, each a :func:`tf_step`."""
    import tensorflow as tf

    opt = make_opt()
    vs = [tf.Variable(p) for p in params]
    step = tf_step(opt, vs, graph)
    for g in grads:
        step(g)
    return [v.numpy() for v in vs], opt


def run_jax(transform: jk.GradientTransformation, params, grads):
    """Final params after scanning ``transform`` over the gradient sequence."""
    stacked = [jnp.asarray(np.stack([g[i] for g in grads])) for i in range(len(params))]

    @jax.jit
    def run(params, stacked):
        state = transform.init(params)

        def body(carry, g):
            p, s = carry
            u, s = transform.update(g, s, p)
            return (jk.apply_updates(p, u), s), None

        (p, s), _ = jax.lax.scan(body, (params, state), stacked)
        return p, s

    p, s = run([jnp.asarray(x) for x in params], stacked)
    return [np.asarray(x) for x in p], s


@dataclasses.dataclass
class Agreement:
    """How far the two trajectories' endpoints are, relative to how far they moved."""

    max_abs_diff: float
    moved: float
    max_ulps: float

    @property
    def relative(self) -> float:
        return self.max_abs_diff / self.moved if self.moved else float(self.max_abs_diff)


def agreement(ours, theirs, params0) -> Agreement:
    diff = max((float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0)) for a, b in zip(ours, theirs)), default=0.0)
    moved = max((float(np.max(np.abs(b.astype(np.float64) - p.astype(np.float64)), initial=0.0)) for b, p in zip(theirs, params0)), default=0.0)
    ulps = 0.0
    for a, b in zip(ours, theirs):
        if a.size:
            spacing = np.spacing(np.abs(b)).astype(np.float64)
            spacing = np.where(spacing == 0, np.finfo(b.dtype).tiny, spacing)
            ulps = max(ulps, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)) / spacing)))
    return Agreement(diff, moved, ulps)


def tf_class(family: str, name: str):
    import tf_keras

    return getattr(tf_keras.optimizers.legacy if family == "legacy" else tf_keras.optimizers, name)


def jax_factory(family: str, name: str):
    return getattr(jk.legacy if family == "legacy" else jk, name.lower())


def compare(report, label, family, name, tf_kwargs, jax_transform, dtype, grads_problem=None, graph=None):
    """Runs both sides and asserts agreement within ``TOLERANCE[dtype]``.

    ``jax_transform`` is a thunk, called with x64 set for ``dtype``.  TF runs
    in a ``tf.function`` unless ``graph_for`` says otherwise or ``graph=False``.
    """
    graph = graph_for(family, name) if graph is None else graph
    with jax.enable_x64(dtype == np.float64):
        params, grads = grads_problem or make_problem(dtype)
        theirs, _ = run_tf(lambda: tf_class(family, name)(**tf_kwargs), params, grads, graph=graph)
        ours, _ = run_jax(jax_transform(), params, grads)
    a = agreement(ours, theirs, params)
    report(f"{label:70s} {dtype.__name__}: rel {a.relative:.1e}, {a.max_ulps:.0f} ulp")
    assert a.moved > 0.01, f"the parameters hardly moved ({a.moved}); the comparison would prove little"
    assert a.relative <= TOLERANCE[dtype], (
        f"{label} {dtype.__name__}: max |jax - tf| = {a.max_abs_diff:.3e}, "
        f"{a.relative:.3e} of the distance moved ({a.moved:.3e}); tolerance {TOLERANCE[dtype]:.1e}"
    )


