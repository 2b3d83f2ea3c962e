"""What differs per family in the object API (``optimizers/families.py``):
the current family refuses variables it was not built with, has weight-decay
exclusions and an EMA to finalize; OptimizerV2 has ``gradient_transformers``
and its own constructor rules."""

from __future__ import annotations

import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O
from layer_helpers import grads_at, make_vars


# ----------------------------------------------------------------------------
# Building: the current family refuses unknown variables
# ----------------------------------------------------------------------------


def test_current_refuses_a_variable_it_was_not_built_with():
    a, b = make_vars()
    opt = O.Adam()
    opt.apply_gradients([(grads_at(0)[0], a)])
    a_before, state_before = a.numpy(), opt.get_weights()
    with pytest.raises(KeyError) as e:
        opt.apply_gradients(list(zip(grads_at(1), [a, b])))
    assert e.value.args[0].startswith(
        "The optimizer cannot recognize variable dense/bias:0. This usually means you are trying to call "
        "the optimizer to update different parts of the model separately. Please call "
        "`optimizer.build(variables)` with the full list of trainable variables before the training loop "
        "or use legacy optimizer `"
    )
    np.testing.assert_array_equal(a.numpy(), a_before)  # nothing happened
    for x, y in zip(opt.get_weights(), state_before):
        np.testing.assert_array_equal(x, y)
    opt.build([a, b])  # already built: a no-op, as in Keras
    assert len(opt.get_weights()) == 3


# ----------------------------------------------------------------------------
# Weight decay exclusions, EMA
# ----------------------------------------------------------------------------


def test_exclude_from_weight_decay_by_list_and_by_name():
    kernel = jk.Variable(np.full(3, 2.0, np.float32), name="dense/kernel")
    bias = jk.Variable(np.full(3, 2.0, np.float32), name="dense/bias")
    emb = jk.Variable(np.full(3, 2.0, np.float32), name="embedding/table")
    opt = O.SGD(learning_rate=0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_list=[emb], var_names=["bias", "nothing"])
    zero = np.zeros(3, np.float32)
    opt.apply_gradients([(zero, kernel), (zero, bias), (zero, emb)])
    # Keras: variable -= variable * weight_decay * learning_rate, then the (zero) step.
    np.testing.assert_allclose(kernel.numpy(), 2.0 - 2.0 * 0.5 * 0.1, rtol=1e-6)
    np.testing.assert_array_equal(bias.numpy(), np.full(3, 2.0, np.float32))
    np.testing.assert_array_equal(emb.numpy(), np.full(3, 2.0, np.float32))
    with pytest.raises(ValueError, match=r"`exclude_from_weight_decay\(\)` can only be configued before the optimizer is built"):
        opt.exclude_from_weight_decay(var_names=["kernel"])


def test_keras3_takes_exclusions_after_the_build_from_the_next_step_on():
    # Keras 3 resets its per-variable cache of the decision on each call, so
    # exclusions made after the build, even after steps, apply from the next
    # step on (tests/oracle/keras3_probes.py compares the same with Keras 3).
    # Many small variables, so that in the pack-all variant the step packs its state.
    variables = [jk.Variable(np.full(4, 2.0, np.float32), name=f"w_{i}") for i in range(40)]
    opt = O.keras3.AdamW(learning_rate=0.5, weight_decay=0.25)
    zero = np.zeros(4, np.float32)
    opt.apply_gradients([(zero, v) for v in variables])  # zero gradients: only the decay moves them
    opt.exclude_from_weight_decay(var_list=variables[:10], var_names=["w_3[0-9]"])
    opt.apply_gradients([(zero, v) for v in variables])
    once, twice = 2.0 * (1 - 0.125), 2.0 * (1 - 0.125) ** 2
    for i, v in enumerate(variables):
        expected = once if i < 10 or i >= 30 else twice
        np.testing.assert_array_equal(v.numpy(), np.full(4, expected, np.float32), err_msg=v.name)


@pytest.mark.parametrize("module", [O, O.keras3], ids=["current", "keras3"])
def test_the_transformation_with_exclusions_names_its_mask_on_another_tree(module):
    kernel = jk.Variable(np.full(3, 2.0, np.float32), name="dense/kernel")
    bias = jk.Variable(np.full(2, 2.0, np.float32), name="dense/bias")
    opt = module.AdamW(learning_rate=0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"])
    opt.build([kernel, bias])
    t = opt.transformation
    # On the variables' values, in their order, the mask applies: the bias is not decayed.
    values = [np.full(3, 2.0, np.float32), np.full(2, 2.0, np.float32)]
    zero = [np.zeros(3, np.float32), np.zeros(2, np.float32)]
    updates, _ = t.update(zero, t.init(values), values)
    np.testing.assert_allclose(updates[0], -2.0 * 0.5 * 0.1, rtol=1e-6)
    np.testing.assert_array_equal(updates[1], np.zeros(2, np.float32))
    # On a tree of another structure (a ported flax tree) the mask cannot be
    # matched: a ValueError naming it, not JAX's bare "Expected dict".
    tree = {"dense": {"kernel": values[0], "bias": values[1]}}
    state = t.init(tree)
    with pytest.raises(ValueError, match=r"weight decay mask \(from `exclude_from_weight_decay`.*trees of different "
                       r"structures.*decoupled_weight_decay"):
        t.update({"dense": {"kernel": zero[0], "bias": zero[1]}}, state, tree)


def test_finalize_variable_values_with_ema():
    p = jk.Variable(np.ones(3, np.float32), name="p")
    opt = O.SGD(learning_rate=0.1, use_ema=True, ema_momentum=0.5)
    average = np.ones(3)  # Keras starts the average at the variable's value
    for _ in range(3):
        opt.apply_gradients([(np.ones(3, np.float32), p)])
        average = 0.5 * average + 0.5 * p.numpy()
    np.testing.assert_allclose(p.numpy(), 1.0 - 0.3, rtol=1e-6)
    assert [w.name for w in opt.weights] == ["iteration:0", "SGD/average/p:0", "SGD/m/p:0"]
    np.testing.assert_allclose(opt.get_weights()[1], average, rtol=1e-6)
    opt.finalize_variable_values([p])
    np.testing.assert_allclose(p.numpy(), average, rtol=1e-6)
    # Without use_ema it does nothing.
    q = jk.Variable(np.ones(3, np.float32))
    plain = O.SGD(learning_rate=0.1)
    plain.apply_gradients([(np.ones(3, np.float32), q)])
    plain.finalize_variable_values([q])
    np.testing.assert_allclose(q.numpy(), 0.9, rtol=1e-6)


# ----------------------------------------------------------------------------
# Constructor rules of the layer only
# ----------------------------------------------------------------------------


def test_layer_only_constructor_rules():
    f = lambda grads_and_vars: grads_and_vars  # noqa: E731
    for k in ("clipnorm", "global_clipnorm", "clipvalue"):
        with pytest.raises(ValueError) as e:
            O.legacy.SGD(gradient_transformers=[f], **{k: 1.0})
        assert str(e.value).startswith(
            f"`{k}` cannot be set when `gradient_transformers` is set. Instead, use the "
            "`gradient_transformers` to specify clipping and other transformations. Received: val=1.0, "
        )
    with pytest.raises(TypeError):
        O.Adam(0.1, 0.9, 0.999, 1e-7, False, False, "name", "one too many")
    assert O.Adam(0.1, 0.8).get_config()["beta_1"] == 0.8  # positional, in Keras's order
    # `lr`: the legacy alias (with a warning); the current family ignores it, as TF-Keras does.
    with pytest.warns(DeprecationWarning):
        assert O.legacy.SGD(lr=0.5).get_config()["learning_rate"] == 0.5
    with pytest.warns(DeprecationWarning):
        assert O.SGD(lr=0.5).get_config()["learning_rate"] == np.float32(0.01)


def test_legacy_gradient_transformers_run_on_the_pairs():
    seen = []

    def halve(grads_and_vars):
        seen.append([v.name for _, v in grads_and_vars])
        return [(g * 0.5, v) for g, v in grads_and_vars]

    w = jk.Variable(np.ones(2, np.float32), name="w")
    opt = O.legacy.SGD(learning_rate=1.0, gradient_transformers=[halve])
    opt.apply_gradients([(np.ones(2, np.float32), w)])
    np.testing.assert_array_equal(w.numpy(), [0.5, 0.5])
    assert seen == [["w:0"]]  # traced once, with the variables
