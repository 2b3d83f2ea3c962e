"""What a benchmark run covers, and its time budgets.

Two presets: :data:`FULL` (``python -m benchmarks``, ``make bench``) and
:data:`QUICK` (``--quick``, ``make bench-quick``).  Command-line flags override
single fields (see :mod:`benchmarks.cli`).

Every measurement runs in a fresh worker process, so that its time to the
first step starts with cold compile caches.  Time is spent almost entirely in
XLA compiles: a step over a tree of many small leaves is one program with a
few fusions per leaf, compiled separately for each distinct leaf shape, and
XLA:CPU takes one to two minutes for 2000 leaves of distinct shapes.  On the
trees of many leaves (``leaves-N``, ``many``) the per-leaf systems therefore
run only the cells of :attr:`SuiteConfig.leaf_tree_cells`.  Three budgets keep
the suite bounded:

* ``compile_budget_s``: one measurement's compile (``leaf_tree_compile_budget_s``
  for the per-leaf systems on those trees).  The worker is killed when a
  compile overruns it, and the result is recorded as "> budget".
* ``group_budget_s``: the compile seconds one system may spend on one
  workload across its optimizer cells (``leaf_tree_group_budget_s`` on the
  trees of many leaves): a cell is skipped (and recorded so) when the seconds
  spent plus the last compile's would pass it, or once a cell of that system
  and workload overran the compile budget.  Cells run Adam first, so the
  costliest workloads still get their Adam rows.
* ``deadline_s``: the whole run; tasks not started by then are recorded as
  skipped.  The run ends about one task (at most one compile budget) past it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping

REPO = Path(__file__).resolve().parent.parent

# The optimizers both jaxopt_keras and optax have (the ratio targets' cells).
SHARED_WITH_OPTAX = ("adam", "sgd", "rmsprop", "adagrad")


@dataclasses.dataclass(frozen=True)
class SuiteConfig:
    """One run's coverage, repetitions, budgets and output paths.

    Attributes:
      mode: ``"full"`` or ``"quick"`` (reported on the page).
      workloads: workload keys of the main matrix (see :mod:`benchmarks.workloads`).
      optimizers: optimizer keys (see :mod:`benchmarks.optimizers`), in run order.
      families: numerics families, ``"current"`` and/or ``"legacy"``.
      systems: system keys (see :mod:`benchmarks.systems`); ``None`` = all registered.
      scaling_leaves: leaf counts of the scaling sweep (empty: no sweep).
      scaling_systems: systems of the sweep (those registered and selected).
      scaling_optimizer: the optimizer of the sweep, in ``scaling_family``.
      leaf_tree_cells: on the trees of many leaves, the optimizers each system
        runs (a system not listed runs none; ``"*"``: all of the run's).
      jit_init_optimizers: the cells (by optimizer) whose ``jax.jit(init)``
        is timed, on the trees of many leaves only.
      first_step_runs: how many fresh processes measure a cell's time to the
        first step (the fastest is kept); the second and later runs only for
        cells whose first run took at most ``first_step_rerun_max_s``.
      step_runs: of those runs, how many also time the steps, on the main
        matrix (the lowest median is kept): the same program's median step
        differs by up to 15% from one process to the next (optax's SGD step
        on 2**24 parameters took 6.9 to 8.0 ms in eight processes), and by
        up to 70% on that tensor for Adam (8.6 to 14.6 ms in 24 processes,
        ours and optax's alike, most at 11.5 to 13.2 ms: a fast mode a few
        processes hit), more than many differences the targets judge;
        ``jax.jit(init)`` is timed in as many processes of its own.
      warmup: steps after the compile before timing (the first step included).
      repeats: timed steps; the median is reported.
      timed_budget_s: fewer timed steps (not under 10) where ``repeats`` of
        them would take longer, judged by the warm-up steps.
      scaling_repeats: timed steps per point of the sweep.
      compile_budget_s, leaf_tree_compile_budget_s: limit on one measurement's compile.
      group_budget_s, leaf_tree_group_budget_s: limit on one system's compile
        seconds over one workload (the next compile is predicted to take as
        long as the last).
      deadline_s: limit on the whole run (tasks not started by then are skipped).
      phase_timeout_s: safety limit on the other phases of one measurement
        (building the inputs, the timed steps).
      out_dir: where the Markdown page and the PNGs go.
      results_path: the raw results (JSON).
    """

    mode: str
    workloads: tuple[str, ...]
    optimizers: tuple[str, ...]
    families: tuple[str, ...]
    systems: tuple[str, ...] | None
    scaling_leaves: tuple[int, ...]
    scaling_systems: tuple[str, ...]
    scaling_optimizer: str
    scaling_family: str
    leaf_tree_cells: Mapping[str, tuple[str, ...]]
    jit_init_optimizers: tuple[str, ...]
    first_step_runs: int
    first_step_rerun_max_s: float
    step_runs: int
    warmup: int
    repeats: int
    timed_budget_s: float
    scaling_repeats: int
    compile_budget_s: float
    leaf_tree_compile_budget_s: float
    group_budget_s: float
    leaf_tree_group_budget_s: float
    deadline_s: float
    phase_timeout_s: float
    out_dir: Path
    results_path: Path

    def replace(self, **changes) -> "SuiteConfig":
        return dataclasses.replace(self, **changes)


FULL = SuiteConfig(
    mode="full",
    workloads=("large", "resnet", "gpt2", "leaves-1000", "many"),
    optimizers=("adam", "sgd", "rmsprop", "adagrad", "ftrl"),
    families=("current", "legacy"),
    systems=None,
    scaling_leaves=(100, 500, 1000, 2000, 5000),
    scaling_systems=("ours", "optax", "keras3", "flat"),
    scaling_optimizer="adam",
    scaling_family="current",
    # Per-leaf programs over 1000-2000 distinct shapes take one to three
    # minutes each to compile on XLA:CPU: the flat layout runs every cell, ours
    # and optax the cells they share (the first-step and compile targets), the
    # others Adam (Keras 3 on the trees of many leaves is in the sweep).
    leaf_tree_cells={
        "flat": ("*",),
        "ours": SHARED_WITH_OPTAX,
        "optax": SHARED_WITH_OPTAX,
        "layer": ("adam",),
        "tf_legacy": ("adam",),
    },
    jit_init_optimizers=("adam",),
    first_step_runs=2,
    first_step_rerun_max_s=20.0,
    step_runs=2,
    warmup=5,
    repeats=50,
    timed_budget_s=5.0,
    scaling_repeats=20,
    compile_budget_s=90.0,
    leaf_tree_compile_budget_s=240.0,
    group_budget_s=120.0,
    leaf_tree_group_budget_s=1200.0,
    deadline_s=120 * 60.0,
    phase_timeout_s=300.0,
    out_dir=REPO / "docs",
    results_path=REPO / "benchmarks" / "results.json",
)

# The few-minute check: Adam on the workloads with few leaves, a short sweep,
# one first-step run per cell, fewer steps, tighter budgets; one line a concern.
# fmt: off
QUICK = FULL.replace(
    mode="quick",
    workloads=("large", "resnet"), optimizers=("adam",),
    scaling_leaves=(100, 300), scaling_systems=("ours", "optax", "flat"),
    first_step_runs=1, step_runs=1, warmup=2, repeats=10, scaling_repeats=5,
    compile_budget_s=30.0, group_budget_s=60.0, deadline_s=180.0,
    out_dir=REPO / "build" / "bench-quick", results_path=REPO / "build" / "bench-quick" / "results.json",
)
# fmt: on
