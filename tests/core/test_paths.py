"""A parameter's path in its tree (``core/paths.py``): what Keras 3's ``variable.path`` becomes."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import pytest

from jaxopt_keras.core.paths import given_paths, leaf_paths


class Pair(NamedTuple):
    kernel: jax.Array
    bias: jax.Array


def test_keys_are_joined_by_slashes_in_leaf_order():
    tree = {"encoder": {"embedding": {"embeddings": jnp.ones((3, 2))}, "dense": Pair(jnp.ones((2, 2)), jnp.zeros(2))}}
    assert leaf_paths(tree) == ["encoder/dense/kernel", "encoder/dense/bias", "encoder/embedding/embeddings"]
    assert len(leaf_paths(tree)) == len(jax.tree_util.tree_leaves(tree))


def test_sequences_give_indices_and_a_bare_leaf_an_empty_path():
    assert leaf_paths([jnp.ones(2), (jnp.ones(()), jnp.ones(3))]) == ["0", "1/0", "1/1"]
    assert leaf_paths(jnp.ones(3)) == [""]


def test_none_leaves_count_when_asked():
    tree = {"a": None, "b": jnp.ones(2)}
    assert leaf_paths(tree) == ["b"]
    assert leaf_paths(tree, is_leaf=lambda x: x is None) == ["a", "b"]


def test_given_paths_follow_the_parameters_or_fail_clearly():
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    treedef = jax.tree_util.tree_structure(params)
    assert given_paths({"w": "dense/kernel", "b": "dense/bias"}, treedef) == ["dense/bias", "dense/kernel"]
    with pytest.raises(ValueError, match="shaped like the parameters"):
        given_paths(["dense/kernel", "dense/bias"], treedef)
