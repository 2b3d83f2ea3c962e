"""What a benchmark run covers, and its time budgets.

Two presets: :data:`FULL` (``python -m benchmarks``, ``make bench``) and
:data:`QUICK` (``--quick``, ``make bench-quick``).  Command-line flags override
single fields (see :mod:`benchmarks.cli`).

Time is spent almost entirely in XLA compiles: a step over a tree of many
small leaves is one program with a few fusions per leaf, compiled separately
for each distinct leaf shape, and XLA:CPU takes about a minute for 2000
leaves of distinct shapes.  Three budgets keep the suite bounded:

* ``compile_budget_s``: one measurement's compile.  The worker is killed when
  a compile overruns it, and the result is recorded as "> budget".
* ``group_budget_s``: the compile seconds one system may spend on one
  workload across its optimizer cells: a cell is skipped (and recorded so)
  when the seconds spent plus the last compile's would pass it, or once a cell
  of that system and workload overran the compile budget.  Cells run Adam
  first, so the costliest workloads still get their Adam rows.
* ``deadline_s``: the whole run; tasks not started by then are recorded as
  skipped.  The run ends about one task (at most one compile budget) past it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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
      warmup: untimed steps after the first call.
      repeats: timed steps; the median is reported.
      scaling_repeats: timed steps per point of the sweep.
      compile_budget_s: limit on one measurement's compile.
      group_budget_s: limit on one system's compile seconds over one workload
        (the next compile is predicted to take as long as the last).
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
    many_per_leaf_optimizers: tuple[str, ...]
    many_per_leaf_systems: tuple[str, ...]
    many_compile_budget_s: float
    warmup: int
    repeats: int
    scaling_repeats: int
    compile_budget_s: float
    group_budget_s: float
    deadline_s: float
    phase_timeout_s: float
    out_dir: Path
    results_path: Path

    def replace(self, **changes) -> "SuiteConfig":
        return dataclasses.replace(self, **changes)


FULL = SuiteConfig(
    mode="full",
    workloads=("large", "resnet", "many"),
    optimizers=("adam", "sgd", "rmsprop", "adagrad", "ftrl"),
    families=("current", "legacy"),
    systems=None,
    scaling_leaves=(100, 500, 2000, 5000),
    scaling_systems=("ours", "optax", "keras3", "flat"),
    scaling_optimizer="adam",
    scaling_family="current",
    many_per_leaf_optimizers=("adam",),
    # Per-leaf programs over 2000 distinct shapes take one to three minutes to
    # compile on XLA:CPU: they get a longer budget, for the systems the targets
    # compare (Keras 3 on `many` is in the scaling sweep's 2000-leaf point).
    many_per_leaf_systems=("ours", "optax", "tf_legacy", "layer"),
    many_compile_budget_s=240.0,
    warmup=5,
    repeats=50,
    scaling_repeats=20,
    compile_budget_s=90.0,
    group_budget_s=120.0,
    deadline_s=30 * 60.0,
    phase_timeout_s=300.0,
    out_dir=REPO / "docs",
    results_path=REPO / "benchmarks" / "results.json",
)

QUICK = FULL.replace(
    mode="quick",
    workloads=("large", "resnet"),
    optimizers=("adam",),
    scaling_leaves=(100, 500),
    scaling_systems=("ours", "optax", "flat"),
    warmup=2,
    repeats=10,
    scaling_repeats=5,
    compile_budget_s=30.0,
    group_budget_s=60.0,
    deadline_s=150.0,
    out_dir=REPO / "build" / "bench-quick",
    results_path=REPO / "build" / "bench-quick" / "results.json",
)
