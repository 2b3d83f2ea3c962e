"""The default pairing of parameter leaves with Keras variables, and names= (no files needed)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from flax import linen as nn
from flax import nnx

from jaxopt_keras.io import KerasFileError
from jaxopt_keras.io.matching import leaves, match


def keras(*layers):
    """Keras path -> shape, in model order, from (layer, {var: shape})."""
    return {f"{layer}/{var}": shape for layer, variables in layers for var, shape in variables.items()}


def test_linen_dense_counts_like_keras_names():
    """Dense_0 .. Dense_11 (sorted as text by JAX: Dense_10 before Dense_2) are dense .. dense_11."""
    sizes = list(range(2, 15))
    params = {f"Dense_{i}": {"kernel": jnp.zeros((sizes[i], sizes[i + 1])), "bias": jnp.zeros(sizes[i + 1])} for i in range(12)}
    k = keras(*[("dense" if i == 0 else f"dense_{i}", {"kernel": (sizes[i], sizes[i + 1]), "bias": (sizes[i + 1],)}) for i in range(12)])
    found = dict(zip([p for p, _ in leaves(params)], match(params, k)))
    assert found["Dense_10/kernel"] == "dense_10/kernel" and found["Dense_2/bias"] == "dense_2/bias"
    assert len(set(found.values())) == 24


def test_linen_cnn_with_norms_and_embedding():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, tok, img):
            e = nn.LayerNorm()(nn.Embed(10, 4)(tok)).reshape(tok.shape[0], -1)
            c = nn.BatchNorm(use_running_average=True)(nn.Conv(2, (3, 3), padding="VALID")(img)).reshape(img.shape[0], -1)
            return nn.Dense(2)(jnp.concatenate([e, c], -1))

    variables = Net().init(jax.random.key(0), jnp.zeros((1, 5), jnp.int32), jnp.zeros((1, 6, 6, 1)))
    k = keras(
        ("embedding", {"embeddings": (10, 4)}),
        ("conv2d", {"kernel": (3, 3, 1, 2), "bias": (2,)}),
        ("layer_normalization", {"gamma": (4,), "beta": (4,)}),
        ("batch_normalization", {"gamma": (2,), "beta": (2,), "moving_mean": (2,), "moving_variance": (2,)}),
        ("dense", {"kernel": (52, 2), "bias": (2,)}),
    )
    trainable = {p: s for p, s in k.items() if "moving" not in p}
    found = dict(zip([p for p, _ in leaves(variables["params"])], match(variables["params"], trainable, all_keras=k)))
    assert found == {
        "BatchNorm_0/bias": "batch_normalization/beta",
        "BatchNorm_0/scale": "batch_normalization/gamma",
        "Conv_0/bias": "conv2d/bias",
        "Conv_0/kernel": "conv2d/kernel",
        "Dense_0/bias": "dense/bias",
        "Dense_0/kernel": "dense/kernel",
        "Embed_0/embedding": "embedding/embeddings",
        "LayerNorm_0/bias": "layer_normalization/beta",
        "LayerNorm_0/scale": "layer_normalization/gamma",
    }
    # The whole variables dict (params and batch statistics) against every Keras weight.
    found = dict(zip([p for p, _ in leaves(variables)], match(variables, k, require_all=False)))
    assert found["batch_stats/BatchNorm_0/mean"] == "batch_normalization/moving_mean"
    assert found["batch_stats/BatchNorm_0/var"] == "batch_normalization/moving_variance"


def test_nnx_state_by_kind_and_natural_order():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List([nnx.Linear(4, 4, rngs=rngs) for _ in range(11)] + [nnx.Linear(4, 2, rngs=rngs)])
            self.norm = nnx.BatchNorm(2, rngs=rngs)

    state = nnx.state(Net(nnx.Rngs(0)), nnx.Param)
    k = keras(
        *[("dense" if i == 0 else f"dense_{i}", {"kernel": (4, 4) if i < 11 else (4, 2), "bias": (4,) if i < 11 else (2,)}) for i in range(12)],
        ("bn", {"gamma": (2,), "beta": (2,), "moving_mean": (2,), "moving_variance": (2,)}),
    )
    trainable = {p: s for p, s in k.items() if "moving" not in p}
    found = dict(zip([p for p, _ in leaves(state)], match(state, trainable, all_keras=k)))
    assert found["layers/10/kernel"] == "dense_10/kernel" and found["layers/11/bias"] == "dense_11/bias"
    assert found["norm/scale"] == "bn/gamma" and found["norm/bias"] == "bn/beta"


def test_names_dict_and_callable():
    # Attribute names in the wrong order for the rule: "out" is Keras's first layer.
    params = {"hidden": {"kernel": jnp.zeros((3, 3)), "bias": jnp.zeros(3)}, "out": {"kernel": jnp.zeros((3, 3)), "bias": jnp.zeros(3)}}
    k = keras(("first", {"kernel": (3, 3), "bias": (3,)}), ("second", {"kernel": (3, 3), "bias": (3,)}))
    assert match(params, k) == ["first/bias", "first/kernel", "second/bias", "second/kernel"]
    swap = {"out/kernel": "first/kernel", ("out", "bias"): "first/bias"}
    assert match(params, k, names=swap) == ["second/bias", "second/kernel", "first/bias", "first/kernel"]
    by_function = match(params, k, names=lambda p: {"out": "first", "hidden": "second"}[p.split("/")[0]] + "/" + p.split("/")[1])
    assert by_function == ["second/bias", "second/kernel", "first/bias", "first/kernel"]


def test_mismatches_name_both_sides():
    params = {"Dense_0": {"kernel": jnp.zeros((3, 4))}}
    with pytest.raises(KerasFileError, match=r"Dense_0/kernel \(3, 4\) vs dense/kernel \(4, 3\)"):
        match(params, {"dense/kernel": (4, 3)})
    with pytest.raises(KerasFileError, match=r"Keras variables without a parameter: \['dense/bias \(4,\)'\]"):
        match(params, {"dense/kernel": (3, 4), "dense/bias": (4,)})


def test_attention_projections_pair_by_role():
    """flax's attention projections sort key, out, query, value; Keras lists query, key, value,
    attention_output.  Self-attention gives them equal shapes, so pairing in order would put
    Keras's query on the key without an error: they pair by role."""

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2)(nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=4)(x, x))

    params = Net().init(jax.random.key(0), jnp.zeros((1, 3, 4)))["params"]
    projection = {"kernel": (4, 2, 2), "bias": (2, 2)}
    k = keras(
        ("multi_head_attention/query", projection),
        ("multi_head_attention/key", projection),
        ("multi_head_attention/value", projection),
        ("multi_head_attention/attention_output", {"kernel": (2, 2, 4), "bias": (4,)}),
        ("dense", {"kernel": (4, 2), "bias": (2,)}),
    )
    found = dict(zip([p for p, _ in leaves(params)], match(params, k)))
    for role in ("query", "key", "value"):
        assert found[f"MultiHeadDotProductAttention_0/{role}/kernel"] == f"multi_head_attention/{role}/kernel"
    assert found["MultiHeadDotProductAttention_0/out/bias"] == "multi_head_attention/attention_output/bias"
    assert found["Dense_0/kernel"] == "dense/kernel"


def test_projections_outside_an_attention_module_are_not_taken_for_keras_attention():
    """A flax Dense the user named ``query`` is no attention projection: with Keras's
    MultiHeadAttention projections left over, the pairing fails and asks for names=."""
    params = {"query": {"kernel": jnp.zeros((4, 2, 2)), "bias": jnp.zeros((2, 2))}}
    k = keras(("multi_head_attention/query", {"kernel": (4, 2, 2), "bias": (2, 2)}))
    with pytest.raises(KerasFileError, match="names="):
        match(params, k)
    assert match(params, k, names={"query/kernel": "multi_head_attention/query/kernel", "query/bias": "multi_head_attention/query/bias"})
