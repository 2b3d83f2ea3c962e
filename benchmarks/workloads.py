"""The parameter trees the benchmarks step over.

* ``large``: one float32 tensor of 2**24 elements (64 MiB): pure memory
  bandwidth, no per-leaf overhead;
* ``resnet``: the trainable parameters of ResNet-50, leaf for leaf (conv
  kernels in Keras's HWIO layout, batch-norm gamma/beta, the final dense
  layer; the convolutions have no bias): 161 leaves, 25,557,032 parameters;
* ``gpt2``: GPT-2 small's parameters, leaf for leaf (token and position
  embeddings, 12 blocks of layer norms, attention and MLP projections, the
  final layer norm): 148 leaves, 124,439,808 parameters, in **bfloat16** with
  float32 optimizer slots wherever the system lets one choose the slots'
  dtype (see ``slot_dtype`` in :mod:`benchmarks.systems`);
* ``leaves-N``: N leaves of 500-5000 elements each (a seeded random size per
  leaf), the shape of a model with many small layers: per-leaf overhead and
  compile time dominate.  The full run's matrix has ``leaves-1000``;
* ``many``: the 2000-leaf tree (``leaves-2000`` under its own name).

Trees are lists of NumPy arrays (host memory); each system copies them to the
device itself before timing.  Gradients are a second tree of the same shapes.

To add a workload, give :func:`get` a branch that returns a
:class:`Workload` (names, shapes, dtype) for its key; every system then runs
it, and ``--workloads KEY`` selects it.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import ml_dtypes  # noqa: F401 - registers bfloat16 with NumPy
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


def _gpt2_shapes(
    vocab: int = 50257, context: int = 1024, width: int = 768, blocks: int = 12
) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """GPT-2's parameters in creation order (``w`` of a projection is ``in x out``)."""

    def norm(name: str) -> list[tuple[str, tuple[int, ...]]]:
        return [(f"{name}/scale", (width,)), (f"{name}/bias", (width,))]

    def dense(name: str, n_in: int, n_out: int) -> list[tuple[str, tuple[int, ...]]]:
        return [(f"{name}/w", (n_in, n_out)), (f"{name}/b", (n_out,))]

    shapes = [("wte", (vocab, width)), ("wpe", (context, width))]
    for i in range(blocks):
        shapes += norm(f"h{i}/ln_1")
        shapes += dense(f"h{i}/attn/c_attn", width, 3 * width) + dense(f"h{i}/attn/c_proj", width, width)
        shapes += norm(f"h{i}/ln_2")
        shapes += dense(f"h{i}/mlp/c_fc", width, 4 * width) + dense(f"h{i}/mlp/c_proj", 4 * width, width)
    return tuple(shapes + norm("ln_f"))


# GPT-2 small.  Checked on import: 148 leaves, 124,439,808 parameters.
GPT2_SHAPES = _gpt2_shapes()
GPT2_PARAMS = 124_439_808
assert len(GPT2_SHAPES) == 148
assert sum(math.prod(s) for _, s in GPT2_SHAPES) == GPT2_PARAMS


@dataclasses.dataclass(frozen=True)
class Workload:
    """A named parameter tree: its leaves' names, shapes and dtype.

    Attributes:
      key: ``"large"``, ``"resnet"``, ``"gpt2"``, ``"many"`` or ``"leaves-N"``.
      description: one line for the report.
      names: one name per leaf (the Keras layer's and TF's variable names).
      shapes: one shape per leaf.
      dtype: the parameters' (and gradients') dtype.
      slot_dtype: the dtype asked for the optimizer slots, from the systems
        that let one choose it; ``None``: the parameters' dtype.
    """

    key: str
    description: str
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtype: str = "float32"
    slot_dtype: str | None = None

    @property
    def n_leaves(self) -> int:
        return len(self.shapes)

    @property
    def n_params(self) -> int:
        return sum(math.prod(s) for s in self.shapes)

    @property
    def nbytes(self) -> int:
        return np.dtype(self.dtype).itemsize * self.n_params

    @property
    def slot_itemsize(self) -> int:
        """Bytes per element of a slot, where the system honours :attr:`slot_dtype`."""
        return np.dtype(self.slot_dtype or self.dtype).itemsize

    def summary(self) -> dict:
        fields = ("key", "description", "n_leaves", "n_params", "dtype", "slot_dtype")
        return {k: getattr(self, k) for k in fields} | {"bytes": self.nbytes}


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
    if key == "gpt2":
        names, shapes = zip(*GPT2_SHAPES)
        description = "GPT-2 small's parameters in bfloat16, float32 slots"
        return Workload(key, description, tuple(names), tuple(shapes), dtype="bfloat16", slot_dtype="float32")
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
    raise KeyError(f"unknown workload {key!r}: expected large, resnet, gpt2, many or leaves-N")


def scaling_key(n_leaves: int) -> str:
    """The workload of the scaling sweep at ``n_leaves`` (``many`` at 2000)."""
    return "many" if n_leaves == MANY_LEAVES else f"leaves-{n_leaves}"


def is_leaf_tree(key: str) -> bool:
    """Whether ``key`` is one of the trees of many small leaves (``many``, ``leaves-N``)."""
    return key == "many" or key.startswith("leaves-")


POOL = 2**20


@functools.lru_cache(maxsize=2)
def host_trees(key: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(params, grads)`` of workload ``key`` as NumPy arrays of its dtype (seeded).

    Params are N(0, 0.1), gradients N(0, 0.01): every optimizer's state stays
    finite over the suite's steps.  Each leaf repeats a window of a pool of
    2**20 normal draws (a step's cost does not depend on the values), so that
    the 124M parameters of ``gpt2`` take a fraction of a second to build in
    each worker process.  Cached: a worker builds them once.
    """
    workload = get(key)
    dtype = np.dtype(workload.dtype)
    rng = np.random.default_rng(SEED + 1)

    def leaf(window: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        n = math.prod(shape)
        flat = window[:n].copy() if n <= POOL else np.tile(window, -(-n // POOL))[:n]
        return flat.reshape(shape)

    def tree(scale: float) -> list[np.ndarray]:
        pool = (scale * rng.standard_normal(2 * POOL, dtype=np.float32)).astype(dtype)
        starts = rng.integers(0, POOL, workload.n_leaves)
        return [leaf(pool[a : a + POOL], s) for a, s in zip(starts, workload.shapes)]

    return tree(0.1), tree(0.01)
