"""The jaxopt_keras benchmark suite: one optimizer step, against the peers.

Run it from the repository root::

    python -m benchmarks            # the full suite (make bench): one to two hours
    python -m benchmarks --quick    # a few minutes (make bench-quick), writes build/bench-quick/
    python -m benchmarks --help     # select workloads, optimizers, systems; budgets

What it measures, per workload x optimizer x numerics family x system, each
cell in a fresh worker process: the time to the first step (building the
optimizer state, tracing, lowering and compiling the step, running it once),
the median time of one jitted step, the process's peak RSS and the optimizer
state's size; on the trees of many leaves also the first call of
``jax.jit(init)``; and how step and compile time grow with the number of
leaves.  ``docs/performance.md`` (written by the full run) shows the results
and the project's performance targets, evaluated from them.

Narrower runs measure one thing, e.g. the time to the first step of ours and
optax on the trees of many leaves, or the transformer-shaped workload::

    python -m benchmarks --workloads leaves-1000,many --systems ours,optax --no-scaling --no-sparse \\
        --out-dir build/bench-first-step --results build/bench-first-step/results.json
    python -m benchmarks --workloads gpt2 --optimizers adam --no-scaling --no-sparse \\
        --out-dir build/bench-gpt2 --results build/bench-gpt2/results.json

Layout:

* :mod:`benchmarks.config`: what a run covers (full and quick) and its budgets;
* :mod:`benchmarks.workloads`: the parameter trees (``large``, ``resnet``,
  ``gpt2``, ``leaves-N`` and ``many``);
* :mod:`benchmarks.optimizers`: the optimizers and their hyperparameters;
* :mod:`benchmarks.systems`: the registry of *systems* (ours, optax, Keras 3,
  TF-Keras, the Keras layer) and their runners;
* :mod:`benchmarks.measure`: one measurement, inside a worker process;
* :mod:`benchmarks.worker` / :mod:`benchmarks.orchestrate`: the worker
  subprocess that measures, and the parent that plans the run, starts a fresh
  worker per task and enforces the time budgets (killing a compile that
  overruns);
* :mod:`benchmarks.targets`, :mod:`benchmarks.report`, :mod:`benchmarks.plots`:
  the performance targets evaluated from the results, the Markdown page, the
  PNGs;
* :mod:`benchmarks.sparse`: the row-sparse embedding benchmark (its own
  process); :mod:`benchmarks.machine`: the machine and versions on the page;
  :mod:`benchmarks.cli`: ``python -m benchmarks``.

Changing it:

* **A workload**: a branch in :func:`benchmarks.workloads.get` returning a
  :class:`~benchmarks.workloads.Workload` (leaf names, shapes, dtype, and the
  slot dtype to ask for); select it with ``--workloads KEY`` or add the key to
  ``FULL.workloads`` in :mod:`benchmarks.config`.  Every system runs it; the
  page gets its tables.
* **An optimizer**: an :class:`~benchmarks.optimizers.OptimizerSpec` in
  :data:`benchmarks.optimizers.OPTIMIZERS` (the Keras class name and
  arguments, which jaxopt_keras, Keras 3 and TF-Keras all take, and its number
  of slots); give optax's equivalent in ``_optax_config`` in
  :mod:`benchmarks.systems` (or none: optax's cells are then N/A).
* **A system**: a :class:`~benchmarks.systems.Runner` subclass decorated with
  :func:`benchmarks.systems.register_system` (see the example there; for a
  library with optax's ``init``/``update`` protocol it subclasses
  :class:`~benchmarks.systems.FunctionalRunner` in a few lines).  Its
  docstring's first paragraph describes it on the page.
* **A target**: a ratio of one of our figures to optax's is one row of
  :data:`benchmarks.targets.VS_OPTAX`; anything else is a function
  ``(Results) -> list[Verdict]`` listed in :data:`benchmarks.targets.TARGETS`
  (:func:`~benchmarks.targets.vs_peer` and :func:`~benchmarks.targets.all_cells`
  do most of the work).  A new figure to judge is a field the worker records
  in :func:`benchmarks.measure.measure`.

``python -m benchmarks --report-only [--results R --out-dir D]`` rewrites the
page and plots from a results JSON, to check a change to the report or the
targets without measuring anything.  After a change to the report, run it on
the recorded results so ``docs/performance.md`` stays their report
(``tests/bench/`` checks; it also tests the plan, the re-measurements and the
targets' verdicts with records built by hand, without measuring).
"""
