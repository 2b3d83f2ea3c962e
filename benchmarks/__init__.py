"""The jaxopt_keras benchmark suite: one optimizer step, against the peers.

Run it from the repository root::

    python -m benchmarks            # the full suite (make bench), well under 20 minutes
    python -m benchmarks --quick    # about 2 minutes (make bench-quick)
    python -m benchmarks --help     # select workloads, optimizers, systems; budgets

What it measures, per workload x optimizer x numerics family x system: the
median time of one jitted step, its compile time, the process's peak RSS and
the optimizer state's size; and how step and compile time grow with the number
of leaves.  See ``docs/performance.md`` (written by the full run) for the
results and the project's performance targets, evaluated from them.

Layout:

* :mod:`benchmarks.config`: what a run covers (full and quick) and its budgets;
* :mod:`benchmarks.workloads`: the parameter trees (``large``, ``resnet``,
  ``many``, and ``leaves-N`` for the scaling sweep);
* :mod:`benchmarks.optimizers`: the optimizers and their hyperparameters;
* :mod:`benchmarks.systems`: the registry of *systems* (ours, optax, Keras 3,
  TF-Keras, the Keras layer) and their runners; add one with
  :func:`benchmarks.systems.register_system`;
* :mod:`benchmarks.measure`: one measurement, inside the worker process;
* :mod:`benchmarks.worker` / :mod:`benchmarks.orchestrate`: the worker
  subprocess that measures, and the parent that plans the run, feeds the
  worker and enforces the time budgets (killing a compile that overruns);
* :mod:`benchmarks.targets`, :mod:`benchmarks.report`, :mod:`benchmarks.plots`:
  the performance targets evaluated from the results, the Markdown page, the PNGs.
"""
