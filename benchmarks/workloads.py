"""The parameter trees the benchmarks step over.

* ``large``: one float32 tensor of 2**24 elements (64 MiB): pure memory
  bandwidth, no per-leaf overhead;
* ``resnet``: the trainable parameters of ResNet-50, leaf for leaf (conv
  kernels in Keras's HWIO layout, batch-norm gamma/beta, the final dense
  layer; the convolutions have no bias): 161 leaves, 25,557,032 parameters;
* ``many``: 2000 leaves of 500-5000 elements each (a seeded random size per
  leaf), the shape of a model with many small layers: per-leaf overhead and
  compile time dominate;
* ``leaves-N``: N leaves drawn like ``many`` (``leaves-2000`` *is* ``many``),
  for the scaling sweep.

Trees are lists of NumPy arrays (host memory); each system copies them to the
device itself before timing.  Gradients are a second tree of the same shapes.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

LARGE_SIZE = 2**24
MANY_LEAVES = 2000
LEAF_SIZE_RANGE = (500, 5000)  # inclusive
SEED = 0

# The trainable parameters of ResNet-50, in the order Keras creates them
# (keras.applications.ResNet50 names; bias-free convolutions as in the
# reference model).  Checked on import: 161 leaves, 25,557,032 parameters.
RESNET50_SHAPES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("conv1_conv/kernel", (7, 7, 3, 64)),
    ("conv1_bn/gamma", (64,)),
    ("conv1_bn/beta", (64,)),
    ("conv2_block1_0_conv/kernel", (1, 1, 64, 256)),
    ("conv2_block1_0_bn/gamma", (256,)),
    ("conv2_block1_0_bn/beta", (256,)),
    ("conv2_block1_1_conv/kernel", (1, 1, 64, 64)),
    ("conv2_block1_1_bn/gamma", (64,)),
    ("conv2_block1_1_bn/beta", (64,)),
    ("conv2_block1_2_conv/kernel", (3, 3, 64, 64)),
    ("conv2_block1_2_bn/gamma", (64,)),
    ("conv2_block1_2_bn/beta", (64,)),
    ("conv2_block1_3_conv/kernel", (1, 1, 64, 256)),
    ("conv2_block1_3_bn/gamma", (256,)),
    ("conv2_block1_3_bn/beta", (256,)),
    ("conv2_block2_1_conv/kernel", (1, 1, 256, 64)),
    ("conv2_block2_1_bn/gamma", (64,)),
    ("conv2_block2_1_bn/beta", (64,)),
    ("conv2_block2_2_conv/kernel", (3, 3, 64, 64)),
    ("conv2_block2_2_bn/gamma", (64,)),
    ("conv2_block2_2_bn/beta", (64,)),
    ("conv2_block2_3_conv/kernel", (1, 1, 64, 256)),
    ("conv2_block2_3_bn/gamma", (256,)),
    ("conv2_block2_3_bn/beta", (256,)),
    ("conv2_block3_1_conv/kernel", (1, 1, 256, 64)),
    ("conv2_block3_1_bn/gamma", (64,)),
    ("conv2_block3_1_bn/beta", (64,)),
    ("conv2_block3_2_conv/kernel", (3, 3, 64, 64)),
    ("conv2_block3_2_bn/gamma", (64,)),
    ("conv2_block3_2_bn/beta", (64,)),
    ("conv2_block3_3_conv/kernel", (1, 1, 64, 256)),
    ("conv2_block3_3_bn/gamma", (256,)),
    ("conv2_block3_3_bn/beta", (256,)),
    ("conv3_block1_0_conv/kernel", (1, 1, 256, 512)),
    ("conv3_block1_0_bn/gamma", (512,)),
    ("conv3_block1_0_bn/beta", (512,)),
    ("conv3_block1_1_conv/kernel", (1, 1, 256, 128)),
    ("conv3_block1_1_bn/gamma", (128,)),
    ("conv3_block1_1_bn/beta", (128,)),
    ("conv3_block1_2_conv/kernel", (3, 3, 128, 128)),
    ("conv3_block1_2_bn/gamma", (128,)),
    ("conv3_block1_2_bn/beta", (128,)),
    ("conv3_block1_3_conv/kernel", (1, 1, 128, 512)),
    ("conv3_block1_3_bn/gamma", (512,)),
    ("conv3_block1_3_bn/beta", (512,)),
    ("conv3_block2_1_conv/kernel", (1, 1, 512, 128)),
    ("conv3_block2_1_bn/gamma", (128,)),
    ("conv3_block2_1_bn/beta", (128,)),
    ("conv3_block2_2_conv/kernel", (3, 3, 128, 128)),
    ("conv3_block2_2_bn/gamma", (128,)),
    ("conv3_block2_2_bn/beta", (128,)),
    ("conv3_block2_3_conv/kernel", (1, 1, 128, 512)),
    ("conv3_block2_3_bn/gamma", (512,)),
    ("conv3_block2_3_bn/beta", (512,)),
    ("conv3_block3_1_conv/kernel", (1, 1, 512, 128)),
    ("conv3_block3_1_bn/gamma", (128,)),
    ("conv3_block3_1_bn/beta", (128,)),
    ("conv3_block3_2_conv/kernel", (3, 3, 128, 128)),
    ("conv3_block3_2_bn/gamma", (128,)),
    ("conv3_block3_2_bn/beta", (128,)),
    ("conv3_block3_3_conv/kernel", (1, 1, 128, 512)),
    ("conv3_block3_3_bn/gamma", (512,)),
    ("conv3_block3_3_bn/beta", (512,)),
    ("conv3_block4_1_conv/kernel", (1, 1, 512, 128)),
    ("conv3_block4_1_bn/gamma", (128,)),
    ("conv3_block4_1_bn/beta", (128,)),
    ("conv3_block4_2_conv/kernel", (3, 3, 128, 128)),
    ("conv3_block4_2_bn/gamma", (128,)),
    ("conv3_block4_2_bn/beta", (128,)),
    ("conv3_block4_3_conv/kernel", (1, 1, 128, 512)),
    ("conv3_block4_3_bn/gamma", (512,)),
    ("conv3_block4_3_bn/beta", (512,)),
    ("conv4_block1_0_conv/kernel", (1, 1, 512, 1024)),
    ("conv4_block1_0_bn/gamma", (1024,)),
    ("conv4_block1_0_bn/beta", (1024,)),
    ("conv4_block1_1_conv/kernel", (1, 1, 512, 256)),
    ("conv4_block1_1_bn/gamma", (256,)),
    ("conv4_block1_1_bn/beta", (256,)),
    ("conv4_block1_2_conv/kernel", (3, 3, 256, 256)),
    ("conv4_block1_2_bn/gamma", (256,)),
    ("conv4_block1_2_bn/beta", (256,)),
    ("conv4_block1_3_conv/kernel", (1, 1, 256, 1024)),
    ("conv4_block1_3_bn/gamma", (1024,)),
    ("conv4_block1_3_bn/beta", (1024,)),
    ("conv4_block2_1_conv/kernel", (1, 1, 1024, 256)),
    ("conv4_block2_1_bn/gamma", (256,)),
    ("conv4_block2_1_bn/beta", (256,)),
    ("conv4_block2_2_conv/kernel", (3, 3, 256, 256)),
    ("conv4_block2_2_bn/gamma", (256,)),
    ("conv4_block2_2_bn/beta", (256,)),
    ("conv4_block2_3_conv/kernel", (1, 1, 256, 1024)),
    ("conv4_block2_3_bn/gamma", (1024,)),
    ("conv4_block2_3_bn/beta", (1024,)),
    ("conv4_block3_1_conv/kernel", (1, 1, 1024, 256)),
    ("conv4_block3_1_bn/gamma", (256,)),
    ("conv4_block3_1_bn/beta", (256,)),
    ("conv4_block3_2_conv/kernel", (3, 3, 256, 256)),
    ("conv4_block3_2_bn/gamma", (256,)),
    ("conv4_block3_2_bn/beta", (256,)),
    ("conv4_block3_3_conv/kernel", (1, 1, 256, 1024)),
    ("conv4_block3_3_bn/gamma", (1024,)),
    ("conv4_block3_3_bn/beta", (1024,)),
    ("conv4_block4_1_conv/kernel", (1, 1, 1024, 256)),
    ("conv4_block4_1_bn/gamma", (256,)),
    ("conv4_block4_1_bn/beta", (256,)),
    ("conv4_block4_2_conv/kernel", (3, 3, 256, 256)),
    ("conv4_block4_2_bn/gamma", (256,)),
    ("conv4_block4_2_bn/beta", (256,)),
    ("conv4_block4_3_conv/kernel", (1, 1, 256, 1024)),
    ("conv4_block4_3_bn/gamma", (1024,)),
    ("conv4_block4_3_bn/beta", (1024,)),
    ("conv4_block5_1_conv/kernel", (1, 1, 1024, 256)),
    ("conv4_block5_1_bn/gamma", (256,)),
    ("conv4_block5_1_bn/beta", (256,)),
    ("conv4_block5_2_conv/kernel", (3, 3, 256, 256)),
    ("conv4_block5_2_bn/gamma", (256,)),
    ("conv4_block5_2_bn/beta", (256,)),
    ("conv4_block5_3_conv/kernel", (1, 1, 256, 1024)),
    ("conv4_block5_3_bn/gamma", (1024,)),
    ("conv4_block5_3_bn/beta", (1024,)),
    ("conv4_block6_1_conv/kernel", (1, 1, 1024, 256)),
    ("conv4_block6_1_bn/gamma", (256,)),
    ("conv4_block6_1_bn/beta", (256,)),
    ("conv4_block6_2_conv/kernel", (3, 3, 256, 256)),
    ("conv4_block6_2_bn/gamma", (256,)),
    ("conv4_block6_2_bn/beta", (256,)),
    ("conv4_block6_3_conv/kernel", (1, 1, 256, 1024)),
    ("conv4_block6_3_bn/gamma", (1024,)),
    ("conv4_block6_3_bn/beta", (1024,)),
    ("conv5_block1_0_conv/kernel", (1, 1, 1024, 2048)),
    ("conv5_block1_0_bn/gamma", (2048,)),
    ("conv5_block1_0_bn/beta", (2048,)),
    ("conv5_block1_1_conv/kernel", (1, 1, 1024, 512)),
    ("conv5_block1_1_bn/gamma", (512,)),
    ("conv5_block1_1_bn/beta", (512,)),
    ("conv5_block1_2_conv/kernel", (3, 3, 512, 512)),
    ("conv5_block1_2_bn/gamma", (512,)),
    ("conv5_block1_2_bn/beta", (512,)),
    ("conv5_block1_3_conv/kernel", (1, 1, 512, 2048)),
    ("conv5_block1_3_bn/gamma", (2048,)),
    ("conv5_block1_3_bn/beta", (2048,)),
    ("conv5_block2_1_conv/kernel", (1, 1, 2048, 512)),
    ("conv5_block2_1_bn/gamma", (512,)),
    ("conv5_block2_1_bn/beta", (512,)),
    ("conv5_block2_2_conv/kernel", (3, 3, 512, 512)),
    ("conv5_block2_2_bn/gamma", (512,)),
    ("conv5_block2_2_bn/beta", (512,)),
    ("conv5_block2_3_conv/kernel", (1, 1, 512, 2048)),
    ("conv5_block2_3_bn/gamma", (2048,)),
    ("conv5_block2_3_bn/beta", (2048,)),
    ("conv5_block3_1_conv/kernel", (1, 1, 2048, 512)),
    ("conv5_block3_1_bn/gamma", (512,)),
    ("conv5_block3_1_bn/beta", (512,)),
    ("conv5_block3_2_conv/kernel", (3, 3, 512, 512)),
    ("conv5_block3_2_bn/gamma", (512,)),
    ("conv5_block3_2_bn/beta", (512,)),
    ("conv5_block3_3_conv/kernel", (1, 1, 512, 2048)),
    ("conv5_block3_3_bn/gamma", (2048,)),
    ("conv5_block3_3_bn/beta", (2048,)),
    ("predictions/kernel", (2048, 1000)),
    ("predictions/bias", (1000,)),
)
RESNET50_PARAMS = 25_557_032
assert len(RESNET50_SHAPES) == 161
assert sum(math.prod(s) for _, s in RESNET50_SHAPES) == RESNET50_PARAMS


@dataclasses.dataclass(frozen=True)
class Workload:
    """A named parameter tree: its leaves' names and shapes (float32).

    Attributes:
      key: ``"large"``, ``"resnet"``, ``"many"`` or ``"leaves-N"``.
      description: one line for the report.
      names: one name per leaf (the Keras layer's and TF's variable names).
      shapes: one shape per leaf.
    """

    key: str
    description: str
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @property
    def n_leaves(self) -> int:
        return len(self.shapes)

    @property
    def n_params(self) -> int:
        return sum(math.prod(s) for s in self.shapes)

    @property
    def nbytes(self) -> int:
        return 4 * self.n_params

    def summary(self) -> dict:
        return {
            "key": self.key,
            "description": self.description,
            "n_leaves": self.n_leaves,
            "n_params": self.n_params,
            "bytes": self.nbytes,
        }


def leaf_sizes(n_leaves: int, seed: int = SEED) -> list[int]:
    """``n_leaves`` sizes drawn uniformly from :data:`LEAF_SIZE_RANGE` (seeded)."""
    lo, hi = LEAF_SIZE_RANGE
    return [int(s) for s in np.random.default_rng(seed).integers(lo, hi + 1, n_leaves)]


def get(key: str) -> Workload:
    """The workload named ``key``."""
    if key == "large":
        return Workload(key, "one float32 tensor of 2**24 elements", ("large",), ((LARGE_SIZE,),))
    if key == "resnet":
        names, shapes = zip(*RESNET50_SHAPES)
        return Workload(key, "ResNet-50's trainable parameters", tuple(names), tuple(shapes))
    if key == "many":
        return dataclasses.replace(get(f"leaves-{MANY_LEAVES}"), key="many")
    if key.startswith("leaves-"):
        n = int(key.split("-", 1)[1])
        lo, hi = LEAF_SIZE_RANGE
        return Workload(
            key,
            f"{n} leaves of {lo}-{hi} elements",
            tuple(f"leaf_{i}" for i in range(n)),
            tuple((s,) for s in leaf_sizes(n)),
        )
    raise KeyError(f"unknown workload {key!r}: expected large, resnet, many or leaves-N")


def scaling_key(n_leaves: int) -> str:
    """The workload of the scaling sweep at ``n_leaves`` (``many`` at 2000)."""
    return "many" if n_leaves == MANY_LEAVES else f"leaves-{n_leaves}"


@functools.lru_cache(maxsize=2)
def host_trees(key: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(params, grads)`` of workload ``key`` as float32 NumPy arrays (seeded).

    Params are N(0, 0.1), gradients N(0, 0.01): every optimizer's state stays
    finite over the suite's steps.  Cached: the systems of one cell share them.
    """
    workload = get(key)
    rng = np.random.default_rng(SEED + 1)
    params = [(0.1 * rng.standard_normal(s, dtype=np.float32)) for s in workload.shapes]
    grads = [(0.01 * rng.standard_normal(s, dtype=np.float32)) for s in workload.shapes]
    return params, grads
