"""What the Keras 3 oracle runs, shared by the test (TF imported) and the runner (Keras 3).

No TensorFlow or Keras import here: the two sides import this module in
different processes.
"""

from __future__ import annotations

# The test problem's shapes: scalar to 3-D, a matrix Muon takes, and an
# embedding table it excludes by path.
SHAPES = [(), (3,), (4, 5), (2, 3, 4), (6, 4)]

# Schedule kinds the cases may use (our class name == Keras 3's).
SCHEDULES = {"exponential": "ExponentialDecay", "cosine": "CosineDecay", "polynomial": "PolynomialDecay"}


def variable_names(shapes) -> list[str]:
    """One name per parameter; Keras 3 uses it as the variable's path."""
    base = {0: "scalar", 1: "bias", 2: "kernel", 3: "tensor"}
    names = []
    for i, shape in enumerate(shapes):
        name = "embedding_table" if shape == (6, 4) else f"{base[len(shape)]}_{i}"
        names.append(name)
    return names


def in_dtypes(params, grads, dtypes):
    """``make_problem``'s parameters and gradients, each variable's in its own dtype
    (a tree of mixed dtypes); a float16 gradient is divided by 100 first, so that
    the spikes' squares (Keras 3 sums them in float16 for a global norm) stay finite."""
    import numpy as np

    def cast(x, dtype):
        return np.asarray(x / 100 if np.dtype(dtype) == np.float16 else x, dtype)

    return (
        [np.asarray(p, d) for p, d in zip(params, dtypes)],
        [[cast(g, d) for g, d in zip(step, dtypes)] for step in grads],
    )
